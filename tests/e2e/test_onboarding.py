"""Onboarding and binding end to end on each face (python-telegram-bot, aiogram): the emulator over
HTTP, real Redis, SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bot.render.texts import t
from groups.model import HouseholdGroup, ProcessedUpdate
from tests.support.harness import Village

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def village(tmp_path: Path, redis_url: str, framework: str):
    async with Village(tmp_path, redis_url, framework=framework, workers=0) as v:
        yield v


async def test_start_links_member_and_greets_by_name_with_sos_keyboard(village: Village) -> None:
    await village.say("g1m3", f"/start {village.member('g1m3').invite_token}")
    [greeting] = await village.wait("g1m3")
    assert "王建国" in greeting["text"]
    keyboard = greeting["reply_markup"]["keyboard"]
    assert keyboard[0][0]["text"] == "🆘 紧急求助"  # the SOS button comes first
    assert village.member("g1m3").telegram_user_id == village.user_ids["g1m3"]


async def test_bind_by_head_binds_and_later_bind_moves(village: Village) -> None:
    await village.link("g1m1", "g1m2", "w1")
    chat_id = await village.bind_group_chat("g1")
    [done] = await village.messages(chat_id)
    assert "第一联防组" in done["text"]
    assert village.group("g1").chat_id == chat_id
    # The grid worker binds a new chat: the binding moves.
    chat = await village.client.create_group("新群", [village.user_ids["w1"]])
    new_chat = int(chat["id"])
    await village.client.add_bot_to_group(new_chat, by_user_id=village.user_ids["w1"])
    await village.say("w1", f"/bind {village.group('g1').bind_code}", chat_id=new_chat)
    await village.wait(new_chat)
    assert village.group("g1").chat_id == new_chat


async def test_bind_wrong_code_or_person_is_refused_and_changes_nothing(village: Village) -> None:
    await village.link("g1m1", "g1m2")
    chat = await village.client.create_group("群", [village.user_ids["g1m1"], village.user_ids["g1m2"]])
    chat_id = int(chat["id"])
    await village.client.add_bot_to_group(chat_id, by_user_id=village.user_ids["g1m1"])
    await village.say("g1m1", "/bind WRONGCODE123", chat_id=chat_id)
    await village.say("g1m2", f"/bind {village.group('g1').bind_code}", chat_id=chat_id)  # not the head
    replies = await village.wait(chat_id, 2)
    bound = t("zh", "bound", group="第一联防组")
    assert [r["text"] for r in replies if r["text"] == bound] == []
    with village.session() as session:
        assert session.exec(select(HouseholdGroup).where(HouseholdGroup.chat_id == chat_id)).first() is None


async def test_commands_are_registered(village: Village) -> None:
    await village.link("g1m1")
    calls = await village.client.calls(method="setMyCommands")
    assert calls, "setMyCommands was never called"
    languages = {c["params"].get("language_code") for c in calls}
    assert {"zh", "en"} <= languages


async def test_duplicate_update_is_handled_once(tmp_path: Path, redis_url: str, framework: str) -> None:
    config = {"faults": {"duplicate_update_probability": 1.0}, "seed": 1}
    async with Village(tmp_path, redis_url, framework=framework, workers=0, emulator_config=config) as village:
        await village.say("g1m6", f"/start {village.member('g1m6').invite_token}")
        await village.wait("g1m6")
        with village.session() as session:
            processed = session.exec(select(ProcessedUpdate)).all()
        assert len(processed) == 1
        assert len(await village.messages("g1m6")) == 1


async def test_a_429_on_a_reply_is_honoured_and_the_reply_still_arrives(village: Village) -> None:
    await village.link("g1m5")
    await village.client.fail_next("sendMessage", code=429, count=1, retry_after=1)
    await village.say("g1m5", "/help")
    replies = await village.wait("g1m5", 2, timeout=15)
    assert "/sos" in replies[1]["text"]
    refused = await village.client.calls(method="sendMessage", errors_only=True)
    assert [c["status"] for c in refused] == [429]
