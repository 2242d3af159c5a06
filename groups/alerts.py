"""The alert loop: raise an SOS, fan it out, record responses, attach what follows, cancel.

Every function writes its rows and returns what the face must reply and the outbox ids to enqueue;
the caller commits once (persist first, send after).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from config import policies
from groups.cases import close_incident
from groups.directory import (
    can_be_told,
    grid_staff,
    group_members,
    group_of,
    head_of,
    incident_group,
    is_open,
    linked_member,
    load_incident,
    member_by_user,
    member_id,
)
from groups.effects import Effects
from groups.errors import UserError
from groups.escalation import acknowledge_incident, rearm_ladder, start_ladder
from groups.model import (
    OPEN_STATUSES,
    HouseholdGroup,
    Incident,
    IncidentStatus,
    Member,
    Notification,
    Priority,
    Purpose,
    Response,
    ResponseKind,
    Role,
)
from groups.outbox import (
    add_event,
    count_rows,
    incident_id,
    notify_chat,
    notify_member,
    pending_ids,
    refresh_tallies,
    tell_members,
    told_member_ids,
    told_rows,
)
from groups.permissions import can_acknowledge


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


@dataclass(frozen=True)
class CategoryResult:
    incident_id: int
    category: str
    changed: bool
    reply_key: str
    effects: Effects = field(default_factory=Effects)

    @property
    def params(self) -> dict[str, Any]:
        return {"number": self.incident_id, "category": self.category}


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


@dataclass(frozen=True)
class AttachResult:
    incident_id: int
    forwarded: int
    reply_key: str
    effects: Effects = field(default_factory=Effects)

    @property
    def params(self) -> dict[str, Any]:
        return {"number": self.incident_id, "forwarded": self.forwarded}


# --- raising ---------------------------------------------------------------------------------------


def parse_category(category: str | None, text: str | None) -> tuple[policies.Category, str | None]:
    """The category a villager named; an unknown word is part of the text (category general)."""
    general = policies.CATEGORIES["general"]
    word = (category or "").strip()
    if not word:
        return general, _clean(text)
    found = policies.find_category(word)
    if found is not None:
        return found, _clean(text)
    return general, _clean(f"{word} {text or ''}")


def _clean(text: str | None) -> str | None:
    return text.strip() or None if text else None


def raise_alert(
    session: Session,
    telegram_user_id: int,
    now: datetime,
    category: str | None = None,
    text: str | None = None,
    location: tuple[float, float] | None = None,
) -> RaiseResult:
    """An SOS (``/sos``, ``6995``, the button): a new incident fanned out, or a repeat joining the last one.

    Raises UserError("not_linked") or ("no_household") for staff who belong to no household group.
    """
    reporter = linked_member(session, telegram_user_id)
    # PostgreSQL: two presses in flight at once must not both open an incident (SQLite serializes writers).
    session.exec(select(Member.id).where(Member.id == reporter.id).with_for_update()).first()
    group = group_of(session, reporter)
    if group is None:
        raise UserError("no_household")
    chosen, clean_text = parse_category(category, text)
    if reporter.unreachable_at is not None:
        # They are writing to the bot right now, so it can write back (the confirmation must go out).
        reporter.unreachable_at = None
        session.add(reporter)
    recent = _recent_incident(session, reporter, now)
    if recent is not None:
        joined = _join(session, recent, reporter, clean_text, location, now)
        if chosen.name not in ("general", recent.category) and not (recent.private and not chosen.private):
            # "/sos 家暴 …" right after a bare 6995: the same incident, now of that category (and routed so).
            changed = set_category(session, telegram_user_id, incident_id(recent), chosen.name, now)
            joined.effects.extend(changed.effects)
        return joined
    assert group.id is not None
    incident = Incident(
        group_id=group.id,
        reporter_id=member_id(reporter),
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
    add_event(session, incident, "raised", now, actor=reporter, detail=chosen.name)
    return _fan_out(session, incident, reporter, group, chosen, now)


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
    told = told_rows(session, incident)
    return sum(1 for row in told if row.recipient_id is not None and row.status != "unreachable")


def alert_recipients(
    session: Session, incident: Incident, reporter: Member, group: HouseholdGroup, category: policies.Category
) -> list[Member]:
    """Who gets the alert DM: the other members of the group and the head, or the staff of a private one."""
    if category.private:
        return private_staff(session, group, category)
    members = [m for m in group_members(session, incident.group_id) if m.id != reporter.id]
    head = head_of(session, group)
    if head is not None and head.id != reporter.id and all(m.id != head.id for m in members):
        members.append(head)
    return members


def private_staff(session: Session, group: HouseholdGroup, category: policies.Category) -> list[Member]:
    """Grid workers, police and the category's own officers (妇联执委 / 儿童主任) of the group's grid."""
    roles = (Role.grid_worker.value, Role.police.value, *category.private_roles)
    found: list[Member] = []
    for role in roles:
        found.extend(m for m in grid_staff(session, group.grid_id, role) if m not in found)
    return found


def _confirmation_payload(incident: Incident, told: int, joined: bool) -> dict[str, Any]:
    category = policies.CATEGORIES.get(incident.category, policies.CATEGORIES["general"])
    recipients = [Role.grid_worker.value, Role.police.value, *category.private_roles] if incident.private else []
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
        rows.append(_unreachable_note(session, incident, group, unreachable, "raise", now))
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


def _unreachable_note(
    session: Session,
    incident: Incident,
    group: HouseholdGroup,
    members: Sequence[Member],
    suffix: str,
    now: datetime,
) -> Notification | None:
    """Tell the head which members the alert could not reach (they may knock on a door instead)."""
    head = head_of(session, group)
    if head is None:
        return None
    payload = {"template": "unreachable", "member_ids": [member_id(m) for m in members]}
    return notify_member(
        session,
        incident,
        head,
        Purpose.update,
        Priority.updates,
        payload,
        f"unreach:{incident_id(incident)}:{suffix}",
        now,
    )


# --- after raising -----------------------------------------------------------------------------------


def _own_open_incident(session: Session, telegram_user_id: int, incident_id_: int) -> tuple[Member, Incident]:
    member = linked_member(session, telegram_user_id)
    incident = load_incident(session, incident_id_, for_update=True)
    if incident.reporter_id != member_id(member):
        raise UserError("not_allowed", command="category")
    if not is_open(incident):
        raise UserError("incident_closed", number=incident_id_)
    return member, incident


def set_category(
    session: Session, telegram_user_id: int, incident_id_: int, category: str, now: datetime
) -> CategoryResult:
    """The reporter picks or changes the category. A private incident stays private."""
    member, incident = _own_open_incident(session, telegram_user_id, incident_id_)
    chosen = policies.find_category(category or "")
    if chosen is None:
        raise UserError("bad_category", category=category)
    if incident.private and not chosen.private:
        raise UserError("category_locked", number=incident_id_)
    if chosen.name == incident.category:
        return CategoryResult(incident_id_, chosen.name, False, "category_unchanged")
    incident.category = chosen.name
    add_event(session, incident, "category", now, actor=member, detail=chosen.name)
    group = incident_group(session, incident)
    effects = Effects()
    if chosen.private:
        incident.private = True
        incident.escalation_level = max(incident.escalation_level, chosen.start_level)
        payload = {"template": "alert", "confidential": True}
        staff = private_staff(session, group, chosen)
        rows = tell_members(
            session, incident, staff, Purpose.alert, Priority.urgent, payload, f"alert:{incident_id_}", now
        )
        effects.notifications.extend(pending_ids(rows))
    effects.extend(rearm_ladder(session, incident, chosen, now))
    session.add(incident)
    effects.notifications.extend(refresh_tallies(session, incident, group.head_id, now))
    return CategoryResult(incident_id_, chosen.name, True, "category_set", effects)


def respond(session: Session, telegram_user_id: int, incident_id_: int, kind: str, now: datetime) -> RespondResult:
    """A response button: record (or change) this member's answer, tell the reporter, update the tallies.

    Raises UserError("not_linked"), ("incident_not_found"), ("own_incident"), ("not_notified"),
    ("incident_closed") or ("bad_response").
    """
    if kind not in ResponseKind.__members__:
        raise UserError("bad_response")
    member = linked_member(session, telegram_user_id)
    incident = load_incident(session, incident_id_, for_update=True)
    if incident.reporter_id == member_id(member):
        raise UserError("own_incident", number=incident_id_)
    if not _was_notified(session, incident, member):
        raise UserError("not_notified", number=incident_id_)
    if not is_open(incident):
        raise UserError("incident_closed", number=incident_id_)
    query = select(Response).where(Response.incident_id == incident_id_, Response.member_id == member_id(member))
    response = session.exec(query).first()
    if response is not None and response.kind == kind:
        return RespondResult(incident_id_, kind, False, False, "response_unchanged")
    if response is None:
        response = Response(incident_id=incident_id_, member_id=member_id(member), kind=kind, at=now)
    response.kind, response.at = kind, now
    session.add(response)
    event = add_event(session, incident, "response", now, actor=member, detail=kind)
    effects = Effects(notifications=_tell_reporter_of_response(session, incident, member, kind, event.id, now))
    acknowledged = kind != ResponseKind.cant and incident.status == IncidentStatus.open
    acknowledged = acknowledged and can_acknowledge(session, member, incident)
    if acknowledged:
        effects.extend(acknowledge_incident(session, incident, member, now, via="response"))
    else:
        effects.notifications.extend(refresh_tallies(session, incident, incident_group(session, incident).head_id, now))
    return RespondResult(incident_id_, kind, True, acknowledged, "response_recorded", effects)


def _was_notified(session: Session, incident: Incident, member: Member) -> bool:
    """Told by a DM, or (non-private) an active member of the group whose chat got the post."""
    if member_id(member) in told_member_ids(session, incident):
        return True
    if incident.private:
        return False
    group = group_of(session, member)
    return group is not None and group.id == incident.group_id


def _tell_reporter_of_response(
    session: Session, incident: Incident, member: Member, kind: str, event_id: int | None, now: datetime
) -> list[int]:
    reporter = session.get(Member, incident.reporter_id)
    if reporter is None:
        return []
    payload = {"template": "response", "responder_id": member_id(member), "kind": kind}
    row = notify_member(session, incident, reporter, Purpose.update, Priority.updates, payload, f"resp:{event_id}", now)
    return pending_ids([row])


def cancel_latest(session: Session, telegram_user_id: int, now: datetime) -> CategoryResult:
    """``/cancel``: the reporter withdraws their most recent open incident; everyone told hears so."""
    member = linked_member(session, telegram_user_id)
    query = (
        select(Incident)
        .where(
            Incident.reporter_id == member_id(member),
            col(Incident.status).in_([s.value for s in OPEN_STATUSES]),
        )
        .order_by(col(Incident.id).desc())
    )
    incident = session.exec(query).first()
    if incident is None:
        raise UserError("no_open_incident")
    effects = close_incident(session, incident, IncidentStatus.cancelled, member, None, now)
    return CategoryResult(incident_id(incident), incident.category, True, "cancelled", effects)


def attach(
    session: Session,
    telegram_user_id: int,
    now: datetime,
    text: str | None = None,
    voice: tuple[int, int] | None = None,
    location: tuple[float, float] | None = None,
) -> AttachResult | None:
    """Text, a voice note ((chat_id, message_id)) or a location the reporter sends within 10 minutes of
    raising: forwarded to everyone already told. None when there is no such incident."""
    member = member_by_user(session, telegram_user_id)
    if member is None or not member.active:
        return None
    since = now - timedelta(seconds=policies.ATTACH_WINDOW_S)
    query = (
        select(Incident)
        .where(
            Incident.reporter_id == member_id(member),
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
    kinds = [name for name, value in (("text", text), ("voice", voice), ("location", location)) if value]
    event = add_event(session, incident, "attachment", now, actor=member, detail=" ".join(kinds) or None)
    forwards = _forwards(text, voice, location)
    rows: list[Notification | None] = []
    for target in told_rows(session, incident):
        if target.status == "unreachable" or target.chat_id is None:
            continue
        for n, (kind, payload) in enumerate(forwards):
            rows.append(_forward(session, incident, target, kind, payload, f"att:{event.id}:{target.id}:{n}", now))
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


def note_unreachable(session: Session, notification_id: int, now: datetime) -> list[int]:
    """The delivery worker got a 403 for this row: remember the member can't be reached and tell the head."""
    row = session.get(Notification, notification_id)
    if row is None or row.recipient_id is None:
        return []
    member = session.get(Member, row.recipient_id)
    if member is None:
        return []
    if member.unreachable_at is None:
        member.unreachable_at = now
        session.add(member)
    if row.incident_id is None:
        return []
    incident = session.get(Incident, row.incident_id)
    if incident is None or incident.private:
        return []
    group = incident_group(session, incident)
    if group.head_id == member.id:
        return []
    note = _unreachable_note(session, incident, group, [member], str(member_id(member)), now)
    return pending_ids([note])
