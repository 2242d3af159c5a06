"""转介: a grid worker refers a case to a department and is reminded until it is answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from config import policies
from groups.directory import grid_staff, incident_group, member_id
from groups.effects import Effects
from groups.errors import UserError
from groups.model import Incident, Member, Notification, Priority, Purpose, Referral, Role
from groups.outbox import add_event, notify_member, pending_ids
from groups.permissions import authorize

MAX_DAYS = 365


@dataclass(frozen=True)
class ReferralResult:
    incident_id: int
    referral_ids: tuple[int, ...]
    department: str | None
    due_at: datetime | None
    reply_key: str
    effects: Effects = field(default_factory=Effects)

    @property
    def params(self) -> dict[str, Any]:
        due = self.due_at.date().isoformat() if self.due_at is not None else None
        return {"number": self.incident_id, "department": self.department, "due": due}


def refer(
    session: Session,
    actor: Member,
    number: int,
    department: str,
    now: datetime,
    days: int | str | None = policies.REFERRAL_DEFAULT_DAYS,
) -> ReferralResult:
    """``/refer N women|civil|procuratorate|child [days]`` by a grid worker of the incident's grid.

    ``days`` may be the word the user typed (empty or None: the default)."""
    name = (department or "").strip().lower()
    if name not in policies.REFERRAL_DEPARTMENTS:
        raise UserError("bad_department", departments=" | ".join(policies.REFERRAL_DEPARTMENTS))
    days = _days(days)
    if not 1 <= days <= MAX_DAYS:
        raise UserError("bad_days", max=MAX_DAYS)
    incident, _ = authorize(session, actor, number, "refer")
    referral = Referral(
        incident_id=number,
        department=name,
        referred_by_id=member_id(actor),
        created_at=now,
        due_at=now + timedelta(days=days),
    )
    session.add(referral)
    session.flush()
    assert referral.id is not None
    add_event(session, incident, "referred", now, actor=actor, detail=f"{name} {days}d")
    return ReferralResult(number, (referral.id,), name, referral.due_at, "referred")


def _days(value: int | str | None) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return policies.REFERRAL_DEFAULT_DAYS
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise UserError("bad_days", max=MAX_DAYS)
        return int(value)
    return value


def referral_done(session: Session, actor: Member, number: int, note: str | None, now: datetime) -> ReferralResult:
    """``/referral_done N [note]``: every open referral of the incident is answered."""
    incident, _ = authorize(session, actor, number, "referral_done")
    query = select(Referral).where(Referral.incident_id == number, col(Referral.done_at).is_(None))
    open_referrals = session.exec(query).all()
    if not open_referrals:
        raise UserError("no_referral", number=number)
    for referral in open_referrals:
        referral.done_at = now
        referral.note = note
        session.add(referral)
    add_event(session, incident, "referral_done", now, actor=actor, detail=note)
    ids = tuple(r.id for r in open_referrals if r.id is not None)
    return ReferralResult(number, ids, None, None, "referral_done")


def referral_reminders_due(session: Session, now: datetime) -> list[int]:
    """Remind the grid workers of open referrals: once in the last days before the due date, then on the
    due date and every day after until done (one reminder per referral, worker and day)."""
    soon = now + timedelta(days=policies.REFERRAL_REMIND_BEFORE_DAYS)
    query = select(Referral).where(col(Referral.done_at).is_(None), Referral.due_at <= soon)
    rows: list[Notification | None] = []
    for referral in session.exec(query).all():
        rows.extend(_remind(session, referral, now))
    return pending_ids(rows)


def _remind(session: Session, referral: Referral, now: datetime) -> list[Notification | None]:
    incident = session.get(Incident, referral.incident_id)
    if incident is None:
        return []
    group = incident_group(session, incident)
    due = now.date() >= referral.due_at.date()
    # Before the due date one reminder is enough; from the due date on, one a day (UTC days).
    stamp = now.date().isoformat() if due else "soon"
    payload = {"template": "referral_reminder", "referral_id": referral.id, "due": due}
    return [
        notify_member(
            session,
            incident,
            worker,
            Purpose.reminder,
            Priority.bulk,
            payload,
            f"ref:{referral.id}:{stamp}:{member_id(worker)}",
            now,
        )
        for worker in grid_staff(session, group.grid_id, Role.grid_worker.value)
    ]
