"""Exporting the active roster as roster-file YAML, written the way people write it by hand."""

from __future__ import annotations

from typing import Any

import yaml
from sqlmodel import Session, col, select

from config.policies import DEFAULT_HEAD_ACK_S, DEFAULT_WORKER_ACK_S
from groups.model import Grid, GridStaff, Household, HouseholdGroup, Member, Role
from groups.roster.spec import OPTIONAL_STAFF_FIELDS, STAFF_FIELDS


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
