"""Retention: handled-update ids and the payloads of finished rows of closed incidents go; the rest stays."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from groups import alerts, cases
from groups.db import session_scope
from groups.model import DeliveryStatus, Incident, IncidentEvent, Notification, ProcessedUpdate
from groups.retention import prune
from tests.support.village import T0, build_village

DAYS = 30


def test_prune_keeps_what_is_recent_or_still_needed(database_url: str) -> None:
    village = build_village(database_url)
    later = T0 + timedelta(days=DAYS + 1)
    with session_scope(village.engine) as s:
        closed = alerts.raise_alert(s, village.actor(s, "m2"), T0, text="厨房着火").incident_id
        cases.resolve(s, village.actor(s, "w1"), closed, "已扑灭", T0 + timedelta(minutes=5))
        still_open = alerts.raise_alert(s, village.actor(s, "m5"), T0, text="有人摔倒").incident_id
        fresh = alerts.raise_alert(s, village.actor(s, "m7"), later - timedelta(days=1)).incident_id
        for row in s.exec(select(Notification)).all():
            row.status = DeliveryStatus.sent
            s.add(row)
        s.add(ProcessedUpdate(bot_id=1, kind="update", ext_id="1", at=T0))
        s.add(ProcessedUpdate(bot_id=1, kind="update", ext_id="2", at=later - timedelta(hours=1)))
    with session_scope(village.engine) as s:
        pruned = prune(s, later, DAYS)
    with Session(village.engine) as s:
        assert [u.ext_id for u in s.exec(select(ProcessedUpdate)).all()] == ["2"]
        rows = s.exec(select(Notification)).all()
        emptied = {r.incident_id for r in rows if r.payload == {}}
        assert emptied == {closed}  # not the open one, not the recent one
        assert all(r.payload for r in rows if r.incident_id in (still_open, fresh))
        assert pruned.updates == 1 and pruned.payloads == sum(1 for r in rows if r.incident_id == closed)
        kept = s.get(Incident, closed)
        assert kept is not None and kept.text == "厨房着火"  # the incident and its timeline stay
        assert s.exec(select(IncidentEvent).where(IncidentEvent.incident_id == closed)).all()
    with session_scope(village.engine) as s:  # a second pass finds nothing more
        assert prune(s, later, DAYS) == type(pruned)(0, 0)
