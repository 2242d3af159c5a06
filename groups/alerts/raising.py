"""Raising an SOS: a new incident fanned out, a repeat press joining the last one, a press soon after
cancelling reopening it, and cancelling it. An emergency is never refused: a member who raises many SOS
is reported to the head (possible misuse), and every SOS still goes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import union_all
from sqlmodel import Session, col, select

from config import policies
from config.settings import Settings, get_settings
from groups.alerts.category import CategoryResult, parse_category, set_category
from groups.alerts.recipients import alert_recipients, private_staff, unreachable_note
from groups.cases import close_incident
from groups.directory import (
    can_be_told,
    grid_staff,
    group_of,
    head_of,
    incident_group,
    load_incident,
    member_id,
)
from groups.effects import Effects
from groups.errors import UserError
from groups.escalation import restart_ladder, start_ladder
from groups.model import (
    OPEN_STATUSES,
    DeliveryStatus,
    HouseholdGroup,
    Incident,
    IncidentEvent,
    IncidentStatus,
    Member,
    Notification,
    Priority,
    Purpose,
    Role,
)
from groups.outbox import (
    add_event,
    audience_rows,
    count_rows,
    incident_id,
    notify_chat,
    notify_member,
    pending_ids,
    refresh_tallies,
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
    settings: Settings | None = None,
) -> RaiseResult:
    """An SOS (``/sos``, ``6995``, the button): a new incident fanned out, a repeat joining the last one, or,
    within ``settings.reopen_window_s`` of the reporter cancelling their last incident, that one reopened.

    Raises UserError("no_household") for staff who belong to no household group.
    """
    rules = settings if settings is not None else get_settings()
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
    cancelled = _cancelled_lately(session, actor, group, now, rules.reopen_window_s)
    if cancelled is not None:
        reopened = _reopen(session, cancelled, actor, chosen, clean_text, location, now, rules.reopen_window_s)
        reopened.effects.extend(_misuse(session, actor, cancelled, now, rules))
        return reopened
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
    raised = _fan_out(session, incident, actor, group, chosen, now)
    raised.effects.extend(_misuse(session, actor, incident, now, rules))
    return raised


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


def _confirmation_payload(incident: Incident, told: int, joined: bool, reopened: bool = False) -> dict[str, Any]:
    category = policies.CATEGORIES.get(incident.category, policies.CATEGORIES["general"])
    recipients = [str(role) for role in policies.private_staff_roles(category)] if incident.private else []
    payload = {"template": "confirmation", "told": told, "joined": joined, "recipients": recipients}
    return payload | {"reopened": True} if reopened else payload


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


# --- reopening ------------------------------------------------------------------------------------------

REOPENED = "reopened"  # the timeline kind of a reopening (counted by the misuse rule)


def _cancelled_lately(
    session: Session, reporter: Member, group: HouseholdGroup, now: datetime, window_s: float
) -> Incident | None:
    """The reporter's latest incident when they cancelled it within the window (a new SOS reopens it)."""
    latest = session.exec(
        select(Incident).where(Incident.reporter_id == member_id(reporter)).order_by(col(Incident.id).desc())
    ).first()
    if (
        latest is None
        or latest.status != IncidentStatus.cancelled
        or latest.closed_at is None
        or latest.closed_at < now - timedelta(seconds=window_s)
        or latest.group_id != group.id
    ):
        return None
    return load_incident(session, incident_id(latest), for_update=True)


def _reopen(
    session: Session,
    incident: Incident,
    reporter: Member,
    chosen: policies.Category,
    text: str | None,
    location: tuple[float, float] | None,
    now: datetime,
    window_s: float,
) -> RaiseResult:
    """Open the cancelled incident again (same #N): a new category applies (private rules included), the
    ladder climbs again from now, and those told before get one short notice each, at most one per window
    (the group post and the head's alert are edited): a reporter pressing SOS and cancel in a loop does
    not flood the village."""
    number = incident_id(incident)
    told_before = _audience_ids(session, incident)
    owner_id = incident.acknowledged_by_id
    incident.status = IncidentStatus.open.value
    incident.closed_at = None
    incident.closed_by_id = None
    # Whoever owned it stood down when it was cancelled: it must be taken again (the ladder runs).
    incident.acknowledged_by_id = None
    incident.acknowledged_at = None
    incident.last_raised_at = now
    if text:
        incident.text = text if not incident.text or text in incident.text else f"{incident.text}\n{text}"
    if location is not None:
        incident.latitude, incident.longitude = location
    session.add(incident)
    add_event(session, incident, REOPENED, now, actor=reporter, detail=text)
    effects = Effects()
    if chosen.name not in ("general", incident.category) and not (incident.private and not chosen.private):
        # Its timer is superseded by the restarted ladder below.
        effects.notifications.extend(set_category(session, reporter, number, chosen.name, now).effects.notifications)
    category = policies.CATEGORIES.get(incident.category, policies.CATEGORIES["general"])
    effects.extend(restart_ladder(session, incident, category, now))
    told = _reachable(session, incident)
    confirmation = notify_member(
        session,
        incident,
        reporter,
        Purpose.confirmation,
        Priority.urgent,
        _confirmation_payload(incident, told, joined=False, reopened=True),
        f"confirm:{number}:{count_rows(session, incident, Purpose.confirmation) + 1}",
        now,
    )
    # The reporter hears first: their confirmation goes to the head of what is enqueued here.
    effects.notifications[:0] = pending_ids([confirmation])
    audience = _audience_ids(session, incident)
    targets = [i for i in told_before if i in audience]
    if owner_id is not None and owner_id not in targets and (not incident.private or owner_id in audience):
        targets.append(owner_id)
    rows: list[Notification | None] = []
    count = _reopen_count(session, incident)
    payload = {"template": "reopened", "confidential": True} if incident.private else {"template": "reopened"}
    for recipient_id in targets:
        member = session.get(Member, recipient_id)
        if member is None or recipient_id == incident.reporter_id or _noticed(session, number, member, now, window_s):
            continue
        key = f"reopen:{number}:{recipient_id}:{count}"
        rows.append(notify_member(session, incident, member, Purpose.alert, Priority.urgent, payload, key, now,
                                  kind="notice"))
    group = incident_group(session, incident)
    effects.notifications.extend(refresh_tallies(session, incident, group.head_id, now))
    effects.notifications.extend(pending_ids(rows))
    return RaiseResult(
        number,
        False,
        incident.category,
        incident.private,
        told,
        0,
        False,
        tuple(str(role) for role in policies.private_staff_roles(category)) if incident.private else (),
        REOPENED,
        effects,
    )


def _audience_ids(session: Session, incident: Incident) -> list[int]:
    """Members who were told of the incident and may still hear of it (its staff alone once private)."""
    rows = audience_rows(session, incident)
    found = (r.recipient_id for r in rows if r.recipient_id is not None and r.status != DeliveryStatus.unreachable)
    return list(dict.fromkeys(found))


def _reopen_count(session: Session, incident: Incident) -> int:
    query = select(IncidentEvent.id).where(
        IncidentEvent.incident_id == incident_id(incident), IncidentEvent.kind == REOPENED
    )
    return len(session.exec(query).all())


def _noticed(session: Session, number: int, member: Member, now: datetime, window_s: float) -> bool:
    """``member`` already had a reopening notice of incident ``number`` within the window."""
    query = select(Notification.id).where(
        col(Notification.dedupe_key).startswith(f"reopen:{number}:{member_id(member)}:"),
        Notification.created_at >= now - timedelta(seconds=window_s),
    )
    return session.exec(query).first() is not None


# --- possible misuse -------------------------------------------------------------------------------------


def _misuse(session: Session, reporter: Member, incident: Incident, now: datetime, rules: Settings) -> Effects:
    """More than ``misuse_threshold`` SOS (new or reopened) by one member within ``misuse_window_s``: tell
    the head once per window (possible misuse); when any of them is private, the grid workers instead,
    never the head. The SOS itself went out in full before this."""
    mid = member_id(reporter)
    since = now - timedelta(seconds=rules.misuse_window_s)
    # One round trip on every SOS (the alert's hot path): the incidents raised and reopened in the window.
    raised_or_reopened = union_all(
        select(Incident.id.label("incident_id")).where(  # type: ignore[union-attr]
            Incident.reporter_id == mid, Incident.created_at >= since
        ),
        select(IncidentEvent.incident_id).where(
            IncidentEvent.kind == REOPENED, IncidentEvent.actor_id == mid, IncidentEvent.at >= since
        ),
    )
    found = [row[0] for row in session.execute(raised_or_reopened).all()]
    count = len(found)
    if count <= rules.misuse_threshold:
        return Effects()
    earlier = select(Notification.id).where(
        col(Notification.dedupe_key).startswith(f"misuse:{mid}:"), Notification.created_at >= since
    )
    if session.exec(earlier).first() is not None:
        return Effects()  # once per member and window, not on every further SOS
    ids = {i for i in found if i is not None}
    private = incident.private or session.exec(
        select(Incident.id).where(col(Incident.id).in_(ids), col(Incident.private).is_(True))
    ).first() is not None
    group = incident_group(session, incident)
    head = None if private else head_of(session, group)
    told = [head] if head is not None and head.id != mid else list(grid_staff(session, group.grid_id,
                                                                                Role.grid_worker.value))
    number = incident_id(incident)
    payload = {"template": "misuse", "member_id": mid, "count": count, "window_s": rules.misuse_window_s}
    rows = [
        notify_member(session, incident, member, Purpose.update, Priority.updates, payload,
                      f"misuse:{mid}:{number}:{member_id(member)}", now)
        for member in told
    ]
    add_event(session, incident, "misuse", now, detail=str(count))
    return Effects(notifications=pending_ids(rows))


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
