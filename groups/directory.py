"""Who is who: members, their roles, their groups and grids, and who hears of an incident."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session, col, select

from groups.errors import UserError
from groups.model import OPEN_STATUSES, ChannelName, Grid, GridStaff, Household, HouseholdGroup, Incident, Member, Role


@dataclass(frozen=True)
class MemberInfo:
    """A linked user as the faces see them (door-keeping, role-aware /help)."""

    id: int
    key: str
    name: str
    roles: tuple[str, ...]  # "villager" and/or staff roles, plus "head" for a center household head
    group_code: str | None
    grid_codes: tuple[str, ...]
    language_code: str | None
    group_name: str | None = None
    grid_names: tuple[str, ...] = ()

    @property
    def is_staff(self) -> bool:
        return any(role not in ("villager", "head") for role in self.roles)


def member_by_user(session: Session, telegram_user_id: int) -> Member | None:
    """The member linked to this Telegram user, active or not."""
    return session.exec(select(Member).where(Member.telegram_user_id == telegram_user_id)).first()


def linked_member(session: Session, telegram_user_id: int) -> Member:
    """The active member linked to this Telegram user, else UserError("not_linked").

    The Telegram conversation's door: it resolves the user once per update and the use cases take the
    member (another channel finds its member its own way).
    """
    member = member_by_user(session, telegram_user_id)
    if member is None or not member.active:
        raise UserError("not_linked")
    return member


def member_id(member: Member) -> int:
    """A persisted member's id (typed)."""
    assert member.id is not None
    return member.id


def group_of(session: Session, member: Member) -> HouseholdGroup | None:
    """The household group of a villager (None for staff without a household)."""
    if member.household_id is None:
        return None
    household = session.get(Household, member.household_id)
    if household is None or not household.active:
        return None
    return session.get(HouseholdGroup, household.group_id)


def grid_of_group(session: Session, group: HouseholdGroup) -> Grid:
    grid = session.get(Grid, group.grid_id)
    assert grid is not None  # foreign key
    return grid


def group_members(session: Session, group_id: int) -> Sequence[Member]:
    """Active members of a group's active households, in roster order."""
    query = (
        select(Member)
        .join(Household, col(Member.household_id) == Household.id)
        .where(Household.group_id == group_id, col(Household.active).is_(True), col(Member.active).is_(True))
        .order_by(col(Member.id))
    )
    return session.exec(query).all()


def grid_staff(session: Session, grid_id: int, role: str) -> Sequence[Member]:
    """Active staff of ``role`` in a grid."""
    query = (
        select(Member)
        .join(GridStaff, col(GridStaff.member_id) == Member.id)
        .where(GridStaff.grid_id == grid_id, GridStaff.role == role, col(Member.active).is_(True))
        .order_by(col(Member.id))
    )
    return session.exec(query).all()


def staff_grid_ids(session: Session, member: Member, role: str) -> list[int]:
    """The grids in which ``member`` holds ``role``."""
    query = select(GridStaff.grid_id).where(GridStaff.member_id == member_id(member), GridStaff.role == role)
    return list(session.exec(query).all())


def has_grid_role(session: Session, member: Member, grid_id: int, role: str) -> bool:
    return grid_id in staff_grid_ids(session, member, role)


def head_of(session: Session, group: HouseholdGroup) -> Member | None:
    """The group's active center household head (中心户长)."""
    if group.head_id is None:
        return None
    head = session.get(Member, group.head_id)
    return head if head is not None and head.active else None


def incident_group(session: Session, incident: Incident) -> HouseholdGroup:
    group = session.get(HouseholdGroup, incident.group_id)
    assert group is not None  # foreign key
    return group


def channel_for(member: Member) -> ChannelName | None:
    """The channel a message to this member goes by, or None when no channel can reach them.

    Telegram: linked, active and not known to have blocked the bot. Another channel (SMS to a member
    with a phone and no Telegram) adds its rule here.
    """
    if member.active and member.telegram_user_id is not None and member.unreachable_at is None:
        return ChannelName.telegram
    return None


def can_be_told(member: Member) -> bool:
    """Some channel can reach this member."""
    return channel_for(member) is not None


def who_is(session: Session, member: Member | None) -> MemberInfo | None:
    """An active member with roles, group and grids; None for no member (a stranger) or an inactive one."""
    if member is None or not member.active:
        return None
    roles: list[str] = []
    group = group_of(session, member)
    if group is not None:
        roles.append(Role.villager.value)
    heads = session.exec(select(HouseholdGroup).where(HouseholdGroup.head_id == member_id(member))).all()
    if heads:
        roles.append("head")
    staff = session.exec(select(GridStaff).where(GridStaff.member_id == member_id(member))).all()
    roles.extend(sorted({s.role for s in staff}))
    if not roles:
        roles.append(member.role)
    grid_ids = {s.grid_id for s in staff} | {g.grid_id for g in heads}
    if group is not None:
        grid_ids.add(group.grid_id)
    grids = session.exec(select(Grid).where(col(Grid.id).in_(grid_ids))).all() if grid_ids else []
    return MemberInfo(
        id=member_id(member),
        key=member.key,
        name=member.name,
        roles=tuple(roles),
        group_code=group.code if group is not None else (heads[0].code if heads else None),
        grid_codes=tuple(sorted(g.code for g in grids)),
        language_code=member.language_code,
        group_name=group.name if group is not None else (heads[0].name if heads else None),
        grid_names=tuple(g.name for g in sorted(grids, key=lambda g: g.code)),
    )


def load_incident(session: Session, incident_id: int, *, for_update: bool = False) -> Incident:
    """The incident ``#incident_id``, else UserError("incident_not_found")."""
    query = select(Incident).where(Incident.id == incident_id)
    if for_update:
        # Serialize concurrent commands and timers on one incident. PostgreSQL: a row lock. SQLite ignores
        # FOR UPDATE, and Python's sqlite3 opens the transaction only at the first write, so a read could
        # be stale by the time it is written back (an ack lost under an escalation): a no-op write first
        # takes SQLite's write lock, and the read then sees the last commit.
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("UPDATE incident SET id = id WHERE id = :id"), {"id": incident_id})
        query = query.with_for_update()
    incident = session.exec(query).first()
    if incident is None:
        raise UserError("incident_not_found", number=incident_id)
    return incident


def is_open(incident: Incident) -> bool:
    return incident.status in OPEN_STATUSES
