"""Ownership and the ladder: head -> grid worker (网格员) -> police (警务人员).

An incident climbs one step when nobody acknowledged it by the step's deadline; any acknowledgement
stops the climb. Timers may fire early, late or twice: :func:`escalation_due` re-checks everything in
the database and does each step at most once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlmodel import Session

from config import policies
from groups.directory import (
    grid_of_group,
    grid_staff,
    head_of,
    incident_group,
    is_open,
    load_incident,
    member_id,
)
from groups.effects import Effects, Timer
from groups.errors import UserError
from groups.model import Grid, Incident, IncidentStatus, Member, Priority, Purpose, Role
from groups.outbox import add_event, incident_id, notify_member, pending_ids, refresh_tallies, tell_members
from groups.permissions import authorize

TOP_LEVEL: Final[int] = policies.TOP_LEVEL

ESCALATION_TIMER = "escalation"  # the timer kind of the ladder's next step (groups.timers)


@dataclass(frozen=True)
class EscalationResult:
    """``level``: the level reached now (None when nothing fired); ``rearm_at``: the timer came early."""

    incident_id: int
    level: int | None = None
    rearm_at: datetime | None = None
    effects: Effects = field(default_factory=Effects)


@dataclass(frozen=True)
class ManualEscalationResult:
    incident_id: int
    target: str
    told: int
    reply_key: str
    effects: Effects

    @property
    def params(self) -> dict[str, Any]:
        return {"number": self.incident_id, "target": self.target, "told": self.told}


def start_level(category: policies.Category) -> int:
    """Where a new incident of ``category`` starts on the ladder (policy START_HIGHER may lift it)."""
    level = category.start_level + (1 if category.name in policies.START_HIGHER else 0)
    return min(level, TOP_LEVEL)


def _next_deadline(incident: Incident, grid: Grid, level: int, previous: datetime | None) -> datetime | None:
    """When the step above ``level`` is due: created + head_ack_s, then worker_ack_s after that."""
    if level >= TOP_LEVEL:
        return None
    if level == 0:
        return incident.created_at + timedelta(seconds=grid.head_ack_s)
    base = previous if previous is not None else incident.created_at
    return base + timedelta(seconds=grid.worker_ack_s)


def _tell_level(session: Session, incident: Incident, grid: Grid, level: int, now: datetime) -> list[int]:
    assert grid.id is not None
    payload = {"template": "escalation", "level": level, "reason": None, "manual": False}
    staff = grid_staff(session, grid.id, policies.ladder_role(level))
    rows = tell_members(
        session,
        incident,
        staff,
        Purpose.escalation,
        Priority.escalation,
        payload,
        f"esc:{incident_id(incident)}:{level}",
        now,
    )
    return pending_ids(rows)


def start_ladder(session: Session, incident: Incident, category: policies.Category, now: datetime) -> Effects:
    """Arm the ladder of a new non-private incident (and tell the levels it starts above)."""
    effects = Effects()
    if incident.private or not category.ladder:
        incident.next_escalation_at = None
        return effects
    grid = grid_of_group(session, incident_group(session, incident))
    level = start_level(category)
    for step in range(1, level + 1):
        effects.notifications.extend(_tell_level(session, incident, grid, step, now))
    incident.escalation_level = level
    incident.next_escalation_at = _next_deadline(incident, grid, level, None)
    if incident.next_escalation_at is not None:
        effects.timers.append(Timer(ESCALATION_TIMER, incident_id(incident), incident.next_escalation_at))
    session.add(incident)
    return effects


def rearm_ladder(session: Session, incident: Incident, category: policies.Category, now: datetime) -> Effects:
    """After a category change: stop the ladder for non-ladder categories, restart it for ladder ones."""
    effects = Effects()
    if incident.private or not category.ladder or incident.status != IncidentStatus.open:
        incident.next_escalation_at = None
        return effects
    if incident.next_escalation_at is None and incident.escalation_level < TOP_LEVEL:
        grid = grid_of_group(session, incident_group(session, incident))
        due = _next_deadline(incident, grid, incident.escalation_level, None)
        incident.next_escalation_at = max(due, now) if due is not None else None
        if incident.next_escalation_at is not None:
            effects.timers.append(Timer(ESCALATION_TIMER, incident_id(incident), incident.next_escalation_at))
    return effects


def restart_ladder(session: Session, incident: Incident, category: policies.Category, now: datetime) -> Effects:
    """A reopened incident: the ladder climbs again from the level it had reached, its next step counted
    from ``now`` (those told before stay told; a deadline from the first raising would fire at once)."""
    effects = Effects()
    if (
        incident.private
        or not category.ladder
        or incident.status != IncidentStatus.open
        or incident.escalation_level >= TOP_LEVEL
    ):
        incident.next_escalation_at = None
        session.add(incident)
        return effects
    grid = grid_of_group(session, incident_group(session, incident))
    wait = grid.head_ack_s if incident.escalation_level == 0 else grid.worker_ack_s
    incident.next_escalation_at = now + timedelta(seconds=wait)
    session.add(incident)
    effects.timers.append(Timer(ESCALATION_TIMER, incident_id(incident), incident.next_escalation_at))
    return effects


def escalation_due(session: Session, number: int, now: datetime) -> EscalationResult:
    """The timer fired: climb one step if the deadline has passed and nobody acknowledged."""
    try:
        incident = load_incident(session, number, for_update=True)
    except UserError:
        return EscalationResult(number)
    due = incident.next_escalation_at
    if incident.status != IncidentStatus.open or due is None or incident.escalation_level >= TOP_LEVEL:
        return EscalationResult(number)
    if now < due:
        return EscalationResult(number, rearm_at=due)
    level = incident.escalation_level + 1
    grid = grid_of_group(session, incident_group(session, incident))
    effects = Effects(notifications=_tell_level(session, incident, grid, level, now))
    incident.escalation_level = level
    incident.next_escalation_at = _next_deadline(incident, grid, level, due)
    session.add(incident)
    add_event(session, incident, "escalated", now, detail=str(level))
    if incident.next_escalation_at is not None:
        effects.timers.append(Timer(ESCALATION_TIMER, number, incident.next_escalation_at))
    return EscalationResult(number, level=level, effects=effects)


def acknowledge_incident(session: Session, incident: Incident, member: Member, now: datetime, via: str) -> Effects:
    """Record ownership (the caller checked who may): stop the ladder, tell the reporter and the head."""
    if incident.status != IncidentStatus.open:
        return Effects()
    incident.status = IncidentStatus.acknowledged.value
    incident.acknowledged_by_id = member_id(member)
    incident.acknowledged_at = now
    incident.next_escalation_at = None
    session.add(incident)
    add_event(session, incident, "acknowledged", now, actor=member, detail=via)
    group = incident_group(session, incident)
    audience = [m for m in (_reporter(session, incident), head_of(session, group)) if m is not None]
    if incident.private:
        audience = audience[:1]
    payload = {"template": "acknowledged", "by": member_id(member)}
    rows = [
        notify_member(
            session,
            incident,
            m,
            Purpose.update,
            Priority.updates,
            payload,
            f"ack:{incident_id(incident)}:{member_id(m)}",
            now,
        )
        for m in audience
        if m.id != member.id
    ]
    effects = Effects(notifications=pending_ids(rows))
    effects.notifications.extend(refresh_tallies(session, incident, group.head_id, now))
    return effects


def _reporter(session: Session, incident: Incident) -> Member | None:
    return session.get(Member, incident.reporter_id)


def target_role(target: str | None) -> str:
    """The staff role a manual escalation names (police, women, child), else UserError("bad_target")."""
    role = policies.ESCALATION_TARGETS.get((target or "").strip().lower())
    if role is None:
        raise UserError("bad_target", targets=" | ".join(policies.ESCALATION_TARGETS))
    return role


def escalate_manual(
    session: Session, actor: Member, number: int, target: str, reason: str | None, now: datetime
) -> ManualEscalationResult:
    """``/escalate N police|women|child [reason]`` by a grid worker of the incident's grid."""
    role = target_role(target)
    incident, _ = authorize(session, actor, number, "escalate")
    if not is_open(incident):
        raise UserError("incident_closed", number=number)
    grid = grid_of_group(session, incident_group(session, incident))
    assert grid.id is not None
    level = TOP_LEVEL if role == Role.police.value else incident.escalation_level
    payload = {"template": "escalation", "level": level, "reason": reason, "manual": True, "by": member_id(actor)}
    key = f"esc:{number}:{level if role == Role.police.value else role}"
    rows = tell_members(
        session,
        incident,
        grid_staff(session, grid.id, role),
        Purpose.escalation,
        Priority.escalation,
        payload,
        key,
        now,
    )
    if role == Role.police.value:
        # Police are the top of the ladder: nothing left for the timer to do.
        incident.escalation_level = TOP_LEVEL
        incident.next_escalation_at = None
        session.add(incident)
    word = (target or "").strip().lower()
    add_event(session, incident, "escalated", now, actor=actor, detail=_detail(word, reason))
    pending = pending_ids(rows)
    # ``target`` in the result is the role told (police, women_fed, child_director), for the renderer.
    return ManualEscalationResult(number, role, len(pending), "escalated", Effects(notifications=pending))


def _detail(target: str, reason: str | None) -> str:
    return f"{target}: {reason}" if reason else target
