"""Ownership, the escalation ladder, case commands and their permissions, referrals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from config import policies
from groups import alerts, cases, escalation, referrals
from groups.effects import Timer
from groups.errors import UserError
from groups.model import IncidentEvent, Member, Notification, Referral
from tests.support.village import T0, Village, build_village, incident, rows, say

HEAD_DUE = T0 + timedelta(seconds=120)
WORKER_DUE = T0 + timedelta(seconds=420)


@pytest.fixture
def village(database_url: str) -> Village:
    return build_village(database_url)


def raise_(v: Village, key: str, category: str | None = None) -> int:
    with v.session() as s:
        result = alerts.raise_alert(s, v.actor(s, key), T0, category=category)
        s.commit()
    return result.incident_id


def due(v: Village, n: int, at: object) -> escalation.EscalationResult:
    with v.session() as s:
        result = escalation.escalation_due(s, n, at)  # type: ignore[arg-type]
        s.commit()
    return result


def told(v: Village, n: int, purpose: str) -> set[int]:
    with v.session() as s:
        return {r.recipient_id for r in rows(s, n) if r.purpose == purpose and r.recipient_id is not None}


def events(v: Village, n: int) -> list[tuple[str, str | None]]:
    with v.session() as s:
        query = select(IncidentEvent).where(IncidentEvent.incident_id == n).order_by(col(IncidentEvent.id))
        return [(e.kind, e.detail) for e in s.exec(query).all()]


# --- acknowledgement ---------------------------------------------------------------------------------------


def test_neighbour_responses_never_acknowledge(village: Village) -> None:
    n = raise_(village, "m2")
    with village.session() as s:
        result = alerts.respond(s, village.actor(s, "m3"), n, "coming", T0)
        s.commit()
        assert not result.acknowledged
        inc = incident(s, n)
        assert (inc.status, inc.next_escalation_at) == ("open", HEAD_DUE)


def test_head_response_acknowledges_but_cant_does_not(village: Village) -> None:
    n = raise_(village, "m2")
    with village.session() as s:
        assert not alerts.respond(s, village.actor(s, "m1"), n, "cant", T0).acknowledged
        s.commit()
        assert incident(s, n).status == "open"
        result = alerts.respond(s, village.actor(s, "m1"), n, "coming", T0 + timedelta(seconds=30))
        s.commit()
        assert result.acknowledged
        inc = incident(s, n)
        assert (inc.status, inc.acknowledged_by_id, inc.acknowledged_at, inc.next_escalation_at) == (
            "acknowledged",
            village.ids["m1"],
            T0 + timedelta(seconds=30),
            None,
        )
        notes = [r for r in rows(s, n) if r.payload.get("template") == "acknowledged"]
        # The head acknowledged: only the reporter needs telling.
        assert [r.recipient_id for r in notes] == [village.ids["m2"]]
        assert notes[0].payload == {"template": "acknowledged", "by": village.ids["m1"]}
    assert ("acknowledged", "response") in events(village, n)
    assert due(village, n, WORKER_DUE).level is None  # the ladder stopped


def test_ack_command_by_worker_tells_reporter_and_head(village: Village) -> None:
    n = raise_(village, "m2")
    with village.session() as s:
        result = cases.acknowledge(s, village.actor(s, "w1"), n, T0)
        s.commit()
        assert result.reply_key == "acknowledged"
        notes = {r.recipient_id for r in rows(s, n) if r.payload.get("template") == "acknowledged"}
        assert notes == {village.ids["m2"], village.ids["m1"]}
        again = cases.acknowledge(s, village.actor(s, "m1"), n, T0)
        assert again.reply_key == "already_acknowledged" and again.params["name"] == "N-w1"
        say(again.reply_key, again.params)
        say(result.reply_key, result.params)


def test_police_acknowledge_only_once_escalated_to_them(village: Village) -> None:
    n = raise_(village, "m2")
    with village.session() as s:
        with pytest.raises(UserError) as info:
            cases.acknowledge(s, village.actor(s, "p1"), n, T0)
        assert info.value.key == "not_allowed"
    due(village, n, HEAD_DUE)
    due(village, n, WORKER_DUE)
    with village.session() as s:
        assert cases.acknowledge(s, village.actor(s, "p1"), n, WORKER_DUE).reply_key == "acknowledged"
        s.commit()
        assert incident(s, n).acknowledged_by_id == village.ids["p1"]


# --- the ladder ------------------------------------------------------------------------------------------


def test_ladder_never_early_once_per_step_then_police(village: Village) -> None:
    n = raise_(village, "m2")
    early = due(village, n, HEAD_DUE - timedelta(milliseconds=1))
    assert early.level is None and early.rearm_at == HEAD_DUE and early.effects.notifications == []
    assert told(village, n, "escalation") == set()
    step1 = due(village, n, HEAD_DUE)
    assert step1.level == 1 and step1.effects.timers == [Timer("escalation", n, WORKER_DUE)]
    assert told(village, n, "escalation") == {village.ids["w1"]}
    assert due(village, n, HEAD_DUE + timedelta(seconds=1)).rearm_at == WORKER_DUE  # a second run does nothing
    assert told(village, n, "escalation") == {village.ids["w1"]}
    step2 = due(village, n, WORKER_DUE + timedelta(seconds=1))
    assert step2.level == 2 and step2.effects.timers == []
    assert told(village, n, "escalation") == {village.ids["w1"], village.ids["p1"]}
    assert due(village, n, WORKER_DUE + timedelta(hours=1)).level is None
    with village.session() as s:
        esc = [r for r in rows(s, n) if r.purpose == "escalation"]
        assert [r.dedupe_key for r in esc] == [f"esc:{n}:1:{village.ids['w1']}", f"esc:{n}:2:{village.ids['p1']}"]
        assert {r.priority for r in esc} == {"escalation"}
        assert esc[0].payload == {"template": "escalation", "level": 1, "reason": None, "manual": False}
        inc = incident(s, n)
        assert (inc.escalation_level, inc.next_escalation_at) == (2, None)
    assert [e for e in events(village, n) if e[0] == "escalated"] == [("escalated", "1"), ("escalated", "2")]


def test_no_ladder_for_help_private_closed_or_unknown(village: Village) -> None:
    help_ = raise_(village, "m2", "help")
    private = raise_(village, "m6", "violence")
    assert due(village, help_, WORKER_DUE) == escalation.EscalationResult(help_)
    assert due(village, private, WORKER_DUE) == escalation.EscalationResult(private)
    assert due(village, 9999, WORKER_DUE) == escalation.EscalationResult(9999)
    n = raise_(village, "m5")
    with village.session() as s:
        cases.resolve(s, village.actor(s, "w1"), n, "done", T0)
        s.commit()
    assert due(village, n, WORKER_DUE).level is None
    assert told(village, n, "escalation") == set()


def test_start_higher_policy_starts_one_step_up(village: Village, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policies, "START_HIGHER", frozenset({"fire"}))
    with village.session() as s:
        result = alerts.raise_alert(s, village.actor(s, "m2"), T0, category="fire")
        s.commit()
        inc = incident(s, result.incident_id)
        assert (inc.escalation_level, inc.next_escalation_at) == (1, T0 + timedelta(seconds=300))
    assert told(village, result.incident_id, "escalation") == {village.ids["w1"]}
    assert due(village, result.incident_id, T0 + timedelta(seconds=300)).level == 2


# --- permissions -----------------------------------------------------------------------------------------

ALLOWED = {
    # command: who may (on a non-private incident of g1 raised by m2, escalated to the police)
    "case": {"m1", "w1", "p1"},
    "ack": {"m1", "w1", "p1"},
    "resolve": {"m1", "w1", "p1"},
    "false": {"m1", "w1"},
    "escalate": {"w1"},
    "refer": {"w1"},
    "referral_done": {"w1"},
}
EVERYONE = ("m1", "m2", "m3", "m5", "w1", "w2", "p1", "p2", "f1", "c1", "x1")


def _call(s: Session, actor: Member, n: int, command: str) -> object:
    if command == "case":
        return cases.case_detail(s, actor, n, T0)
    if command == "ack":
        return cases.acknowledge(s, actor, n, T0)
    if command == "resolve":
        return cases.resolve(s, actor, n, None, T0)
    if command == "false":
        return cases.mark_false(s, actor, n, None, T0)
    if command == "escalate":
        return escalation.escalate_manual(s, actor, n, "women", "why", T0)
    if command == "refer":
        return referrals.refer(s, actor, n, "civil", T0)
    return referrals.referral_done(s, actor, n, None, T0)


@pytest.mark.parametrize("command", sorted(ALLOWED))
def test_permission_matrix(village: Village, command: str) -> None:
    n = raise_(village, "m2")
    due(village, n, HEAD_DUE)
    due(village, n, WORKER_DUE)
    if command == "referral_done":
        with village.session() as s:
            referrals.refer(s, village.actor(s, "w1"), n, "civil", T0)
            s.commit()
    for key in EVERYONE:
        with village.session() as s:
            if key in ALLOWED[command]:
                assert _call(s, village.actor(s, key), n, command) is not None
                s.rollback()  # leave the incident as it was for the next person
            else:
                with pytest.raises(UserError) as info:
                    _call(s, village.actor(s, key), n, command)
                assert info.value.key == "not_allowed", (command, key)
        with village.session() as s:
            assert incident(s, n).status == "open", (command, key)


def test_head_and_police_lose_access_where_they_have_none(village: Village) -> None:
    private = raise_(village, "m2", "violence")
    fresh = raise_(village, "m6")
    with village.session() as s:
        for key, n in (("m1", private), ("p1", fresh), ("m5", raise_(village, "m3", "fire"))):
            with pytest.raises(UserError) as info:
                cases.case_detail(s, village.actor(s, key), n, T0)
            assert info.value.key == "not_allowed"
        # Police see a private incident at once: it starts at their level.
        assert cases.case_detail(s, village.actor(s, "p1"), private, T0).private
        with pytest.raises(UserError) as missing:
            cases.case_detail(s, village.actor(s, "w1"), 9999, T0)
        assert missing.value.key == "incident_not_found"


def test_cancel_is_the_reporters_own(village: Village) -> None:
    n = raise_(village, "m2")
    with village.session() as s:
        with pytest.raises(UserError) as info:
            alerts.cancel_latest(s, village.actor(s, "w1"), T0)
        assert info.value.key == "no_open_incident"
        assert incident(s, n).status == "open"


# --- reading cases ---------------------------------------------------------------------------------------


def test_list_cases_by_role(village: Village) -> None:
    first = raise_(village, "m2")
    second = raise_(village, "m6")
    other_grid = raise_(village, "m8")
    with village.session() as s:
        listed = cases.list_cases(s, village.actor(s, "w1"), T0 + timedelta(seconds=60))
        assert [c.incident_id for c in listed] == [first, second]
        assert listed[0].waiting_s == 60 and listed[0].status == "open" and listed[0].reporter_name == "N-m2"
        assert [c.incident_id for c in cases.list_cases(s, village.actor(s, "w2"), T0)] == [other_grid]
        assert cases.list_cases(s, village.actor(s, "p1"), T0) == []
        # Issue 12: the women's federation officer has /cases (their private incidents; none here).
        assert cases.list_cases(s, village.actor(s, "f1"), T0) == []
        for key in ("m1", "m2"):
            with pytest.raises(UserError) as info:
                cases.list_cases(s, village.actor(s, key), T0)
            assert info.value.key == "not_allowed"
    due(village, first, HEAD_DUE)
    due(village, first, WORKER_DUE)
    with village.session() as s:
        assert [c.incident_id for c in cases.list_cases(s, village.actor(s, "p1"), WORKER_DUE)] == [first]
        cases.resolve(s, village.actor(s, "p1"), first, "ok", WORKER_DUE)
        s.commit()
        assert [c.incident_id for c in cases.list_cases(s, village.actor(s, "w1"), WORKER_DUE)] == [second]


def test_case_detail_has_timeline_responses_and_deliveries(village: Village) -> None:
    n = raise_(village, "m2")
    with village.session() as s:
        alerts.respond(s, village.actor(s, "m3"), n, "coming", T0 + timedelta(seconds=5))
        s.commit()
        detail = cases.case_detail(s, village.actor(s, "m1"), n, T0 + timedelta(seconds=9))
        assert [e.kind for e in detail.timeline] == ["raised", "response"]
        assert detail.timeline[1].actor == "N-m3"
        assert detail.responses == [("N-m3", "coming", T0 + timedelta(seconds=5))]
        recipients = {(e.recipient, e.purpose, e.status) for e in detail.notifications}
        assert ("group:g1", "alert", "pending") in recipients and ("N-m4", "alert", "unreachable") in recipients


# --- closing and escalating by hand ----------------------------------------------------------------------


def test_resolve_and_false_tell_reporter_and_responders(village: Village) -> None:
    n = raise_(village, "m2")
    with village.session() as s:
        alerts.respond(s, village.actor(s, "m3"), n, "coming", T0)
        cases.resolve(s, village.actor(s, "m1"), n, "all fine", T0 + timedelta(minutes=3))
        s.commit()
        closing = [r for r in rows(s, n) if r.purpose == "closing"]
        assert {r.recipient_id for r in closing} == {village.ids["m2"], village.ids["m3"]}
        assert closing[0].payload == {
            "template": "closed",
            "status": "resolved",
            "note": "all fine",
            "by": village.ids["m1"],
        }
        inc = incident(s, n)
        assert (inc.status, inc.closed_by_id) == ("resolved", village.ids["m1"])
        with pytest.raises(UserError) as info:
            cases.mark_false(s, village.actor(s, "w1"), n, None, T0)
        assert info.value.key == "incident_closed"
    other = raise_(village, "m6")
    with village.session() as s:
        marked = cases.mark_false(s, village.actor(s, "w1"), other, None, T0)
        assert marked.reply_key == "false_alarm"
        say(marked.reply_key, marked.params)
        s.commit()
        assert incident(s, other).status == "false_alarm"
    assert events(village, n)[-1] == ("resolved", "all fine")


def test_escalate_by_hand(village: Village) -> None:
    n = raise_(village, "m2")
    with village.session() as s:
        with pytest.raises(UserError) as bad:
            escalation.escalate_manual(s, village.actor(s, "w1"), n, "mayor", None, T0)
        assert bad.value.key == "bad_target"
        women = escalation.escalate_manual(s, village.actor(s, "w1"), n, "women", "bruises", T0)
        police = escalation.escalate_manual(s, village.actor(s, "w1"), n, "police", None, T0)
        again = escalation.escalate_manual(s, village.actor(s, "w1"), n, "police", None, T0)
        s.commit()
        assert (women.told, police.told, again.told) == (1, 1, 0)
        say(women.reply_key, women.params)
        say(bad.value.key, bad.value.params)
        esc = {r.recipient_id: r.payload for r in rows(s, n) if r.purpose == "escalation"}
        assert esc[village.ids["f1"]] == {
            "template": "escalation", "level": 0, "reason": "bruises", "manual": True, "by": village.ids["w1"]
        }
        assert esc[village.ids["p1"]]["level"] == 2
        inc = incident(s, n)
        assert (inc.escalation_level, inc.next_escalation_at) == (2, None)
    assert due(village, n, WORKER_DUE).level is None
    assert told(village, n, "escalation") == {village.ids["f1"], village.ids["p1"]}


# --- referrals -------------------------------------------------------------------------------------------


def reminders(v: Village, at: object) -> list[Notification]:
    with v.session() as s:
        ids = referrals.referral_reminders_due(s, at)  # type: ignore[arg-type]
        s.commit()
        return [n for i in ids if (n := s.get(Notification, i)) is not None]


def test_refer_remind_and_done(village: Village) -> None:
    n = raise_(village, "m2")
    with village.session() as s:
        with pytest.raises(UserError) as bad:
            referrals.refer(s, village.actor(s, "w1"), n, "army", T0)
        assert bad.value.key == "bad_department"
        with pytest.raises(UserError) as bad_days:
            referrals.refer(s, village.actor(s, "w1"), n, "civil", T0, days=0)
        assert bad_days.value.key == "bad_days"
        result = referrals.refer(s, village.actor(s, "w1"), n, "civil", T0, days=10)
        s.commit()
        assert result.due_at == T0 + timedelta(days=10)
        # Grid lc3 has no civil affairs staff: the referral is recorded all the same, and the reply says so.
        assert (result.reply_key, result.params["told"]) == ("referral_nobody", 0)
        say(result.reply_key, result.params | {"due": "2026-12-02"})  # the face adds the local due day
        say(bad.value.key, bad.value.params)
        say(bad_days.value.key, bad_days.value.params)
    assert reminders(village, T0 + timedelta(days=6)) == []
    soon = reminders(village, T0 + timedelta(days=7))
    assert [(r.recipient_id, r.payload["due"], r.purpose, r.priority) for r in soon] == [
        (village.ids["w1"], False, "reminder", "bulk")
    ]
    assert reminders(village, T0 + timedelta(days=8)) == []  # one reminder before the due date
    on_due = reminders(village, T0 + timedelta(days=10))
    assert len(on_due) == 1 and on_due[0].payload["due"] is True
    assert reminders(village, T0 + timedelta(days=10, hours=2)) == []  # once per day
    assert len(reminders(village, T0 + timedelta(days=11))) == 1  # and daily after
    with village.session() as s:
        done = referrals.referral_done(s, village.actor(s, "w1"), n, "answered", T0 + timedelta(days=11))
        s.commit()
        assert done.referral_ids == result.referral_ids
        say(done.reply_key, done.params)
        assert s.exec(select(Referral)).one().done_at == T0 + timedelta(days=11)
        with pytest.raises(UserError) as none_left:
            referrals.referral_done(s, village.actor(s, "w1"), n, None, T0)
        assert none_left.value.key == "no_referral"
    assert reminders(village, T0 + timedelta(days=12)) == []
    assert [e[0] for e in events(village, n)][-2:] == ["referred", "referral_done"]


def test_refer_takes_the_days_as_typed(sqlite_url: str) -> None:
    village = build_village(sqlite_url)
    with village.session() as s:
        n = alerts.raise_alert(s, village.actor(s, "m2"), T0).incident_id
        assert referrals.refer(s, village.actor(s, "w1"), n, "civil", T0, days="").due_at == T0 + timedelta(days=30)
        assert referrals.refer(s, village.actor(s, "w1"), n, "women", T0, days=" 7 ").due_at == T0 + timedelta(days=7)
        with pytest.raises(UserError) as refused:
            referrals.refer(s, village.actor(s, "w1"), n, "women", T0, days="soon")
        assert refused.value.key == "bad_days"
