"""Running yihu: the embedded parts (Redis, migrations), the bot face, worker processes, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from bot.telegram_api import resolve_bot_username
from config.settings import Settings
from groups.db import upgrade
from workers.embedded_redis import EmbeddedRedis

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


async def serve_bot(settings: Settings, redis_url: str, stop: asyncio.Event) -> None:
    """Run the chosen face (``YIHU_FRAMEWORK``) until ``stop`` is set: webhook mode when
    ``YIHU_WEBHOOK_URL`` is set (bot/webhook.py), else long polling."""
    from bot.bootstrap import build_conversation, close_conversation  # noqa: PLC0415  (heavy Telegram stacks)

    username = await asyncio.to_thread(resolve_bot_username, settings)
    conversation, limiter = build_conversation(settings, redis_url, username)
    try:
        token = settings.require_token()
        log.info("Telegram face: %s (YIHU_FRAMEWORK)", FACE_NAMES[settings.framework])
        if settings.framework == "ptb":
            from bot.ptb_face import PtbFace  # noqa: PLC0415

            ptb = PtbFace(conversation, token, settings.telegram_api_url, limiter)
            await ptb.run(stop)
            return
        from bot.aiogram_face import AiogramFace, make_bot  # noqa: PLC0415

        face = AiogramFace(conversation, make_bot(token, settings.telegram_api_url, limiter))
        if settings.webhook_url:
            await face.serve_webhook(settings, stop)
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
    await serve_bot(settings, redis_url, event)
