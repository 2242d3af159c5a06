"""Raising an SOS: a new incident fanned out, a repeat press joining the last one, and cancelling it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from config import policies
from groups.alerts.category import CategoryResult, parse_category, set_category
from groups.alerts.recipients import alert_recipients, private_staff, unreachable_note
from groups.cases import close_incident
from groups.directory import can_be_told, group_of, incident_group, member_id
from groups.effects import Effects
from groups.errors import UserError
from groups.escalation import start_ladder
from groups.model import (
    OPEN_STATUSES,
    HouseholdGroup,
    Incident,
    IncidentStatus,
    Member,
    Notification,
    Priority,
    Purpose,
)
from groups.outbox import (
    add_event,
    count_rows,
    incident_id,
    notify_chat,
    notify_member,
    pending_ids,
    tell_members,
    told_rows,
)


@dataclass(frozen=True)
class RaiseResult:
    """``told``: members the alert can reach; ``recipients``: staff roles told of a private incident."""

    incident_id: int
    joined: bool
    category: str
    private: bool
    told: int
    unreachable: int
    group_post: bool
    recipients: tuple[str, ...]
    reply_key: str
    effects: Effects = field(default_factory=Effects)

    @property
    def params(self) -> dict[str, Any]:
        return {"number": self.incident_id, "told": self.told}


def raise_alert(
    session: Session,
    actor: Member,
    now: datetime,
    category: str | None = None,
    text: str | None = None,
    location: tuple[float, float] | None = None,
) -> RaiseResult:
    """An SOS (``/sos``, ``6995``, the button): a new incident fanned out, or a repeat joining the last one.

    Raises UserError("no_household") for staff who belong to no household group.
    """
    # PostgreSQL: two presses in flight at once must not both open an incident (SQLite serializes writers).
    session.exec(select(Member.id).where(Member.id == actor.id).with_for_update()).first()
    group = group_of(session, actor)
    if group is None:
        raise UserError("no_household")
    chosen, clean_text = parse_category(category, text)
    if actor.unreachable_at is not None:
        # They are writing to the bot right now, so it can write back (the confirmation must go out).
        actor.unreachable_at = None
        session.add(actor)
    recent = _recent_incident(session, actor, now)
    if recent is not None:
        changed = None
        if chosen.name not in ("general", recent.category) and not (recent.private and not chosen.private):
            # "/sos 家暴 …" right after a bare 6995: the same incident, now of that category (and routed so).
            # Applied before the confirmation is written, so that it counts those told from now on.
            changed = set_category(session, actor, incident_id(recent), chosen.name, now)
        joined = _join(session, recent, actor, clean_text, location, now)
        if changed is not None:
            joined.effects.extend(changed.effects)
        return joined
    assert group.id is not None
    incident = Incident(
        group_id=group.id,
        reporter_id=member_id(actor),
        category=chosen.name,
        text=clean_text,
        private=chosen.private,
        escalation_level=chosen.start_level if chosen.private else 0,
        created_at=now,
        last_raised_at=now,
    )
    if location is not None:
        incident.latitude, incident.longitude = location
    session.add(incident)
    session.flush()
    add_event(session, incident, "raised", now, actor=actor, detail=chosen.name)
    return _fan_out(session, incident, actor, group, chosen, now)


def _recent_incident(session: Session, reporter: Member, now: datetime) -> Incident | None:
    """The reporter's open incident last raised within the repeat window (a second press joins it)."""
    since = now - timedelta(seconds=policies.REPEAT_SOS_WINDOW_S)
    query = (
        select(Incident)
        .where(
            Incident.reporter_id == member_id(reporter),
            col(Incident.status).in_([s.value for s in OPEN_STATUSES]),
            Incident.last_raised_at >= since,
        )
        .order_by(col(Incident.id).desc())
    )
    return session.exec(query).first()


def _join(
    session: Session,
    incident: Incident,
    reporter: Member,
    text: str | None,
    location: tuple[float, float] | None,
    now: datetime,
) -> RaiseResult:
    incident.last_raised_at = now
    if text and not incident.text:
        incident.text = text
    if location is not None:
        incident.latitude, incident.longitude = location
    session.add(incident)
    add_event(session, incident, "repeat", now, actor=reporter, detail=text)
    told = _reachable(session, incident)
    number = count_rows(session, incident, Purpose.confirmation) + 1
    payload = _confirmation_payload(incident, told, joined=True)
    row = notify_member(
        session,
        incident,
        reporter,
        Purpose.confirmation,
        Priority.urgent,
        payload,
        f"confirm:{incident_id(incident)}:{number}",
        now,
    )
    return RaiseResult(
        incident_id(incident),
        True,
        incident.category,
        incident.private,
        told,
        0,
        False,
        tuple(payload["recipients"]),
        "joined",
        Effects(notifications=pending_ids([row])),
    )


def _reachable(session: Session, incident: Incident) -> int:
    """Members told of the incident who can be reached; of a private one, only its staff.

    Neighbours told before the incident became private are not counted: nothing more reaches them.
    """
    told = {
        row.recipient_id: row.purpose
        for row in told_rows(session, incident)
        if row.recipient_id is not None and row.status != "unreachable"
    }
    if not incident.private:
        return len(told)
    category = policies.CATEGORIES.get(incident.category, policies.CATEGORIES["general"])
    staff = {member_id(m) for m in private_staff(session, incident_group(session, incident), category)}
    return sum(1 for member, purpose in told.items() if member in staff or purpose == Purpose.escalation.value)


def _confirmation_payload(incident: Incident, told: int, joined: bool) -> dict[str, Any]:
    category = policies.CATEGORIES.get(incident.category, policies.CATEGORIES["general"])
    recipients = [str(role) for role in policies.private_staff_roles(category)] if incident.private else []
    return {"template": "confirmation", "told": told, "joined": joined, "recipients": recipients}


def _fan_out(
    session: Session,
    incident: Incident,
    reporter: Member,
    group: HouseholdGroup,
    category: policies.Category,
    now: datetime,
) -> RaiseResult:
    """Confirmation first (lowest id), then the alert DMs, the group post, the unreachable note, the ladder."""
    number = incident_id(incident)
    recipients = alert_recipients(session, incident, reporter, group, category)
    reachable = [m for m in recipients if can_be_told(m)]
    payload = _confirmation_payload(incident, len(reachable), joined=False)
    rows: list[Notification | None] = [
        notify_member(
            session,
            incident,
            reporter,
            Purpose.confirmation,
            Priority.urgent,
            payload,
            f"confirm:{number}:1",
            now,
        )
    ]
    alert: dict[str, Any] = {"template": "alert", "confidential": True} if category.private else {"template": "alert"}
    rows.extend(
        tell_members(session, incident, recipients, Purpose.alert, Priority.urgent, alert, f"alert:{number}", now)
    )
    post = None
    if not category.private and group.chat_id is not None:
        post = notify_chat(
            session,
            incident,
            group,
            group.chat_id,
            Purpose.alert,
            Priority.urgent,
            {"template": "alert"},
            f"group:{number}",
            now,
        )
        rows.append(post)
    unreachable = [m for m in recipients if not can_be_told(m)]
    if unreachable and not category.private:
        rows.append(unreachable_note(session, incident, group, unreachable, "raise", now))
    effects = Effects(notifications=pending_ids(rows))
    effects.extend(start_ladder(session, incident, category, now))
    return RaiseResult(
        number,
        False,
        category.name,
        category.private,
        len(reachable),
        len(unreachable),
        post is not None,
        tuple(payload["recipients"]),
        "raised",
        effects,
    )


def cancel_latest(session: Session, actor: Member, now: datetime) -> CategoryResult:
    """``/cancel``: the reporter withdraws their most recent open incident; everyone told hears so."""
    query = (
        select(Incident)
        .where(
            Incident.reporter_id == member_id(actor),
            col(Incident.status).in_([s.value for s in OPEN_STATUSES]),
        )
        .order_by(col(Incident.id).desc())
    )
    incident = session.exec(query).first()
    if incident is None:
        raise UserError("no_open_incident")
    effects = close_incident(session, incident, IncidentStatus.cancelled, actor, None, now)
    return CategoryResult(incident_id(incident), incident.category, True, "cancelled", effects)
