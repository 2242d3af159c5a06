"""转介: a grid worker (or a private incident's officer) refers a case to a department: that department's
staff in the incident's grid get the case summary; the referrer is reminded until it is answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlmodel import Session, col, select

from config import policies
from groups.directory import grid_staff, incident_group, member_id
from groups.effects import Effects
from groups.errors import UserError
from groups.model import DeliveryStatus, Incident, Member, Notification, Priority, Purpose, Referral, Role
from groups.outbox import add_event, notify_member, pending_ids
from groups.permissions import authorize

MAX_DAYS = 365


@dataclass(frozen=True)
class ReferralResult:
    """``told``: the department's staff the referral reaches. ``due_at`` is UTC: the face shows it as a
    day in YIHU_TIMEZONE (``due`` is not among ``params``)."""

    incident_id: int
    referral_ids: tuple[int, ...]
    department: str | None
    due_at: datetime | None
    reply_key: str
    effects: Effects = field(default_factory=Effects)
    told: int = 0

    @property
    def params(self) -> dict[str, Any]:
        return {"number": self.incident_id, "department": self.department, "told": self.told}


def refer(
    session: Session,
    actor: Member,
    number: int,
    department: str,
    now: datetime,
    days: int | str | None = policies.REFERRAL_DEFAULT_DAYS,
) -> ReferralResult:
    """``/refer N women|civil|procuratorate|child [days]`` by a grid worker of the incident's grid (or the
    officer of a private incident): the department's staff in that grid get a DM with the case summary.
    When the department has nobody there the referral is still recorded and the referrer is told so.

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
    group = incident_group(session, incident)
    office = grid_staff(session, group.grid_id, policies.REFERRAL_ROLES[name])
    staff = [m for m in office if m.id != actor.id]  # an officer referring to their own department
    payload = {"template": "referral", "referral_id": referral.id, "by": member_id(actor)}
    rows = [
        notify_member(session, incident, member, Purpose.referral, Priority.updates, payload,
                      f"referral:{referral.id}:{member_id(member)}", now)
        for member in staff
    ]
    told = sum(1 for row in rows if row is not None and row.status == DeliveryStatus.pending)
    # Nobody of the department reachable (none in the grid, or none linked): the referrer must call them.
    key = "referral_sent" if told or len(staff) < len(office) else "referral_nobody"
    return ReferralResult(number, (referral.id,), name, referral.due_at, key, Effects(pending_ids(rows)), told)


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


def referral_reminders_due(session: Session, now: datetime, zone: tzinfo = UTC) -> list[int]:
    """Remind the grid workers of open referrals: once in the last days before the due date, then on the
    due date and every day after until done (one reminder per referral, worker and day; days in ``zone``,
    the YIHU_TIMEZONE the due date is shown in)."""
    soon = now + timedelta(days=policies.REFERRAL_REMIND_BEFORE_DAYS)
    query = select(Referral).where(col(Referral.done_at).is_(None), Referral.due_at <= soon)
    rows: list[Notification | None] = []
    for referral in session.exec(query).all():
        rows.extend(_remind(session, referral, now, zone))
    return pending_ids(rows)


def _remind(session: Session, referral: Referral, now: datetime, zone: tzinfo) -> list[Notification | None]:
    incident = session.get(Incident, referral.incident_id)
    if incident is None:
        return []
    group = incident_group(session, incident)
    today = now.astimezone(zone).date()
    due = today >= referral.due_at.astimezone(zone).date()
    # Before the due date one reminder is enough; from the due date on, one a day.
    stamp = today.isoformat() if due else "soon"
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
