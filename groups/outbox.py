"""The outbox and the timeline: the one place that writes Notification and IncidentEvent rows.

"Those already told are not told twice" is the unique ``dedupe_key``: a row whose key exists is not
written again. Members who cannot be told get their row anyway, with status ``unreachable``, so the
incident's record shows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from groups.directory import can_be_told, channel_for, member_id
from groups.model import (
    ChannelName,
    DeliveryStatus,
    HouseholdGroup,
    Incident,
    IncidentEvent,
    Member,
    Notification,
    Priority,
    Purpose,
)

# Purposes that mean "this recipient was told of the incident" (they may answer, they get attachments).
TOLD_PURPOSES: tuple[str, ...] = (Purpose.alert.value, Purpose.escalation.value)


def incident_id(incident: Incident) -> int:
    assert incident.id is not None
    return incident.id


def add_event(
    session: Session,
    incident: Incident,
    kind: str,
    now: datetime,
    actor: Member | None = None,
    detail: str | None = None,
) -> IncidentEvent:
    """Append one line to the incident's timeline."""
    event = IncidentEvent(
        incident_id=incident_id(incident),
        at=now,
        kind=kind,
        actor_id=member_id(actor) if actor is not None else None,
        detail=detail,
    )
    session.add(event)
    session.flush()
    return event


def _exists(session: Session, dedupe_key: str) -> bool:
    query = select(Notification.id).where(Notification.dedupe_key == dedupe_key)
    return session.exec(query).first() is not None


def _owe(session: Session, dedupe_key: str, now: datetime, *, flush: bool = True, **fields: Any) -> Notification:
    """Add one outbox row (the caller checked ``dedupe_key`` is new); flushed unless the caller batches."""
    row = Notification(dedupe_key=dedupe_key, created_at=now, next_attempt_at=now, **fields)
    session.add(row)
    if flush:
        session.flush()
    return row


def _for_member(
    incident: Incident | None, member: Member, purpose: Purpose, priority: Priority, payload: dict[str, Any], kind: str
) -> dict[str, Any]:
    return {
        "incident_id": incident_id(incident) if incident is not None else None,
        "recipient_id": member_id(member),
        "chat_id": member.telegram_user_id,
        "channel": channel_for(member) or ChannelName.telegram,  # an unreachable row still names one
        "purpose": purpose.value,
        "priority": priority.value,
        "kind": kind,
        "payload": payload,
        "status": DeliveryStatus.pending.value if can_be_told(member) else DeliveryStatus.unreachable.value,
    }


def notify_member(
    session: Session,
    incident: Incident | None,
    member: Member,
    purpose: Purpose,
    priority: Priority,
    payload: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    kind: str = "message",
) -> Notification | None:
    """Owe ``member`` one message (None when that message is already owed under ``dedupe_key``)."""
    if _exists(session, dedupe_key):
        return None
    return _owe(session, dedupe_key, now, **_for_member(incident, member, purpose, priority, payload, kind))


def notify_chat(
    session: Session,
    incident: Incident,
    group: HouseholdGroup,
    chat_id: int,
    purpose: Purpose,
    priority: Priority,
    payload: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    kind: str = "message",
) -> Notification | None:
    """Owe the group's bound chat one message."""
    if _exists(session, dedupe_key):
        return None
    return _owe(
        session, dedupe_key, now,
        incident_id=incident_id(incident), group_id=group.id, chat_id=chat_id, purpose=purpose.value,
        priority=priority.value, kind=kind, payload=payload, status=DeliveryStatus.pending.value,
    )


def pending_ids(rows: Iterable[Notification | None]) -> list[int]:
    """Ids of the new rows the caller must enqueue (unreachable rows are on record only)."""
    return [row.id for row in rows if row is not None and row.id is not None and row.status == DeliveryStatus.pending]


def told_rows(session: Session, incident: Incident) -> Sequence[Notification]:
    """The first messages that told someone of the incident (member DMs and the group post)."""
    query = (
        select(Notification)
        .where(
            Notification.incident_id == incident_id(incident),
            col(Notification.purpose).in_(TOLD_PURPOSES),
            Notification.kind == "message",
        )
        .order_by(col(Notification.id))
    )
    return session.exec(query).all()


def to_staff(row: Notification) -> bool:
    """A message that told staff: a private incident's alert to its staff, or an escalation (the ladder
    and manual escalations only ever tell staff). These may keep hearing of a private incident."""
    return bool((row.payload or {}).get("confidential")) or row.purpose == Purpose.escalation


def audience_rows(session: Session, incident: Incident) -> list[Notification]:
    """The told rows that may still hear of the incident: all of them, or the staff's alone once private."""
    rows = told_rows(session, incident)
    return [row for row in rows if to_staff(row)] if incident.private else list(rows)


def told_member_ids(session: Session, incident: Incident) -> set[int]:
    """Members who were told of the incident (whether or not the message could be delivered)."""
    return {row.recipient_id for row in told_rows(session, incident) if row.recipient_id is not None}


def tell_members(
    session: Session,
    incident: Incident,
    members: Iterable[Member],
    purpose: Purpose,
    priority: Priority,
    payload: dict[str, Any],
    key_prefix: str,
    now: datetime,
) -> list[Notification]:
    """Tell each member of the incident once: skip anyone already told by an alert or an escalation.

    One query for the keys already owed and one flush for all rows: an alert writes about eleven.
    """
    already = told_member_ids(session, incident)
    kind = "message"
    wanted = {member_id(m): m for m in members if member_id(m) not in already}
    keys = {mid: f"{key_prefix}:{mid}" for mid in wanted}
    owed = set(session.exec(select(Notification.dedupe_key).where(col(Notification.dedupe_key).in_(keys.values()))))
    rows = [
        _owe(session, keys[mid], now, flush=False, **_for_member(incident, member, purpose, priority, payload, kind))
        for mid, member in wanted.items()
        if keys[mid] not in owed
    ]
    session.flush()
    return rows


def _edit_of(session: Session, target: Notification, now: datetime) -> Notification | None:
    """One pending tally edit of ``target`` (none added while one is still pending: it renders the latest)."""
    assert target.id is not None
    prefix = f"edit:{target.id}:"
    earlier = session.exec(select(Notification).where(col(Notification.dedupe_key).startswith(prefix))).all()
    if any(row.status == DeliveryStatus.pending.value for row in earlier):
        return None
    return owe_like(session, target, "edit", {"template": "alert", "edit_of": target.id},
                    f"{prefix}{len(earlier) + 1}", now)


def owe_like(
    session: Session, target: Notification, kind: str, payload: dict[str, Any], dedupe_key: str, now: datetime
) -> Notification:
    """An update row to the same recipient (member or group chat) as ``target``, by the same channel: an
    edit of the message ``target`` sent (tally, live location)."""
    row = Notification(
        incident_id=target.incident_id,
        recipient_id=target.recipient_id,
        group_id=target.group_id,
        chat_id=target.chat_id,
        channel=target.channel,
        purpose=Purpose.update.value,
        priority=Priority.updates.value,
        kind=kind,
        payload=payload,
        dedupe_key=dedupe_key,
        status=DeliveryStatus.pending.value,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    return row


def _editable(target: Notification) -> bool:
    return target.status not in (DeliveryStatus.unreachable, DeliveryStatus.failed)


def refresh_tallies(session: Session, incident: Incident, head_id: int | None, now: datetime) -> list[int]:
    """Re-render the group post and the head's alert DM (the messages that show the live tally). A private
    incident has none: what the group and the head saw was withdrawn when it became private."""
    if incident.private:
        return []
    rows: list[Notification | None] = []
    for target in told_rows(session, incident):
        is_post = target.group_id is not None
        is_head = head_id is not None and target.recipient_id == head_id
        if (is_post or is_head) and _editable(target):
            rows.append(_edit_of(session, target, now))
    return pending_ids(rows)


def withdraw_public(session: Session, incident: Incident, now: datetime) -> list[int]:
    """The incident just became private: every message the neighbours, the head and the group chat got
    of it is edited to a neutral text (no category, no words of the reporter, no buttons)."""
    rows = [_edit_of(session, t, now) for t in told_rows(session, incident) if not to_staff(t) and _editable(t)]
    return pending_ids(rows)


def count_rows(session: Session, incident: Incident, purpose: Purpose) -> int:
    query = select(func.count()).where(
        Notification.incident_id == incident_id(incident), Notification.purpose == purpose.value
    )
    return int(session.exec(query).one())
