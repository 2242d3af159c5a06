"""Reading a roster file: YAML in, a checked :class:`Roster` out, or every problem at once, path first."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Any

import yaml

from config.policies import DEFAULT_HEAD_ACK_S, DEFAULT_WORKER_ACK_S, STAFF_ROLES
from groups.roster.spec import (
    MAX_KEY,
    MAX_LABEL,
    MAX_NAME,
    MAX_PHONE,
    OPTIONAL_STAFF_FIELDS,
    STAFF_FIELDS,
    GridSpec,
    GroupSpec,
    HouseholdSpec,
    MemberSpec,
    Roster,
    RosterError,
    RosterProblem,
    StaffSpec,
)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping naming the same field twice (PyYAML keeps the last silently)."""


class _DuplicateField(yaml.constructor.ConstructorError):
    """A mapping naming ``field`` twice (reported as its own roster problem, not PyYAML's words)."""

    def __init__(self, name: Any, mark: yaml.Mark | None) -> None:
        super().__init__(None, None, f"the field {name!r} appears twice in one mapping", mark)
        self.name = name


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise _DuplicateField(key, key_node.start_mark)
        seen.add(key)
    return dict(loader.construct_pairs(node))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_error(exc: yaml.YAMLError) -> RosterProblem:
    """PyYAML's own words for the problem (English), placed by line and column."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, _DuplicateField) and mark is not None:
        return RosterProblem(None, "roster.duplicate_field", {"line": mark.line + 1, "column": mark.column + 1,
                                                               "field": str(exc.name)})
    if mark is not None:
        return RosterProblem(None, "roster.yaml_syntax_at", {"line": mark.line + 1, "column": mark.column + 1,
                                                              "problem": problem})
    return RosterProblem(None, "roster.yaml_syntax", {"problem": problem})


def _kind(value: Any) -> str:
    """The kind of a value, a catalogue key ``roster.kind.<kind>``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "other"


def _join(path: str, name: str) -> str:
    """``grids[0].name``; top-level fields are named by themselves."""
    return f"{path}.{name}" if path else name


class _Checker:
    """Collects errors while walking the parsed YAML; every method returns None where a value is bad."""

    def __init__(self) -> None:
        self.errors: list[RosterProblem] = []

    def error(self, path: str, text_key: str, **params: Any) -> None:
        self.errors.append(RosterProblem(path, f"roster.{text_key}", params))

    def mapping(self, value: Any, path: str, allowed: Iterable[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, "not_mapping", kind=_kind(value))
            return None
        allowed_set = set(allowed)
        for name in value:
            if name not in allowed_set:
                self.error(_join(path, name), "unknown_field", expected=", ".join(sorted(allowed_set)))
        return value

    def text(self, data: dict[str, Any], name: str, path: str, limit: int, *, required: bool = True) -> str | None:
        where = _join(path, name)
        if name not in data or data[name] is None:
            if required:
                self.error(where, "missing")
            return None
        value = data[name]
        # An unquoted phone number reads as an integer; it is still the same phone number.
        if name == "phone" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.error(where, "not_text", kind=_kind(value))
            return None
        value = value.strip()
        if not value:
            self.error(where, "empty_text")
            return None
        if len(value) > limit:
            self.error(where, "too_long", length=len(value), limit=limit)
            return None
        return value

    def items(self, data: dict[str, Any], name: str, path: str, *, required: bool = True) -> list[Any] | None:
        where = _join(path, name)
        if name not in data or data[name] is None:
            if required:
                self.error(where, "missing")
            return None
        value = data[name]
        if not isinstance(value, list):
            self.error(where, "not_list", kind=_kind(value))
            return None
        return value

    def seconds(self, data: dict[str, Any], name: str, path: str, default: int) -> int:
        if name not in data:
            return default
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.error(_join(path, name), "not_seconds", value=repr(value))
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
            check.error(where, "not_key", kind=_kind(item))
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
    if staff["workers"] is not None and staff["police"] is not None and not (staff["workers"] or staff["police"]):
        # Nobody for the ladder to climb to: an alert nobody answers would end nowhere.
        check.error(path, "no_ladder")
    if code is None or name is None or raw_groups is None:
        return None
    return GridSpec(
        code=code,
        name=name,
        workers=staff["workers"],
        police=staff["police"],
        women_fed=staff["women_fed"],
        child_director=staff["child_director"],
        civil_affairs=staff["civil_affairs"],
        procuratorate=staff["procuratorate"],
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
        check.error(f"{path}.role", "bad_role", role=role, roles=", ".join(STAFF_ROLES))
        return None
    if key is None or name is None or role is None:
        return None
    return StaffSpec(key=key, name=name, role=role, phone=phone)


def _first_use(check: _Checker, seen: dict[str, str], raw: Any, where: str, twice: str) -> str | None:
    """Remember where the non-empty text ``raw`` is first used; a second use is the error ``twice`` (with
    ``value`` and ``first``). The stripped value, or None when ``raw`` is no text (its own check reports
    that)."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    value = raw.strip()
    if value in seen:
        check.error(where, twice, value=value, first=seen[value])
    else:
        seen[value] = where
    return value


def _mappings(raw: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) of the mappings in a raw list; anything else was reported by the parse already."""
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(item, dict):
            yield index, item


def _check_references(check: _Checker, data: dict[str, Any], roster: Roster) -> None:
    """Uniqueness and cross references. Paths are rebuilt from the raw data so indexes match the file."""
    member_at: dict[str, str] = {}
    raw_grids = data.get("grids")
    _check_grid_tree(check, raw_grids, member_at)
    staff_roles = _check_staff_keys(check, data.get("staff"), member_at)
    _check_grid_staff(check, raw_grids, staff_roles, member_at)


def _claim_key(check: _Checker, member_at: dict[str, str], key: str, where: str) -> None:
    """A member key (villager or staff) is used once in the whole file."""
    _first_use(check, member_at, key, where, "key_twice")


def _check_grid_tree(check: _Checker, raw_grids: Any, member_at: dict[str, str]) -> None:
    """Grid and group codes are unique; each group's head is one of its members. Claims the villagers' keys."""
    grid_at: dict[str, str] = {}
    group_at: dict[str, str] = {}
    for gi, raw_grid in _mappings(raw_grids):
        gpath = f"grids[{gi}]"
        _first_use(check, grid_at, raw_grid.get("code"), f"{gpath}.code", "grid_twice")
        for pi, raw_group in _mappings(raw_grid.get("groups")):
            ppath = f"{gpath}.groups[{pi}]"
            gcode = _first_use(check, group_at, raw_group.get("code"), f"{ppath}.code", "group_twice")
            group_members = _check_households(check, raw_group.get("households"), ppath, member_at)
            head = raw_group.get("head")
            if isinstance(head, str) and head.strip() and head.strip() not in group_members:
                name = gcode or f"#{pi}"
                check.error(f"{ppath}.head", "head_not_member", head=head.strip(), group=name)


def _check_households(check: _Checker, raw_households: Any, ppath: str, member_at: dict[str, str]) -> set[str]:
    """Household labels are unique within the group; claims its members' keys and returns them."""
    labels: dict[str, str] = {}
    group_members: set[str] = set()
    for hi, raw_household in _mappings(raw_households):
        hpath = f"{ppath}.households[{hi}]"
        _first_use(check, labels, raw_household.get("label"), f"{hpath}.label", "household_twice")
        for mi, raw_member in _mappings(raw_household.get("members")):
            if isinstance(raw_member.get("key"), str):
                key = raw_member["key"].strip()
                if key:
                    _claim_key(check, member_at, key, f"{hpath}.members[{mi}].key")
                    group_members.add(key)
    return group_members


def _check_staff_keys(check: _Checker, raw_staff: Any, member_at: dict[str, str]) -> dict[str, str]:
    """Claims the staff keys; the role of each staff key (its first entry's)."""
    staff_roles: dict[str, str] = {}
    for si, raw in _mappings(raw_staff):
        if isinstance(raw.get("key"), str) and raw["key"].strip():
            key = raw["key"].strip()
            _claim_key(check, member_at, key, f"staff[{si}].key")
            if isinstance(raw.get("role"), str):
                staff_roles.setdefault(key, raw["role"].strip())
    return staff_roles


def _check_grid_staff(
    check: _Checker, raw_grids: Any, staff_roles: dict[str, str], member_at: dict[str, str]
) -> None:
    """Each key a grid names as staff is listed once and is a staff member with the field's role."""
    for gi, raw_grid in _mappings(raw_grids):
        for field_name, role in STAFF_FIELDS.items():
            keys = raw_grid.get(field_name)
            seen: set[str] = set()
            for ki, key in enumerate(keys if isinstance(keys, list) else []):
                if not isinstance(key, str) or not key.strip():
                    continue
                key = key.strip()
                where = f"grids[{gi}].{field_name}[{ki}]"
                if key in seen:
                    check.error(where, "listed_twice", member=key)
                elif key not in staff_roles:
                    problem = "villager_not_staff" if key in member_at else "not_in_staff"
                    check.error(where, problem, member=key, role=role)
                elif staff_roles[key] != role:
                    check.error(where, "wrong_role", member=key, actual=staff_roles[key], role=role)
                seen.add(key)


def parse_roster(text: str) -> Roster:
    """Check a roster file's text completely; raise :class:`RosterError` listing every problem found."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RosterError([_yaml_error(exc)]) from None
    if data is None:
        raise RosterError([RosterProblem("", "roster.empty_file")])
    check = _Checker()
    if not isinstance(data, dict):
        raise RosterError([RosterProblem("", "roster.top_not_mapping", {"kind": _kind(data)})])
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
