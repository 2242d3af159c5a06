"""Commands and timers on one incident are serialized, on SQLite too: no update is lost between them."""

from __future__ import annotations

import threading

from sqlmodel import Session

from groups import alerts, cases, escalation
from groups.db import session_scope
from groups.directory import load_incident
from groups.model import Incident
from tests.support.village import T0, build_village


def test_an_ack_waits_for_an_escalation_holding_the_incident(database_url: str) -> None:
    """The escalation read the incident first; the ack must not commit in between and be overwritten."""
    village = build_village(database_url)
    with session_scope(village.engine) as session:
        number = alerts.raise_alert(session, village.actor(session, "m2"), T0).incident_id
    acked = threading.Event()

    def ack() -> None:
        with session_scope(village.engine) as other:
            cases.acknowledge(other, village.actor(other, "w1"), number, T0)
        acked.set()

    with session_scope(village.engine) as session:
        held = load_incident(session, number, for_update=True)  # as escalation_due does
        assert held.status == "open"
        racer = threading.Thread(target=ack)
        racer.start()
        assert not acked.wait(0.5), "the ack committed while the escalation held the incident"
        held.escalation_level = 1  # the escalation's write, from what it read
        session.add(held)
    racer.join(timeout=30)
    assert acked.is_set()
    with Session(village.engine) as session:
        final = session.get(Incident, number)
        assert final is not None
        assert final.status == "acknowledged" and final.next_escalation_at is None
        assert final.escalation_level == 1
    with session_scope(village.engine) as session:  # and the ladder does not climb an owned case
        assert escalation.escalation_due(session, number, T0.replace(year=2030)).level is None
