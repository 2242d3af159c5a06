"""Importing a checked roster: the database brought in line with it, keys as stable identities."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlmodel import Session, select

from groups.model import Grid, GridStaff, Household, HouseholdGroup, Member, Role
from groups.roster.spec import STAFF_FIELDS, Roster

# Bind codes are typed into a group chat by hand: lower case, no look-alikes (0/o, 1/l/i).
BIND_ALPHABET: Final[str] = "abcdefghjkmnpqrstuvwxyz23456789"
BIND_CODE_LENGTH: Final[int] = 10


@dataclass
class KindCounts:
    """What an import did to one kind of row."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0


@dataclass
class ImportSummary:
    """Counts per kind: grids, groups, households, members (villagers and staff) and staff roles."""

    grids: KindCounts = field(default_factory=KindCounts)
    groups: KindCounts = field(default_factory=KindCounts)
    households: KindCounts = field(default_factory=KindCounts)
    members: KindCounts = field(default_factory=KindCounts)
    staff_roles: KindCounts = field(default_factory=KindCounts)
    # Keys the file names that were forgotten (``yihu members forget``): kept erased, a warning.
    erased: list[str] = field(default_factory=list)

    def kinds(self) -> dict[str, KindCounts]:
        return {
            "grids": self.grids,
            "groups": self.groups,
            "households": self.households,
            "members": self.members,
            "staff_roles": self.staff_roles,
        }

    @property
    def changed(self) -> bool:
        """Whether the import changed anything at all."""
        return any(c.created or c.updated or c.deactivated for c in self.kinds().values())



def _assign(row: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _unique_secret(make: Callable[[], str], taken: set[str]) -> str:
    while True:
        value = make()
        if value not in taken:
            taken.add(value)
            return value


def new_invite_token() -> str:
    """An unguessable deep-link token: 22 url-safe characters (Telegram allows ``[A-Za-z0-9_-]{1,64}``)."""
    return secrets.token_urlsafe(16)


def new_bind_code() -> str:
    """An unguessable, hand-typable group bind code."""
    return "".join(secrets.choice(BIND_ALPHABET) for _ in range(BIND_CODE_LENGTH))


def _upsert(
    session: Session,
    rows: dict[Any, Any],
    ident: Any,
    values: dict[str, Any],
    make: Callable[[dict[str, Any]], Any],
) -> tuple[Any, str]:
    """The row for ``ident`` with ``values`` set, and whether it was created, updated or unchanged."""
    row = rows.get(ident)
    if row is None:
        row = make(values)
        session.add(row)
        rows[ident] = row
        return row, "created"
    return row, "updated" if _assign(row, values) else "unchanged"


def _count(counts: KindCounts, state: str) -> None:
    setattr(counts, state, getattr(counts, state) + 1)


def _deactivate(rows: Iterable[Any], kept: set[Any], ident: Callable[[Any], Any], counts: KindCounts) -> None:
    for row in rows:
        if row.active and ident(row) not in kept:
            row.active = False
            counts.deactivated += 1


@dataclass
class _Rows:
    """Every grid, group, household and member row by its identity, and the secrets already handed out."""

    grids: dict[str, Grid]
    groups: dict[str, HouseholdGroup]
    households: dict[tuple[int | None, str], Household]
    members: dict[str, Member]
    tokens: set[str]
    bind_codes: set[str]

    @classmethod
    def load(cls, session: Session) -> _Rows:
        grids = {g.code: g for g in session.exec(select(Grid)).all()}
        groups = {g.code: g for g in session.exec(select(HouseholdGroup)).all()}
        households: dict[tuple[int | None, str], Household] = {
            (h.group_id, h.label): h for h in session.exec(select(Household)).all()
        }
        members = {m.key: m for m in session.exec(select(Member)).all()}
        tokens = {m.invite_token for m in members.values()}
        bind_codes = {g.bind_code for g in groups.values()}
        return cls(grids, groups, households, members, tokens, bind_codes)


def import_roster(session: Session, roster: Roster) -> ImportSummary:
    """Bring the database in line with ``roster`` inside the caller's transaction (the caller commits).

    Updates rows in place by key, creates what is new (with fresh invite tokens and bind codes) and
    deactivates what the roster no longer names; Telegram links, tokens, bind codes and history stay.
    """
    summary = ImportSummary()
    rows = _Rows.load(session)
    # Parents before children, each level flushed so its ids exist for the next.
    _sync_grids(session, roster, rows, summary.grids)
    group_states = _sync_groups(session, roster, rows)
    _sync_households(session, roster, rows, summary.households)
    _sync_members(session, roster, rows, summary)
    _sync_heads(roster, rows, group_states, summary.groups)
    _deactivate_unnamed(roster, rows, group_states, summary)
    _replace_grid_staff(session, roster, rows.grids, rows.members, summary.staff_roles)
    session.flush()
    return summary


def _sync_grids(session: Session, roster: Roster, rows: _Rows, counts: KindCounts) -> None:
    for grid_spec in roster.grids:
        values: dict[str, Any] = {
            "code": grid_spec.code,
            "name": grid_spec.name,
            "head_ack_s": grid_spec.head_ack_s,
            "worker_ack_s": grid_spec.worker_ack_s,
            "active": True,
        }
        _count(
            counts,
            _upsert(session, rows.grids, grid_spec.code, values, lambda v: Grid(**v))[1],
        )
    session.flush()


def _sync_groups(session: Session, roster: Roster, rows: _Rows) -> dict[str, str]:
    """Each named group's state (created, updated or unchanged); counted once its head is set."""
    group_states: dict[str, str] = {}
    for grid_spec in roster.grids:
        grid_id = rows.grids[grid_spec.code].id
        for group_spec in grid_spec.groups:
            values = {"code": group_spec.code, "name": group_spec.name, "grid_id": grid_id, "active": True}
            group_states[group_spec.code] = _upsert(
                session,
                rows.groups,
                group_spec.code,
                values,
                lambda v: HouseholdGroup(bind_code=_unique_secret(new_bind_code, rows.bind_codes), **v),
            )[1]
    session.flush()
    return group_states


def _sync_households(session: Session, roster: Roster, rows: _Rows, counts: KindCounts) -> None:
    for grid_spec in roster.grids:
        for group_spec in grid_spec.groups:
            group_id = rows.groups[group_spec.code].id
            for household_spec in group_spec.households:
                values = {"group_id": group_id, "label": household_spec.label, "active": True}
                ident = (group_id, household_spec.label)
                _count(
                    counts,
                    _upsert(session, rows.households, ident, values, lambda v: Household(**v))[1],
                )
    session.flush()


def _sync_members(session: Session, roster: Roster, rows: _Rows, summary: ImportSummary) -> None:
    """Villagers (by household), then staff (in no household)."""

    def member_row(key: str) -> Callable[[dict[str, Any]], Member]:
        return lambda v: Member(key=key, invite_token=_unique_secret(new_invite_token, rows.tokens), **v)

    def erased(key: str) -> bool:
        """A forgotten key stays erased whatever the file says (its name and phone are not taken back)."""
        row = rows.members.get(key)
        if row is None or row.erased_at is None:
            return False
        summary.erased.append(key)
        return True

    for grid_spec in roster.grids:
        for group_spec in grid_spec.groups:
            group_id = rows.groups[group_spec.code].id
            for household_spec in group_spec.households:
                household_id = rows.households[(group_id, household_spec.label)].id
                for member_spec in household_spec.members:
                    if erased(member_spec.key):
                        continue
                    values = {
                        "name": member_spec.name,
                        "phone": member_spec.phone,
                        "role": str(Role.villager),
                        "household_id": household_id,
                        "active": True,
                    }
                    state = _upsert(session, rows.members, member_spec.key, values, member_row(member_spec.key))[1]
                    _count(summary.members, state)
    for staff_spec in roster.staff:
        if erased(staff_spec.key):
            continue
        values = {
            "name": staff_spec.name,
            "phone": staff_spec.phone,
            "role": staff_spec.role,
            "household_id": None,
            "active": True,
        }
        state = _upsert(session, rows.members, staff_spec.key, values, member_row(staff_spec.key))[1]
        _count(summary.members, state)
    session.flush()


def _sync_heads(roster: Roster, rows: _Rows, group_states: dict[str, str], counts: KindCounts) -> None:
    # Heads come last: they point at members, which point at households of the group.
    for grid_spec in roster.grids:
        for group_spec in grid_spec.groups:
            group = rows.groups[group_spec.code]
            head_id = rows.members[group_spec.head].id
            if group.head_id != head_id:
                group.head_id = head_id
                if group_states[group_spec.code] == "unchanged":
                    group_states[group_spec.code] = "updated"
            _count(counts, group_states[group_spec.code])


def _deactivate_unnamed(roster: Roster, rows: _Rows, group_states: dict[str, str], summary: ImportSummary) -> None:
    groups = rows.groups
    named_households = {(groups[p.code].id, h.label) for g in roster.grids for p in g.groups for h in p.households}
    named_members = {m.key for g in roster.grids for p in g.groups for h in p.households for m in h.members}
    named_members |= {s.key for s in roster.staff}
    _deactivate(rows.grids.values(), {g.code for g in roster.grids}, lambda r: r.code, summary.grids)
    _deactivate(groups.values(), set(group_states), lambda r: r.code, summary.groups)
    _deactivate(rows.households.values(), named_households, lambda r: (r.group_id, r.label), summary.households)
    _deactivate(rows.members.values(), named_members, lambda r: r.key, summary.members)


def _replace_grid_staff(
    session: Session, roster: Roster, grids: dict[str, Grid], members: dict[str, Member], counts: KindCounts
) -> None:
    """Make the grid_staff rows exactly the roster's (grid, member, role) assignments."""
    wanted: set[tuple[int, int, str]] = set()
    for grid_spec in roster.grids:
        grid_id = grids[grid_spec.code].id
        assert grid_id is not None
        for field_name, role in STAFF_FIELDS.items():
            for key in grid_spec.staff(field_name):
                member_id = members[key].id
                assert member_id is not None
                wanted.add((grid_id, member_id, str(role)))
    existing: set[tuple[int, int, str]] = set()
    for row in session.exec(select(GridStaff)).all():
        ident = (row.grid_id, row.member_id, row.role)
        if ident in wanted and ident not in existing:
            existing.add(ident)
            counts.unchanged += 1
        else:
            session.delete(row)
            counts.deactivated += 1
    # Deletes first: never insert a row while an identical one still awaits deletion.
    session.flush()
    for grid_id, member_id, role in sorted(wanted - existing):
        session.add(GridStaff(grid_id=grid_id, member_id=member_id, role=role))
        counts.created += 1
