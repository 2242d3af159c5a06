"""The emulator's feed of changed messages (``GET /_emu/feed``): what the village simulator watches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.sandbox.emulator import DEFAULT_TOKEN, EmulatorClient, RunningEmulator, start_emulator


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    running = await start_emulator(limits=False)
    yield running
    await running.stop()


async def _bot(emu: RunningEmulator, method: str, **params: object) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{emu.url}/bot{DEFAULT_TOKEN}/{method}", json=params
    ) as resp:
        data = await resp.json()
    assert data["ok"], data
    result: dict[str, object] = data["result"]
    return result


async def test_the_feed_gives_new_edited_and_deleted_messages_of_the_chats_asked_after_a_number(
    emu: RunningEmulator,
) -> None:
    async with EmulatorClient(emu.url) as client:
        alice = (await client.create_user("Alice"))["id"]
        bob = (await client.create_user("Bob"))["id"]
        await client.send_text(alice, "/start")
        await client.send_text(bob, "/start")
        first = await client.feed(0, chats=[alice])
        assert [m["text"] for m in first["messages"]] == ["/start"]  # users' messages too; Bob's chat not asked

        buttons = {"inline_keyboard": [[{"text": "我来了", "callback_data": "c"}]]}
        sent = await _bot(emu, "sendMessage", chat_id=alice, text="<b>🆘</b> #1", parse_mode="HTML",
                          reply_markup=buttons)
        await _bot(emu, "editMessageText", chat_id=alice, message_id=sent["message_id"], text="🆘 #1 ✓")
        changed = await client.feed(first["seq"], chats=[alice])
        assert [(m["message_id"], m["text"], m["reply_markup"]) for m in changed["messages"]] == [
            (sent["message_id"], "🆘 #1 ✓", None)  # once, as it is now: the edit removed the buttons
        ]
        await _bot(emu, "deleteMessage", chat_id=alice, message_id=sent["message_id"])
        gone = await client.feed(changed["seq"], chats=[alice, bob])
        assert [(m["message_id"], m["deleted"]) for m in gone["messages"]] == [(sent["message_id"], True)]
        assert gone["seq"] > changed["seq"] > first["seq"]


async def test_a_feed_long_poll_returns_as_soon_as_a_message_arrives(emu: RunningEmulator) -> None:
    async with EmulatorClient(emu.url) as client:
        alice = (await client.create_user("Alice"))["id"]
        seq = (await client.feed(0))["seq"]
        waiting = asyncio.create_task(client.feed(seq, chats=[alice], timeout=25))
        await client.send_text(alice, "救命")
        result = await asyncio.wait_for(waiting, 10)  # well before the 25 s of the poll
        assert [m["text"] for m in result["messages"]] == ["救命"]
        quiet = await client.feed(result["seq"], chats=[alice], timeout=0.2)
        assert quiet == {"seq": result["seq"], "messages": []}
