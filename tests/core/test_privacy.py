"""Private incidents, without exception: once an alert is violence or child, however it got there,
nothing more of it reaches the neighbours, the head or the group chat (issue 12, item 1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from groups import alerts, cases, escalation
from groups.errors import UserError
from groups.model import Incident, Notification
from tests.support.village import GROUP_CHAT, T0, Village, build_village, say

LATER = T0 + timedelta(seconds=30)
STAFF = {"violence": ("w1", "p1", "f1"), "child": ("w1", "p1", "c1")}


@pytest.fixture
def village(database_url: str) -> Village:
    return build_village(database_url)


def _repeat_sos(v: Village, number: int, category: str) -> None:
    """A bare 6995, then ``/sos 家暴 …`` within the repeat window: the same incident, now private."""
    with v.session() as s:
        joined = alerts.raise_alert(s, v.actor(s, "m2"), T0 + timedelta(seconds=20), category, "他又来了")
        s.commit()
    assert joined.incident_id == number
    with Session(v.engine) as s:
        made = s.get(Incident, number)
        assert made is not None and made.private and made.category == category


def _button(v: Village, number: int, category: str) -> None:
    """The reporter presses the category button."""
    with v.session() as s:
        alerts.set_category(s, v.actor(s, "m2"), number, category, T0 + timedelta(seconds=20))
        s.commit()


PATHS: dict[str, Callable[[Village, int, str], None]] = {"repeat SOS": _repeat_sos, "category button": _button}


def _public_alert_answered(v: Village) -> int:
    """m2 raises a public alert; the neighbour m3 answers 'coming' while it is still public."""
    with v.session() as s:
        number = alerts.raise_alert(s, v.actor(s, "m2"), T0).incident_id
        alerts.respond(s, v.actor(s, "m3"), number, "coming", T0 + timedelta(seconds=5))
        s.commit()
    return number


def _rows_after(v: Village, number: int, first_id: int) -> list[Notification]:
    with Session(v.engine) as s:
        query = select(Notification).where(Notification.incident_id == number, col(Notification.id) > first_id)
        return list(s.exec(query.order_by(col(Notification.id))).all())


def _last_id(v: Village) -> int:
    with Session(v.engine) as s:
        return max(s.exec(select(Notification.id)).all(), default=None) or 0


@pytest.mark.parametrize("category", ["violence", "child"])
@pytest.mark.parametrize("path", list(PATHS))
def test_an_alert_made_private_reaches_only_its_staff(village: Village, path: str, category: str) -> None:
    v = village
    number = _public_alert_answered(v)
    before = _last_id(v)
    PATHS[path](v, number, category)
    staff = {v.ids[key] for key in STAFF[category]}
    public = {v.ids["m1"], v.ids["m3"]}  # the head and the neighbour who were told (m4 never could be)

    change = _rows_after(v, number, before)
    # Owed edits of every public message (one still pending from m3's answer renders the latest too).
    pending_edits = [r for r in _rows_after(v, number, 0) if r.kind == "edit" and r.status == "pending"]
    assert sorted(r.recipient_id or 0 for r in pending_edits if r.recipient_id) == sorted(public)
    assert [r.chat_id for r in pending_edits if r.group_id is not None] == [GROUP_CHAT]  # the group post too
    assert {r.recipient_id for r in change if r.kind == "message" and r.purpose == "alert"} == staff

    # Every attachment kind goes to the staff alone.
    before = _last_id(v)
    with v.session() as s:
        attached = alerts.attach(s, v.actor(s, "m2"), LATER, text="他拿着刀", voice=(v.uid("m2"), 77),
                                 location=(30.5, 114.3))
        s.commit()
    assert attached is not None and attached.forwarded == 3 * len(staff)
    forwards = _rows_after(v, number, before)
    assert {r.recipient_id for r in forwards} == staff and all(r.group_id is None for r in forwards)
    assert {r.kind for r in forwards} == {"message", "copy", "location"}

    # The neighbour's and the head's buttons on it are refused; the staff answer, and no tally edit follows.
    for key in ("m3", "m1"):
        with v.session() as s, pytest.raises(UserError) as info:
            alerts.respond(s, v.actor(s, key), number, "called", LATER)
        assert info.value.key == "incident_private"
        say("incident_private", info.value.params)
    before = _last_id(v)
    with v.session() as s:
        alerts.respond(s, v.actor(s, "w1"), number, "coming", LATER)  # takes the case (acknowledges)
        s.commit()
    assert [r for r in _rows_after(v, number, before) if r.kind == "edit"] == []

    # Closing tells the reporter, not the neighbour who had answered while it was public.
    before = _last_id(v)
    with v.session() as s:
        cases.resolve(s, v.actor(s, "w1"), number, "已处置", LATER + timedelta(minutes=5))
        s.commit()
    closing = _rows_after(v, number, before)
    assert {r.recipient_id for r in closing if r.purpose == "closing"} == {v.ids["m2"]}
    assert [r for r in closing if r.kind == "edit"] == []


def test_a_cancel_of_a_private_incident_tells_its_staff_only(village: Village) -> None:
    v = village
    number = _public_alert_answered(v)
    _button(v, number, "violence")
    before = _last_id(v)
    with v.session() as s:
        alerts.cancel_latest(s, v.actor(s, "m2"), LATER)
        s.commit()
    told = {r.recipient_id for r in _rows_after(v, number, before) if r.purpose == "closing"}
    assert told == {v.ids[key] for key in STAFF["violence"]}


def test_staff_told_by_the_ladder_before_it_became_private_keep_hearing_of_it(village: Village) -> None:
    v = village
    number = _public_alert_answered(v)
    with v.session() as s:  # the head did not take it: the ladder tells the grid worker
        assert escalation.escalation_due(s, number, T0 + timedelta(seconds=121)).level == 1
        s.commit()
    _button(v, number, "violence")
    pending_edits = [r for r in _rows_after(v, number, 0) if r.kind == "edit" and r.status == "pending"]
    assert v.ids["w1"] not in {r.recipient_id for r in pending_edits}  # the grid worker's DM is not withdrawn
    before = _last_id(v)
    with v.session() as s:
        alerts.attach(s, v.actor(s, "m2"), LATER, text="他拿着刀")
        s.commit()
    assert {r.recipient_id for r in _rows_after(v, number, before)} == {v.ids[k] for k in STAFF["violence"]}
