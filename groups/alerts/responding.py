"""Responding to an alert: each member's answer recorded, the reporter told, acknowledgement by those who may."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from groups.directory import group_of, incident_group, is_open, load_incident, member_id
from groups.effects import Effects
from groups.errors import UserError
from groups.escalation import acknowledge_incident
from groups.model import Incident, IncidentStatus, Member, Priority, Purpose, Response, ResponseKind
from groups.outbox import add_event, audience_rows, notify_member, pending_ids, refresh_tallies, told_member_ids
from groups.permissions import can_acknowledge


@dataclass(frozen=True)
class RespondResult:
    incident_id: int
    kind: str
    changed: bool
    acknowledged: bool
    reply_key: str
    effects: Effects = field(default_factory=Effects)

    @property
    def params(self) -> dict[str, Any]:
        return {"number": self.incident_id, "kind": self.kind}


def respond(session: Session, actor: Member, number: int, kind: str, now: datetime) -> RespondResult:
    """A response button: record (or change) the actor's answer, tell the reporter, update the tallies.

    Raises UserError("bad_response"), ("incident_not_found"), ("own_incident"), ("not_notified"),
    ("incident_private": told before it became private, not its staff) or ("incident_closed").
    """
    if kind not in ResponseKind.__members__:
        raise UserError("bad_response")
    incident = load_incident(session, number, for_update=True)
    if incident.reporter_id == member_id(actor):
        raise UserError("own_incident", number=number)
    if not _was_notified(session, incident, actor):
        raise UserError("not_notified", number=number)
    if incident.private and member_id(actor) not in _staff_told(session, incident):
        # Told before it became private (a neighbour, the head): their buttons on it are refused.
        raise UserError("incident_private", number=number)
    if not is_open(incident):
        raise UserError("incident_closed", number=number)
    query = select(Response).where(Response.incident_id == number, Response.member_id == member_id(actor))
    response = session.exec(query).first()
    if response is not None and response.kind == kind:
        return RespondResult(number, kind, False, False, "response_unchanged")
    if response is None:
        response = Response(incident_id=number, member_id=member_id(actor), kind=kind, at=now)
    response.kind, response.at = kind, now
    session.add(response)
    event = add_event(session, incident, "response", now, actor=actor, detail=kind)
    effects = Effects(notifications=_tell_reporter_of_response(session, incident, actor, kind, event.id, now))
    acknowledged = kind != ResponseKind.cant and incident.status == IncidentStatus.open
    acknowledged = acknowledged and can_acknowledge(session, actor, incident)
    if acknowledged:
        effects.extend(acknowledge_incident(session, incident, actor, now, via="response"))
    else:
        effects.notifications.extend(refresh_tallies(session, incident, incident_group(session, incident).head_id, now))
    return RespondResult(number, kind, True, acknowledged, "response_recorded", effects)


def _was_notified(session: Session, incident: Incident, member: Member) -> bool:
    """Told by a DM, or (non-private) an active member of the group whose chat got the post."""
    if member_id(member) in told_member_ids(session, incident):
        return True
    if incident.private:
        return False
    group = group_of(session, member)
    return group is not None and group.id == incident.group_id


def _staff_told(session: Session, incident: Incident) -> set[int]:
    return {row.recipient_id for row in audience_rows(session, incident) if row.recipient_id is not None}


def _tell_reporter_of_response(
    session: Session, incident: Incident, member: Member, kind: str, event_id: int | None, now: datetime
) -> list[int]:
    reporter = session.get(Member, incident.reporter_id)
    if reporter is None:
        return []
    payload = {"template": "response", "responder_id": member_id(member), "kind": kind}
    row = notify_member(session, incident, reporter, Purpose.update, Priority.updates, payload, f"resp:{event_id}", now)
    return pending_ids([row])
