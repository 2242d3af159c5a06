"""Live locations and the bot's own membership through the conversation, in-process (issue 12, items 7,
8): which updates move a live location, which are ignored, and a my_chat_member removing the bot."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select, update

from bot.bootstrap import ROUTERS
from groups.model import HouseholdGroup, LiveLocation, Notification
from tests.support.conversation import Chat, wire_village

MESSAGE = 41
GROUP_CHAT = -4000000001


@pytest.fixture
def chat(sqlite_url: str) -> Chat:
    c = wire_village(sqlite_url, ROUTERS)
    c.link("g1m1", "g1m2", "g1m3", "w1")
    c.send("g1m1", "/bind " + c.group("g1").bind_code, chat_id=GROUP_CHAT, chat_type="group")
    assert c.group("g1").chat_id == GROUP_CHAT
    return c


def rows_of(chat: Chat, ids: list[int]) -> list[Notification]:
    with Session(chat.engine) as s:
        return list(s.exec(select(Notification).where(col(Notification.id).in_(ids))).all())


def all_sent(chat: Chat) -> None:
    """The workers delivered everything owed so far."""
    with Session(chat.engine) as s:
        s.exec(update(Notification).where(col(Notification.status) == "pending").values(status="sent",
                                                                                       telegram_message_id=9))
        s.commit()


def moved(chat: Chat, who: str, **fields: object) -> list[Notification]:
    before = len(chat.ports.enqueued)
    fields.setdefault("message_id", MESSAGE)
    outcome = chat.send(who, edited=True, **fields)
    assert outcome.replies == []  # a move is followed silently
    return rows_of(chat, chat.ports.enqueued[before:])


def test_a_live_location_and_its_moves(chat: Chat) -> None:
    chat.send("g1m2", "6995")
    (reply,) = chat.texts("g1m2", location=(30.0, 114.0), live_period=3600, message_id=MESSAGE)
    assert "#1" in reply
    with Session(chat.engine) as s:
        share = s.exec(select(LiveLocation)).one()
        assert (share.chat_id, share.message_id, share.live_period) == (chat.uid("g1m2"), MESSAGE, 3600)
    all_sent(chat)
    edits = moved(chat, "g1m2", location=(30.1, 114.1))
    assert {r.kind for r in edits} == {"live_edit"} and len(edits) == 3  # the head, g1m3, the group (linked)
    # Ignored: a neighbour's edit, an edit of another message, an edited text, an edit in a group chat.
    assert moved(chat, "g1m3", location=(31.0, 115.0), chat_id=chat.uid("g1m2")) == []
    assert moved(chat, "g1m2", location=(31.0, 115.0), message_id=MESSAGE + 1) == []
    assert moved(chat, "g1m2", text="edited words") == []
    assert moved(chat, "g1m2", location=(31.0, 115.0), chat_id=GROUP_CHAT, chat_type="group") == []
    with Session(chat.engine) as s:
        assert s.exec(select(LiveLocation)).one().latitude == 30.1


def test_a_plain_location_is_not_live(chat: Chat) -> None:
    chat.send("g1m2", "6995")
    chat.send("g1m2", location=(30.0, 114.0), message_id=MESSAGE)
    with Session(chat.engine) as s:
        assert s.exec(select(LiveLocation)).first() is None
        assert {r.kind for r in s.exec(select(Notification).where(Notification.kind != "message"))} == {"location"}
    all_sent(chat)
    assert moved(chat, "g1m2", location=(30.1, 114.1)) == []


@pytest.mark.parametrize("status", ["left", "kicked"])
def test_the_bot_removed_from_the_bound_chat(chat: Chat, status: str) -> None:
    before = len(chat.ports.enqueued)
    outcome = chat.send(99_999, chat_id=GROUP_CHAT, chat_type="group", bot_status=status)
    assert outcome.replies == []
    assert chat.group("g1").chat_id is None
    told = rows_of(chat, chat.ports.enqueued[before:])
    assert sorted(r.recipient_id or 0 for r in told) == sorted([chat.member("g1m1").id or 0, chat.member("w1").id or 0])
    # Added back: nothing until /bind, which restores it.
    chat.send("g1m1", chat_id=GROUP_CHAT, chat_type="group", bot_status="member")
    assert chat.group("g1").chat_id is None
    chat.send("g1m1", "/bind " + chat.group("g1").bind_code, chat_id=GROUP_CHAT, chat_type="group")
    assert chat.group("g1").chat_id == GROUP_CHAT


def test_membership_changes_of_other_chats_change_nothing(chat: Chat) -> None:
    before = len(chat.ports.enqueued)
    chat.send("g1m2", bot_status="kicked")  # g1m2 blocked the bot in private
    chat.send(99_999, chat_id=-4000000009, chat_type="group", bot_status="left")  # an unbound group
    assert chat.ports.enqueued[before:] == []
    with Session(chat.engine) as s:
        assert s.exec(select(HouseholdGroup.chat_id).where(HouseholdGroup.code == "g1")).one() == GROUP_CHAT
