"""The alert loop in the core: linking, binding, raising, responding, attaching, cancelling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from groups import alerts, onboarding
from groups.directory import linked_member, member_by_user, who_is
from groups.effects import Timer
from groups.errors import UserError
from groups.model import HouseholdGroup, IncidentEvent, Member, Notification, Response
from tests.support.village import GROUP_CHAT, T0, Village, build_village, incident, rows, say, token


@pytest.fixture
def village(database_url: str) -> Village:
    return build_village(database_url)


def raise_(v: Village, key: str, **kwargs: object) -> alerts.RaiseResult:
    with v.session() as s:
        result = alerts.raise_alert(s, v.actor(s, key), kwargs.pop("now", T0), **kwargs)  # type: ignore[arg-type]
        s.commit()
    return result


def events(v: Village, incident_id: int) -> list[str]:
    with v.session() as s:
        query = select(IncidentEvent).where(IncidentEvent.incident_id == incident_id).order_by(col(IncidentEvent.id))
        return [e.kind for e in s.exec(query).all()]


def refused(key: str, call: object) -> None:
    """``call`` (a no-argument callable) raises UserError(key)."""
    with pytest.raises(UserError) as info:
        call()  # type: ignore[operator]
    assert info.value.key == key
    say(key, info.value.params)


# --- linking and binding ---------------------------------------------------------------------------------


def test_link_with_a_token_then_greet_again(village: Village) -> None:
    with village.session() as s:
        m4 = village.member(s, "m4")
        m4.unreachable_at = T0
        s.add(m4)
        s.commit()
        result = onboarding.link_member(s, 777, token("m4"), "zh-hans", T0)
        s.commit()
        assert (result.name, result.again, result.reply_key) == ("N-m4", False, "linked")
        assert "N-m4" in say(result.reply_key, result.params)
        m4 = village.member(s, "m4")
        assert (m4.telegram_user_id, m4.unreachable_at, m4.language_code) == (777, None, "zh-hans")
        for again_token in (token("m4"), None, token("m2"), "garbage"):
            again = onboarding.link_member(s, 777, again_token, "en-US", T0)
            assert (again.again, again.name, again.reply_key) == (True, "N-m4", "welcome_back")
        assert village.member(s, "m2").telegram_user_id == village.uid("m2")


def test_link_refusals_create_nothing(village: Village) -> None:
    with village.session() as s:
        refused("token_taken", lambda: onboarding.link_member(s, 778, token("m2"), None, T0))
        refused("no_token", lambda: onboarding.link_member(s, 778, None, None, T0))
        refused("bad_token", lambda: onboarding.link_member(s, 778, "short", None, T0))
        refused("bad_token", lambda: onboarding.link_member(s, 778, "a" * 20, None, T0))
        refused("bad_token", lambda: onboarding.link_member(s, 778, "bad token with spaces!!", None, T0))
        assert s.exec(select(Member).where(Member.telegram_user_id == 778)).first() is None


def test_bind_by_head_or_worker_moves_the_binding(village: Village) -> None:
    with village.session() as s:
        bound = onboarding.bind_group(s, village.actor(s, "m5"), GROUP_CHAT, "bind-g2", T0)
        s.commit()
        assert (bound.group_code, bound.reply_key) == ("g2", "bound")
        assert "Group g2" in say(bound.reply_key, bound.params)
        groups = {g.code: g.chat_id for g in s.exec(select(HouseholdGroup)).all()}
        assert groups == {"g1": None, "g2": GROUP_CHAT, "g3": None}
        moved = onboarding.bind_group(s, village.actor(s, "w1"), -2002, "bind-g2", T0)
        s.commit()
        assert moved.moved_from == GROUP_CHAT
        assert s.exec(select(HouseholdGroup).where(HouseholdGroup.code == "g2")).one().chat_id == -2002


def test_bind_refusals_change_nothing(village: Village) -> None:
    with village.session() as s:
        refused("bind_not_allowed", lambda: onboarding.bind_group(s, village.actor(s, "m2"), -5, "bind-g1", T0))
        refused("bind_not_allowed", lambda: onboarding.bind_group(s, village.actor(s, "w2"), -5, "bind-g1", T0))
        refused("bind_not_allowed", lambda: onboarding.bind_group(s, village.actor(s, "m5"), -5, "bind-g1", T0))
        refused("bad_bind_code", lambda: onboarding.bind_group(s, village.actor(s, "m1"), -5, "nope", T0))
        refused("not_linked", lambda: onboarding.bind_group(s, linked_member(s, 999_999), -5, "bind-g1", T0))
        assert s.exec(select(HouseholdGroup).where(HouseholdGroup.code == "g1")).one().chat_id == GROUP_CHAT


def test_migrate_group_chat_and_who_is(village: Village) -> None:
    with village.session() as s:
        assert onboarding.migrate_group_chat(s, GROUP_CHAT, -100_777)
        assert not onboarding.migrate_group_chat(s, -42, -43)
        s.commit()
        assert s.exec(select(HouseholdGroup).where(HouseholdGroup.code == "g1")).one().chat_id == -100_777
        head = who_is(s, village.actor(s, "m1"))
        assert head is not None and head.roles == ("villager", "head") and head.group_code == "g1"
        worker = who_is(s, village.actor(s, "w1"))
        assert worker is not None and worker.roles == ("grid_worker",) and worker.grid_codes == ("lc3",)
        assert worker.is_staff and not head.is_staff
        assert who_is(s, member_by_user(s, 999_999)) is None


# --- raising -------------------------------------------------------------------------------------------


def test_raise_fans_out_once_per_member_confirmation_first(village: Village) -> None:
    result = raise_(village, "m2", category="火灾", text="kitchen")
    ids = village.ids
    assert (result.category, result.joined, result.told, result.unreachable, result.group_post) == (
        "fire",
        False,
        2,
        1,
        True,
    )
    with village.session() as s:
        found = rows(s, result.incident_id)
        assert found[0].purpose == "confirmation" and found[0].recipient_id == ids["m2"]
        assert found[0].payload == {"template": "confirmation", "told": 2, "joined": False, "recipients": []}
        alerts_ = [r for r in found if r.purpose == "alert" and r.recipient_id is not None]
        assert sorted(r.recipient_id or 0 for r in alerts_) == sorted([ids["m1"], ids["m3"], ids["m4"]])
        by_member = {r.recipient_id: r for r in alerts_}
        assert by_member[ids["m4"]].status == "unreachable"
        assert by_member[ids["m1"]].status == "pending" and by_member[ids["m1"]].chat_id == village.uid("m1")
        assert by_member[ids["m1"]].dedupe_key == f"alert:{result.incident_id}:{ids['m1']}"
        post = [r for r in found if r.group_id is not None]
        assert len(post) == 1 and post[0].chat_id == GROUP_CHAT and post[0].dedupe_key == f"group:{result.incident_id}"
        note = [r for r in found if r.payload.get("template") == "unreachable"]
        assert len(note) == 1 and note[0].recipient_id == ids["m1"] and note[0].payload["member_ids"] == [ids["m4"]]
        assert {r.priority for r in found if r.purpose in ("alert", "confirmation")} == {"urgent"}
        # Unreachable rows are on record only: the caller enqueues exactly the pending ones.
        assert sorted(result.effects.notifications) == sorted(r.id or 0 for r in found if r.status == "pending")
        inc = incident(s, result.incident_id)
        assert (inc.text, inc.escalation_level, inc.next_escalation_at) == ("kitchen", 0, T0 + timedelta(seconds=120))
    assert result.effects.timers == [Timer("escalation", result.incident_id, T0 + timedelta(seconds=120))]
    assert events(village, result.incident_id) == ["raised"]


def test_unknown_category_word_is_text_and_no_chat_no_post(village: Village) -> None:
    result = raise_(village, "m6", category="smoke", text="upstairs")
    assert (result.category, result.group_post, result.told) == ("general", False, 1)
    with village.session() as s:
        assert incident(s, result.incident_id).text == "smoke upstairs"
        assert not [r for r in rows(s, result.incident_id) if r.payload.get("template") == "unreachable"]


def test_private_category_goes_to_staff_only(village: Village) -> None:
    result = raise_(village, "m2", category="家暴")
    ids = village.ids
    assert result.private and result.recipients == ("grid_worker", "police", "women_fed")
    with village.session() as s:
        found = rows(s, result.incident_id)
        told = {r.recipient_id for r in found if r.purpose == "alert"}
        assert told == {ids["w1"], ids["p1"], ids["f1"]}
        assert all(r.group_id is None for r in found)
        assert all(r.payload == {"template": "alert", "confidential": True} for r in found if r.purpose == "alert")
        inc = incident(s, result.incident_id)
        assert (inc.escalation_level, inc.next_escalation_at, inc.private) == (2, None, True)
    assert result.effects.timers == []
    child = raise_(village, "m6", category="child")
    with village.session() as s:
        assert {r.recipient_id for r in rows(s, child.incident_id) if r.purpose == "alert"} == {
            ids["w1"],
            ids["p1"],
            ids["c1"],
        }


def test_help_has_no_ladder(village: Village) -> None:
    result = raise_(village, "m2", category="求助")
    assert result.category == "help" and result.effects.timers == []
    with village.session() as s:
        assert incident(s, result.incident_id).next_escalation_at is None
        assert {r.recipient_id for r in rows(s, result.incident_id) if r.purpose == "alert"} >= {village.ids["m1"]}


def test_repeat_sos_within_two_minutes_joins(village: Village) -> None:
    first = raise_(village, "m2")
    again = raise_(village, "m2", now=T0 + timedelta(seconds=90), text="hurry")
    assert again.joined and again.incident_id == first.incident_id and again.reply_key == "joined"
    assert again.told == 2 and len(again.effects.notifications) == 1
    assert f"#{first.incident_id}" in say(again.reply_key, again.params)
    say(first.reply_key, first.params)
    with village.session() as s:
        confirmations = [r for r in rows(s, first.incident_id) if r.purpose == "confirmation"]
        assert [r.dedupe_key for r in confirmations] == [
            f"confirm:{first.incident_id}:1",
            f"confirm:{first.incident_id}:2",
        ]
        assert confirmations[1].payload["joined"] is True
        assert len([r for r in rows(s, first.incident_id) if r.purpose == "alert"]) == 4  # not fanned out again
    assert events(village, first.incident_id) == ["raised", "repeat"]
    # The window runs from the last raise; beyond it a new incident starts.
    later = raise_(village, "m2", now=T0 + timedelta(seconds=90 + 121))
    assert not later.joined and later.incident_id != first.incident_id


def test_raise_refusals(village: Village) -> None:
    with village.session() as s:
        refused("not_linked", lambda: alerts.raise_alert(s, linked_member(s, 999_999), T0))
        refused("no_household", lambda: alerts.raise_alert(s, village.actor(s, "w1"), T0))
        refused("no_household", lambda: alerts.raise_alert(s, village.actor(s, "x1"), T0))


def test_set_category_to_private_tells_staff(village: Village) -> None:
    result = raise_(village, "m2")
    with village.session() as s:
        refused("not_allowed", lambda: alerts.set_category(s, village.actor(s, "m3"), result.incident_id, "fire", T0))
        refused("bad_category", lambda: alerts.set_category(s, village.actor(s, "m2"), result.incident_id, "zzz", T0))
        changed = alerts.set_category(s, village.actor(s, "m2"), result.incident_id, "violence", T0)
        s.commit()
        assert changed.changed and changed.category == "violence"
        found = rows(s, result.incident_id)
        staff = {r.recipient_id for r in found if r.payload == {"template": "alert", "confidential": True}}
        assert staff == {village.ids["w1"], village.ids["p1"], village.ids["f1"]}
        edits = [r for r in found if r.kind == "edit"]
        # Issue 12: every message of it the group, the head and the neighbours got is withdrawn (m4 was
        # never reached); before, only the group post and the head's DM were.
        assert sorted(r.chat_id or 0 for r in edits) == sorted([GROUP_CHAT, village.uid("m1"), village.uid("m3")])
        inc = incident(s, result.incident_id)
        assert (inc.private, inc.next_escalation_at, inc.escalation_level) == (True, None, 2)
        m2 = village.actor(s, "m2")
        refused("category_locked", lambda: alerts.set_category(s, m2, result.incident_id, "fire", T0))


# --- responding ----------------------------------------------------------------------------------------


def respond(v: Village, key: str, incident_id: int, kind: str) -> alerts.RespondResult:
    with v.session() as s:
        result = alerts.respond(s, v.actor(s, key), incident_id, kind, T0 + timedelta(seconds=10))
        s.commit()
    return result


def test_responses_one_per_member_changes_update(village: Village) -> None:
    raised = raise_(village, "m2")
    n = raised.incident_id
    first = respond(village, "m3", n, "coming")
    assert first.changed and not first.acknowledged
    assert not respond(village, "m3", n, "coming").changed
    assert respond(village, "m3", n, "called").changed
    with village.session() as s:
        answers = s.exec(select(Response).where(Response.incident_id == n)).all()
        assert [(a.member_id, a.kind) for a in answers] == [(village.ids["m3"], "called")]
        updates = [r for r in rows(s, n) if r.payload.get("template") == "response"]
        assert len(updates) == 2 and all(r.recipient_id == village.ids["m2"] for r in updates)
        assert updates[1].payload == {"template": "response", "responder_id": village.ids["m3"], "kind": "called"}
    assert events(village, n) == ["raised", "response", "response"]


def test_identical_repeat_sends_nothing(village: Village) -> None:
    n = raise_(village, "m2").incident_id
    respond(village, "m3", n, "cant")
    with village.session() as s:
        before = len(rows(s, n))
    repeat = respond(village, "m3", n, "cant")
    assert not repeat.changed and repeat.effects.notifications == [] and repeat.reply_key == "response_unchanged"
    say(repeat.reply_key, repeat.params)
    with village.session() as s:
        assert len(rows(s, n)) == before


def test_tally_edits_are_coalesced_while_pending(village: Village) -> None:
    n = raise_(village, "m2").incident_id
    respond(village, "m3", n, "cant")
    with village.session() as s:
        edits = [r for r in rows(s, n) if r.kind == "edit"]
        assert {r.chat_id for r in edits} == {GROUP_CHAT, village.uid("m1")}
        post = next(r for r in rows(s, n) if r.group_id is not None and r.kind == "message")
        assert next(r for r in edits if r.chat_id == GROUP_CHAT).payload == {"template": "alert", "edit_of": post.id}
    respond(village, "m3", n, "called")  # a second change while the first edits are still pending
    with village.session() as s:
        edits = [r for r in rows(s, n) if r.kind == "edit"]
        assert len(edits) == 2
        for edit in edits:  # once delivered, the next change owes a new edit
            edit.status = "sent"
            s.add(edit)
        s.commit()
    respond(village, "m3", n, "cant")
    with village.session() as s:
        assert len([r for r in rows(s, n) if r.kind == "edit"]) == 4


def test_response_refusals(village: Village) -> None:
    n = raise_(village, "m2").incident_id
    private = raise_(village, "m6", category="violence").incident_id
    with village.session() as s:
        refused("own_incident", lambda: alerts.respond(s, village.actor(s, "m2"), n, "coming", T0))
        refused("not_notified", lambda: alerts.respond(s, village.actor(s, "m5"), n, "coming", T0))
        refused("not_notified", lambda: alerts.respond(s, village.actor(s, "w2"), n, "coming", T0))
        refused("not_notified", lambda: alerts.respond(s, village.actor(s, "m5"), private, "coming", T0))
        refused("incident_not_found", lambda: alerts.respond(s, village.actor(s, "m3"), 999, "coming", T0))
        refused("bad_response", lambda: alerts.respond(s, village.actor(s, "m3"), n, "maybe", T0))
        refused("not_linked", lambda: alerts.respond(s, linked_member(s, 999_999), n, "coming", T0))
    with village.session() as s:
        alerts.cancel_latest(s, village.actor(s, "m2"), T0)
        s.commit()
        refused("incident_closed", lambda: alerts.respond(s, village.actor(s, "m3"), n, "coming", T0))
        assert s.exec(select(Response)).all() == []


def test_group_member_not_dmed_may_still_respond(village: Village) -> None:
    """m4 is unlinked at raise time, links afterwards and presses the button on the group post."""
    n = raise_(village, "m2").incident_id
    with village.session() as s:
        onboarding.link_member(s, 4444, token("m4"), None, T0)
        s.commit()
        result = alerts.respond(s, linked_member(s, 4444), n, "coming", T0)
        assert result.changed


# --- cancel, attach, unreachable -----------------------------------------------------------------------


def test_cancel_latest_tells_everyone_notified(village: Village) -> None:
    n = raise_(village, "m2").incident_id
    respond(village, "m3", n, "coming")
    with village.session() as s:
        refused("no_open_incident", lambda: alerts.cancel_latest(s, village.actor(s, "m3"), T0))
        result = alerts.cancel_latest(s, village.actor(s, "m2"), T0 + timedelta(seconds=20))
        s.commit()
        assert result.reply_key == "cancelled" and result.incident_id == n
        say(result.reply_key, result.params)
        inc = incident(s, n)
        assert (inc.status, inc.closed_at, inc.next_escalation_at) == ("cancelled", T0 + timedelta(seconds=20), None)
        closed = [r for r in rows(s, n) if r.purpose == "closing"]
        assert {r.recipient_id for r in closed} == {village.ids[k] for k in ("m1", "m3", "m4")}
        assert all(r.payload["status"] == "cancelled" for r in closed)
        refused("no_open_incident", lambda: alerts.cancel_latest(s, village.actor(s, "m2"), T0))
    assert events(village, n)[-1] == "cancelled"


def test_attach_within_ten_minutes_forwards_to_those_told(village: Village) -> None:
    n = raise_(village, "m2").incident_id
    with village.session() as s:
        assert alerts.attach(s, village.actor(s, "m3"), T0, text="not mine") is None
        result = alerts.attach(s, village.actor(s, "m2"), T0 + timedelta(minutes=9), voice=(village.uid("m2"), 55))
        s.commit()
        assert result is not None and result.incident_id == n
        copies = [r for r in rows(s, n) if r.kind == "copy"]
        # m1, m3 and the group post; m4 could not be told.
        assert sorted(r.chat_id or 0 for r in copies) == sorted([village.uid("m1"), village.uid("m3"), GROUP_CHAT])
        assert all(r.payload == {"from_chat_id": village.uid("m2"), "message_id": 55} for r in copies)
        assert result.forwarded == 3 == len(result.effects.notifications)
        say(result.reply_key, result.params)
        located = alerts.attach(s, village.actor(s, "m2"), T0 + timedelta(minutes=9), location=(30.5, 114.3))
        text = alerts.attach(s, village.actor(s, "m2"), T0 + timedelta(minutes=9), text="second floor")
        s.commit()
        assert located is not None and text is not None
        assert incident(s, n).latitude == 30.5
        texts = [r for r in rows(s, n) if r.payload.get("template") == "attachment_text"]
        assert len(texts) == 3 and texts[0].payload["text"] == "second floor"
        assert alerts.attach(s, village.actor(s, "m2"), T0 + timedelta(minutes=10, seconds=1), text="late") is None
    assert events(village, n).count("attachment") == 3


def test_attach_private_goes_to_staff_told_only(village: Village) -> None:
    n = raise_(village, "m2", category="child").incident_id
    with village.session() as s:
        result = alerts.attach(s, village.actor(s, "m2"), T0, text="help")
        s.commit()
        assert result is not None
        targets = {r.recipient_id for r in rows(s, n) if r.payload.get("template") == "attachment_text"}
        assert targets == {village.ids[k] for k in ("w1", "p1", "c1")}


def test_note_unreachable_marks_member_and_tells_head_once(village: Village) -> None:
    n = raise_(village, "m2").incident_id
    with village.session() as s:
        row = next(r for r in rows(s, n) if r.recipient_id == village.ids["m3"] and r.purpose == "alert")
        assert row.id is not None
        first = alerts.note_unreachable(s, row.id, T0)
        second = alerts.note_unreachable(s, row.id, T0 + timedelta(seconds=5))
        s.commit()
        assert len(first) == 1 and second == []
        note = s.get(Notification, first[0])
        assert note is not None and note.recipient_id == village.ids["m1"]
        assert note.payload == {"template": "unreachable", "member_ids": [village.ids["m3"]]}
        assert village.member(s, "m3").unreachable_at == T0
        head_row = next(r for r in rows(s, n) if r.recipient_id == village.ids["m1"] and r.purpose == "alert")
        assert head_row.id is not None and alerts.note_unreachable(s, head_row.id, T0) == []
    # A later alert writes the unreachable member's row as unreachable and lists them to the head.
    later = raise_(village, "m1", now=T0 + timedelta(minutes=5))
    with village.session() as s:
        m3_row = next(r for r in rows(s, later.incident_id) if r.recipient_id == village.ids["m3"])
        assert m3_row.status == "unreachable"
    # Raising an SOS themselves shows they can be reached again: their confirmation goes out.
    own = raise_(village, "m3", now=T0 + timedelta(minutes=6))
    with village.session() as s:
        assert rows(s, own.incident_id)[0].status == "pending"
        assert village.member(s, "m3").unreachable_at is None


def test_a_repeat_sos_naming_a_category_applies_it_to_the_joined_incident(database_url: str) -> None:
    village = build_village(database_url)
    with village.session() as s:
        m2 = village.actor(s, "m2")
        first = alerts.raise_alert(s, m2, T0)
        again = alerts.raise_alert(s, m2, T0 + timedelta(seconds=30), category="家暴", text="又打人了")
        s.commit()
        assert again.joined and again.incident_id == first.incident_id
        current = incident(s, first.incident_id)
        assert current.category == "violence" and current.private
        told = {n.recipient_id for n in rows(s, first.incident_id) if n.purpose == "alert" and n.recipient_id}
        assert village.ids["f1"] in told  # the women's federation officer is told of the violence
