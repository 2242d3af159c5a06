"""Timer kinds: what runs when a :class:`~groups.effects.Timer` is due, and which are pending.

Each kind names a handler (run by a worker at the timer's time, in one transaction) and a query of the
timers the database says are pending (re-armed after Redis lost them). A new kind (a roll call's
deadline, a check-in) is a new entry here; the workers carry any kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from groups.effects import Effects, Timer
from groups.escalation import ESCALATION_TIMER, escalation_due
from groups.model import Incident, IncidentStatus

ESCALATION = ESCALATION_TIMER


@dataclass
class Fired:
    """What a due timer did: ``effects`` to hand on, ``rearm_at`` when it came early, ``summary`` for logs."""

    effects: Effects = field(default_factory=Effects)
    rearm_at: datetime | None = None
    summary: str | None = None


@dataclass(frozen=True)
class TimerKind:
    """``fire(session, subject, now)``; ``pending(session)``: this kind's timers the database holds;
    ``job_prefix``: how job ids name it (short, stable: jobs already scheduled keep their ids)."""

    fire: Callable[[Session, int, datetime], Fired]
    pending: Callable[[Session], list[Timer]]
    job_prefix: str


def _fire_escalation(session: Session, incident_id: int, now: datetime) -> Fired:
    result = escalation_due(session, incident_id, now)
    summary = f"incident #{incident_id} escalated to level {result.level}" if result.effects.notifications else None
    return Fired(result.effects, result.rearm_at, summary)


def _pending_escalations(session: Session) -> list[Timer]:
    rows = session.exec(
        select(Incident.id, Incident.next_escalation_at).where(
            # Only an open incident climbs (an acknowledged one never does: no timer to keep alive).
            col(Incident.next_escalation_at).is_not(None), col(Incident.status) == IncidentStatus.open
        )
    ).all()
    return [Timer(ESCALATION, int(i), at) for i, at in rows if i is not None and at is not None]


KINDS: dict[str, TimerKind] = {
    ESCALATION: TimerKind(fire=_fire_escalation, pending=_pending_escalations, job_prefix="esc"),
}


def pending_timers(session: Session) -> list[Timer]:
    """Every timer of every kind the database says is still to run."""
    return [timer for kind in KINDS.values() for timer in kind.pending(session)]
