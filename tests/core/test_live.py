"""Live location (issue 12, item 8): a live location attached to an open incident is shared with those
told and follows the reporter's moves, coalesced, until it ends or the incident closes; a private
incident's live location goes to its staff alone. The renderer's Bot API calls for it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from bot.render.live import render_live
from groups import alerts, cases
from groups.live import LIVE_EDIT, LIVE_LOCATION, LIVE_STOP
from groups.model import LiveLocation, Notification
from tests.support.village import GROUP_CHAT, T0, Village, build_village, incident, rows

MESSAGE = 77  # the reporter's live location message in their chat
PERIOD = 900


@pytest.fixture
def village(database_url: str) -> Village:
    return build_village(database_url)


def raise_(v: Village, key: str = "m2", category: str | None = None) -> int:
    with v.session() as s:
        number = alerts.raise_alert(s, v.actor(s, key), T0, category).incident_id
        s.commit()
    return number


def share(v: Village, key: str = "m2", at: float = 60, period: int = PERIOD) -> alerts.AttachResult | None:
    with v.session() as s:
        source = alerts.LiveSource(v.uid(key), MESSAGE, period)
        result = alerts.attach(s, v.actor(s, key), T0 + timedelta(seconds=at), location=(30.0, 114.0), live=source)
        s.commit()
    return result


def move(v: Village, at: float, position: tuple[float, float], key: str = "m2", message: int = MESSAGE) -> list[int]:
    with v.session() as s:
        effects = alerts.move_share(s, v.actor(s, key), v.uid(key), message, position, T0 + timedelta(seconds=at))
        s.commit()
    return effects.notifications


def of_kind(v: Village, number: int, kind: str) -> list[Notification]:
    with Session(v.engine) as s:
        return [r for r in rows(s, number) if r.kind == kind]


def deliver_all(v: Village, kind: str) -> None:
    """As the workers would: every pending row of ``kind`` went out (each its own message id)."""
    with Session(v.engine) as s:
        for row in s.exec(select(Notification).where(Notification.kind == kind, Notification.status == "pending")):
            row.status, row.telegram_message_id = "sent", 1000 + (row.id or 0)
            s.add(row)
        s.commit()


def recipients(found: list[Notification], v: Village) -> list[int]:
    return sorted(r.recipient_id if r.recipient_id is not None else -1 for r in found)


def told(v: Village, *keys: str) -> list[int]:
    return sorted([v.ids[k] for k in keys if k != "group"] + ([-1] if "group" in keys else []))


def test_a_live_location_goes_live_to_everyone_told(village: Village) -> None:
    v = village
    number = raise_(v)
    result = share(v)
    assert result is not None and result.forwarded == 3  # the head m1, the neighbour m3, the group post
    lives = of_kind(v, number, LIVE_LOCATION)
    assert recipients(lives, v) == told(v, "m1", "m3", "group")
    assert not of_kind(v, number, "location")  # not also as a plain location
    with Session(v.engine) as s:
        live = s.exec(select(LiveLocation)).one()
        assert (live.chat_id, live.message_id, live.live_period) == (v.uid("m2"), MESSAGE, PERIOD)
        assert live.live_until == T0 + timedelta(seconds=60 + PERIOD)
        call = render_live(s, lives[0], 1, T0 + timedelta(seconds=61))
        assert call is not None and call.method == "sendLocation"
        assert (call.params["latitude"], call.params["longitude"]) == (30.0, 114.0)
        assert call.params["live_period"] == PERIOD - 1 + 1  # the 899 s left of the share, and 1 s more
        late = render_live(s, lives[0], 1, T0 + timedelta(seconds=60 + PERIOD - 10))
        assert late is not None and late.params["live_period"] == 60  # Telegram's least
        ended = render_live(s, lives[0], 1, T0 + timedelta(seconds=60 + PERIOD))
        assert ended is not None and "live_period" not in ended.params  # its last position, not live


def test_moves_are_followed_with_one_pending_edit_per_message(village: Village) -> None:
    v = village
    number = raise_(v)
    share(v)
    assert move(v, 70, (30.1, 114.1)) == []  # nothing sent yet: the live locations go out with the latest
    deliver_all(v, LIVE_LOCATION)
    first = move(v, 80, (30.2, 114.2))
    assert len(first) == 3
    assert move(v, 85, (30.3, 114.3)) == [] and move(v, 90, (30.4, 114.4)) == []  # coalesced into the pending
    edits = of_kind(v, number, LIVE_EDIT)
    assert sorted(r.id or 0 for r in edits) == sorted(first)
    with Session(v.engine) as s:
        assert (incident(s, number).latitude, incident(s, number).longitude) == (30.4, 114.4)
        call = render_live(s, edits[0], 1, T0 + timedelta(seconds=91))
        sent = s.get(Notification, edits[0].payload["edit_of"])
        assert sent is not None
    assert call is not None and call.method == "editMessageLiveLocation"
    assert call.params == {"chat_id": 1, "message_id": sent.telegram_message_id,
                           "latitude": 30.4, "longitude": 114.4}
    # Once those went out, the next move owes new edits and the superseded ones are dropped: no pile-up.
    for n in range(5):
        deliver_all(v, LIVE_EDIT)
        assert len(move(v, 100 + n, (30.5 + n / 100, 114.5))) == 3
    assert len(of_kind(v, number, LIVE_EDIT)) == 3


def test_edits_of_other_messages_or_by_others_and_ended_shares_are_ignored(village: Village) -> None:
    v = village
    raise_(v)
    share(v)
    deliver_all(v, LIVE_LOCATION)
    assert move(v, 70, (31.0, 115.0), message=MESSAGE + 1) == []  # another message of the reporter
    with v.session() as s:  # a neighbour cannot move it (their own chat, the same message id)
        assert alerts.move_share(s, v.actor(s, "m3"), v.uid("m2"), MESSAGE, (31.0, 115.0), T0).notifications == []
    assert move(v, 60 + PERIOD, (31.0, 115.0)) == []  # the live period is over
    with Session(v.engine) as s:
        assert s.exec(select(LiveLocation)).one().latitude == 30.0
    with v.session() as s:  # a stranger's edit
        assert alerts.move_share(s, None, v.uid("m2"), MESSAGE, (31.0, 115.0), T0).notifications == []


def test_a_live_location_after_the_attach_window_is_not_attached(village: Village) -> None:
    raise_(village)
    assert share(village, at=601) is None


def test_closing_stops_every_live_location_and_later_moves(village: Village) -> None:
    v = village
    number = raise_(v)
    share(v)
    deliver_all(v, LIVE_LOCATION)
    move(v, 70, (30.1, 114.1))  # an edit still pending when the incident closes
    with v.session() as s:
        effects = cases.resolve(s, v.actor(s, "w1"), number, None, T0 + timedelta(seconds=75)).effects
        s.commit()
    stops = of_kind(v, number, LIVE_STOP)
    assert recipients(stops, v) == told(v, "m1", "m3", "group")
    assert {r.id for r in stops} <= set(effects.notifications)
    assert move(v, 80, (30.2, 114.2)) == []
    with Session(v.engine) as s:
        assert s.exec(select(LiveLocation)).one().stopped_at == T0 + timedelta(seconds=75)
        pending_edit = next(r for r in rows(s, number) if r.kind == LIVE_EDIT)
        at = T0 + timedelta(seconds=76)
        assert render_live(s, pending_edit, 1, at) is None  # stopped: the edit sends nothing
        call = render_live(s, stops[0], 1, at)
        assert render_live(s, stops[0], 1, T0 + timedelta(seconds=60 + PERIOD)) is None  # Telegram ended it
        sent = s.get(Notification, stops[0].payload["edit_of"])
    assert call is not None and call.method == "stopMessageLiveLocation"
    assert sent is not None and call.params["message_id"] == sent.telegram_message_id


def test_a_private_incidents_live_location_reaches_its_staff_only(village: Village) -> None:
    v = village
    number = raise_(v, category="violence")
    share(v)
    deliver_all(v, LIVE_LOCATION)
    assert recipients(of_kind(v, number, LIVE_LOCATION), v) == told(v, "w1", "p1", "f1")
    move(v, 70, (30.1, 114.1))
    assert recipients(of_kind(v, number, LIVE_EDIT), v) == told(v, "w1", "p1", "f1")


def test_made_private_the_neighbours_copies_stop_and_the_staff_get_it(village: Village) -> None:
    v = village
    number = raise_(v)
    share(v)
    deliver_all(v, LIVE_LOCATION)
    with v.session() as s:
        alerts.set_category(s, v.actor(s, "m2"), number, "child", T0 + timedelta(seconds=65))
        s.commit()
    assert recipients(of_kind(v, number, LIVE_STOP), v) == told(v, "m1", "m3", "group")
    with Session(v.engine) as s:
        first_new = max(s.exec(select(Notification.id)).all(), default=None) or 0
    moved = move(v, 70, (30.1, 114.1))
    with Session(v.engine) as s:
        new = list(s.exec(select(Notification).where(col(Notification.id) > first_new)).all())
    assert sorted(r.id or 0 for r in new) == sorted(moved)
    # The staff told when it became private get the live location; the neighbours get nothing more.
    assert {r.kind for r in new} == {LIVE_LOCATION}
    assert recipients(new, v) == told(v, "w1", "p1", "c1")


def test_unreachable_and_failed_copies_are_not_followed(village: Village) -> None:
    v = village
    number = raise_(v)
    share(v)
    with Session(v.engine) as s:
        for row in s.exec(select(Notification).where(Notification.kind == LIVE_LOCATION)):
            row.status = "failed" if row.chat_id == GROUP_CHAT else "sent"
            row.telegram_message_id = 5
            s.add(row)
        s.commit()
    assert len(move(v, 70, (30.1, 114.1))) == 2  # the group post's copy failed: the two DMs only
    assert recipients(of_kind(v, number, LIVE_EDIT), v) == told(v, "m1", "m3")
