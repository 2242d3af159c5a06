"""The roster (花名册): grids, household groups, households, members and staff, read from and written to YAML.

:func:`parse_roster` checks a file completely and reports every problem at once, each naming its place in
the file (``grids[0].groups[1].head: m9 is not a member of group g2``). :func:`import_roster` brings the
database in line with a checked roster in the caller's transaction: keys are stable identities, so a
re-import updates in place, keeps invite tokens, bind codes, Telegram links and history, and deactivates
(never deletes) what the file no longer names.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

import yaml
from sqlmodel import Session, col, select

from config.policies import DEFAULT_HEAD_ACK_S, DEFAULT_WORKER_ACK_S, STAFF_ROLES
from groups.model import Grid, GridStaff, Household, HouseholdGroup, Member, Role

# Grid fields naming staff, and the role each must have.
STAFF_FIELDS: Final[dict[str, str]] = {
    "workers": Role.grid_worker,
    "police": Role.police,
    "women_fed": Role.women_fed,
    "child_director": Role.child_director,
}
OPTIONAL_STAFF_FIELDS: Final[frozenset[str]] = frozenset({"women_fed", "child_director"})

# Column limits of groups.model, checked here so a long name is a roster error, not a database error.
MAX_KEY: Final[int] = 64
MAX_NAME: Final[int] = 200
MAX_LABEL: Final[int] = 100
MAX_PHONE: Final[int] = 32

# Bind codes are typed into a group chat by hand: lower case, no look-alikes (0/o, 1/l/i).
BIND_ALPHABET: Final[str] = "abcdefghjkmnpqrstuvwxyz23456789"
BIND_CODE_LENGTH: Final[int] = 10


class RosterError(ValueError):
    """A roster file that cannot be imported; ``errors`` holds one sentence per problem, path first."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass(frozen=True)
class MemberSpec:
    key: str
    name: str
    phone: str | None = None


@dataclass(frozen=True)
class HouseholdSpec:
    label: str
    members: tuple[MemberSpec, ...]


@dataclass(frozen=True)
class GroupSpec:
    code: str
    name: str
    head: str
    households: tuple[HouseholdSpec, ...]


@dataclass(frozen=True)
class GridSpec:
    code: str
    name: str
    workers: tuple[str, ...]
    police: tuple[str, ...]
    women_fed: tuple[str, ...] = ()
    child_director: tuple[str, ...] = ()
    head_ack_s: int = DEFAULT_HEAD_ACK_S
    worker_ack_s: int = DEFAULT_WORKER_ACK_S
    groups: tuple[GroupSpec, ...] = ()

    def staff(self, field_name: str) -> tuple[str, ...]:
        """The member keys named by one of :data:`STAFF_FIELDS`."""
        value: tuple[str, ...] = getattr(self, field_name)
        return value


@dataclass(frozen=True)
class StaffSpec:
    key: str
    name: str
    role: str
    phone: str | None = None


@dataclass(frozen=True)
class Roster:
    """A checked roster file."""

    grids: tuple[GridSpec, ...]
    staff: tuple[StaffSpec, ...]


# --- reading ---------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping naming the same field twice (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the field {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_pairs(node))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}."
    return f"YAML syntax error: {problem}."


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _join(path: str, name: str) -> str:
    """``grids[0].name``; top-level fields are named by themselves."""
    return f"{path}.{name}" if path else name


class _Checker:
    """Collects errors while walking the parsed YAML; every method returns None where a value is bad."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, allowed: Iterable[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, not {_kind(value)}.")
            return None
        allowed_set = set(allowed)
        for name in value:
            if name not in allowed_set:
                names = ", ".join(sorted(allowed_set))
                self.error(_join(path, name), f"unknown field (expected one of {names}).")
        return value

    def text(self, data: dict[str, Any], name: str, path: str, limit: int, *, required: bool = True) -> str | None:
        where = _join(path, name)
        if name not in data or data[name] is None:
            if required:
                self.error(where, "missing required field.")
            return None
        value = data[name]
        # An unquoted phone number reads as an integer; it is still the same phone number.
        if name == "phone" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.error(where, f"must be text, not {_kind(value)}.")
            return None
        value = value.strip()
        if not value:
            self.error(where, "must not be empty.")
            return None
        if len(value) > limit:
            self.error(where, f"is {len(value)} characters long; at most {limit} are allowed.")
            return None
        return value

    def items(self, data: dict[str, Any], name: str, path: str, *, required: bool = True) -> list[Any] | None:
        where = _join(path, name)
        if name not in data or data[name] is None:
            if required:
                self.error(where, "missing required field.")
            return None
        value = data[name]
        if not isinstance(value, list):
            self.error(where, f"must be a list, not {_kind(value)}.")
            return None
        return value

    def seconds(self, data: dict[str, Any], name: str, path: str, default: int) -> int:
        if name not in data:
            return default
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.error(_join(path, name), f"must be a positive whole number of seconds, not {value!r}.")
            return default
        return value


def _parse_member(check: _Checker, value: Any, path: str) -> MemberSpec | None:
    data = check.mapping(value, path, ("key", "name", "phone"))
    if data is None:
        return None
    key = check.text(data, "key", path, MAX_KEY)
    name = check.text(data, "name", path, MAX_NAME)
    phone = check.text(data, "phone", path, MAX_PHONE, required=False)
    if key is None or name is None:
        return None
    return MemberSpec(key=key, name=name, phone=phone)


def _parse_household(check: _Checker, value: Any, path: str) -> HouseholdSpec | None:
    data = check.mapping(value, path, ("label", "members"))
    if data is None:
        return None
    label = check.text(data, "label", path, MAX_LABEL)
    raw_members = check.items(data, "members", path)
    members = [_parse_member(check, item, f"{path}.members[{index}]") for index, item in enumerate(raw_members or [])]
    if label is None or raw_members is None:
        return None
    return HouseholdSpec(label=label, members=tuple(m for m in members if m is not None))


def _parse_group(check: _Checker, value: Any, path: str) -> GroupSpec | None:
    data = check.mapping(value, path, ("code", "name", "head", "households"))
    if data is None:
        return None
    code = check.text(data, "code", path, MAX_KEY)
    name = check.text(data, "name", path, MAX_NAME)
    head = check.text(data, "head", path, MAX_KEY)
    raw = check.items(data, "households", path)
    households = [_parse_household(check, item, f"{path}.households[{index}]") for index, item in enumerate(raw or [])]
    if code is None or name is None or head is None or raw is None:
        return None
    return GroupSpec(code=code, name=name, head=head, households=tuple(h for h in households if h is not None))


def _parse_keys(check: _Checker, data: dict[str, Any], name: str, path: str, *, required: bool) -> tuple[str, ...]:
    raw = check.items(data, name, path, required=required)
    keys: list[str] = []
    for index, item in enumerate(raw or []):
        where = f"{path}.{name}[{index}]"
        if not isinstance(item, str) or not item.strip():
            check.error(where, f"must be a member key (text), not {_kind(item)}.")
        else:
            keys.append(item.strip())
    return tuple(keys)


def _parse_grid(check: _Checker, value: Any, path: str) -> GridSpec | None:
    data = check.mapping(value, path, ("code", "name", "escalation", "groups", *STAFF_FIELDS))
    if data is None:
        return None
    code = check.text(data, "code", path, MAX_KEY)
    name = check.text(data, "name", path, MAX_NAME)
    staff = {
        field_name: _parse_keys(check, data, field_name, path, required=field_name not in OPTIONAL_STAFF_FIELDS)
        for field_name in STAFF_FIELDS
    }
    head_ack_s, worker_ack_s = DEFAULT_HEAD_ACK_S, DEFAULT_WORKER_ACK_S
    if data.get("escalation") is not None:
        escalation = check.mapping(data["escalation"], f"{path}.escalation", ("head_ack_s", "worker_ack_s"))
        if escalation is not None:
            head_ack_s = check.seconds(escalation, "head_ack_s", f"{path}.escalation", DEFAULT_HEAD_ACK_S)
            worker_ack_s = check.seconds(escalation, "worker_ack_s", f"{path}.escalation", DEFAULT_WORKER_ACK_S)
    raw_groups = check.items(data, "groups", path)
    groups = [_parse_group(check, item, f"{path}.groups[{index}]") for index, item in enumerate(raw_groups or [])]
    if code is None or name is None or raw_groups is None:
        return None
    return GridSpec(
        code=code,
        name=name,
        workers=staff["workers"],
        police=staff["police"],
        women_fed=staff["women_fed"],
        child_director=staff["child_director"],
        head_ack_s=head_ack_s,
        worker_ack_s=worker_ack_s,
        groups=tuple(g for g in groups if g is not None),
    )


def _parse_staff(check: _Checker, value: Any, path: str) -> StaffSpec | None:
    data = check.mapping(value, path, ("key", "name", "role", "phone"))
    if data is None:
        return None
    key = check.text(data, "key", path, MAX_KEY)
    name = check.text(data, "name", path, MAX_NAME)
    role = check.text(data, "role", path, 32)
    phone = check.text(data, "phone", path, MAX_PHONE, required=False)
    if role is not None and role not in STAFF_ROLES:
        check.error(f"{path}.role", f"{role} is not a staff role; use one of {', '.join(STAFF_ROLES)}.")
        return None
    if key is None or name is None or role is None:
        return None
    return StaffSpec(key=key, name=name, role=role, phone=phone)


def _first_use(
    check: _Checker, seen: dict[str, str], raw: Any, where: str, twice: Callable[[str, str], str]
) -> str | None:
    """Remember where the non-empty text ``raw`` is first used; a second use is an error. The stripped
    value, or None when ``raw`` is no text (its own check reports that)."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    value = raw.strip()
    if value in seen:
        check.error(where, twice(value, seen[value]))
    else:
        seen[value] = where
    return value


def _check_references(check: _Checker, data: dict[str, Any], roster: Roster) -> None:
    """Uniqueness and cross references. Paths are rebuilt from the raw data so indexes match the file."""
    member_at: dict[str, str] = {}

    def claim_key(key: str, where: str) -> None:
        _first_use(check, member_at, key, where, lambda v, first: f"{v} is used twice (first at {first}); "
                   "member keys must be unique.")

    grid_at: dict[str, str] = {}
    group_at: dict[str, str] = {}
    raw_grids: list[Any] = data.get("grids") or []
    for gi, raw_grid in enumerate(raw_grids):
        if not isinstance(raw_grid, dict):
            continue
        gpath = f"grids[{gi}]"
        _first_use(check, grid_at, raw_grid.get("code"), f"{gpath}.code",
                   lambda v, first: f"grid code {v} is used twice (first at {first}).")
        raw_groups = raw_grid.get("groups")
        for pi, raw_group in enumerate(raw_groups if isinstance(raw_groups, list) else []):
            if not isinstance(raw_group, dict):
                continue
            ppath = f"{gpath}.groups[{pi}]"
            gcode = _first_use(check, group_at, raw_group.get("code"), f"{ppath}.code",
                               lambda v, first: f"group code {v} is used twice (first at {first}).")
            labels: dict[str, str] = {}
            group_members: set[str] = set()
            raw_households = raw_group.get("households")
            for hi, raw_household in enumerate(raw_households if isinstance(raw_households, list) else []):
                if not isinstance(raw_household, dict):
                    continue
                hpath = f"{ppath}.households[{hi}]"
                _first_use(check, labels, raw_household.get("label"), f"{hpath}.label",
                           lambda v, first: f"household {v} appears twice in this group (first at {first}).")
                raw_members = raw_household.get("members")
                for mi, raw_member in enumerate(raw_members if isinstance(raw_members, list) else []):
                    if isinstance(raw_member, dict) and isinstance(raw_member.get("key"), str):
                        key = raw_member["key"].strip()
                        if key:
                            claim_key(key, f"{hpath}.members[{mi}].key")
                            group_members.add(key)
            head = raw_group.get("head")
            if isinstance(head, str) and head.strip() and head.strip() not in group_members:
                name = gcode or f"#{pi}"
                check.error(f"{ppath}.head", f"{head.strip()} is not a member of group {name}.")

    staff_roles: dict[str, str] = {}
    raw_staff = data.get("staff")
    for si, raw in enumerate(raw_staff if isinstance(raw_staff, list) else []):
        if isinstance(raw, dict) and isinstance(raw.get("key"), str) and raw["key"].strip():
            key = raw["key"].strip()
            claim_key(key, f"staff[{si}].key")
            if isinstance(raw.get("role"), str):
                staff_roles.setdefault(key, raw["role"].strip())

    for gi, raw_grid in enumerate(raw_grids):
        if not isinstance(raw_grid, dict):
            continue
        for field_name, role in STAFF_FIELDS.items():
            keys = raw_grid.get(field_name)
            seen: set[str] = set()
            for ki, key in enumerate(keys if isinstance(keys, list) else []):
                if not isinstance(key, str) or not key.strip():
                    continue
                key = key.strip()
                where = f"grids[{gi}].{field_name}[{ki}]"
                if key in seen:
                    check.error(where, f"{key} is listed twice.")
                elif key not in staff_roles:
                    if key in member_at:
                        check.error(where, f"{key} is a villager, not a staff member with role {role}.")
                    else:
                        check.error(where, f"{key} is not in staff (expected a staff member with role {role}).")
                elif staff_roles[key] != role:
                    check.error(where, f"{key} has role {staff_roles[key]}, not {role}.")
                seen.add(key)


def parse_roster(text: str) -> Roster:
    """Check a roster file's text completely; raise :class:`RosterError` listing every problem found."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RosterError([_yaml_error(exc)]) from None
    if data is None:
        raise RosterError(["top level: the file is empty; it must be a mapping with grids and staff."])
    check = _Checker()
    if not isinstance(data, dict):
        raise RosterError([f"top level: must be a mapping with grids and staff, not {_kind(data)}."])
    root = check.mapping(data, "", ("grids", "staff"))
    assert root is not None
    raw_grids = check.items(root, "grids", "")
    raw_staff = check.items(root, "staff", "", required=False)
    grids = [_parse_grid(check, item, f"grids[{index}]") for index, item in enumerate(raw_grids or [])]
    staff = [_parse_staff(check, item, f"staff[{index}]") for index, item in enumerate(raw_staff or [])]
    roster = Roster(grids=tuple(g for g in grids if g is not None), staff=tuple(s for s in staff if s is not None))
    _check_references(check, root, roster)
    if check.errors:
        raise RosterError(check.errors)
    return roster


def load_sample_village() -> str:
    """The demo village's roster text (shipped as ``config/sample_village.yaml``)."""
    return (resources.files("config") / "sample_village.yaml").read_text(encoding="utf-8")


# --- importing -------------------------------------------------------------------------------------


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

    def lines(self) -> list[str]:
        """One line per kind, for the operator."""
        return [
            f"{name}: {c.created} created, {c.updated} updated, {c.unchanged} unchanged, {c.deactivated} deactivated"
            for name, c in self.kinds().items()
        ]


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


def import_roster(session: Session, roster: Roster) -> ImportSummary:
    """Bring the database in line with ``roster`` inside the caller's transaction (the caller commits).

    Updates rows in place by key, creates what is new (with fresh invite tokens and bind codes) and
    deactivates what the roster no longer names; Telegram links, tokens, bind codes and history stay.
    """
    summary = ImportSummary()
    grids = {g.code: g for g in session.exec(select(Grid)).all()}
    groups = {g.code: g for g in session.exec(select(HouseholdGroup)).all()}
    households: dict[tuple[int | None, str], Household] = {
        (h.group_id, h.label): h for h in session.exec(select(Household)).all()
    }
    members = {m.key: m for m in session.exec(select(Member)).all()}
    tokens = {m.invite_token for m in members.values()}
    bind_codes = {g.bind_code for g in groups.values()}

    for grid_spec in roster.grids:
        values: dict[str, Any] = {
            "code": grid_spec.code,
            "name": grid_spec.name,
            "head_ack_s": grid_spec.head_ack_s,
            "worker_ack_s": grid_spec.worker_ack_s,
            "active": True,
        }
        _count(
            summary.grids,
            _upsert(session, grids, grid_spec.code, values, lambda v: Grid(**v))[1],
        )
    session.flush()

    group_states: dict[str, str] = {}
    for grid_spec in roster.grids:
        grid_id = grids[grid_spec.code].id
        for group_spec in grid_spec.groups:
            values = {"code": group_spec.code, "name": group_spec.name, "grid_id": grid_id, "active": True}
            group_states[group_spec.code] = _upsert(
                session,
                groups,
                group_spec.code,
                values,
                lambda v: HouseholdGroup(bind_code=_unique_secret(new_bind_code, bind_codes), **v),
            )[1]
    session.flush()

    for grid_spec in roster.grids:
        for group_spec in grid_spec.groups:
            group_id = groups[group_spec.code].id
            for household_spec in group_spec.households:
                values = {"group_id": group_id, "label": household_spec.label, "active": True}
                ident = (group_id, household_spec.label)
                _count(
                    summary.households,
                    _upsert(session, households, ident, values, lambda v: Household(**v))[1],
                )
    session.flush()

    def member_row(key: str) -> Callable[[dict[str, Any]], Member]:
        return lambda v: Member(key=key, invite_token=_unique_secret(new_invite_token, tokens), **v)

    for grid_spec in roster.grids:
        for group_spec in grid_spec.groups:
            group_id = groups[group_spec.code].id
            for household_spec in group_spec.households:
                household_id = households[(group_id, household_spec.label)].id
                for member_spec in household_spec.members:
                    values = {
                        "name": member_spec.name,
                        "phone": member_spec.phone,
                        "role": str(Role.villager),
                        "household_id": household_id,
                        "active": True,
                    }
                    state = _upsert(session, members, member_spec.key, values, member_row(member_spec.key))[1]
                    _count(summary.members, state)
    for staff_spec in roster.staff:
        values = {
            "name": staff_spec.name,
            "phone": staff_spec.phone,
            "role": staff_spec.role,
            "household_id": None,
            "active": True,
        }
        state = _upsert(session, members, staff_spec.key, values, member_row(staff_spec.key))[1]
        _count(summary.members, state)
    session.flush()

    # Heads come last: they point at members, which point at households of the group.
    for grid_spec in roster.grids:
        for group_spec in grid_spec.groups:
            group = groups[group_spec.code]
            head_id = members[group_spec.head].id
            if group.head_id != head_id:
                group.head_id = head_id
                if group_states[group_spec.code] == "unchanged":
                    group_states[group_spec.code] = "updated"
            _count(summary.groups, group_states[group_spec.code])

    named_households = {(groups[p.code].id, h.label) for g in roster.grids for p in g.groups for h in p.households}
    named_members = {m.key for g in roster.grids for p in g.groups for h in p.households for m in h.members}
    named_members |= {s.key for s in roster.staff}
    _deactivate(grids.values(), {g.code for g in roster.grids}, lambda r: r.code, summary.grids)
    _deactivate(groups.values(), set(group_states), lambda r: r.code, summary.groups)
    _deactivate(households.values(), named_households, lambda r: (r.group_id, r.label), summary.households)
    _deactivate(members.values(), named_members, lambda r: r.key, summary.members)

    _replace_grid_staff(session, roster, grids, members, summary.staff_roles)
    session.flush()
    return summary


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


# --- exporting -------------------------------------------------------------------------------------


class _FlowMap(dict[str, Any]):
    """A mapping written on one line: ``{key: m1, name: 张三}``."""


class _FlowList(list[str]):
    """A list written on one line: ``[w1, w2]``."""


class _Dumper(yaml.SafeDumper):
    """Indents lists under their field, as people write roster files by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_flow_map(dumper: yaml.SafeDumper, data: _FlowMap) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


def _represent_flow_list(dumper: yaml.SafeDumper, data: _FlowList) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(_FlowMap, _represent_flow_map)
_Dumper.add_representer(_FlowList, _represent_flow_list)


def _person(key: str, name: str, phone: str | None, **extra: str) -> _FlowMap:
    entry = _FlowMap(key=key, name=name)
    if phone:
        entry["phone"] = phone
    entry.update(extra)
    return entry


def roster_document(session: Session) -> dict[str, Any]:
    """The active roster as the plain structure of a roster file."""
    grids = session.exec(select(Grid).where(col(Grid.active)).order_by(col(Grid.id))).all()
    groups = session.exec(
        select(HouseholdGroup).where(col(HouseholdGroup.active)).order_by(col(HouseholdGroup.id))
    ).all()
    households = session.exec(select(Household).where(col(Household.active)).order_by(col(Household.id))).all()
    members = session.exec(select(Member).where(col(Member.active)).order_by(col(Member.id))).all()
    staff_rows = session.exec(select(GridStaff).order_by(col(GridStaff.id))).all()
    key_of = {m.id: m.key for m in members}

    members_of: dict[int | None, list[Member]] = {}
    for member in members:
        if member.role == Role.villager:
            members_of.setdefault(member.household_id, []).append(member)
    households_of: dict[int, list[Household]] = {}
    for household in households:
        households_of.setdefault(household.group_id, []).append(household)
    groups_of: dict[int, list[HouseholdGroup]] = {}
    for group in groups:
        groups_of.setdefault(group.grid_id, []).append(group)
    staff_of: dict[tuple[int, str], list[str]] = {}
    for row in staff_rows:
        if row.member_id in key_of:
            staff_of.setdefault((row.grid_id, row.role), []).append(key_of[row.member_id])

    out_grids: list[dict[str, Any]] = []
    for grid in grids:
        assert grid.id is not None
        entry: dict[str, Any] = {"code": grid.code, "name": grid.name}
        for field_name, role in STAFF_FIELDS.items():
            keys = staff_of.get((grid.id, str(role)), [])
            if keys or field_name not in OPTIONAL_STAFF_FIELDS:
                entry[field_name] = _FlowList(keys)
        if (grid.head_ack_s, grid.worker_ack_s) != (DEFAULT_HEAD_ACK_S, DEFAULT_WORKER_ACK_S):
            entry["escalation"] = _FlowMap(head_ack_s=grid.head_ack_s, worker_ack_s=grid.worker_ack_s)
        out_groups: list[dict[str, Any]] = []
        for group in groups_of.get(grid.id, []):
            assert group.id is not None
            group_entry: dict[str, Any] = {"code": group.code, "name": group.name}
            if group.head_id in key_of:
                group_entry["head"] = key_of[group.head_id]
            group_entry["households"] = [
                {
                    "label": household.label,
                    "members": [_person(m.key, m.name, m.phone) for m in members_of.get(household.id, [])],
                }
                for household in households_of.get(group.id, [])
            ]
            out_groups.append(group_entry)
        entry["groups"] = out_groups
        out_grids.append(entry)
    staff = [_person(m.key, m.name, m.phone, role=m.role) for m in members if m.role != Role.villager]
    return {"grids": out_grids, "staff": staff}


def export_roster(session: Session) -> str:
    """The active roster as roster-file YAML; importing it back changes nothing."""
    text: str = yaml.dump(
        roster_document(session), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000, indent=2
    )
    return text
