"""The Bot API emulator against the real aiogram 3 and python-telegram-bot 22 clients."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram
import telegram.error
from aiogram import Bot as AgBot
from aiogram import Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandStart
from aiogram.methods import GetMe
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonCommands,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

from bot.sandbox.emulator import DEFAULT_TOKEN, EmulatorClient, RunningEmulator, start_emulator

OTHER_TOKEN = "987654:OTHER-token"


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    running = await start_emulator()
    yield running
    await running.stop()


@pytest.fixture
async def client(emu: RunningEmulator) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(emu.url) as c:
        yield c


def make_aiogram(url: str, token: str = DEFAULT_TOKEN) -> AgBot:
    return AgBot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))


@pytest.fixture
async def ag(emu: RunningEmulator) -> AsyncIterator[AgBot]:
    bot = make_aiogram(emu.url)
    yield bot
    await bot.session.close()


@pytest.fixture
async def ptb(emu: RunningEmulator) -> AsyncIterator[telegram.Bot]:
    bot = telegram.Bot(DEFAULT_TOKEN, base_url=f"{emu.url}/bot", base_file_url=f"{emu.url}/file/bot")
    await bot.initialize()
    yield bot
    await bot.shutdown()


async def started_user(client: EmulatorClient, name: str = "Wang") -> int:
    user = await client.create_user(name, username=name.lower() + "_user")
    await client.send_text(user["id"], "/start")
    return int(user["id"])


# ------------------------------------------------------------------------------------------------ basics


async def test_get_me_both_libraries(ag: AgBot, ptb: telegram.Bot) -> None:
    me = await ag.get_me()
    assert me.id == 123456789
    assert me.is_bot
    assert me.username == "yihu_test_bot"
    assert me.can_join_groups is True
    assert me.can_read_all_group_messages is False
    assert me.supports_inline_queries is False
    pme = await ptb.get_me()
    assert pme.id == 123456789
    assert pme.username == "yihu_test_bot"
    assert ptb.username == "yihu_test_bot"


async def test_several_bots_and_allow_list(emu: RunningEmulator) -> None:
    other = make_aiogram(emu.url, OTHER_TOKEN)
    try:
        me = await other.get_me()
        assert me.id == 987654
        assert me.username == "bot987654_bot"
    finally:
        await other.session.close()
    strict = await start_emulator(tokens=[DEFAULT_TOKEN])
    bad = make_aiogram(strict.url, OTHER_TOKEN)
    good = make_aiogram(strict.url)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await bad.get_me()
        assert (await good.get_me()).id == 123456789
    finally:
        await bad.session.close()
        await good.session.close()
        await strict.stop()


async def test_unknown_method_is_404_and_raw_http_forms(emu: RunningEmulator, client: EmulatorClient) -> None:
    uid = await started_user(client)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{emu.url}/bot{DEFAULT_TOKEN}/noSuchMethod") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        # GET with query parameters, method name in another case
        async with http.get(f"{emu.url}/bot{DEFAULT_TOKEN}/SENDMESSAGE", params={"chat_id": uid, "text": "q"}) as r:
            body = await r.json()
            assert r.status == 200 and body["ok"] and body["result"]["text"] == "q"
        await client.set_limits(enabled=False)
        # urlencoded form with JSON-encoded nested field
        markup = '{"inline_keyboard": [[{"text": "OK", "callback_data": "ok"}]]}'
        async with http.post(
            f"{emu.url}/bot{DEFAULT_TOKEN}/sendMessage", data={"chat_id": str(uid), "text": "f", "reply_markup": markup}
        ) as r:
            body = await r.json()
            assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "ok"
        # JSON body
        async with http.post(f"{emu.url}/bot{DEFAULT_TOKEN}/sendMessage", json={"chat_id": uid, "text": "j"}) as r:
            assert (await r.json())["result"]["message_id"] == 4  # /start was message 1
    msgs = await client.messages(uid)
    assert [m["text"] for m in msgs] == ["q", "f", "j"]


# ------------------------------------------------------------------------------------------------ sending


async def test_send_message_to_started_user_is_recorded(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    uid = await started_user(client)
    kb = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="我来了", callback_data="r:1:coming")]])
    sent = await ag.send_message(uid, "<b>求助</b> #1 &amp; more", parse_mode="HTML", reply_markup=kb)
    assert isinstance(sent, Message)
    assert sent.text == "求助 #1 & more"
    assert sent.entities is not None and sent.entities[0].type == "bold" and sent.entities[0].length == 2
    assert sent.from_user is not None and sent.from_user.is_bot and sent.from_user.id == 123456789
    assert sent.chat.id == uid and sent.chat.type == "private"
    assert sent.reply_markup is not None
    await asyncio.sleep(1.0)  # 1 message/s per private chat
    psent = await ptb.send_message(uid, "second")
    assert psent.message_id == sent.message_id + 1
    assert psent.chat.first_name == "Wang"
    msgs = await client.messages(uid)
    assert [m["text"] for m in msgs] == ["求助 #1 & more", "second"]
    assert msgs[0]["raw_text"] == "<b>求助</b> #1 &amp; more"
    assert msgs[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "r:1:coming"
    assert msgs[0]["edits"] == []
    calls = await client.calls(method="sendMessage")
    assert len(calls) == 2 and all(c["ok"] for c in calls)
    assert calls[0]["params"]["chat_id"] == uid


async def test_forbidden_for_never_started_and_blocked_users(
    ag: AgBot, ptb: telegram.Bot, client: EmulatorClient
) -> None:
    stranger = (await client.create_user("Li"))["id"]
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation with a user"):
        await ag.send_message(stranger, "hi")
    with pytest.raises(telegram.error.Forbidden, match="bot can't initiate conversation"):
        await ptb.send_message(stranger, "hi")
    uid = await started_user(client)
    await client.block(uid)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await ag.send_message(uid, "hi")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await ag.send_message(999999999, "hi")
    assert await client.messages(stranger) == []
    assert await client.messages(uid) == []
    # the block produced a my_chat_member update
    updates = await ag.get_updates()
    kinds = [u.event_type for u in updates]
    assert "my_chat_member" in kinds
    blocked_update = next(u for u in updates if u.my_chat_member)
    assert blocked_update.my_chat_member is not None
    assert blocked_update.my_chat_member.new_chat_member.status == "kicked"


async def test_text_limits(ag: AgBot, client: EmulatorClient) -> None:
    await client.set_limits(enabled=False)
    uid = await started_user(client)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await ag.send_message(uid, "x" * 4097)
    # 4096 UTF-16 units pass; an emoji counts two
    await ag.send_message(uid, "y" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await ag.send_message(uid, "😀" * 2049)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await ag.send_message(uid, "")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await ag.send_message(uid, "<b>open", parse_mode="HTML")
    md = await ag.send_message(uid, "*求助* \\#3 _快来_\\!", parse_mode="MarkdownV2")
    assert md.text == "求助 #3 快来!" and md.entities is not None
    assert [e.type for e in md.entities] == ["bold", "italic"]
    with pytest.raises(TelegramBadRequest, match="Character '!' is reserved"):
        await ag.send_message(uid, "help!", parse_mode="MarkdownV2")
    too_long_data = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="d" * 65)]])
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await ag.send_message(uid, "kb", reply_markup=too_long_data)
    assert len(await client.messages(uid)) == 2


# ------------------------------------------------------------------------------------------------ limits and faults


async def test_private_chat_rate_limit_429(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    uid = await started_user(client)
    await ag.send_message(uid, "one")
    with pytest.raises(TelegramRetryAfter) as ag_exc:
        await ag.send_message(uid, "two")
    assert ag_exc.value.retry_after >= 1
    with pytest.raises(telegram.error.RetryAfter) as ptb_exc:
        await ptb.send_message(uid, "two")
    ra = ptb_exc.value.retry_after
    assert (ra if isinstance(ra, int) else ra.total_seconds()) >= 1
    # refused calls sent nothing and consumed nothing: after a second one more message fits
    assert [m["text"] for m in await client.messages(uid)] == ["one"]
    await asyncio.sleep(1.0)
    await ptb.send_message(uid, "three")
    assert [m["text"] for m in await client.messages(uid)] == ["one", "three"]
    refused = await client.calls(method="sendMessage", errors_only=True)
    assert [c["error_code"] for c in refused] == [429, 429]
    assert refused[0]["parameters"]["retry_after"] >= 1


async def test_group_rate_limit_and_global_limit(ag: AgBot, client: EmulatorClient) -> None:
    await client.set_limits(group_capacity=3, group_rate=3 / 60)
    users = [await started_user(client, f"U{i}") for i in range(3)]
    group = await client.create_group("十户联防一组", users)
    await client.add_bot_to_group(group["id"])
    for i in range(3):
        await ag.send_message(group["id"], f"g{i}")
    with pytest.raises(TelegramRetryAfter) as exc:
        await ag.send_message(group["id"], "g3")
    assert 1 <= exc.value.retry_after <= 20
    # other chats are unaffected by one group's bucket; the global bucket is separate
    await client.set_limits(global_capacity=2, global_rate=0.5, private_capacity=5, private_rate=5)
    await ag.send_message(users[0], "a")
    await ag.send_message(users[1], "b")
    with pytest.raises(TelegramRetryAfter) as exc2:
        await ag.send_message(users[2], "c")
    assert exc2.value.retry_after == 2


async def test_paced_client_is_never_refused(ag: AgBot, client: EmulatorClient) -> None:
    await client.set_limits(private_rate=20, private_capacity=1)
    uid = await started_user(client)
    for i in range(10):
        await ag.send_message(uid, f"m{i}")
        await asyncio.sleep(0.05)
    assert len(await client.messages(uid)) == 10


async def test_fault_injection_500_502_429(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    await client.set_limits(enabled=False)
    uid = await started_user(client)
    await client.fail_next("sendMessage", 500, count=2)
    with pytest.raises(TelegramServerError):
        await ag.send_message(uid, "x")
    with pytest.raises(telegram.error.NetworkError):
        await ptb.send_message(uid, "x")
    await ag.send_message(uid, "through")  # the rule is used up
    await client.set_faults(p502=1.0)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await ag.send_message(uid, "x")
    await ag.get_me()  # probabilities hit send-like methods only
    await client.set_faults(p502=0.0, p429=1.0, retry_after=3)
    with pytest.raises(TelegramRetryAfter) as exc:
        await ag.send_message(uid, "x")
    assert exc.value.retry_after == 3
    await client.set_faults(replace=True)
    await ag.send_message(uid, "ok again")
    assert [m["text"] for m in await client.messages(uid)] == ["through", "ok again"]
    statuses = [c["status"] for c in await client.calls(method="sendMessage")]
    assert statuses == [500, 500, 200, 502, 429, 200]


async def test_seeded_faults_are_reproducible() -> None:
    async def run() -> list[int]:
        running = await start_emulator(seed=42, limits=False, faults={"p500": 0.5})
        bot = make_aiogram(running.url)
        out = []
        try:
            async with EmulatorClient(running.url) as c:
                uid = await started_user(c)
                for _ in range(12):
                    try:
                        await bot.send_message(uid, "x")
                        out.append(200)
                    except TelegramServerError:
                        out.append(500)
        finally:
            await bot.session.close()
            await running.stop()
        return out

    first, second = await run(), await run()
    assert first == second
    assert 200 in first and 500 in first


async def test_fault_seed_and_delay_via_control_api(ag: AgBot, client: EmulatorClient) -> None:
    await client.set_limits(enabled=False)
    uid = await started_user(client)

    async def outcomes() -> list[int]:
        out = []
        for _ in range(8):
            try:
                await ag.send_message(uid, "x")
                out.append(200)
            except TelegramServerError:
                out.append(502)
        return out

    await client.set_faults(p502=0.5, seed=7)
    first = await outcomes()
    await client.set_faults(seed=7)
    assert await outcomes() == first
    await client.set_faults(replace=True, delay=0.3, delay_methods=["getMe"])
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await ag.get_me()
    assert loop.time() - t0 >= 0.3
    t1 = loop.time()
    await ag.send_message(uid, "fast")
    assert loop.time() - t1 < 0.3


# ------------------------------------------------------------------------------------------------ updates


async def test_get_updates_offset_confirmation(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    uid = (await client.create_user("Zhao"))["id"]
    r1 = await client.send_text(uid, "6995")
    await client.send_text(uid, "second")
    assert r1["update"]["message"]["text"] == "6995"
    ups = await ag.get_updates(timeout=0)
    assert [u.message.text for u in ups if u.message] == ["6995", "second"]
    assert ups[1].update_id == ups[0].update_id + 1
    # confirm only the first one
    again = await ptb.get_updates(offset=ups[0].update_id + 1, timeout=0)
    assert [u.message.text for u in again if u.message] == ["second"]
    # not confirmed: delivered again
    again2 = await ag.get_updates(offset=ups[0].update_id + 1, timeout=0)
    assert [u.update_id for u in again2] == [ups[1].update_id]
    # confirm everything
    assert await ag.get_updates(offset=ups[1].update_id + 1, timeout=0) == []
    assert await client.pending_updates() == []


async def test_long_polling_waits_for_update(ag: AgBot, client: EmulatorClient) -> None:
    uid = (await client.create_user("Sun"))["id"]
    poll = asyncio.create_task(ag.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    assert not poll.done()
    await client.send_location(uid, 30.5, 114.3)
    ups = await asyncio.wait_for(poll, 3)
    assert len(ups) == 1 and ups[0].message is not None and ups[0].message.location is not None
    assert ups[0].message.location.latitude == 30.5
    # an empty long poll returns [] after the timeout
    assert await ag.get_updates(offset=ups[0].update_id + 1, timeout=1) == []


async def test_allowed_updates_remembered(ag: AgBot, client: EmulatorClient) -> None:
    uid = await started_user(client)
    await ag.get_updates(offset=-1, allowed_updates=["message"], timeout=0)
    sent = await ag.send_message(
        uid,
        "btn",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="a", callback_data="a")]]),
    )
    await client.press_button(uid, uid, sent.message_id, "a")  # filtered out: callback_query not allowed
    await client.send_text(uid, "text")
    ups = await ag.get_updates(timeout=0)
    assert [u.event_type for u in ups][-1] == "message"
    assert all(u.callback_query is None for u in ups)


async def test_duplicate_updates_fault(ag: AgBot, client: EmulatorClient) -> None:
    await client.set_faults(duplicate_update_probability=1.0)
    uid = (await client.create_user("Dup"))["id"]
    await client.send_text(uid, "hello")
    ups = await ag.get_updates(timeout=0)
    assert len(ups) == 2 and ups[0].update_id == ups[1].update_id


async def test_command_entity_parsed_by_aiogram_and_ptb(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    uid = (await client.create_user("Qian"))["id"]
    await client.send_text(uid, "/start inv_abc123")
    await client.send_text(uid, "/sos@yihu_test_bot 着火了 😀 /later")
    ups = await ag.get_updates(timeout=0)
    first = ups[0].message
    assert first is not None and first.entities is not None
    assert (first.entities[0].type, first.entities[0].offset, first.entities[0].length) == ("bot_command", 0, 6)
    second = ups[1].message
    assert second is not None and second.entities is not None
    assert second.entities[0].length == len("/sos@yihu_test_bot")
    later = second.entities[1]
    assert later.type == "bot_command"
    assert second.text is not None
    # offsets are UTF-16: the emoji counts two units
    assert later.offset == len("/sos@yihu_test_bot 着火了 ") + 2 + 1

    dp = Dispatcher()
    seen: list[str] = []

    @dp.message(CommandStart(deep_link=True))
    async def on_start(message: Message) -> None:
        seen.append(f"start:{message.text}")

    @dp.message(Command("sos"))
    async def on_sos(message: Message) -> None:
        seen.append("sos")

    for update in ups:
        await dp.feed_update(ag, update)
    assert seen == ["start:/start inv_abc123", "sos"]

    async def noop(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        return None

    handler = CommandHandler("start", noop)
    ptb_updates = await ptb.get_updates(timeout=0)
    assert handler.check_update(ptb_updates[0])
    assert not handler.check_update(ptb_updates[1])  # /sos is not /start
    assert ptb_updates[0].message is not None and ptb_updates[0].message.parse_entities()


# ------------------------------------------------------------------------------------------------ callbacks and edits


async def test_callback_press_and_answer_recorded(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    uid = await started_user(client)
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="我来了", callback_data="r:7:coming")],
            [InlineKeyboardButton(text="来不了", callback_data="r:7:cant")],
        ]
    )
    sent = await ag.send_message(uid, "#7 求助", reply_markup=kb)
    await ag.get_updates(offset=-1, timeout=0, allowed_updates=["message", "callback_query"])
    query_id = await client.press_button(uid, uid, sent.message_id, "r:7:coming")
    ups = await ag.get_updates(timeout=0)
    cq = ups[-1].callback_query
    assert cq is not None
    assert cq.id == query_id and cq.data == "r:7:coming" and cq.from_user.id == uid
    assert cq.message is not None and cq.message.message_id == sent.message_id
    assert cq.chat_instance
    assert (await client.callback_answer(query_id))["answered"] is False
    assert await ag.answer_callback_query(cq.id, text="已记录", show_alert=True)
    answer = await client.callback_answer(query_id)
    assert answer["answered"] and answer["text"] == "已记录" and answer["show_alert"] is True
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await ag.answer_callback_query(cq.id)
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)query is too old"):
        await ptb.answer_callback_query("nonexistent")
    # pressing a button that is not on the message is refused by the control API
    with pytest.raises(Exception, match="no inline button"):
        await client.press_button(uid, uid, sent.message_id, "r:7:other")


async def test_edit_history_and_not_modified(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    await client.set_limits(enabled=False)
    uid = await started_user(client)
    kb = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="go", callback_data="go")]])
    sent = await ag.send_message(uid, "#1 open", reply_markup=kb)
    edited = await ag.edit_message_text(
        text="#1 open — 2 coming", chat_id=uid, message_id=sent.message_id, reply_markup=kb
    )
    assert isinstance(edited, Message) and edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await ag.edit_message_text(text="#1 open — 2 coming", chat_id=uid, message_id=sent.message_id, reply_markup=kb)
    with pytest.raises(telegram.error.BadRequest, match="Message is not modified"):
        await ptb.edit_message_reply_markup(
            uid,
            sent.message_id,
            reply_markup=telegram.InlineKeyboardMarkup([[telegram.InlineKeyboardButton("go", callback_data="go")]]),
        )
    await ptb.edit_message_reply_markup(uid, sent.message_id)  # removes the keyboard
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await ag.edit_message_text(text="x", chat_id=uid, message_id=999)
    msgs = await client.messages(uid)
    assert len(msgs) == 1
    rec = msgs[0]
    assert rec["text"] == "#1 open — 2 coming"
    assert rec["reply_markup"] is None
    assert [e["kind"] for e in rec["edits"]] == ["text", "reply_markup"]
    assert rec["edits"][0]["text"] == "#1 open — 2 coming"
    assert rec["edits"][0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "go"
    assert rec["edits"][1]["reply_markup"] is None
    assert "reply_markup" not in rec["message"]


# ------------------------------------------------------------------------------------------------ webhook


async def test_webhook_delivery_with_secret_and_retries(ag: AgBot, client: EmulatorClient) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    fail_first = [True]

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        if fail_first[0]:
            fail_first[0] = False
            return web.Response(status=500)
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), body))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        assert await ag.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cr3t")
        with pytest.raises(TelegramConflictError):
            await ag.get_updates()
        uid = (await client.create_user("Zhou"))["id"]
        await client.send_text(uid, "first")
        await client.send_text(uid, "second")
        for _ in range(200):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.02)
        assert [secret for secret, _ in received] == ["s3cr3t", "s3cr3t"]
        assert [body["message"]["text"] for _, body in received] == ["first", "second"]
        info = await ag.get_webhook_info()
        assert info.url.endswith("/hook") and info.pending_update_count == 0
        assert info.last_error_message is not None and "500" in info.last_error_message
        assert await ag.delete_webhook()
        await client.send_text(uid, "polled")
        ups = await ag.get_updates(timeout=0)
        assert [u.message.text for u in ups if u.message] == ["polled"]
    finally:
        await runner.cleanup()


async def test_aiogram_webhook_reply_method_is_executed(emu: RunningEmulator, client: EmulatorClient) -> None:
    bot = make_aiogram(emu.url)
    dp = Dispatcher()

    @dp.message(Command("ping"))
    async def ping(message: Message) -> Any:
        return message.answer("pong <b>ok</b>", parse_mode="HTML")  # answered in the webhook response

    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token="tok_1").register(app, path="/wh")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/wh", secret_token="tok_1", allowed_updates=["message"])
        await client.set_limits(enabled=False)
        uid = (await client.create_user("Hook"))["id"]
        await client.send_text(uid, "/ping")
        msgs = await client.wait_for_messages(uid, 1, timeout=10)
        assert msgs[0]["text"] == "pong ok" and msgs[0]["entities"][0]["type"] == "bold"
        # a wrong secret is refused by aiogram (401): the update stays queued and is retried
        await bot.set_webhook(f"http://127.0.0.1:{port}/wh", secret_token="wrong")
        await client.send_text(uid, "/ping")
        await asyncio.sleep(0.3)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 1 and "401" in (info.last_error_message or "")
        await bot.set_webhook(f"http://127.0.0.1:{port}/wh", secret_token="tok_1")
        msgs = await client.wait_for_messages(uid, 2, timeout=10)
        assert msgs[1]["text"] == "pong ok"
    finally:
        await bot.delete_webhook()
        await runner.cleanup()
        await bot.session.close()


# ------------------------------------------------------------------------------------------------ groups


async def test_group_membership_and_migration(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    head = (await client.create_user("Head"))["id"]
    member = (await client.create_user("Member"))["id"]
    group = await client.create_group("兰城三组", [head, member])
    gid = group["id"]
    assert gid < 0
    with pytest.raises(TelegramForbiddenError, match="not a member"):
        await ag.send_message(gid, "hi")
    await client.add_bot_to_group(gid, by_user_id=head)
    ups = await ag.get_updates(timeout=0)
    mcm = next(u.my_chat_member for u in ups if u.my_chat_member)
    assert mcm.chat.id == gid and mcm.new_chat_member.status == "member" and mcm.old_chat_member.status == "left"
    await client.send_text(member, "/bind lc3-1", chat_id=gid)
    await client.send_text(member, "just chatting", chat_id=gid)  # privacy mode: not delivered
    ups = await ag.get_updates(offset=ups[-1].update_id + 1, timeout=0)
    assert [u.message.text for u in ups if u.message] == ["/bind lc3-1"]
    await ag.send_message(gid, "bound")
    res = await client.migrate_group(gid)
    new_id = res["new_chat_id"]
    assert str(new_id).startswith("-100")
    with pytest.raises(TelegramMigrateToChat) as exc:
        await ag.send_message(gid, "after")
    assert exc.value.migrate_to_chat_id == new_id
    with pytest.raises(telegram.error.ChatMigrated) as pexc:
        await ptb.send_message(gid, "after")
    assert pexc.value.new_chat_id == new_id
    ups = await ag.get_updates(offset=ups[-1].update_id + 1, timeout=0)
    service = [u.message for u in ups if u.message]
    assert service[0].migrate_to_chat_id == new_id and service[0].chat.id == gid
    assert service[1].migrate_from_chat_id == gid and service[1].chat.type == "supergroup"
    sent = await ag.send_message(new_id, "in supergroup")
    assert sent.chat.id == new_id
    member_info = await ag.get_chat_member(new_id, member)
    assert member_info.status == "member"
    chat = await ag.get_chat(new_id)
    assert chat.type == "supergroup" and chat.title == "兰城三组"
    assert [m["text"] for m in await client.messages(gid)] == ["bound"]
    assert [m["text"] for m in await client.messages(new_id)] == ["in supergroup"]


# ------------------------------------------------------------------------------------------------ media, misc


async def test_voice_location_files_copy(
    ag: AgBot, ptb: telegram.Bot, client: EmulatorClient, emu: RunningEmulator
) -> None:
    await client.set_limits(enabled=False)
    uid = await started_user(client)
    res = await client.send_voice(uid, 4, data=b"OggS-voice-bytes")
    voice = res["message"]["voice"]
    assert voice["duration"] == 4 and voice["mime_type"] == "audio/ogg"
    # the bot downloads the user's voice note
    f = await ptb.get_file(voice["file_id"])
    assert bytes(await f.download_as_bytearray()) == b"OggS-voice-bytes"
    ag_file = await ag.get_file(voice["file_id"])
    assert ag_file.file_path
    # the bot sends a voice by upload (aiogram: multipart attach://) and by file_id (PTB)
    up = await ag.send_voice(uid, BufferedInputFile(b"OggS-bot", filename="v.ogg"), duration=2)
    assert up.voice is not None and up.voice.duration == 2
    again = await ptb.send_voice(uid, up.voice.file_id, caption="again")
    assert again.voice is not None and again.voice.file_id == up.voice.file_id and again.caption == "again"
    uploaded = await ptb.send_voice(uid, b"OggS-ptb-upload", duration=1)
    assert uploaded.voice is not None
    assert bytes(await (await ptb.get_file(uploaded.voice.file_id)).download_as_bytearray()) == b"OggS-ptb-upload"
    loc = await ag.send_location(uid, latitude=30.1, longitude=114.2)
    assert loc.location is not None and loc.location.longitude == 114.2
    copied = await ag.copy_message(uid, from_chat_id=uid, message_id=loc.message_id)
    assert copied.message_id == loc.message_id + 1
    fwd = await ptb.forward_message(uid, uid, res["message"]["message_id"])
    assert fwd.voice is not None and fwd.forward_origin is not None
    assert await ag.delete_message(uid, loc.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await ag.delete_message(uid, loc.message_id)
    assert await ag.send_chat_action(uid, "typing")
    kinds = [(m["kind"], m["deleted"]) for m in await client.messages(uid)]
    assert kinds == [
        ("voice", False),
        ("voice", False),
        ("voice", False),
        ("location", True),
        ("location", False),
        ("voice", False),
    ]


async def test_commands_menu_and_misc(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    assert await ag.set_my_commands([BotCommand(command="sos", description="求助")])
    assert await ag.set_my_commands([BotCommand(command="sos", description="SOS")], language_code="en")
    assert await ag.set_my_commands(
        [BotCommand(command="bind", description="绑定")], scope=BotCommandScopeAllGroupChats()
    )
    assert [c.command for c in await ag.get_my_commands()] == ["sos"]
    assert [c.description for c in await ag.get_my_commands(language_code="en")] == ["SOS"]
    assert [c.command for c in await ptb.get_my_commands(scope=telegram.BotCommandScopeAllGroupChats())] == ["bind"]
    assert await ag.delete_my_commands(language_code="en")
    assert await ag.get_my_commands(language_code="en") == []
    assert await ag.set_chat_menu_button(menu_button=MenuButtonCommands())
    uid = await started_user(client)
    chat = await ptb.get_chat(uid)
    assert chat.first_name == "Wang"
    with pytest.raises(TelegramNotFound):
        await ag(_UnknownMethod())
    assert await ag.close()


class _UnknownMethod:  # a fake aiogram method hitting an endpoint the emulator doesn't know
    def __new__(cls) -> Any:
        class NoSuch(GetMe):
            __api_method__ = "noSuchMethod"

        return NoSuch()


# ------------------------------------------------------------------------------------------------ end to end


async def test_aiogram_dispatcher_polling_end_to_end(emu: RunningEmulator, client: EmulatorClient) -> None:
    bot = make_aiogram(emu.url)
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("欢迎 / welcome")

    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        uid = (await client.create_user("Poll"))["id"]
        await client.send_text(uid, "/start")
        msgs = await client.wait_for_messages(uid, 1, timeout=10)
        assert msgs[0]["text"] == "欢迎 / welcome"
        with pytest.raises(TimeoutError, match="expected >= 5"):
            await client.wait_for_messages(uid, 5, timeout=0.2)
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(task, 10)
        await bot.session.close()


async def test_ptb_application_polling_end_to_end(emu: RunningEmulator, client: EmulatorClient) -> None:
    app = (
        ApplicationBuilder()
        .token(DEFAULT_TOKEN)
        .base_url(f"{emu.url}/bot")
        .base_file_url(f"{emu.url}/file/bot")
        .build()
    )

    async def start(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, f"hi {context.args}")

    app.add_handler(CommandHandler("start", start))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(timeout=1, poll_interval=0)
    try:
        uid = (await client.create_user("PTB"))["id"]
        await client.send_text(uid, "/start tok123")
        msgs = await client.wait_for_messages(uid, 1, timeout=10)
        assert msgs[0]["text"] == "hi ['tok123']"
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


async def test_in_process_access_and_reset(emu: RunningEmulator, ag: AgBot, client: EmulatorClient) -> None:
    em = emu.emulator
    user = em.create_user("Direct")
    em.user_sends_text(user["id"], "/start")
    await ag.send_message(user["id"], "x")
    assert [m["text"] for m in em.chat_messages(user["id"])] == ["x"]
    assert em.call_log(method="sendmessage")[0]["ok"]
    before = await ag.get_updates(timeout=0)
    await client.reset()
    assert em.users == {} and em.calls == []
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await ag.send_message(user["id"], "x")
    # update ids keep growing across a reset, so a polling client's offset still works
    again = em.create_user("Again")
    em.send_text(again["id"], "hi")
    after = await ag.get_updates(offset=before[-1].update_id + 1, timeout=0)
    assert [u.message.text for u in after if u.message] == ["hi"]


async def test_concurrent_get_updates_conflict(ag: AgBot, ptb: telegram.Bot, client: EmulatorClient) -> None:
    older = asyncio.create_task(ag.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    newer = asyncio.create_task(ptb.get_updates(timeout=5))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(older, 3)
    uid = (await client.create_user("Late"))["id"]
    await client.send_text(uid, "hello")
    ups = await asyncio.wait_for(newer, 3)
    assert [u.message.text for u in ups if u.message] == ["hello"]


async def test_standalone_module_runs() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox.emulator", "--port", str(port), "--token", "42:standalone"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert f"127.0.0.1:{port}" in line
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/bot42:standalone/getMe") as resp,
        ):
            body = await resp.json()
        assert body["ok"] and body["result"]["username"] == "yihu_test_bot" and body["result"]["id"] == 42
        async with EmulatorClient(f"http://127.0.0.1:{port}") as c:
            user = await c.create_user("S")
            res = await c.send_text(user["id"], "/start")
            assert res["update"]["message"]["text"] == "/start"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_group_privacy_admin_join_leave(ag: AgBot, client: EmulatorClient, emu: RunningEmulator) -> None:
    a = (await client.create_user("A"))["id"]
    b = (await client.create_user("B"))["id"]
    group = await client.create_group("二组", [a], type="supergroup")
    gid = group["id"]
    assert str(gid).startswith("-100")
    await client.add_bot_to_group(gid, by_user_id=a, status="administrator")
    await client.join_group(gid, b)
    await client.send_text(b, "plain talk", chat_id=gid)  # an admin bot sees everything
    await client.send_location(b, 1.5, 2.5, chat_id=gid)
    await client.send_voice(b, 2, chat_id=gid)
    ups = await ag.get_updates(timeout=0)
    kinds = [u.event_type for u in ups]
    assert kinds == ["my_chat_member", "message", "message", "message", "message", "message"]
    assert ups[0].my_chat_member is not None and ups[0].my_chat_member.new_chat_member.status == "administrator"
    messages = [u.message for u in ups if u.message]
    assert messages[0].new_chat_members and messages[0].new_chat_members[0].id == 123456789
    assert messages[1].new_chat_members and messages[1].new_chat_members[0].id == b
    assert messages[2].text == "plain talk"
    assert messages[3].location is not None and messages[3].chat.id == gid
    assert messages[4].voice is not None and messages[4].voice.duration == 2
    admins = await ag.get_chat_administrators(gid)
    assert {m.status for m in admins} == {"creator", "administrator"}
    assert await ag.get_chat_member_count(gid) == 3
    assert await ag.leave_chat(gid)
    with pytest.raises(TelegramForbiddenError, match="not a member of the supergroup chat"):
        await ag.send_message(gid, "gone")
    # in-process access mirrors the control API
    em = emu.emulator
    assert em.get_chat_info(gid)["bots"] == {DEFAULT_TOKEN: "left"}
    with pytest.raises(TimeoutError, match="expected >= 1"):
        await em.wait_for_messages(gid, 1, timeout=0.1)
