"""The staff desk's core (issue 13, item 2): single-use login links, sessions, the rate limit on bad
links, what each role may see (anything else is "not found"), and views of private incidents recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from groups import alerts, desk, referrals
from groups.erasure import forget_member
from groups.errors import UserError
from groups.model import DeskLogin, DeskSession, GridStaff, IncidentEvent, Member
from groups.permissions import REPORTER, capacities
from tests.support.village import T0, Village, build_village

LATER = T0 + timedelta(minutes=1)
STAFF = ("w1", "p1", "f1", "c1", "ca1", "w2", "p2", "m1", "m5", "m7")


@pytest.fixture
def village(database_url: str) -> Village:
    v = build_village(database_url)
    with v.session() as s:  # a civil-affairs officer in grid lc3 (the grid of w1)
        grid = s.exec(select(GridStaff.grid_id).where(GridStaff.member_id == v.ids["w1"])).one()
        ca1 = Member(key="ca1", name="N-ca1", role="civil_affairs", invite_token="tok-ca1".ljust(20, "x"))
        s.add(ca1)
        s.flush()
        assert ca1.id is not None
        ca1.telegram_user_id, ca1.linked_at = 10_000 + ca1.id, T0
        s.add(GridStaff(grid_id=grid, member_id=ca1.id, role="civil_affairs"))
        s.commit()
        v.ids["ca1"] = ca1.id
    return v


def _raise(v: Village, key: str, category: str | None, location: tuple[float, float] | None = None) -> int:
    with v.session() as s:
        number = alerts.raise_alert(s, v.actor(s, key), T0, category, location=location).incident_id
        s.commit()
    return number


def _login(v: Village, key: str, valid_s: float = 600) -> str:
    with v.session() as s:
        token = desk.issue_login(s, v.actor(s, key), T0, valid_s)
        s.commit()
    return token


def _redeem(v: Village, token: str, at: object = LATER, address: str = "10.0.0.1", **limits: float) -> desk.Login:
    with v.session() as s:
        login = desk.redeem_login(s, token, address, at, **limits)  # type: ignore[arg-type]
        s.commit()
    return login


def test_a_link_is_unguessable_stored_as_a_hash_and_good_once(village: Village) -> None:
    v = village
    token = _login(v, "w1")
    assert len(token) >= 32  # 192 random bits, URL-safe
    with v.session() as s:
        stored = s.exec(select(DeskLogin)).one()
    assert stored.token_hash == desk.digest(token) and token not in stored.model_dump_json()
    first = _redeem(v, token)
    assert first.refused is None and first.session_id and first.member_id == v.ids["w1"]
    with v.session() as s:
        kept = s.exec(select(DeskSession)).one()
        assert kept.session_hash == desk.digest(first.session_id) and first.session_id not in kept.model_dump_json()
        member = desk.session_member(s, first.session_id, LATER)
        assert member is not None and member.key == "w1"
    assert _redeem(v, token) == desk.Login(refused="used")


def test_a_link_expires_and_a_session_too(village: Village) -> None:
    v = village
    late = _login(v, "w1", valid_s=600)
    assert _redeem(v, late, at=T0 + timedelta(seconds=600)) == desk.Login(refused="expired")
    in_time = _redeem(v, _login(v, "w1", valid_s=600), at=T0 + timedelta(seconds=599), session_s=3600)
    assert in_time.session_id is not None
    with v.session() as s:
        assert desk.session_member(s, in_time.session_id, T0 + timedelta(seconds=599 + 3599)) is not None
        assert desk.session_member(s, in_time.session_id, T0 + timedelta(seconds=599 + 3600)) is None
        assert desk.session_member(s, "made-up", LATER) is None
        assert desk.session_member(s, None, LATER) is None


def test_a_forgotten_member_loses_the_session(village: Village) -> None:
    v = village
    login = _redeem(v, _login(v, "m1"))
    with v.session() as s:
        forget_member(s, "m1", LATER)
        s.commit()
        assert desk.session_member(s, login.session_id, LATER) is None


def test_villagers_and_strangers_get_no_link(village: Village) -> None:
    v = village
    for key in ("m2", "x1"):
        with v.session() as s, pytest.raises(UserError) as refused:
            desk.issue_login(s, v.actor(s, key), T0)
        assert refused.value.key == "not_allowed"
    for key in STAFF:
        assert _login(v, key)


def test_bad_links_are_rate_limited_per_address(village: Village) -> None:
    v = village
    limits = {"failures": 3, "window_s": 60}
    for _ in range(3):
        assert _redeem(v, "guessed-token", **limits).refused == "unknown"
    good = _login(v, "w1")
    assert _redeem(v, good, **limits) == desk.Login(refused="limited")  # even a good link, from there
    assert _redeem(v, good, address="10.0.0.2", **limits).session_id is not None
    assert _redeem(v, "x" * 500, at=LATER + timedelta(seconds=61), **limits).refused == "unknown"  # window over


def _sees(v: Village, key: str) -> list[int]:
    with v.session() as s:
        found = desk.desk_list(s, v.actor(s, key), LATER)
        return sorted(r.incident_id for r in found.open + found.closed)


def test_each_role_sees_what_it_may_see_in_telegram(village: Village) -> None:
    v = village
    fire = _raise(v, "m2", "fire")  # group g1, grid lc3
    violence = _raise(v, "m3", "violence")  # private, g1
    child = _raise(v, "m6", "child")  # private, g2
    elsewhere = _raise(v, "m8", "fire")  # group g3, grid lc4
    assert _sees(v, "w1") == [fire, violence, child]
    assert _sees(v, "m1") == [fire]  # a head: their group, never a private incident
    assert _sees(v, "m5") == []
    assert _sees(v, "p1") == [violence, child]  # police: escalated to them (private ones start there)
    assert _sees(v, "f1") == [violence] and _sees(v, "c1") == [child]
    assert _sees(v, "ca1") == []
    assert _sees(v, "w2") == [elsewhere] and _sees(v, "p2") == []
    with v.session() as s:
        referrals.refer(s, v.actor(s, "w1"), fire, "civil", LATER)
        s.commit()
    assert _sees(v, "ca1") == [fire]  # referred to their department
    # The same rules as the bot's (groups.permissions), plus the referral.
    with v.session() as s:
        for key in STAFF:
            member = v.actor(s, key)
            for number in (fire, violence, child, elsewhere):
                incident = s.get(desk.Incident, number)
                assert incident is not None
                bot_rule = bool(capacities(s, member, incident) - {REPORTER})
                assert (number in _sees(v, key)) == (bot_rule or (key == "ca1" and number == fire)), (key, number)


def test_anything_else_is_not_found_like_a_missing_number(village: Village) -> None:
    v = village
    violence = _raise(v, "m3", "violence")
    elsewhere = _raise(v, "m8", "fire")
    with v.session() as s:
        for key, number in (("m1", violence), ("w1", elsewhere), ("w2", violence), ("f1", 999)):
            for look in (desk.incident_detail, desk.incident_json):
                with pytest.raises(UserError) as refused:
                    look(s, v.actor(s, key), number, LATER)
                assert refused.value.key == "incident_not_found"
        s.rollback()
        assert _viewed(s, violence) == []  # a refusal records nothing


def _viewed(s: Session, number: int) -> list[tuple[int | None, str | None]]:
    query = select(IncidentEvent).where(IncidentEvent.incident_id == number, IncidentEvent.kind == desk.VIEWED)
    return [(e.actor_id, e.detail) for e in s.exec(query.order_by(col(IncidentEvent.id))).all()]


def test_every_view_of_a_private_incident_is_on_its_timeline(village: Village) -> None:
    v = village
    fire = _raise(v, "m2", "fire", location=(30.5, 114.3))
    violence = _raise(v, "m3", "violence", location=(30.51, 114.31))
    with v.session() as s:
        detail = desk.incident_detail(s, v.actor(s, "f1"), violence, LATER)
        desk.incident_json(s, v.actor(s, "w1"), violence, LATER)
        listed = desk.incidents_json(s, v.actor(s, "p1"), LATER)
        desk.incident_detail(s, v.actor(s, "w1"), fire, LATER)
        s.commit()
        assert [view["id"] for view in listed] == [violence]
        assert _viewed(s, violence) == [
            (v.ids["f1"], "desk page"), (v.ids["w1"], "desk api"), (v.ids["p1"], "desk api")
        ]
        assert _viewed(s, fire) == []  # public incidents are not logged
        # The desk list names categories only and logs nothing.
        desk.desk_list(s, v.actor(s, "w1"), LATER)
        s.commit()
        assert len(_viewed(s, violence)) == 3
    assert detail.row.private and detail.reporter == "N-m3"
    assert ("incident", violence) in {(p.kind, p.incident_id) for p in detail.points}
    # The officer's map shows no incident they may not see (the fire is the grid worker's).
    assert fire not in {p.incident_id for p in detail.points}
    with v.session() as s:
        worker_map = desk.incident_detail(s, v.actor(s, "w1"), fire, LATER).points
    assert {(p.kind, p.incident_id) for p in worker_map} == {("incident", fire), ("other", violence)}


def test_group_health_for_heads_and_grid_workers(village: Village) -> None:
    v = village
    with v.session() as s:
        worker = desk.group_health(s, v.actor(s, "w1"))
        head = desk.group_health(s, v.actor(s, "m1"))
        police = desk.group_health(s, v.actor(s, "p1"))
    assert [g.code for g in worker] == ["g1", "g2"] and [g.code for g in head] == ["g1"] and police == []
    g1 = head[0]
    assert (g1.households, g1.members, g1.linked, g1.reachable, g1.unreachable) == (3, 4, 3, 3, 0)
    assert g1.chat_bound and g1.head == "N-m1" and g1.head_reachable
    assert not worker[1].chat_bound
