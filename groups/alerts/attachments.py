"""What the reporter sends after raising (text, a voice note, a location), forwarded to everyone told."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from config import policies
from groups.directory import incident_group, member_id
from groups.effects import Effects
from groups.live import LiveSource, owe_live, start_share
from groups.model import OPEN_STATUSES, DeliveryStatus, Incident, Member, Notification, Priority, Purpose
from groups.outbox import add_event, audience_rows, incident_id, notify_chat, notify_member, pending_ids


@dataclass(frozen=True)
class AttachResult:
    incident_id: int
    forwarded: int
    reply_key: str
    effects: Effects = field(default_factory=Effects)

    @property
    def params(self) -> dict[str, Any]:
        return {"number": self.incident_id, "forwarded": self.forwarded}


def attach(
    session: Session,
    actor: Member | None,
    now: datetime,
    text: str | None = None,
    voice: tuple[int, int] | None = None,
    location: tuple[float, float] | None = None,
    live: LiveSource | None = None,
) -> AttachResult | None:
    """Text, a voice note ((chat_id, message_id)) or a location the reporter sends within 10 minutes of
    raising: forwarded to everyone already told (the private staff alone once the incident is private).
    A location with ``live`` (Telegram's live location) is shared as a live location that follows the
    reporter's moves (:mod:`groups.alerts.live`).
    None when there is no such incident, or no active actor (a stranger's text is not an error: the
    conversation answers it with a hint)."""
    if actor is None or not actor.active:
        return None
    since = now - timedelta(seconds=policies.ATTACH_WINDOW_S)
    query = (
        select(Incident)
        .where(
            Incident.reporter_id == member_id(actor),
            col(Incident.status).in_([s.value for s in OPEN_STATUSES]),
            Incident.created_at >= since,
        )
        .order_by(col(Incident.id).desc())
    )
    incident = session.exec(query).first()
    if incident is None:
        return None
    if location is not None:
        incident.latitude, incident.longitude = location
        session.add(incident)
    live = live if location is not None else None
    kinds = [name for name, value in (("text", text), ("voice", voice), ("location", location)) if value]
    if live is not None:
        kinds[kinds.index("location")] = "live"
    event = add_event(session, incident, "attachment", now, actor=actor, detail=" ".join(kinds) or None)
    share = start_share(session, incident, actor, live, location, now) if live and location else None
    forwards = _forwards(text, voice, location if share is None else None)
    rows: list[Notification | None] = []
    for target in audience_rows(session, incident):
        if target.status == DeliveryStatus.unreachable or target.chat_id is None:
            continue
        for n, (kind, payload) in enumerate(forwards):
            rows.append(_forward(session, incident, target, kind, payload, f"att:{event.id}:{target.id}:{n}", now))
        if share is not None:
            rows.append(owe_live(session, incident, share, target, now))
    ids = pending_ids(rows)
    return AttachResult(incident_id(incident), len(ids), "attached", Effects(notifications=ids))


def _forwards(
    text: str | None, voice: tuple[int, int] | None, location: tuple[float, float] | None
) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if text:
        found.append(("message", {"template": "attachment_text", "text": text}))
    if voice is not None:
        found.append(("copy", {"from_chat_id": voice[0], "message_id": voice[1]}))
    if location is not None:
        found.append(("location", {"latitude": location[0], "longitude": location[1]}))
    return found


def _forward(
    session: Session,
    incident: Incident,
    target: Notification,
    kind: str,
    payload: dict[str, Any],
    dedupe_key: str,
    now: datetime,
) -> Notification | None:
    if target.recipient_id is not None:
        recipient = session.get(Member, target.recipient_id)
        if recipient is None:
            return None
        return notify_member(
            session, incident, recipient, Purpose.update, Priority.updates, payload, dedupe_key, now, kind
        )
    group = incident_group(session, incident)
    assert target.chat_id is not None
    return notify_chat(
        session, incident, group, target.chat_id, Purpose.update, Priority.updates, payload, dedupe_key, now, kind
    )
