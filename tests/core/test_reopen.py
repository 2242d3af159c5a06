"""Repeated SOS and cancel (issue 12, item 10): an SOS soon after cancelling reopens the same incident
without a second flood; many SOS by one member tell the head (private: the grid workers) once per window."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from config.settings import Settings
from groups import alerts, cases
from groups.effects import Timer
from groups.model import Incident, IncidentEvent, Notification
from tests.support.village import T0, Village, build_village, incident, rows, say

RULES = Settings(reopen_window_s=600, misuse_threshold=3, misuse_window_s=3600)


@pytest.fixture
def village(database_url: str) -> Village:
    return build_village(database_url)


def sos(v: Village, key: str, at: datetime, rules: Settings = RULES, **kwargs: object) -> alerts.RaiseResult:
    with v.session() as s:
        result = alerts.raise_alert(s, v.actor(s, key), at, settings=rules, **kwargs)  # type: ignore[arg-type]
        s.commit()
    return result


def cancel(v: Village, key: str, at: datetime) -> int:
    with v.session() as s:
        result = alerts.cancel_latest(s, v.actor(s, key), at)
        s.commit()
    return result.incident_id


def kinds(v: Village, number: int) -> list[str]:
    with v.session() as s:
        query = select(IncidentEvent.kind).where(IncidentEvent.incident_id == number).order_by(col(IncidentEvent.id))
        return list(s.exec(query).all())


def notices(s: Session, number: int) -> list[Notification]:
    return [r for r in rows(s, number) if r.kind == "notice"]


def misuse_rows(s: Session) -> list[Notification]:
    found = s.exec(select(Notification).order_by(col(Notification.id))).all()
    return [r for r in found if r.payload.get("template") == "misuse"]


def test_an_sos_soon_after_cancelling_reopens_the_same_incident(village: Village) -> None:
    v, ids = village, village.ids
    first = sos(v, "m2", T0, category="fire")
    assert cancel(v, "m2", T0 + timedelta(seconds=30)) == first.incident_id
    again = sos(v, "m2", T0 + timedelta(minutes=4), text="it flared up")
    n = first.incident_id
    assert (again.incident_id, again.joined, again.reply_key, again.category) == (n, False, "reopened", "fire")
    assert again.told == first.told == 2  # m1 and m3 (m4 cannot be reached)
    assert f"#{n}" in say(again.reply_key, again.params)
    assert kinds(v, n) == ["raised", "cancelled", "reopened"]
    reopened_at = T0 + timedelta(minutes=4)
    with v.session() as s:
        inc = incident(s, n)
        assert (inc.status, inc.closed_at, inc.closed_by_id, inc.last_raised_at) == ("open", None, None, reopened_at)
        assert inc.text == "it flared up"
        # The ladder climbs again from the reopening, not from the first raising (whose deadline has passed).
        assert inc.next_escalation_at == reopened_at + timedelta(seconds=120)
        found = rows(s, n)
        confirmations = [r for r in found if r.purpose == "confirmation"]
        assert [r.recipient_id for r in confirmations] == [ids["m2"], ids["m2"]]
        assert confirmations[-1].payload == {
            "template": "confirmation", "told": 2, "joined": False, "recipients": [], "reopened": True
        }
        # One short notice to each neighbour told before, with the response buttons; no second alert flood.
        assert {r.recipient_id for r in notices(s, n)} == {ids["m1"], ids["m3"]}
        assert all((r.purpose, r.priority, r.status) == ("alert", "urgent", "pending") for r in notices(s, n))
        assert len([r for r in found if r.purpose == "alert" and r.kind == "message"]) == 4  # m1, m3, m4, chat
        # The group post and the head's alert DM show the live state (one pending edit each: the cancel's,
        # rendered when sent, so the reopening adds none while it waits).
        live = {r.id or 0 for r in found if r.kind == "message" and r.purpose == "alert"
                and (r.group_id is not None or r.recipient_id == ids["m1"])}
        edits = [r for r in found if r.kind == "edit"]
        assert sorted(r.payload["edit_of"] for r in edits) == sorted(live) and len(live) == 2
    # The reporter's confirmation is enqueued first.
    assert again.effects.notifications[0] == confirmations[-1].id
    assert again.effects.timers == [Timer("escalation", n, reopened_at + timedelta(seconds=120))]


def test_after_the_window_a_new_sos_is_a_new_incident(village: Village) -> None:
    short = Settings(reopen_window_s=5, misuse_threshold=3, misuse_window_s=3600)
    first = sos(village, "m2", T0, short)
    cancel(village, "m2", T0 + timedelta(seconds=1))
    within = sos(village, "m2", T0 + timedelta(seconds=6), short)
    assert within.incident_id == first.incident_id and within.reply_key == "reopened"
    cancel(village, "m2", T0 + timedelta(seconds=7))
    later = sos(village, "m2", T0 + timedelta(seconds=13), short)
    assert later.incident_id != first.incident_id and later.reply_key == "raised"
    with village.session() as s:
        assert incident(s, first.incident_id).status == "cancelled"
    # A resolved incident is never reopened, whatever the window.
    with village.session() as s:
        cases.resolve(s, village.actor(s, "w1"), later.incident_id, None, T0 + timedelta(seconds=14))
        s.commit()
    assert sos(village, "m2", T0 + timedelta(seconds=15), short).incident_id not in (
        first.incident_id, later.incident_id
    )


def test_ten_sos_and_cancel_cycles_make_one_incident_and_no_flood(village: Village) -> None:
    v, ids = village, village.ids
    numbers = set()
    for cycle in range(10):
        numbers.add(sos(v, "m2", T0 + timedelta(seconds=2 * cycle)).incident_id)
        cancel(v, "m2", T0 + timedelta(seconds=2 * cycle + 1))
    (n,) = numbers
    with v.session() as s:
        assert len(s.exec(select(Incident)).all()) == 1
        found = rows(s, n)
        urgent = [r for r in found if r.priority == "urgent"]
        flood = [r for r in urgent if r.purpose == "alert" and r.kind == "message"]  # the one fan-out
        confirmations = [r for r in urgent if r.purpose == "confirmation"]
        assert len(flood) == 4 and len(confirmations) == 10
        # Those told got one short notice each for all nine reopenings (m4 cannot be reached).
        assert sorted(r.recipient_id or 0 for r in notices(s, n)) == sorted([ids["m1"], ids["m3"]])
        assert len(urgent) == len(flood) + len(confirmations) + 2 == 16  # was 10 incidents, 10 floods
        assert len([r for r in found if r.purpose == "closing"]) == 3  # m1, m3, m4 heard of the cancel once
        assert [r.dedupe_key for r in confirmations][-1] == f"confirm:{n}:10"
        # Ten SOS within the hour: the head is told once, however many more follow.
        (notice,) = misuse_rows(s)
        assert notice.recipient_id == ids["m1"] and notice.payload["count"] == 4
    assert kinds(v, n).count("reopened") == 9 and kinds(v, n).count("misuse") == 1


def test_reopening_with_a_private_category_follows_the_privacy_rules(village: Village) -> None:
    v, ids = village, village.ids
    first = sos(v, "m2", T0)
    cancel(v, "m2", T0 + timedelta(seconds=10))
    again = sos(v, "m2", T0 + timedelta(seconds=20), category="家暴")
    n = first.incident_id
    assert (again.incident_id, again.private, again.category) == (n, True, "violence")
    assert again.recipients == ("grid_worker", "police", "women_fed") and again.told == 3
    with v.session() as s:
        inc = incident(s, n)
        assert (inc.status, inc.private, inc.escalation_level, inc.next_escalation_at) == ("open", True, 2, None)
        found = rows(s, n)
        staff_alerts = [r for r in found if r.purpose == "alert" and r.payload.get("confidential")]
        assert {r.recipient_id for r in staff_alerts} == {ids["w1"], ids["p1"], ids["f1"]}
        # Nothing new for the neighbours, the head or the chat: their earlier messages are withdrawn (edits).
        assert notices(s, n) == []
        late = [r for r in found if r.created_at == T0 + timedelta(seconds=20)]
        public = {ids["m1"], ids["m3"], None}
        assert all(r.kind == "edit" for r in late if r.recipient_id in public)
        # A pending edit renders the state when it is sent (the withdrawn text now): one per message.
        withdrawn = {r.payload["edit_of"] for r in found if r.kind == "edit" and r.status == "pending"}
        told_public = {r.id for r in found if r.purpose == "alert" and r.kind == "message"
                       and not r.payload.get("confidential") and r.status != "unreachable"}
        assert told_public <= withdrawn
        confirmation = [r for r in found if r.purpose == "confirmation"][-1]
        assert confirmation.payload["recipients"] == ["grid_worker", "police", "women_fed"]
    assert again.effects.timers == []


def test_a_reopened_private_incident_tells_its_staff_only(village: Village) -> None:
    v, ids = village, village.ids
    first = sos(v, "m2", T0, category="child")
    cancel(v, "m2", T0 + timedelta(seconds=10))
    again = sos(v, "m2", T0 + timedelta(seconds=20), category="fire")  # a private incident stays private
    assert (again.incident_id, again.category, again.private) == (first.incident_id, "child", True)
    with v.session() as s:
        assert {r.recipient_id for r in notices(s, first.incident_id)} == {ids["w1"], ids["p1"], ids["c1"]}
        assert all(r.payload == {"template": "reopened", "confidential": True} for r in notices(s, first.incident_id))


def test_the_owner_of_a_cancelled_incident_hears_it_is_open_again(village: Village) -> None:
    v, ids = village, village.ids
    n = sos(v, "m2", T0).incident_id
    with v.session() as s:
        cases.acknowledge(s, v.actor(s, "w1"), n, T0 + timedelta(seconds=5))
        s.commit()
    cancel(v, "m2", T0 + timedelta(seconds=10))
    sos(v, "m2", T0 + timedelta(seconds=20))
    with v.session() as s:
        inc = incident(s, n)
        assert (inc.status, inc.acknowledged_by_id, inc.acknowledged_at) == ("open", None, None)
        assert {r.recipient_id for r in notices(s, n)} == {ids["m1"], ids["m3"], ids["w1"]}


def test_misuse_tells_the_head_once_per_window_and_every_sos_still_goes_out(village: Village) -> None:
    v, ids = village, village.ids
    spaced = [T0 + timedelta(minutes=3 * i) for i in range(6)]  # apart enough not to join one another
    numbers = [sos(v, "m2", at).incident_id for at in spaced[:3]]
    with v.session() as s:
        assert misuse_rows(s) == []  # three is not more than three
    numbers += [sos(v, "m2", at).incident_id for at in spaced[3:]]
    assert len(set(numbers)) == 6
    with v.session() as s:
        (notice,) = misuse_rows(s)
        assert (notice.recipient_id, notice.incident_id, notice.purpose) == (ids["m1"], numbers[3], "update")
        assert notice.payload == {"template": "misuse", "member_id": ids["m2"], "count": 4, "window_s": 3600}
        for number in numbers:  # delivered in full: the alert DMs and the group post of every one
            assert len([r for r in rows(s, number) if r.purpose == "alert"]) == 4
    # A new window: one more notice.
    sos(v, "m2", T0 + timedelta(minutes=15, hours=1))
    with v.session() as s:
        assert len(misuse_rows(s)) == 1
    for i in range(4):
        sos(v, "m2", T0 + timedelta(hours=2, minutes=3 * i))
    with v.session() as s:
        assert [r.recipient_id for r in misuse_rows(s)] == [ids["m1"], ids["m1"]]


def test_misuse_involving_a_private_incident_tells_the_grid_workers_never_the_head(village: Village) -> None:
    v, ids = village, village.ids
    for i, category in enumerate(("fire", "violence", "medical", "fire")):
        sos(v, "m2", T0 + timedelta(minutes=3 * i), category=category)
    with v.session() as s:
        (notice,) = misuse_rows(s)
        assert notice.recipient_id == ids["w1"]
        assert ids["m1"] not in {r.recipient_id for r in misuse_rows(s)}


def test_a_head_raising_many_sos_is_reported_to_the_grid_workers(village: Village) -> None:
    v, ids = village, village.ids
    for i in range(4):
        sos(v, "m1", T0 + timedelta(minutes=3 * i))
    with v.session() as s:
        assert [r.recipient_id for r in misuse_rows(s)] == [ids["w1"]]
