"""Who an alert goes to, and the head's note about the members it cannot reach."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session

from config import policies
from groups.directory import grid_staff, group_members, head_of, incident_group, member_id
from groups.model import HouseholdGroup, Incident, Member, Notification, Priority, Purpose
from groups.onboarding import chat_lost
from groups.outbox import incident_id, notify_member, pending_ids


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
    roles = policies.private_staff_roles(category)
    found: list[Member] = []
    for role in roles:
        found.extend(m for m in grid_staff(session, group.grid_id, role) if m not in found)
    return found


def unreachable_note(
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


def _group_chat_lost(session: Session, row: Notification, now: datetime) -> list[int]:
    """A 403 posting to a group chat: the bot is no longer in it (removed while no update told us)."""
    group = session.get(HouseholdGroup, row.group_id)
    chat_id = group.chat_id if group is not None and group.chat_id is not None else row.chat_id
    if chat_id is None:
        return []
    return chat_lost(session, chat_id, "forbidden", now).notifications


def note_unreachable(session: Session, notification_id: int, now: datetime) -> list[int]:
    """The delivery worker got a 403 for this row: remember the member can't be reached and tell the head;
    for a group chat, the bot is out of it: the binding is dropped (:func:`groups.onboarding.chat_lost`)."""
    row = session.get(Notification, notification_id)
    if row is not None and row.recipient_id is None and row.group_id is not None:
        return _group_chat_lost(session, row, now)
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
    note = unreachable_note(session, incident, group, [member], str(member_id(member)), now)
    return pending_ids([note])
