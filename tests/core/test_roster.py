"""Roster files: checking, importing (idempotent, deactivating), exporting; invite cards; incident views."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import event
from sqlmodel import Session, select

from bot.cli.messages import roster_problem
from groups.db import get_engine, session_scope
from groups.invites import list_invites
from groups.model import (
    Grid,
    GridStaff,
    Household,
    HouseholdGroup,
    Incident,
    IncidentEvent,
    Member,
    Notification,
    Response,
)
from groups.roster import (
    ImportSummary,
    RosterError,
    export_roster,
    import_roster,
    load_sample_village,
    parse_roster,
)
from groups.views import incident_view, list_incidents

DATA = Path(__file__).resolve().parent.parent / "data"
ROSTER = (DATA / "roster.yaml").read_text(encoding="utf-8")
ROSTER_V2 = (DATA / "roster_v2.yaml").read_text(encoding="utf-8")
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def english(error: RosterError) -> list[str]:
    """The problems as the CLI prints them with YIHU_LANGUAGE=en (path first)."""
    return [roster_problem(problem, "en") for problem in error.problems]


def import_text(url: str, text: str) -> ImportSummary:
    """What `yihu roster import` does: check the whole file, then import it in one transaction."""
    roster = parse_roster(text)
    with session_scope(get_engine(url)) as session:
        return import_roster(session, roster)


def snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every roster row, to compare the database before and after."""
    with Session(get_engine(url)) as session:
        return {
            model.__name__: sorted(
                (row.model_dump() for row in session.exec(select(model)).all()), key=lambda r: r["id"]
            )
            for model in (Grid, HouseholdGroup, Household, Member, GridStaff)
        }


def members_by_key(session: Session) -> dict[str, Member]:
    return {m.key: m for m in session.exec(select(Member)).all()}


def household_of(session: Session, member: Member) -> tuple[str, str]:
    household = session.get(Household, member.household_id)
    assert household is not None
    group = session.get(HouseholdGroup, household.group_id)
    assert group is not None
    return group.code, household.label


# --- good files -----------------------------------------------------------------------------------


def test_import_creates_the_roster(database_url: str) -> None:
    summary = import_text(database_url, ROSTER)

    assert (summary.grids.created, summary.groups.created, summary.households.created) == (2, 3, 5)
    assert summary.members.created == 10  # six villagers and four staff
    assert summary.staff_roles.created == 5  # lc3: w1, p1, f1; lc4: w2, p1
    with Session(get_engine(database_url)) as session:
        members = members_by_key(session)
        assert members["m1"].phone == "13800000001" and members["m2"].phone is None
        assert members["w1"].role == "grid_worker" and members["w1"].household_id is None
        assert members["m2"].role == "villager"
        assert household_of(session, members["m3"]) == ("g1", "2号户")
        tokens = [m.invite_token for m in members.values()]
        assert all(TOKEN.fullmatch(t) for t in tokens) and len(set(tokens)) == len(tokens)
        groups = {g.code: g for g in session.exec(select(HouseholdGroup)).all()}
        assert groups["g1"].head_id == members["m1"].id and groups["g2"].head_id == members["m4"].id
        codes = [g.bind_code for g in groups.values()]
        assert all(len(c) == 10 and c.isalnum() for c in codes) and len(set(codes)) == 3
        grids = {g.code: g for g in session.exec(select(Grid)).all()}
        assert (grids["lc3"].head_ack_s, grids["lc3"].worker_ack_s) == (60, 200)
        assert (grids["lc4"].head_ack_s, grids["lc4"].worker_ack_s) == (120, 300)
        staff = {
            (session.get(Grid, s.grid_id).code, session.get(Member, s.member_id).key, s.role)  # type: ignore[union-attr]
            for s in session.exec(select(GridStaff)).all()
        }
        assert staff == {
            ("lc3", "w1", "grid_worker"),
            ("lc3", "p1", "police"),
            ("lc3", "f1", "women_fed"),
            ("lc4", "w2", "grid_worker"),
            ("lc4", "p1", "police"),
        }


def link_telegram(url: str) -> None:
    """Link m1 and m5 to Telegram users and bind g1 to a chat, as onboarding would."""
    with session_scope(get_engine(url)) as session:
        members = members_by_key(session)
        for key, user_id in (("m1", 1001), ("m5", 1005)):
            members[key].telegram_user_id = user_id
            members[key].language_code = "zh-hans"
            members[key].linked_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        group = session.exec(select(HouseholdGroup).where(HouseholdGroup.code == "g1")).one()
        group.chat_id = -100123


def test_reimport_is_a_no_op(database_url: str) -> None:
    import_text(database_url, ROSTER)
    link_telegram(database_url)
    before = snapshot(database_url)

    summary = import_text(database_url, ROSTER)

    assert not summary.changed
    assert summary.members.unchanged == 10 and summary.staff_roles.unchanged == 5
    assert snapshot(database_url) == before  # tokens, bind codes, links, ids: all the same


def test_reimport_moves_renames_and_deactivates(database_url: str) -> None:
    import_text(database_url, ROSTER)
    link_telegram(database_url)
    before = snapshot(database_url)
    tokens = {m["key"]: m["invite_token"] for m in before["Member"]}
    bind_codes = {g["code"]: g["bind_code"] for g in before["HouseholdGroup"]}

    summary = import_text(database_url, ROSTER_V2)

    assert summary.members.deactivated == 3  # m5, m6, w2
    assert summary.grids.deactivated == 1 and summary.groups.deactivated == 1
    assert summary.households.deactivated == 2  # g1 2号户, g3 1号户
    assert summary.members.updated == 2  # m2 renamed, m3 moved
    with Session(get_engine(database_url)) as session:
        members = members_by_key(session)
        assert len(members) == 10  # nobody deleted
        assert household_of(session, members["m3"]) == ("g2", "2号户")
        assert (members["m2"].name, members["m2"].phone) == ("李四海", "13800000002")
        assert {k for k, m in members.items() if not m.active} == {"m5", "m6", "w2"}
        # A deactivated member keeps their Telegram link and token for history and a later return.
        assert members["m5"].telegram_user_id == 1005 and members["m5"].invite_token == tokens["m5"]
        assert {k: m.invite_token for k, m in members.items()} == tokens
        assert members["m1"].telegram_user_id == 1001 and members["m1"].language_code == "zh-hans"
        groups = {g.code: g for g in session.exec(select(HouseholdGroup)).all()}
        assert {c: g.bind_code for c, g in groups.items()} == bind_codes
        assert groups["g1"].chat_id == -100123
        assert groups["g2"].head_id == members["m3"].id and groups["g2"].name == "第二联防组（新）"
        assert not groups["g3"].active
        grids = {g.code: g for g in session.exec(select(Grid)).all()}
        assert not grids["lc4"].active
        assert (grids["lc3"].head_ack_s, grids["lc3"].worker_ack_s) == (120, 300)
        staff = {(s.grid_id, s.member_id, s.role) for s in session.exec(select(GridStaff)).all()}
        assert staff == {
            (grids["lc3"].id, members["w1"].id, "grid_worker"),
            (grids["lc3"].id, members["p1"].id, "police"),
        }
        assert members["f1"].active  # still staff, just no longer assigned to lc3

    # Coming back reactivates the same rows, with the same tokens and links.
    summary = import_text(database_url, ROSTER)
    assert summary.members.created == 0 and summary.grids.created == 0 and summary.households.created == 0
    with Session(get_engine(database_url)) as session:
        members = members_by_key(session)
        assert all(m.active for m in members.values())
        assert members["m5"].telegram_user_id == 1005
        assert household_of(session, members["m3"]) == ("g1", "2号户")
    after = snapshot(database_url)
    assert {m["key"]: m["invite_token"] for m in after["Member"]} == tokens
    assert len(after["Household"]) == len(before["Household"])


def test_import_uses_one_transaction_the_caller_commits(database_url: str) -> None:
    roster = parse_roster(ROSTER)
    with pytest.raises(RuntimeError), session_scope(get_engine(database_url)) as session:
        import_roster(session, roster)
        raise RuntimeError("the caller fails after importing")
    assert snapshot(database_url) == {name: [] for name in snapshot(database_url)}


def test_sample_village() -> None:
    roster = parse_roster(load_sample_village())
    (grid,) = roster.grids
    assert (grid.code, grid.name, grid.workers, grid.police) == ("lc3", "兰城街道第三网格", ("w1",), ("p1",))
    assert (grid.women_fed, grid.child_director) == (("f1",), ("c1",))
    assert (grid.head_ack_s, grid.worker_ack_s) == (120, 300)
    assert [(g.code, g.name, g.head) for g in grid.groups] == [
        ("g1", "第一联防组", "g1m1"),
        ("g2", "第二联防组", "g2m1"),
    ]
    for n, group in enumerate(grid.groups, 1):
        assert [h.label for h in group.households] == [f"{i}号户" for i in range(1, 11)]
        assert [m.key for h in group.households for m in h.members] == [f"g{n}m{i}" for i in range(1, 11)]
    assert {(s.key, s.role) for s in roster.staff} == {
        ("w1", "grid_worker"),
        ("p1", "police"),
        ("f1", "women_fed"),
        ("c1", "child_director"),
    }


# --- bad files ------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "grids": [
        {
            "code": "lc3",
            "name": "兰城街道第三网格",
            "workers": ["w1"],
            "police": ["p1"],
            "groups": [
                {
                    "code": "g1",
                    "name": "第一联防组",
                    "head": "m1",
                    "households": [
                        {"label": "1号户", "members": [{"key": "m1", "name": "张三"}, {"key": "m2", "name": "李四"}]},
                    ],
                },
                {
                    "code": "g2",
                    "name": "第二联防组",
                    "head": "m3",
                    "households": [{"label": "1号户", "members": [{"key": "m3", "name": "王五"}]}],
                },
            ],
        }
    ],
    "staff": [
        {"key": "w1", "name": "王网格", "role": "grid_worker"},
        {"key": "p1", "name": "赵警官", "role": "police"},
    ],
}


def variant(change: Callable[[dict[str, Any]], None]) -> str:
    doc = copy.deepcopy(BASE)
    change(doc)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def g(doc: dict[str, Any], group: int) -> dict[str, Any]:
    result: dict[str, Any] = doc["grids"][0]["groups"][group]
    return result


BAD_FILES: dict[str, tuple[str, str]] = {
    "syntax": ((DATA / "bad_syntax.yaml").read_text(), "line 4, column 1: YAML syntax error: expected ',' or ']'"),
    "same field twice": (
        "grids: []\ngrids: []\n",
        "line 2, column 1: YAML syntax error: the field 'grids' appears twice",
    ),
    "empty": ("", "top level: the file is empty"),
    "not a mapping": ("- lc3\n- lc4\n", "top level: must be a mapping with grids and staff, not a list."),
    "unknown top-level field": ("grids: []\nstaf: []\n", "staf: unknown field (expected one of grids, staff)."),
    "missing grids": (variant(lambda d: d.pop("grids")), "grids: missing required field."),
    "grids not a list": (variant(lambda d: d.update(grids=5)), "grids: must be a list, not a number."),
    "missing group name": (variant(lambda d: g(d, 1).pop("name")), "grids[0].groups[1].name: missing required field."),
    "missing member key": (
        variant(lambda d: g(d, 0)["households"][0]["members"][1].pop("key")),
        "grids[0].groups[0].households[0].members[1].key: missing required field.",
    ),
    "households not a list": (
        variant(lambda d: g(d, 0).update(households=5)),
        "grids[0].groups[0].households: must be a list, not a number.",
    ),
    "name not text": (
        variant(lambda d: g(d, 0)["households"][0]["members"][1].update(name=["李", "四"])),
        "grids[0].groups[0].households[0].members[1].name: must be text, not a list.",
    ),
    "group not a mapping": (
        variant(lambda d: d["grids"][0]["groups"].append("g3")),
        "grids[0].groups[2]: must be a mapping, not text.",
    ),
    "unknown field": (variant(lambda d: g(d, 0).update(haed="m1")), "grids[0].groups[0].haed: unknown field"),
    "head outside the group": (
        variant(lambda d: g(d, 1).update(head="m1")),
        "grids[0].groups[1].head: m1 is not a member of group g2.",
    ),
    "head unknown": (
        variant(lambda d: g(d, 1).update(head="m9")),
        "grids[0].groups[1].head: m9 is not a member of group g2.",
    ),
    "worker unknown": (
        variant(lambda d: d["grids"][0].update(workers=["w9"])),
        "grids[0].workers[0]: w9 is not in staff (expected a staff member with role grid_worker).",
    ),
    "police of the wrong role": (
        variant(lambda d: d["grids"][0].update(police=["w1"])),
        "grids[0].police[0]: w1 has role grid_worker, not police.",
    ),
    "villager as women_fed": (
        variant(lambda d: d["grids"][0].update(women_fed=["m2"])),
        "grids[0].women_fed[0]: m2 is a villager, not a staff member with role women_fed.",
    ),
    "worker listed twice": (
        variant(lambda d: d["grids"][0].update(workers=["w1", "w1"])),
        "grids[0].workers[1]: w1 is listed twice.",
    ),
    "member key twice": (
        variant(lambda d: g(d, 1)["households"][0]["members"].append({"key": "m1", "name": "张三三"})),
        "grids[0].groups[1].households[0].members[1].key: m1 is used twice "
        "(first at grids[0].groups[0].households[0].members[0].key); member keys must be unique.",
    ),
    "staff key of a villager": (
        variant(lambda d: d["staff"].append({"key": "m2", "name": "李四", "role": "police"})),
        "staff[2].key: m2 is used twice (first at grids[0].groups[0].households[0].members[1].key); "
        "member keys must be unique.",
    ),
    "grid without workers or police": (
        variant(lambda d: d["grids"][0].update(workers=[], police=[])),
        "grids[0]: a grid needs at least one grid worker or police officer (workers / police).",
    ),
    "grid code twice": (
        variant(
            lambda d: d["grids"].append(
                {"code": "lc3", "name": "又一个", "workers": ["w1"], "police": [], "groups": []}
            )
        ),
        "grids[1].code: grid code lc3 is used twice (first at grids[0].code).",
    ),
    "group code twice": (
        variant(lambda d: g(d, 1).update(code="g1")),
        "grids[0].groups[1].code: group code g1 is used twice (first at grids[0].groups[0].code).",
    ),
    "household label twice": (
        variant(lambda d: g(d, 0)["households"].append({"label": "1号户", "members": []})),
        "grids[0].groups[0].households[1].label: household 1号户 appears twice in this group "
        "(first at grids[0].groups[0].households[0].label).",
    ),
    "unknown role": (
        variant(lambda d: d["staff"].append({"key": "x1", "name": "某人", "role": "chief"})),
        "staff[2].role: chief is not a staff role; use one of grid_worker, police, women_fed, child_director, "
        "civil_affairs, procuratorate.",
    ),
    "escalation zero": (
        variant(lambda d: d["grids"][0].update(escalation={"head_ack_s": 0})),
        "grids[0].escalation.head_ack_s: must be a positive whole number of seconds, not 0.",
    ),
    "escalation text": (
        variant(lambda d: d["grids"][0].update(escalation={"worker_ack_s": "5m"})),
        "grids[0].escalation.worker_ack_s: must be a positive whole number of seconds, not '5m'.",
    ),
    "name too long": (
        variant(lambda d: g(d, 0).update(name="长" * 201)),
        "grids[0].groups[0].name: is 201 characters long; at most 200 are allowed.",
    ),
}


def test_the_base_of_the_bad_files_is_good() -> None:
    roster = parse_roster(variant(lambda d: None))
    assert [g.code for g in roster.grids[0].groups] == ["g1", "g2"]


def test_lenient_where_the_meaning_is_clear() -> None:
    def change(d: dict[str, Any]) -> None:
        d["grids"][0]["escalation"] = {"worker_ack_s": 600}
        g(d, 0)["households"][0]["members"][0]["phone"] = 13800000001  # written unquoted
        d["grids"][0].update(police=[])  # a grid worker alone is enough (none at all: refused, issue 12)

    grid = parse_roster(variant(change)).grids[0]
    assert (grid.head_ack_s, grid.worker_ack_s) == (120, 600)
    assert grid.groups[0].households[0].members[0].phone == "13800000001"


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_names_the_place_and_changes_nothing(case: str, sqlite_url: str) -> None:
    text, expected = BAD_FILES[case]
    import_text(sqlite_url, ROSTER)
    before = snapshot(sqlite_url)

    with pytest.raises(RosterError) as raised:
        import_text(sqlite_url, text)

    assert any(error.startswith(expected) for error in english(raised.value)), english(raised.value)
    assert snapshot(sqlite_url) == before


def test_every_error_is_reported_at_once(database_url: str) -> None:
    with pytest.raises(RosterError) as raised:
        import_text(database_url, (DATA / "bad_references.yaml").read_text(encoding="utf-8"))
    assert english(raised.value) == [
        "grids[0].groups[1].head: m1 is not a member of group g2.",
        "grids[0].workers[0]: p1 has role police, not grid_worker.",
        "grids[0].police[0]: p9 is not in staff (expected a staff member with role police).",
    ]
    assert all(not rows for rows in snapshot(database_url).values())


# --- export ---------------------------------------------------------------------------------------


def test_export_round_trip(database_url: str) -> None:
    import_text(database_url, ROSTER)
    with Session(get_engine(database_url)) as session:
        text = export_roster(session)

    assert "兰城街道第三网格" in text and "\\u" not in text  # Chinese stays readable
    assert parse_roster(text) == parse_roster(ROSTER)
    doc = yaml.safe_load(text)
    assert doc["grids"][0]["escalation"] == {"head_ack_s": 60, "worker_ack_s": 200}
    assert "escalation" not in doc["grids"][1] and "women_fed" not in doc["grids"][1]
    assert doc["grids"][0]["groups"][0]["households"][0]["members"][0]["phone"] == "13800000001"
    assert "phone" not in doc["grids"][0]["groups"][0]["households"][0]["members"][1]
    before = snapshot(database_url)
    assert not import_text(database_url, text).changed
    assert snapshot(database_url) == before


def test_export_after_changes_has_only_active_rows(database_url: str) -> None:
    import_text(database_url, ROSTER)
    import_text(database_url, ROSTER_V2)
    with Session(get_engine(database_url)) as session:
        text = export_roster(session)
    assert parse_roster(text) == parse_roster(ROSTER_V2)
    assert "m5" not in text and "lc4" not in text and "w2" not in text
    assert not import_text(database_url, text).changed


# --- invites --------------------------------------------------------------------------------------


def test_invites(database_url: str) -> None:
    import_text(database_url, ROSTER)
    import_text(database_url, ROSTER_V2)
    with Session(get_engine(database_url)) as session:
        invites = list_invites(session, "yihu_test_bot")
        tokens = {m.key: m.invite_token for m in session.exec(select(Member)).all()}

    assert set(invites) == {"members", "groups"}
    assert [m["key"] for m in invites["members"]] == ["f1", "m1", "m2", "m3", "m4", "p1", "w1"]
    for entry in invites["members"]:
        assert set(entry) == {"key", "name", "token", "link"}
        assert entry["token"] == tokens[entry["key"]]
        assert entry["link"] == f"https://t.me/yihu_test_bot?start={entry['token']}"
    assert invites["members"][2]["name"] == "李四海"
    assert [(g["code"], g["name"]) for g in invites["groups"]] == [("g1", "第一联防组"), ("g2", "第二联防组（新）")]
    assert all(set(g) == {"code", "name", "bind_code"} and g["bind_code"] for g in invites["groups"])


# --- incident views -------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def make_incident(session: Session, ids: dict[str, int], *, status: str = "open", offset: int = 0) -> Incident:
    """An incident by m2 in g1 with a timeline, responses and deliveries, written straight to the tables."""
    group_id = session.exec(select(HouseholdGroup.id).where(HouseholdGroup.code == "g1")).one()
    assert group_id is not None
    incident = Incident(
        group_id=group_id,
        reporter_id=ids["m2"],
        category="fire",
        text="厨房着火",
        status=status,
        escalation_level=1,
        acknowledged_by_id=ids["w1"] if status == "acknowledged" else None,
        created_at=T0 + timedelta(minutes=offset),
        last_raised_at=T0 + timedelta(minutes=offset),
    )
    session.add(incident)
    session.flush()
    assert incident.id is not None
    at = T0 + timedelta(minutes=offset)
    # Written out of order: the view orders the timeline by time.
    session.add(IncidentEvent(incident_id=incident.id, at=at + timedelta(seconds=121), kind="escalated", detail="1"))
    session.add(IncidentEvent(incident_id=incident.id, at=at, kind="raised", actor_id=ids["m2"], detail="fire"))
    session.add(
        IncidentEvent(incident_id=incident.id, at=at + timedelta(seconds=30), kind="response", actor_id=ids["m1"])
    )
    session.add(Response(incident_id=incident.id, member_id=ids["m1"], kind="coming", at=at + timedelta(seconds=30)))
    session.add(Response(incident_id=incident.id, member_id=ids["m3"], kind="cant", at=at + timedelta(seconds=40)))
    session.add(Notification(incident_id=incident.id, recipient_id=ids["m2"], purpose="confirmation", status="sent"))
    session.add(Notification(incident_id=incident.id, recipient_id=ids["m1"], purpose="alert", status="sent"))
    session.add(Notification(incident_id=incident.id, recipient_id=ids["m3"], purpose="alert", status="unreachable"))
    session.add(Notification(incident_id=incident.id, group_id=group_id, chat_id=-100123, purpose="alert"))
    session.add(Notification(incident_id=incident.id, recipient_id=ids["w1"], purpose="escalation", status="failed"))
    return incident


@pytest.fixture
def roster_ids(database_url: str) -> dict[str, int]:
    import_text(database_url, ROSTER)
    with Session(get_engine(database_url)) as session:
        return {m.key: m.id for m in session.exec(select(Member)).all() if m.id is not None}


def test_no_incidents(database_url: str) -> None:
    with Session(get_engine(database_url)) as session:
        assert list_incidents(session) == []
        assert list_incidents(session, "open") == []


def test_incident_view_shape(database_url: str, roster_ids: dict[str, int]) -> None:
    with session_scope(get_engine(database_url)) as session:
        incident = make_incident(session, roster_ids, status="acknowledged")
    with Session(get_engine(database_url)) as session:
        stored = session.get(Incident, incident.id)
        assert stored is not None
        view = incident_view(session, stored)

    assert view["id"] == incident.id
    assert (view["status"], view["category"], view["group"], view["reporter"]) == ("acknowledged", "fire", "g1", "m2")
    assert view["created_at"] in ("2026-03-01T08:00:00Z", "2026-03-01T08:00:00+00:00")
    assert datetime.fromisoformat(view["created_at"]) == T0
    assert (view["escalation_level"], view["acknowledged_by"]) == (1, "w1")
    assert view["responses"] == [
        {"member": "m1", "kind": "coming", "at": "2026-03-01T08:00:30Z"},
        {"member": "m3", "kind": "cant", "at": "2026-03-01T08:00:40Z"},
    ]
    assert [{k: e[k] for k in ("at", "kind", "actor", "detail")} for e in view["timeline"]] == [
        {"at": "2026-03-01T08:00:00Z", "kind": "raised", "actor": "m2", "detail": "fire"},
        {"at": "2026-03-01T08:00:30Z", "kind": "response", "actor": "m1", "detail": None},
        {"at": "2026-03-01T08:02:01Z", "kind": "escalated", "actor": None, "detail": "1"},
    ]
    assert [{k: n[k] for k in ("recipient", "purpose", "status")} for n in view["notifications"]] == [
        {"recipient": "m2", "purpose": "confirmation", "status": "sent"},
        {"recipient": "m1", "purpose": "alert", "status": "sent"},
        {"recipient": "m3", "purpose": "alert", "status": "unreachable"},
        {"recipient": "group:g1", "purpose": "alert", "status": "pending"},
        {"recipient": "w1", "purpose": "escalation", "status": "failed"},
    ]


def test_list_incidents_filters_and_batches(database_url: str, roster_ids: dict[str, int]) -> None:
    engine = get_engine(database_url)
    with session_scope(engine) as session:
        make_incident(session, roster_ids, status="open")

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def queries_for_listing() -> tuple[int, int]:
        """How many incidents the listing returns, and how many SQL statements it took."""
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            with Session(engine) as session:
                views = list_incidents(session)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(views), len(statements)

    one_count, one_queries = queries_for_listing()
    with session_scope(engine) as session:
        for n in range(1, 25):
            make_incident(session, roster_ids, status="resolved" if n % 2 else "open", offset=n)
    many_count, many_queries = queries_for_listing()

    assert (one_count, many_count) == (1, 25)
    assert many_queries == one_queries  # batched: no query per incident
    with Session(engine) as session:
        views = list_incidents(session)
        assert [v["id"] for v in views] == sorted(v["id"] for v in views)
        assert all(len(v["timeline"]) == 3 and len(v["notifications"]) == 5 for v in views)
        assert {v["status"] for v in list_incidents(session, "resolved")} == {"resolved"}
        assert len(list_incidents(session, "resolved")) == 12
        assert len(list_incidents(session, "open")) == 13
        with pytest.raises(ValueError, match="unknown status"):
            list_incidents(session, "closed")
