"""``/desk`` in private: a staff member gets a single-use login link, sent without a link preview; a
villager is refused; staff /help mentions it."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from bot.bootstrap import ROUTERS
from bot.render.texts import t
from groups import desk
from groups.model import DeskLogin
from tests.support.conversation import Chat, wire_village
from tests.support.village import T0

LINK = re.compile(r"(http://127\.0\.0\.1:8088/desk/login/)([A-Za-z0-9_-]{32,})")


@pytest.fixture
def chat(sqlite_url: str) -> Chat:
    return wire_village(sqlite_url, ROUTERS)


@pytest.mark.parametrize("key", ["w1", "g1m1", "p1", "f1", "c1", "ca1", "pr1"])
def test_staff_get_a_login_link_without_a_preview(chat: Chat, key: str) -> None:
    chat.link(key)
    (reply,) = chat.send(key, "/desk").replies
    assert reply.link_preview is False
    found = LINK.search(reply.text)
    assert found is not None, reply.text
    with chat.session() as session:
        stored = session.exec(select(DeskLogin)).one()
        assert stored.token_hash == desk.digest(found.group(2))
        assert stored.member_id == chat.member(key).id
        login = desk.redeem_login(session, found.group(2), "127.0.0.1", T0)
        assert login.session_id is not None


def test_a_villager_is_refused(chat: Chat) -> None:
    chat.link("g1m2")
    (reply,) = chat.send("g1m2", "/desk").replies
    assert reply.text == t("zh", "not_allowed")
    assert "/desk/login/" not in reply.text
    with chat.session() as session:
        assert session.exec(select(DeskLogin)).first() is None


def test_staff_help_mentions_the_desk_and_villager_help_does_not(chat: Chat) -> None:
    chat.link("w1", "g1m2")
    (staff,) = chat.texts("w1", "/help")
    (villager,) = chat.texts("g1m2", "/help")
    assert "/desk" in staff and "/desk" not in villager
