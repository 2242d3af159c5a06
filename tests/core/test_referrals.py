"""Referrals that reach the department (issue 12, item 4): ``/refer`` DMs that department's staff in the
incident's grid (never villagers); nobody there: recorded, and the referrer is told; ``/case`` lists them."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from groups import alerts, cases, referrals
from groups.model import Grid, GridStaff, Member, Notification, Referral
from tests.support.village import T0, Village, build_village, rows, say, token

# The department's staff added to build_village's grids: lc3 has all four departments, lc4 civil affairs only.
DEPARTMENT_STAFF = {"a1": ("lc3", "civil_affairs"), "j1": ("lc3", "procuratorate"), "a2": ("lc4", "civil_affairs")}


@pytest.fixture
def village(database_url: str) -> Village:
    village = build_village(database_url)
    with Session(village.engine) as s:
        grids = {grid.code: grid.id for grid in s.exec(select(Grid)).all()}
        for key, (grid, role) in DEPARTMENT_STAFF.items():
            member = Member(key=key, name=f"N-{key}", role=role, invite_token=token(key))
            s.add(member)
            s.flush()
            assert member.id is not None
            member.telegram_user_id = 10_000 + member.id
            s.add(GridStaff(grid_id=grids[grid] or 0, member_id=member.id, role=role))
            village.ids[key] = member.id
        s.commit()
    return village


def sos(v: Village, key: str, category: str | None = None) -> int:
    with v.session() as s:
        number = alerts.raise_alert(s, v.actor(s, key), T0, category).incident_id
        s.commit()
    return number


def refer(v: Village, by: str, number: int, department: str, days: str = "10") -> referrals.ReferralResult:
    with v.session() as s:
        result = referrals.refer(s, v.actor(s, by), number, department, T0, days=days)
        s.commit()
    return result


def referral_rows(v: Village, number: int) -> list[Notification]:
    with v.session() as s:
        return [r for r in rows(s, number) if r.purpose == "referral"]


@pytest.mark.parametrize(
    ("department", "staff"), [("civil", "a1"), ("procuratorate", "j1"), ("women", "f1"), ("child", "c1")]
)
def test_a_referral_tells_that_departments_staff_in_the_grid(village: Village, department: str, staff: str) -> None:
    n = sos(village, "m2", "fire")
    result = refer(village, "w1", n, department)
    assert (result.reply_key, result.department, result.params["told"]) == ("referral_sent", department, 1)
    assert result.due_at == T0 + timedelta(days=10)
    say(result.reply_key, result.params | {"due": "2026-12-02"})
    (row,) = referral_rows(village, n)
    # lc4's civil affairs officer, the villagers and the grid's other staff hear nothing of it.
    assert (row.recipient_id, row.priority, row.status) == (village.ids[staff], "updates", "pending")
    assert row.payload == {"template": "referral", "referral_id": result.referral_ids[0], "by": village.ids["w1"]}
    assert result.effects.notifications == [row.id]


def test_nobody_in_the_department_is_said_and_the_referral_still_recorded(village: Village) -> None:
    n = sos(village, "m7")  # group g3, grid lc4: civil affairs a2, no procuratorate
    result = refer(village, "w2", n, "procuratorate")
    assert (result.reply_key, result.params["told"], result.effects.notifications) == ("referral_nobody", 0, [])
    say(result.reply_key, result.params | {"due": "2026-12-02"})
    assert referral_rows(village, n) == []
    with village.session() as s:
        assert [r.department for r in s.exec(select(Referral).where(Referral.incident_id == n)).all()] == [
            "procuratorate"
        ]
    civil = refer(village, "w2", n, "civil")
    assert civil.reply_key == "referral_sent"
    assert [r.recipient_id for r in referral_rows(village, n)] == [village.ids["a2"]]


def test_an_officer_refers_a_private_case_to_staff_only(village: Village) -> None:
    n = sos(village, "m2", "violence")
    result = refer(village, "f1", n, "civil", "")
    assert result.due_at == T0 + timedelta(days=30)
    own = refer(village, "f1", n, "women")  # their own department: nobody else to tell, and it says so
    assert (own.reply_key, own.params["told"]) == ("referral_sent", 0)
    found = referral_rows(village, n)
    assert [r.recipient_id for r in found] == [village.ids["a1"]]
    with village.session() as s:
        villagers = set(s.exec(select(Member.id).where(col(Member.household_id).is_not(None))).all())
    assert not {r.recipient_id for r in found} & villagers


def test_case_lists_referrals_with_department_status_and_due_date(village: Village) -> None:
    n = sos(village, "m2")
    refer(village, "w1", n, "civil", "3")
    refer(village, "w1", n, "procuratorate", "20")
    with village.session() as s:
        detail = cases.case_detail(s, village.actor(s, "w1"), n, T0 + timedelta(days=5))
    assert [(r["department"], r["status"], r["due_at"]) for r in detail.referrals] == [
        ("civil", "overdue", T0 + timedelta(days=3)),
        ("procuratorate", "open", T0 + timedelta(days=20)),
    ]
    with village.session() as s:
        referrals.referral_done(s, village.actor(s, "w1"), n, "answered", T0 + timedelta(days=6))
        s.commit()
        detail = cases.case_detail(s, village.actor(s, "w1"), n, T0 + timedelta(days=7))
    assert [(r["status"], r["note"]) for r in detail.referrals] == [("done", "answered"), ("done", "answered")]


def test_reminders_count_days_in_the_timezone_the_due_date_is_shown_in(village: Village) -> None:
    n = sos(village, "m2")
    early = T0.replace(hour=0, minute=30)  # 08:30 in Shanghai
    with village.session() as s:
        referrals.refer(s, village.actor(s, "w1"), n, "civil", early, days=10)
        s.commit()
    # 16:30 UTC the day before the UTC due date is already 00:30 on the due day in Shanghai.
    at = early + timedelta(days=9, hours=16)
    with village.session() as s:
        (soon,) = [s.get(Notification, i) for i in referrals.referral_reminders_due(s, at)]
        assert soon is not None and soon.payload["due"] is False  # counted in UTC days
        s.rollback()
        (due,) = [s.get(Notification, i) for i in referrals.referral_reminders_due(s, at, ZoneInfo("Asia/Shanghai"))]
        assert due is not None and due.payload["due"] is True
        assert due.dedupe_key is not None and due.dedupe_key.endswith(f":{(early + timedelta(days=10)).date()}:"
                                                                        f"{village.ids['w1']}")
