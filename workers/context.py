"""What a job needs besides its id — database, Redis, limiter, channels — set up once per process.

The app wires it (``bot.bootstrap.configure_workers``: the renderer and the channels come from above);
tests call :func:`configure` in-process with their own URLs and renderer. Jobs call :func:`current`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import Engine

from config.settings import Settings
from groups.db import get_engine
from workers.channels import Channel
from workers.channels.telegram import BotApi, Renderer, TelegramChannel
from workers.limiter import Limiter, Limits, bot_id_from_token


@dataclass
class Context:
    """One process's delivery wiring."""

    settings: Settings
    engine: Engine
    redis: redis.Redis
    limiter: Limiter
    channels: dict[str, Channel] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def channel(self, name: str) -> Channel:
        """The channel an outbox row names (KeyError for one this process was not wired with)."""
        return self.channels[name]

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.redis.close()


_context: Context | None = None
_lock = threading.Lock()


def configure(
    settings: Settings,
    *,
    renderer: Renderer,
    redis_url: str | None = None,
    limits: Limits | None = None,
) -> Context:
    """Build this process's context from ``settings`` and the app's renderer (replacing any earlier one)."""
    global _context
    token = settings.require_token()
    url = redis_url or settings.redis_url
    if not url:
        raise RuntimeError("no Redis URL: the worker needs YIHU_REDIS_URL (yihu run passes its embedded one)")
    connection = redis.Redis.from_url(url)
    engine = get_engine(settings.resolved_database_url)
    limiter = Limiter(connection, bot_id_from_token(token), limits)
    telegram = TelegramChannel(BotApi(token, settings.telegram_api_url), limiter, renderer, engine, settings)
    context = Context(
        settings=settings, engine=engine, redis=connection, limiter=limiter, channels={telegram.name: telegram}
    )
    with _lock:
        previous, _context = _context, context
    if previous is not None:
        previous.close()
    return context


def configured() -> Context | None:
    """The context :func:`configure` set up in this process, if any."""
    with _lock:
        return _context


def current() -> Context:
    """The context :func:`configure` set up (the app configures every worker process before its jobs)."""
    with _lock:
        context = _context
    if context is None:
        raise RuntimeError("the worker context is not configured (start workers through bot.bootstrap)")
    return context


def reset() -> None:
    """Forget (and close) the current context."""
    global _context
    with _lock:
        previous, _context = _context, None
    if previous is not None:
        previous.close()
