"""Both faces (aiogram, python-telegram-bot), long polling and webhook, end to end through the emulator.

The same onboarding/binding scenario runs for every face and mode with every update delivered twice;
the replies (text, entities, keyboards, callback answers) must be the same whichever face sent them.
Webhook mode also checks the secret header and ``/healthz``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import telegram
from aiogram.types import Update as AiogramUpdate
from sqlmodel import select

from bot import aiogram_face, ptb_face
from bot.face import incoming_from_update
from bot.render.keyboards import category_buttons, response_buttons, sos_keyboard
from bot.runtime import serve_bot
from bot.webhook import SECRET_HEADER
from groups.model import Member, ProcessedUpdate
from tests.support.harness import Village

pytestmark = pytest.mark.timeout(60)

FACES = [
    pytest.param("aiogram", False, id="aiogram-polling"),
    pytest.param("aiogram", True, id="aiogram-webhook"),
    pytest.param("ptb", False, id="ptb-polling"),
    pytest.param("ptb", True, id="ptb-webhook"),
]
STRANGER, INTRUDER = 99_003, 99_002

# Transcripts of the scenario per face and mode, compared by test_faces_reply_identically.
_transcripts: dict[tuple[str, bool], dict[str, Any]] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _visible(message: dict[str, Any]) -> dict[str, Any]:
    return {key: message.get(key) for key in ("text", "entities", "reply_markup")}


async def _wait_for(condition: Any, timeout: float = 10.0, poll: Any = None) -> None:
    for _ in range(int(timeout / 0.05)):
        if poll is not None:
            await poll()
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def _fetch_answer(village: Village, query_id: str, into: dict[str, Any]) -> None:
    into.update(await village.client.callback_answer(query_id))


async def _health(village: Village, port: int | None = None) -> int:
    url = f"http://127.0.0.1:{port or village.webhook_port}/healthz"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status


async def _wait_healthy(village: Village, timeout: float = 15.0, port: int | None = None) -> list[int]:
    """/healthz statuses seen until it answered 200."""
    seen: list[int] = []
    for _ in range(int(timeout / 0.05)):
        try:
            status = await _health(village, port)
        except aiohttp.ClientConnectionError:
            status = 0  # not listening yet
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == 200:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz never answered 200: {seen}")


async def _post_update(village: Village, update: dict[str, Any], secret: str | None, url: str | None = None) -> int:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    target = url or village.settings.webhook_url
    assert target
    async with aiohttp.ClientSession() as http, http.post(target, json=update, headers=headers) as resp:
        return resp.status


def _start_update(village: Village, key: str, update_id: int) -> dict[str, Any]:
    """A private ``/start <token>`` from ``key``, as Telegram would post it."""
    user_id = village.user_ids[key]
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "x"},
            "from": {"id": user_id, "is_bot": False, "first_name": "x", "language_code": "zh"},
            "text": f"/start {village.member(key).invite_token}",
        },
    }


async def _check_webhook_refuses_wrong_secret(village: Village) -> None:
    """A forged ``/start <token>`` without or with a wrong secret: 403, nothing recorded."""
    await _wait_healthy(village)
    forged = _start_update(village, "g1m5", 555_000)
    assert await _post_update(village, forged, None) in (401, 403)
    assert await _post_update(village, forged, "wrong-secret") in (401, 403)
    assert await _post_update(village, {"no": "update"}, village.settings.webhook_secret) == 400
    assert village.member("g1m5").telegram_user_id is None
    with village.session() as session:
        assert session.exec(select(ProcessedUpdate).where(ProcessedUpdate.ext_id == "555000")).first() is None
    assert await village.messages("g1m5") == []


async def _scenario(village: Village) -> dict[str, Any]:
    """Onboarding, refusals, binding, a button press and a group migration; returns the transcript."""
    transcript: dict[str, Any] = {}
    # /start with the invite token: linked, greeted by name, SOS button first.
    await village.say("g1m3", f"/start {village.member('g1m3').invite_token}")
    [greeting] = await village.wait("g1m3")
    assert "王建国" in greeting["text"]
    assert greeting["reply_markup"]["keyboard"][0][0]["text"] == "🆘 紧急求助"
    assert village.member("g1m3").telegram_user_id == village.user_ids["g1m3"]
    # Two more at once: the replies pass the shared limiter (1/s per private chat), so the emulator, which
    # enforces Telegram's limits, never answers 429. They arrive while the scenario goes on.
    await village.say("g1m3", "/help")
    await village.say("g1m3", "/help")

    # Unknown token: how to join, nothing created. Someone else's token: refused.
    await village.client.create_user("Stranger", id=STRANGER, language_code="en")
    await village.client.send_text(STRANGER, "/start nonsense")
    await village.client.create_user("Intruder", id=INTRUDER, language_code="zh-hans")
    await village.client.send_text(INTRUDER, f"/start {village.member('g1m3').invite_token}")
    [explained] = await village.wait(STRANGER)
    assert "invite" in explained["text"]  # how to join, in the stranger's language
    [refused] = await village.wait(INTRUDER)
    assert "王建国" not in refused["text"]
    with village.session() as session:
        strangers = session.exec(select(Member).where(Member.telegram_user_id.in_([STRANGER, INTRUDER]))).all()  # type: ignore[union-attr]
    assert strangers == []

    # Binding by the head; a wrong code in another chat is refused.
    await village.link("g1m1", "g1m2")
    chat_id = await village.bind_group_chat("g1")
    assert "第一联防组" in (await village.messages(chat_id))[0]["text"]
    assert village.group("g1").chat_id == chat_id
    other = int((await village.client.create_group("群", [village.user_ids["g1m2"]]))["id"])
    await village.client.add_bot_to_group(other, by_user_id=village.user_ids["g1m2"])
    await village.say("g1m2", "/bind WRONGCODE123", chat_id=other)
    [wrong] = await village.wait(other)
    assert "第一联防组" not in wrong["text"] and village.group("g1").chat_id == chat_id

    # A button press the bot does not know: answered (once) with an alert.
    uid = village.user_ids["g1m3"]
    query_id = await village.client.press_button(uid, uid, int(greeting["message_id"]), "nonsense", force=True)
    answer: dict[str, Any] = {}
    await _wait_for(lambda: answer.get("answered"), poll=lambda: _fetch_answer(village, query_id, answer))
    assert answer["show_alert"] is True and answer["text"]

    # The group becomes a supergroup: the binding follows the chat.
    migrated = await village.client.migrate_group(chat_id, by_user_id=village.user_ids["g1m1"])
    new_id = int(migrated["new_chat_id"])
    await _wait_for(lambda: village.group("g1").chat_id == new_id)

    # Every update arrived twice; each was handled once.
    await asyncio.sleep(0.3)  # a duplicate handled twice would have replied by now
    await village.wait("g1m3", 3)
    for key in ("g1m3", "g1m1", "g1m2"):
        transcript[key] = [_visible(m) for m in await village.messages(key)]
    assert len(transcript["g1m3"]) == 3 and transcript["g1m3"][1] == transcript["g1m3"][2]
    assert [c for c in await village.client.calls(errors_only=True) if c["error_code"] == 429] == []
    for label, chat in (("stranger", STRANGER), ("intruder", INTRUDER), ("group", chat_id), ("other", other)):
        transcript[label] = [_visible(m) for m in await village.messages(chat)]
        assert len(transcript[label]) == 1, (label, transcript[label])
    transcript["answer"] = {key: answer.get(key) for key in ("text", "show_alert")}
    with village.session() as session:
        update_ids = [
            int(p.ext_id) for p in session.exec(select(ProcessedUpdate).where(ProcessedUpdate.kind == "update"))
        ]
    assert len(update_ids) == len(set(update_ids))
    assert len(update_ids) >= 9  # 3 starts, 2 links, 2 binds, bot added, press, migration
    return transcript


@pytest.mark.parametrize(("framework", "webhook"), FACES)
async def test_onboarding_binding_and_duplicates(tmp_path: Path, redis_url: str, framework: str, webhook: bool) -> None:
    config = {"faults": {"duplicate_update_probability": 1.0}, "seed": 1}
    async with Village(
        tmp_path, redis_url, framework=framework, webhook=webhook, workers=0, emulator_config=config
    ) as village:
        if webhook:
            await _check_webhook_refuses_wrong_secret(village)
        _transcripts[(framework, webhook)] = await _scenario(village)
        if webhook:
            info = (await village.client.calls(method="setWebhook"))[-1]["params"]
            assert info["secret_token"] == village.settings.webhook_secret
            assert set(info["allowed_updates"]) >= {"message", "callback_query"}
        else:
            assert await village.client.calls(method="getUpdates")
        menus = {c["params"].get("language_code") for c in await village.client.calls(method="setMyCommands")}
        assert {"zh", "en"} <= menus


async def test_faces_reply_identically(tmp_path: Path, redis_url: str) -> None:
    """Same inputs, same replies (texts, entities, keyboards, callback answers) from every face and mode."""
    for index, (framework, webhook) in enumerate([("aiogram", False), ("ptb", True)]):
        if (framework, webhook) not in _transcripts:  # when run alone
            config = {"faults": {"duplicate_update_probability": 1.0}, "seed": 1}
            async with Village(
                tmp_path / str(index),
                redis_url,
                framework=framework,
                webhook=webhook,
                workers=0,
                emulator_config=config,
            ) as village:
                _transcripts[(framework, webhook)] = await _scenario(village)
    reference = _transcripts[("aiogram", False)]
    for face, transcript in _transcripts.items():
        assert transcript == reference, face


@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
async def test_healthz_is_503_until_the_webhook_is_registered(tmp_path: Path, redis_url: str, framework: str) -> None:
    config = {"faults": {"fail_next": [{"method": "setwebhook", "code": 500, "count": 2}]}}
    async with Village(tmp_path, redis_url, framework=framework, webhook=True, workers=0, emulator_config=config) as v:
        seen = await _wait_healthy(v)
        assert 503 in seen and seen[-1] == 200
        assert len(await v.client.calls(method="setWebhook")) == 3
        # Ready means serving: an update arrives through the webhook.
        await v.link("g1m4")
        assert v.member("g1m4").telegram_user_id == v.user_ids["g1m4"]


# -- the conversions, face against face (no network) -------------------------------------------------
_USER = {"id": 7_000_001, "is_bot": False, "first_name": "张三", "language_code": "zh-hans"}
_PRIVATE = {"id": 7_000_001, "type": "private", "first_name": "张三"}
_GROUP = {"id": -1001, "type": "group", "title": "群"}
_UPDATES: list[dict[str, Any]] = [
    {
        "update_id": 1,
        "message": {"message_id": 5, "date": 1, "chat": _PRIVATE, "from": _USER, "text": "/sos 火灾 厨房"},
    },
    {
        "update_id": 2,
        "message": {
            "message_id": 6,
            "date": 1,
            "chat": _PRIVATE,
            "from": _USER,
            "voice": {"file_id": "v1", "file_unique_id": "u1", "duration": 3},
            "caption": "听",
        },
    },
    {
        "update_id": 3,
        "message": {
            "message_id": 7,
            "date": 1,
            "chat": _PRIVATE,
            "from": _USER,
            "location": {"latitude": 30.5, "longitude": 114.25},
        },
    },
    {
        "update_id": 4,
        "message": {"message_id": 8, "date": 1, "chat": _GROUP, "from": _USER, "migrate_to_chat_id": -100777},
    },
    {
        "update_id": 5,
        "callback_query": {
            "id": "cb1",
            "from": _USER,
            "chat_instance": "ci",
            "data": "r:3:coming",
            "message": {"message_id": 9, "date": 1, "chat": _GROUP, "text": "#3"},
        },
    },
    {
        "update_id": 6,
        "callback_query": {"id": "cb2", "from": _USER, "chat_instance": "ci", "data": "x", "inline_message_id": "im"},
    },
]


@pytest.mark.parametrize("data", _UPDATES, ids=[str(u["update_id"]) for u in _UPDATES])
def test_both_faces_convert_updates_alike(data: dict[str, Any]) -> None:
    parsed = AiogramUpdate.model_validate(data)
    if parsed.message is not None:
        expected = aiogram_face.incoming_from_message(parsed.update_id, parsed.message)
    else:
        assert parsed.callback_query is not None
        expected = aiogram_face.incoming_from_callback(parsed.update_id, parsed.callback_query)
    incoming = incoming_from_update(telegram.Update.de_json(data, None))
    assert incoming == expected
    assert incoming.update_id == data["update_id"] and incoming.chat_type in ("private", "group")


def test_both_faces_send_keyboards_alike() -> None:
    for keyboard in (
        sos_keyboard("zh"),
        {"inline_keyboard": response_buttons(3)},
        {"inline_keyboard": category_buttons("en", 4)},
    ):
        ptb = ptb_face.markup(keyboard)
        aio = aiogram_face._markup(keyboard)
        assert ptb is not None and aio is not None
        assert ptb.to_dict() == aio.model_dump(exclude_none=True) == keyboard


@pytest.mark.parametrize(("framework", "webhook"), [("ptb", False), ("aiogram", True)])
async def test_stop_lets_replies_drain(tmp_path: Path, redis_url: str, framework: str, webhook: bool) -> None:
    """A reply still on its way (slow Bot API) when the stop comes is sent before the face exits."""
    config = {"faults": {"delay": 1.0, "delay_methods": ["sendmessage"]}}
    async with Village(
        tmp_path, redis_url, framework=framework, webhook=webhook, workers=0, emulator_config=config
    ) as v:
        await v.say("g1m4", f"/start {v.member('g1m4').invite_token}")
        await _wait_for(lambda: v.member("g1m4").telegram_user_id is not None)  # persisted, reply under way
        await v.stop_bot()
        stopped_at = time.time()
        [greeting] = await v.messages("g1m4")
        assert "赵秀英" in greeting["text"]
        [sent] = await v.client.calls(method="sendMessage")
        assert sent["ok"] and sent["time"] <= stopped_at  # answered while the face was still waiting for it


async def test_two_instances_behind_a_balancer_handle_a_duplicate_once(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    """An aiogram and a PTB instance on one database get the same update at once: one of them handles it."""
    async with Village(tmp_path, redis_url, webhook=True, workers=0, database_url=database_url) as village:
        await _wait_healthy(village)
        port = _free_port()
        url = f"http://127.0.0.1:{port}/telegram/update"
        second = village.settings.model_copy(
            update={"framework": "ptb", "webhook_url": url, "webhook_listen": f"127.0.0.1:{port}"}
        )
        stop = asyncio.Event()
        task = asyncio.create_task(serve_bot(second, redis_url, stop))
        try:
            await _wait_healthy(village, port=port)
            await village.say("g1m5", "/start")  # the user has written to the bot: replies can reach them
            await village.wait("g1m5")
            secret = village.settings.webhook_secret
            update = _start_update(village, "g1m5", 777_000)
            statuses = await asyncio.gather(
                _post_update(village, update, secret), _post_update(village, update, secret, url=url)
            )
            assert list(statuses) == [200, 200]
            assert village.member("g1m5").telegram_user_id == village.user_ids["g1m5"]
            with village.session() as session:
                rows = session.exec(select(ProcessedUpdate).where(ProcessedUpdate.ext_id == "777000")).all()
            assert len(rows) == 1
            messages = await village.wait("g1m5", 2)
            await asyncio.sleep(0.3)  # a second greeting would have arrived by now
            assert len(await village.messages("g1m5")) == len(messages) == 2
            assert village.name_of("g1m5") in messages[1]["text"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
