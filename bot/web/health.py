"""``GET /healthz``: 200 only when the database answers, Redis answers and Telegram accepts the token.

The three checks run at once, each within ``YIHU_HEALTH_TIMEOUT_S``. Telegram's answer to getMe is reused
for ``YIHU_HEALTH_TELEGRAM_CACHE_S`` (a scrape every few seconds must not hammer the Bot API; concurrent
scrapes share one call). Parts add *gates* (:func:`add_gate`): the webhook's "not registered yet" or a
process that is stopping makes the answer 503 as well. Any failure answers 503 with JSON naming each
failing check::

    {"ok": false, "failing": ["redis"], "checks": {"database": "ok", "redis": "does not answer: ...", ...}}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import redis
from aiohttp import web
from sqlalchemy import Engine, text

from bot.web.app import CONTEXT, WebContext

log = logging.getLogger(__name__)

PATH = "/healthz"
OK = "ok"
Gate = Callable[[], str | None]  # None when fine, else why the process is not ready
_GATES = "health.gates"
_STATE = "health.state"


def add_gate(context: WebContext, name: str, gate: Gate) -> None:
    """Make ``/healthz`` answer 503 naming ``name`` while ``gate()`` returns a reason."""
    context.extra.setdefault(_GATES, {})[name] = gate


def _gates(context: WebContext) -> dict[str, Gate]:
    gates: dict[str, Gate] = context.extra.setdefault(_GATES, {})
    return gates


@dataclass
class _TelegramCache:
    verdict: str | None = None
    at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def database_check(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("health check: the database does not answer: %s", exc)
        return f"does not answer ({type(exc).__name__})"
    return OK


def redis_check(url: str | None, timeout: float) -> str:
    if not url:
        return "not configured (YIHU_REDIS_URL)"
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        log.warning("health check: Redis does not answer: %s", exc)
        return f"does not answer ({type(exc).__name__})"
    finally:
        client.close()
    return OK


async def telegram_check(api_url: str, token: str | None, timeout: float) -> str:
    """getMe with the token: ``ok``, or why not (the token never appears in the answer or the log)."""
    if not token:
        return "no token (YIHU_BOT_TOKEN)"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(f"{api_url}/bot{token}/getMe") as reply,
        ):
            status = reply.status
            body = await reply.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("health check: Telegram does not answer getMe: %s", type(exc).__name__)
        return f"does not answer ({type(exc).__name__})"
    if status == 200 and isinstance(body, dict) and body.get("ok"):
        return OK
    description = body.get("description") if isinstance(body, dict) else None
    log.warning("health check: Telegram refuses the token: %s %s", status, description)
    return f"refuses the token (HTTP {status}{': ' + str(description) if description else ''})"


async def _telegram(app: web.Application) -> str:
    context = app[CONTEXT]
    settings = context.settings
    cache: _TelegramCache = context.extra.setdefault(_STATE, _TelegramCache())
    async with cache.lock:
        fresh = cache.verdict is not None and time.monotonic() - cache.at < settings.health_telegram_cache_s
        if not fresh:
            cache.verdict = await telegram_check(settings.telegram_api_url, settings.bot_token,
                                                 settings.health_timeout_s)
            cache.at = time.monotonic()
        assert cache.verdict is not None
        return cache.verdict


async def _within(timeout: float, what: str, check: asyncio.Future[str] | asyncio.Task[str]) -> str:
    try:
        return await asyncio.wait_for(check, timeout)
    except TimeoutError:
        log.warning("health check: %s did not answer within %.1f s", what, timeout)
        return f"does not answer within {timeout:g} s"


async def checks(app: web.Application) -> dict[str, str]:
    """Every check and gate by name: ``ok`` or what is wrong."""
    context = app[CONTEXT]
    timeout = context.settings.health_timeout_s
    database, cache, telegram = await asyncio.gather(
        _within(timeout, "the database", asyncio.ensure_future(asyncio.to_thread(database_check, context.engine))),
        _within(timeout, "Redis", asyncio.ensure_future(asyncio.to_thread(redis_check, context.redis_url, timeout))),
        _within(timeout + 1, "Telegram", asyncio.ensure_future(_telegram(app))),
    )
    found = {"database": database, "redis": cache, "telegram": telegram}
    for name, gate in _gates(context).items():
        found[name] = gate() or OK
    return found


async def on_health(request: web.Request) -> web.Response:
    found = await checks(request.app)
    failing = [name for name, verdict in found.items() if verdict != OK]
    if failing:
        reason = "; ".join(f"{name}: {found[name]}" for name in failing)
        return web.json_response({"ok": False, "failing": failing, "checks": found, "reason": reason}, status=503)
    return web.json_response({"ok": True, "checks": found})


def setup(app: web.Application) -> None:
    """The ``/healthz`` part."""
    app.router.add_get(PATH, on_health)
