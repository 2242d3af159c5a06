"""``/healthz`` on the web listener: a real server on a free port, real SQLite and Redis, the Telegram emulator.

200 only when the database, Redis and Telegram (getMe with the token) all answer; otherwise 503 naming
each failing check. Telegram's answer is reused for ``YIHU_HEALTH_TELEGRAM_CACHE_S``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.bootstrap import web_app
from bot.sandbox.emulator import EmulatorClient, RunningEmulator, start_emulator
from bot.web.server import serve_web
from config.settings import Settings
from groups.db import dispose_engines
from workers.embedded_redis import free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    running = await start_emulator(tokens=["4242:health-token"], default_token="4242:health-token")
    yield running
    await running.stop()


def _settings(tmp_path: Path, emulator: RunningEmulator, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": "4242:health-token",
        "telegram_api_url": emulator.url,
        "data_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path / 'yihu.db'}",
        "web_listen": f"127.0.0.1:{free_port()}",
        "health_timeout_s": 3.0,
        **overrides,
    }
    return Settings(**values)


async def _health(settings: Settings, redis_url: str | None, times: int = 1) -> list[tuple[int, dict[str, Any]]]:
    answers = []
    async with serve_web(web_app(settings, redis_url), settings.web_listen) as running, aiohttp.ClientSession() as http:
        for _ in range(times):
            async with http.get(running.url + "/healthz") as reply:
                answers.append((reply.status, await reply.json()))
    dispose_engines()
    return answers


async def _get_me_calls(emulator: RunningEmulator) -> int:
    client = EmulatorClient(emulator.url)
    try:
        return len(await client.calls(method="getMe"))
    finally:
        await client.close()


async def test_healthy_when_all_answer_and_getme_is_asked_once_per_cache_period(
    tmp_path: Path, redis_url: str, emulator: RunningEmulator
) -> None:
    settings = _settings(tmp_path, emulator, health_telegram_cache_s=600)
    answers = await _health(settings, redis_url, times=3)
    assert answers == [(200, {"ok": True, "checks": {"database": "ok", "redis": "ok", "telegram": "ok"}})] * 3
    assert await _get_me_calls(emulator) == 1  # three scrapes, one getMe


async def test_a_database_that_does_not_answer_is_named(
    tmp_path: Path, redis_url: str, emulator: RunningEmulator
) -> None:
    nobody = f"postgresql://yihu@127.0.0.1:{free_port()}/yihu"  # nothing listens there
    [(status, body)] = await _health(_settings(tmp_path, emulator, database_url=nobody), redis_url)
    assert status == 503
    assert body["failing"] == ["database"]
    assert body["checks"]["redis"] == body["checks"]["telegram"] == "ok"
    assert body["checks"]["database"].startswith("does not answer")


async def test_redis_that_does_not_answer_is_named(tmp_path: Path, emulator: RunningEmulator) -> None:
    [(status, body)] = await _health(_settings(tmp_path, emulator), f"redis://127.0.0.1:{free_port()}/0")
    assert status == 503
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"].startswith("does not answer")


async def test_a_token_telegram_refuses_is_named_and_never_shown(
    tmp_path: Path, redis_url: str, emulator: RunningEmulator
) -> None:
    refused = "4242:not-the-token"
    [(status, body)] = await _health(_settings(tmp_path, emulator, bot_token=refused), redis_url)
    assert status == 503
    assert body["failing"] == ["telegram"]
    assert body["checks"]["telegram"].startswith("refuses the token (HTTP 401")
    assert "not-the-token" not in str(body)


async def test_a_telegram_that_does_not_answer_is_named(tmp_path: Path, redis_url: str) -> None:
    settings = Settings(
        bot_token="4242:health-token",
        telegram_api_url=f"http://127.0.0.1:{free_port()}",
        database_url=f"sqlite:///{tmp_path / 'yihu.db'}",
        web_listen=f"127.0.0.1:{free_port()}",
    )
    [(status, body)] = await _health(settings, redis_url)
    assert status == 503 and body["failing"] == ["telegram"]
    assert body["checks"]["telegram"].startswith("does not answer")
