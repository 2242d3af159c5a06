"""The emulator's live locations and the bot removed from a group, against the real aiogram 3 and
python-telegram-bot 22 clients (issue 12, items 7, 8)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import telegram
import telegram.error
from aiogram import Bot as AgBot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError

from bot.sandbox.emulator import DEFAULT_TOKEN, EmulatorClient, EmulatorError, RunningEmulator, start_emulator


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    running = await start_emulator()
    yield running
    await running.stop()


@pytest.fixture
async def client(emu: RunningEmulator) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(emu.url) as c:
        yield c


@pytest.fixture
async def ag(emu: RunningEmulator) -> AsyncIterator[AgBot]:
    bot = AgBot(DEFAULT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.url)))
    yield bot
    await bot.session.close()


@pytest.fixture
async def ptb(emu: RunningEmulator) -> AsyncIterator[telegram.Bot]:
    bot = telegram.Bot(DEFAULT_TOKEN, base_url=f"{emu.url}/bot", base_file_url=f"{emu.url}/file/bot")
    await bot.initialize()
    yield bot
    await bot.shutdown()


async def started_user(client: EmulatorClient, name: str = "Wang") -> int:
    user = await client.create_user(name)
    await client.send_text(user["id"], "/start")
    return int(user["id"])


def later(emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The emulator's clock moves on by ``seconds``."""
    monkeypatch.setattr(emu.emulator, "now", lambda: time.time() + seconds)


async def test_a_user_moves_a_live_location_as_edited_messages(
    emu: RunningEmulator, client: EmulatorClient, ag: AgBot, ptb: telegram.Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = await started_user(client)
    sent = await client.send_location(uid, 30.0, 114.0, live_period=120)
    message_id = sent["message"]["message_id"]
    moved = await client.move_location(uid, message_id, 30.1, 114.1)
    assert moved["update"]["edited_message"]["location"]["latitude"] == 30.1
    updates = await ag.get_updates(timeout=0)
    edited = [u.edited_message for u in updates if u.edited_message]
    assert len(edited) == 1 and edited[0].message_id == message_id and edited[0].edit_date
    assert edited[0].location is not None and edited[0].location.live_period == 120
    ptb_updates = await ptb.get_updates(timeout=0)
    edit = next(u.edited_message for u in ptb_updates if u.edited_message)
    assert edit.location is not None and edit.location.latitude == 30.1
    plain = await client.send_location(uid, 30.0, 114.0)
    with pytest.raises(EmulatorError, match="no live location"):
        await client.move_location(uid, plain["message"]["message_id"], 30.2, 114.2)
    later(emu, monkeypatch, 121)
    with pytest.raises(EmulatorError, match="message can't be edited"):
        await client.move_location(uid, message_id, 30.2, 114.2)


async def test_the_bot_sends_moves_and_stops_a_live_location(
    emu: RunningEmulator, client: EmulatorClient, ag: AgBot, ptb: telegram.Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.set_limits(enabled=False)  # calls back to back in one chat (the 429s are tested elsewhere)
    uid = await started_user(client)
    with pytest.raises(TelegramBadRequest, match="wrong live period"):
        await ag.send_location(uid, 30.0, 114.0, live_period=30)
    live = await ag.send_location(uid, 30.0, 114.0, live_period=60)
    assert live.location is not None and live.location.live_period == 60
    moved = await ag.edit_message_live_location(latitude=30.1, longitude=114.1, chat_id=uid, message_id=live.message_id)
    assert not isinstance(moved, bool) and moved.location is not None and moved.location.latitude == 30.1
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await ag.edit_message_live_location(latitude=30.1, longitude=114.1, chat_id=uid, message_id=live.message_id)
    again = await ptb.edit_message_live_location(uid, live.message_id, latitude=30.2, longitude=114.2)
    assert not isinstance(again, bool) and again.location is not None and again.location.latitude == 30.2
    await ptb.stop_message_live_location(uid, live.message_id)
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)message can't be edited"):  # PTB capitalizes
        await ptb.edit_message_live_location(uid, live.message_id, latitude=30.3, longitude=114.3)
    [record] = [m for m in await client.messages(uid) if m["message_id"] == live.message_id]
    assert [e["kind"] for e in record["edits"]] == ["live_location", "live_location", "live_stop"]
    assert record["message"]["location"]["latitude"] == 30.2
    plain = await ag.send_location(uid, 30.0, 114.0)
    with pytest.raises(TelegramBadRequest, match="no live location"):
        await ag.edit_message_live_location(latitude=30.1, longitude=114.1, chat_id=uid, message_id=plain.message_id)
    ended = await ag.send_location(uid, 30.0, 114.0, live_period=60)
    later(emu, monkeypatch, 61)
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await ag.edit_message_live_location(latitude=30.1, longitude=114.1, chat_id=uid, message_id=ended.message_id)
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await ag.stop_message_live_location(chat_id=uid, message_id=ended.message_id)


@pytest.mark.parametrize(("status", "error"), [("kicked", "bot was kicked from the group chat"),
                                                ("left", "bot is not a member of the group chat")])
async def test_the_bot_removed_from_a_group(client: EmulatorClient, ag: AgBot, status: str, error: str) -> None:
    head = (await client.create_user("Head"))["id"]
    group = await client.create_group("兰城三组", [head])
    gid = group["id"]
    await client.add_bot_to_group(gid, by_user_id=head)
    await ag.send_message(gid, "bound")
    updates = await ag.get_updates(timeout=0)
    removed = await client.remove_bot_from_group(gid, by_user_id=head, status=status)
    assert removed["chat"]["bots"][str(DEFAULT_TOKEN)] == status
    updates = await ag.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    [change] = [u.my_chat_member for u in updates if u.my_chat_member]
    assert change.chat.id == gid and change.new_chat_member.status == status
    assert change.old_chat_member.status == "member" and change.from_user.id == head
    with pytest.raises(TelegramForbiddenError, match=error):
        await ag.send_message(gid, "still here?")
    await client.add_bot_to_group(gid, by_user_id=head)
    assert (await ag.send_message(gid, "back")).chat.id == gid


async def test_a_silent_removal_is_learnt_from_the_403(client: EmulatorClient, ag: AgBot) -> None:
    head = (await client.create_user("Head"))["id"]
    gid = (await client.create_group("兰城三组", [head]))["id"]
    await client.add_bot_to_group(gid, by_user_id=head)
    updates = await ag.get_updates(timeout=0)
    removed = await client.remove_bot_from_group(gid, by_user_id=head, status="left", notify=False)
    assert removed["update"] is None
    assert not await ag.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the group chat"):
        await ag.send_message(gid, "hello?")
