"""One server for the webhook and the web (``YIHU_WEB_LISTEN`` == ``YIHU_WEBHOOK_LISTEN``): the web's
``/healthz`` keeps the webhook server's readiness (503 until the webhook is registered), and updates posted
to the webhook path on that server are handled. Real parts: the emulator, Redis, SQLite, the ptb face."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest

from bot.runtime import serve_bot, serving_web
from bot.sandbox.emulator import EmulatorClient, start_emulator
from config.settings import Settings
from groups.db import dispose_engines, get_engine, session_scope, upgrade
from groups.model import Member
from groups.roster import import_roster, parse_roster
from tests.support.harness import DATA
from workers.embedded_redis import free_port

pytestmark = pytest.mark.timeout(90)


async def test_the_shared_listener_is_not_ready_until_the_webhook_is_registered(tmp_path: Path, redis_url: str) -> None:
    emu = await start_emulator(faults={"fail_next": [{"method": "setwebhook", "code": 500, "count": 2}]})
    client = EmulatorClient(emu.url)
    listen = f"127.0.0.1:{free_port()}"
    database = f"sqlite:///{tmp_path / 'yihu.db'}"
    upgrade(database)
    with session_scope(get_engine(database)) as session:
        import_roster(session, parse_roster((DATA / "village.yaml").read_text(encoding="utf-8")))
        invite = session.query(Member).filter(Member.key == "g1m2").one().invite_token
    settings = Settings(
        bot_token=emu.token, telegram_api_url=emu.url, data_dir=tmp_path, database_url=database, redis_url=redis_url,
        webhook_url=f"http://{listen}/telegram/update", webhook_secret="shared-secret", webhook_listen=listen,
        web_listen=listen,
    )
    stop = asyncio.Event()

    async def serve() -> None:
        async with serving_web(settings, redis_url, stop) as slot:
            assert slot is not None and slot.path == "/telegram/update"
            await serve_bot(settings, redis_url, stop, slot)

    task = asyncio.create_task(serve())
    seen: list[tuple[int, str | None]] = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                assert not task.done(), task.exception() if task.done() else None
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with http.get(f"http://{listen}/healthz") as reply:
                        body = await reply.json()
                        answer = (reply.status, body["checks"].get("webhook"))
                        if not seen or seen[-1] != answer:
                            seen.append(answer)
                        if reply.status == 200:
                            break
                await asyncio.sleep(0.05)
        assert (503, "webhook not registered yet") in seen
        assert seen[-1] == (200, "ok")
        assert len(await client.calls(method="setWebhook")) == 3
        # Ready means serving: an update arrives through the webhook path of the web listener.
        await client.create_user("张", id=7_100_002, language_code="zh")
        await client.send_text(7_100_002, f"/start {invite}")
        [greeting] = await client.wait_for_messages(7_100_002, 1, 20)
        assert "李桂兰" in greeting["text"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await client.close()
        await emu.stop()
        dispose_engines()
