"""Case work by staff: list, look at, acknowledge, resolve, mark false; closing tells those involved."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from groups.directory import (
    incident_group,
    is_open,
    member_id,
    staff_grid_ids,
)
from groups.effects import Effects
from groups.errors import UserError
from groups.escalation import acknowledge_incident
from groups.live import stop_shares
from groups.model import (
    OPEN_STATUSES,
    HouseholdGroup,
    Incident,
    IncidentEvent,
    IncidentStatus,
    Member,
    Notification,
    Priority,
    Purpose,
    Referral,
    Response,
    Role,
)
from groups.outbox import add_event, audience_rows, incident_id, notify_member, pending_ids, refresh_tallies, told_rows
from groups.permissions import POLICE_LEVEL, authorize, officer_roles


@dataclass(frozen=True)
class CaseSummary:
    """One line of ``/cases``."""

    incident_id: int
    status: str
    category: str
    group_code: str
    group_name: str
    reporter_name: str
    escalation_level: int
    created_at: datetime
    waiting_s: int


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    actor: str | None  # member name, None for the system
    detail: str | None


@dataclass(frozen=True)
class NotificationEntry:
    recipient: str  # member name, or "group:<code>"
    purpose: str
    kind: str
    status: str
    template: str | None


@dataclass(frozen=True)
class CaseDetail:
    """Everything ``/case N`` shows; the renderer formats it."""

    summary: CaseSummary
    text: str | None
    private: bool
    latitude: float | None
    longitude: float | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_at: datetime | None
    responses: list[tuple[str, str, datetime]]  # (name, kind, at)
    timeline: list[TimelineEntry]
    notifications: list[NotificationEntry]
    referrals: list[dict[str, Any]]  # id, department, status (open | overdue | done), due_at, done_at, note


@dataclass(frozen=True)
class CaseResult:
    """The answer to a case command: reply key + params for the face, outbox work for after the commit."""

    incident_id: int
    reply_key: str
    params: dict[str, Any] = field(default_factory=dict)
    effects: Effects = field(default_factory=Effects)


# --- reading -------------------------------------------------------------------------------------------


def list_cases(session: Session, actor: Member, now: datetime) -> list[CaseSummary]:
    """``/cases``: open incidents of a grid worker's grids, those escalated to a police officer, and the
    private incidents of an officer's category in their grids; oldest first."""
    worker_grids = staff_grid_ids(session, actor, Role.grid_worker.value)
    police_grids = staff_grid_ids(session, actor, Role.police.value)
    officer_grids = {
        role: staff_grid_ids(session, actor, role) for role in (Role.women_fed.value, Role.child_director.value)
    }
    if not worker_grids and not police_grids and not any(officer_grids.values()):
        raise UserError("not_allowed", command="cases")
    open_values = [s.value for s in OPEN_STATUSES]
    query = (
        select(Incident, HouseholdGroup)
        .join(HouseholdGroup, col(HouseholdGroup.id) == Incident.group_id)
        .where(col(Incident.status).in_(open_values))
        .order_by(col(Incident.created_at), col(Incident.id))
    )
    found: list[CaseSummary] = []
    for incident, group in session.exec(query).all():
        visible = (
            group.grid_id in worker_grids
            or (group.grid_id in police_grids and incident.escalation_level >= POLICE_LEVEL)
            or any(group.grid_id in officer_grids.get(role, []) for role in officer_roles(incident))
        )
        if visible:
            found.append(_summary(session, incident, group, now))
    return found


def _summary(session: Session, incident: Incident, group: HouseholdGroup, now: datetime) -> CaseSummary:
    return CaseSummary(
        incident_id=incident_id(incident),
        status=incident.status,
        category=incident.category,
        group_code=group.code,
        group_name=group.name,
        reporter_name=_name(session, incident.reporter_id) or "?",
        escalation_level=incident.escalation_level,
        created_at=incident.created_at,
        waiting_s=max(0, int((now - incident.created_at).total_seconds())),
    )


def _name(session: Session, member_id_: int | None) -> str | None:
    if member_id_ is None:
        return None
    member = session.get(Member, member_id_)
    return member.name if member is not None else None


def case_detail(session: Session, actor: Member, number: int, now: datetime) -> CaseDetail:
    """``/case N``: the incident, its timeline, who was told, who answered, what was forwarded."""
    incident, _ = authorize(session, actor, number, "case")
    group = incident_group(session, incident)
    events = session.exec(
        select(IncidentEvent).where(IncidentEvent.incident_id == number).order_by(col(IncidentEvent.id))
    ).all()
    responses = session.exec(
        select(Response).where(Response.incident_id == number).order_by(col(Response.at))
    ).all()
    rows = session.exec(
        select(Notification).where(Notification.incident_id == number).order_by(col(Notification.id))
    ).all()
    referrals = session.exec(
        select(Referral).where(Referral.incident_id == number).order_by(col(Referral.id))
    ).all()
    return CaseDetail(
        summary=_summary(session, incident, group, now),
        text=incident.text,
        private=incident.private,
        latitude=incident.latitude,
        longitude=incident.longitude,
        acknowledged_by=_name(session, incident.acknowledged_by_id),
        acknowledged_at=incident.acknowledged_at,
        closed_at=incident.closed_at,
        responses=[(_name(session, r.member_id) or "?", r.kind, r.at) for r in responses],
        timeline=[TimelineEntry(e.at, e.kind, _name(session, e.actor_id), e.detail) for e in events],
        notifications=[_entry(session, row, group) for row in rows],
        referrals=[
            {"id": r.id, "department": r.department, "status": _referral_status(r, now), "due_at": r.due_at,
             "done_at": r.done_at, "note": r.note}
            for r in referrals
        ],
    )


def _referral_status(referral: Referral, now: datetime) -> str:
    """done once answered; overdue after its due time; open until then."""
    if referral.done_at is not None:
        return "done"
    return "overdue" if now > referral.due_at else "open"


def _entry(session: Session, row: Notification, group: HouseholdGroup) -> NotificationEntry:
    recipient = _name(session, row.recipient_id) if row.recipient_id is not None else f"group:{group.code}"
    template = row.payload.get("template") if isinstance(row.payload, dict) else None
    return NotificationEntry(recipient or "?", row.purpose, row.kind, row.status, template)


# --- acting --------------------------------------------------------------------------------------------


def acknowledge(session: Session, actor: Member, number: int, now: datetime) -> CaseResult:
    """``/ack N``: take ownership; stops the ladder."""
    incident, _ = authorize(session, actor, number, "ack")
    if not is_open(incident):
        raise UserError("incident_closed", number=number)
    if incident.status == IncidentStatus.acknowledged:
        by = _name(session, incident.acknowledged_by_id)
        return CaseResult(number, "already_acknowledged", {"number": number, "name": by})
    effects = acknowledge_incident(session, incident, actor, now, via="command")
    return CaseResult(number, "acknowledged", {"number": number}, effects)


def resolve(session: Session, actor: Member, number: int, note: str | None, now: datetime) -> CaseResult:
    """``/resolve N [note]``."""
    return _close_command(session, actor, number, "resolve", IncidentStatus.resolved, note, now)


def mark_false(session: Session, actor: Member, number: int, note: str | None, now: datetime) -> CaseResult:
    """``/false N [note]``: a false alarm."""
    return _close_command(session, actor, number, "false", IncidentStatus.false_alarm, note, now)


def _close_command(
    session: Session,
    actor: Member,
    number: int,
    command: str,
    status: IncidentStatus,
    note: str | None,
    now: datetime,
) -> CaseResult:
    incident, _ = authorize(session, actor, number, command)
    if not is_open(incident):
        raise UserError("incident_closed", number=number)
    effects = close_incident(session, incident, status, actor, note, now)
    return CaseResult(number, status.value, {"number": number}, effects)


def close_incident(
    session: Session,
    incident: Incident,
    status: IncidentStatus,
    by: Member | None,
    note: str | None,
    now: datetime,
) -> Effects:
    """Close: stop the ladder, record it, tell the reporter and every responder (cancel: everyone told)."""
    incident.status = status.value
    incident.closed_at = now
    incident.closed_by_id = member_id(by) if by is not None else None
    incident.next_escalation_at = None
    session.add(incident)
    add_event(session, incident, status.value, now, actor=by, detail=note)
    payload = {"template": "closed", "status": status.value, "note": note, "by": by.id if by is not None else None}
    number = incident_id(incident)
    rows = [
        notify_member(session, incident, m, Purpose.closing, Priority.updates, payload, f"closed:{number}:{m.id}", now)
        for m in _closing_audience(session, incident, status)
        if by is None or m.id != by.id
    ]
    effects = Effects(notifications=pending_ids(rows))
    effects.notifications.extend(refresh_tallies(session, incident, incident_group(session, incident).head_id, now))
    effects.notifications.extend(stop_shares(session, incident, now))  # live locations stop following
    return effects


def _closing_audience(session: Session, incident: Incident, status: IncidentStatus) -> list[Member]:
    """The reporter, every responder, and on a cancel everyone told; of a private incident, only the
    reporter and its staff (a neighbour who answered before it became private hears nothing more)."""
    ids: list[int] = [incident.reporter_id]
    responders = session.exec(select(Response.member_id).where(Response.incident_id == incident.id)).all()
    ids.extend(responders)
    if status == IncidentStatus.cancelled:
        ids.extend(row.recipient_id for row in told_rows(session, incident) if row.recipient_id is not None)
    if incident.private:
        staff = {row.recipient_id for row in audience_rows(session, incident)}
        ids = [i for i in ids if i == incident.reporter_id or i in staff]
    unique = list(dict.fromkeys(ids))
    members = [session.get(Member, i) for i in unique]
    return [m for m in members if m is not None]
