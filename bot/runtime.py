"""Running yihu: the embedded parts (Redis, migrations), the bot face, worker processes, the web listener
(health, metrics, the desk), graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

from bot.telegram_api import resolve_bot_username
from config.settings import Settings
from groups.db import upgrade
from workers.embedded_redis import EmbeddedRedis

if TYPE_CHECKING:
    from bot.web.app import Setup
    from bot.webhook import WebhookSlot

log = logging.getLogger(__name__)

FACE_NAMES = {"ptb": "python-telegram-bot", "aiogram": "aiogram"}


@contextmanager
def redis_for(settings: Settings) -> Iterator[str]:
    """The configured Redis, or a private one in the data directory for as long as the block runs."""
    if settings.redis_url:
        yield settings.redis_url
        return
    embedded = EmbeddedRedis(settings.data_dir / "redis").start()
    log.info("embedded Redis listening on %s", embedded.url)
    try:
        yield embedded.url
    finally:
        embedded.stop()


async def serve_bot(
    settings: Settings, redis_url: str, stop: asyncio.Event, webhook_slot: WebhookSlot | None = None
) -> None:
    """Run the chosen face (``YIHU_FRAMEWORK``) until ``stop`` is set: webhook mode when
    ``YIHU_WEBHOOK_URL`` is set (bot/webhook.py; in the web listener's application with ``webhook_slot``),
    else long polling."""
    from bot.bootstrap import build_conversation, close_conversation  # noqa: PLC0415  (heavy Telegram stacks)
    from bot.webhook import serve_webhook  # noqa: PLC0415

    username = await asyncio.to_thread(resolve_bot_username, settings)
    conversation, limiter = build_conversation(settings, redis_url, username)
    try:
        token = settings.require_token()
        engine = conversation.ports.engine
        log.info("Telegram face: %s (YIHU_FRAMEWORK)", FACE_NAMES[settings.framework])
        if settings.framework == "ptb":
            from bot.ptb_face import PtbFace  # noqa: PLC0415

            ptb = PtbFace(conversation, token, settings.telegram_api_url, limiter)
            if settings.webhook_url:
                await serve_webhook(ptb, settings, engine, stop, webhook_slot)
                return
            await ptb.poll(stop)
            return
        from bot.aiogram_face import AiogramFace, make_bot  # noqa: PLC0415

        face = AiogramFace(conversation, make_bot(token, settings.telegram_api_url, limiter))
        if settings.webhook_url:
            await serve_webhook(face, settings, engine, stop, webhook_slot)
            return
        # A webhook left over from webhook mode would make every getUpdates fail with 409.
        with contextlib.suppress(Exception):
            await face.bot.delete_webhook(drop_pending_updates=False)
        await face.poll(stop)
    finally:
        await asyncio.to_thread(close_conversation, conversation)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def run_bot(settings: Settings, redis_url: str) -> None:
    """``yihu bot``: the face alone (workers run elsewhere), until SIGTERM/SIGINT."""
    settings.require_token()
    upgrade(settings.resolved_database_url)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await serve_bot(settings, redis_url, stop)

    asyncio.run(main())


def run_all(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """``yihu run``: migrations, Redis (embedded unless configured), workers and the bot in one command."""
    from bot.bootstrap import start_worker_processes  # noqa: PLC0415
    from workers.process import stop_worker_processes  # noqa: PLC0415

    settings.require_token()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    with redis_for(settings) as redis_url:
        workers: list[subprocess.Popen[bytes]] = start_worker_processes(settings, settings.workers, redis_url=redis_url)
        log.info("started %d worker processes", len(workers))
        try:
            asyncio.run(_serve_until_stopped(settings, redis_url, stop))
        finally:
            log.info("stopping workers")
            stop_worker_processes(workers)


async def _serve_until_stopped(settings: Settings, redis_url: str, stop: asyncio.Event | None) -> None:
    event = stop or asyncio.Event()
    _stop_on_signals(event)
    async with serving_web(settings, redis_url, event) as slot:
        await serve_bot(settings, redis_url, event, slot)


@asynccontextmanager
async def serving_web(
    settings: Settings, redis_url: str | None, stop: asyncio.Event, extra_parts: Sequence[Setup] = ()
) -> AsyncIterator[WebhookSlot | None]:
    """The web listener on ``YIHU_WEB_LISTEN`` while the block runs (health, metrics, then ``extra_parts``).

    In webhook mode with ``YIHU_WEB_LISTEN`` equal to ``YIHU_WEBHOOK_LISTEN`` the webhook is one more part:
    the :class:`~bot.webhook.WebhookSlot` yielded, to hand to :func:`serve_bot`; else None. ``/healthz``
    answers 503 ("stopping") once ``stop`` is set.
    """
    from bot.bootstrap import web_app  # noqa: PLC0415
    from bot.web.app import CONTEXT  # noqa: PLC0415
    from bot.web.health import add_gate  # noqa: PLC0415
    from bot.web.server import same_listen, serve_web  # noqa: PLC0415
    from bot.webhook import WebhookSlot  # noqa: PLC0415

    slot = None
    parts = list(extra_parts)
    if settings.webhook_url and same_listen(settings.web_listen, settings.webhook_listen):
        slot = WebhookSlot(settings)
        parts.append(slot.setup)
    app = web_app(settings, redis_url, parts)
    context = app[CONTEXT]
    add_gate(context, "process", lambda: "stopping" if stop.is_set() else None)
    if slot is not None:
        add_gate(context, "webhook", slot.not_ready)
    async with serve_web(app, settings.web_listen):
        yield slot


def run_web(settings: Settings, redis_url: str) -> None:
    """``yihu web``: the web listener alone (health, metrics, the desk), until SIGTERM/SIGINT; scale-out
    behind a balancer, the bot and the workers run elsewhere."""
    settings.require_token()
    upgrade(settings.resolved_database_url)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        async with serving_web(settings, redis_url, stop):
            await stop.wait()

    asyncio.run(main())
