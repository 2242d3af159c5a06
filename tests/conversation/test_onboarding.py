"""Joining and /help, in-process (moved from the end-to-end tier: none of it needs the wire)."""

from __future__ import annotations

import pytest
from sqlmodel import col, func, select

from bot.bootstrap import ROUTERS
from bot.features.alerts.payloads import Respond, SendAsSos
from bot.render.texts import t
from groups.model import Incident, Member
from tests.support.conversation import BOT_USERNAME, Chat, wire_village


@pytest.fixture
def chat(sqlite_url: str) -> Chat:
    return wire_village(sqlite_url, ROUTERS)


def test_greeting_follows_language_code(chat: Chat) -> None:
    (greeting,) = chat.send(99_001, f"/start {chat.member('g1m4').invite_token}", language_code="en-US").replies
    assert greeting.text.startswith("Hello 赵秀英")
    assert greeting.reply_markup is not None
    assert greeting.reply_markup["keyboard"][0][0]["text"] == "🆘 SOS"


def test_linked_user_is_greeted_again_and_token_of_someone_else_refused(chat: Chat) -> None:
    chat.link("g1m2")
    (again,) = chat.texts("g1m2", "/start")
    assert "李桂兰" in again
    # Another Telegram user tries g1m2's token: refused, nothing changes.
    (refusal,) = chat.texts(99_002, f"/start {chat.member('g1m2').invite_token}")
    assert "李桂兰" not in refusal
    assert chat.member("g1m2").telegram_user_id == chat.uid("g1m2")
    with chat.session() as session:
        assert session.exec(select(Member).where(Member.telegram_user_id == 99_002)).first() is None


@pytest.mark.parametrize("text", ["/start", "/start nonsense", "/start AAAAAAAAAAAAAAAAAAAAAAAA"])
def test_start_without_valid_token_explains_and_creates_nothing(chat: Chat, text: str) -> None:
    (answer,) = chat.texts(99_003, text)
    assert "邀请" in answer  # how to join: ask for an invite
    with chat.session() as session:
        assert session.exec(select(Member).where(Member.telegram_user_id == 99_003)).first() is None


def _snapshot(chat: Chat) -> tuple[int, int, int]:
    with chat.session() as session:
        members = session.exec(select(func.count()).select_from(Member)).one()
        linked = session.exec(select(func.count()).where(col(Member.telegram_user_id).is_not(None))).one()
        incidents = session.exec(select(func.count()).select_from(Incident)).one()
    return members, linked, incidents


@pytest.mark.parametrize(
    ("text", "key"),
    [("/start", "no_token"), ("/start   ", "no_token"), ("/start AAAAAAAAAAAAAAAAAAAAAAAA", "bad_token"),
     ("/start x", "bad_token")],
)
def test_start_without_a_known_token_says_how_to_join(chat: Chat, text: str, key: str) -> None:
    chat.link("g1m1")
    before = _snapshot(chat)
    assert chat.texts(99_004, text) == [t("zh", key)]
    assert chat.texts(99_005, text, language_code="en") == [t("en", key)]
    for language in ("zh", "en"):
        how = t(language, key)
        assert ("中心户长" in how and "网格员" in how and "邀请卡" in how) or (
            "head" in how and "grid worker" in how and "invite card" in how)
        assert "二维码" not in how and "QR" not in how  # no card carries one yet
    assert "无效" not in t("zh", "no_token")  # nothing was wrong with a bare /start
    assert _snapshot(chat) == before
    assert chat.texts(99_004, "/sos") == [t("zh", "not_linked")]  # still a stranger


def test_help_lists_role_commands(chat: Chat) -> None:
    chat.link("g1m1", "g1m5", "w1")
    (head_help,) = chat.texts("g1m1", "/help")
    (villager_help,) = chat.texts("g1m5", "/help")
    (worker_help,) = chat.texts("w1", "/help")
    assert "/ack" in head_help and "/cases" not in head_help
    assert "/ack" not in villager_help and "/sos" in villager_help
    assert "/escalate" in worker_help and "/refer" in worker_help


def test_unknown_user_and_villager_staff_commands(chat: Chat) -> None:
    (answer,) = chat.texts(99_100, "/sos")
    assert "邀请" in answer
    chat.link("g1m5")
    replies = [text for command in ("/resolve 1", "/cases", "/escalate 1 police", "/ack 1")
               for text in chat.texts("g1m5", command)]
    assert len(replies) == 4 and all("没有权限" in text for text in replies)
    with chat.session() as session:
        assert session.exec(select(Incident)).all() == []


def test_callback_data_is_short_ascii() -> None:
    for data in (Respond(10**9, "coming").data(), SendAsSos(location=(-89.123456, -179.123456)).data()):
        assert data.isascii() and len(data.encode()) <= 64


def test_help_of_the_private_case_officers_lists_their_commands(chat: Chat) -> None:
    chat.link("f1", "c1")
    for key in ("f1", "c1"):
        (officer_help,) = chat.texts(key, "/help")
        for command in ("/cases", "/case N", "/ack N", "/resolve N", "/refer N", "/referral_done N"):
            assert command in officer_help, (key, command)
        assert "/escalate" not in officer_help and "/false" not in officer_help


def test_help_of_the_referral_departments_says_what_they_receive(chat: Chat) -> None:
    chat.link("ca1", "pr1")
    for key in ("ca1", "pr1"):
        (department_help,) = chat.texts(key, "/help")
        assert "转介" in department_help and "/referral_done" in department_help, key
        assert "/cases" not in department_help and "/ack" not in department_help


def test_bind_addressed_to_the_bot_under_privacy_mode(chat: Chat) -> None:
    """In a group with privacy mode, /bind@<botname> is how the command reaches the bot; another bot's is ignored."""
    chat.link("g1m1")
    code = chat.group("g1").bind_code
    other = chat.send("g1m1", f"/bind@some_other_bot {code}", chat_id=-1_000_777, chat_type="supergroup")
    assert other.replies == [] and chat.group("g1").chat_id != -1_000_777
    (bound,) = chat.texts("g1m1", f"/bind@{BOT_USERNAME} {code}", chat_id=-1_000_777, chat_type="supergroup")
    assert "第一联防组" in bound and chat.group("g1").chat_id == -1_000_777
