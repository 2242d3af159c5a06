"""What a job needs besides its id — database, Redis, limiter, sender, renderer — set up once per process.

The worker process calls :func:`configure` with its settings; tests call it in-process with their own
URLs and may inject a renderer. Jobs call :func:`current`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Engine

from config.settings import Settings
from groups.db import get_engine
from workers.limiter import Limiter, Limits, bot_id_from_token
from workers.sender import Sender

if TYPE_CHECKING:
    from sqlmodel import Session

    from bot.outgoing import Outgoing
    from groups.model import Notification

Renderer = Callable[["Session", "Notification", Settings], "Outgoing | None"]


def default_renderer(session: Session, notification: Notification, settings: Settings) -> Outgoing | None:
    """``bot.render.render_notification``, imported on first use (it lives in another part)."""
    from bot.render import render_notification  # noqa: PLC0415

    result: Outgoing | None = render_notification(session, notification, settings)
    return result


@dataclass
class Context:
    """One process's delivery wiring."""

    settings: Settings
    engine: Engine
    redis: redis.Redis
    limiter: Limiter
    sender: Sender
    renderer: Renderer = default_renderer
    extra: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.sender.close()
        self.redis.close()


_context: Context | None = None
_lock = threading.Lock()


def configure(
    settings: Settings,
    *,
    redis_url: str | None = None,
    renderer: Renderer | None = None,
    limits: Limits | None = None,
) -> Context:
    """Build this process's context from ``settings`` (replacing any earlier one) and return it."""
    global _context
    token = settings.require_token()
    url = redis_url or settings.redis_url
    if not url:
        raise RuntimeError("no Redis URL: the worker needs YIHU_REDIS_URL (yihu run passes its embedded one)")
    connection = redis.Redis.from_url(url)
    context = Context(
        settings=settings,
        engine=get_engine(settings.resolved_database_url),
        redis=connection,
        limiter=Limiter(connection, bot_id_from_token(token), limits),
        sender=Sender(token, settings.telegram_api_url),
        renderer=renderer or default_renderer,
    )
    with _lock:
        previous, _context = _context, context
    if previous is not None:
        previous.close()
    return context


def configured() -> Context | None:
    """The context :func:`configure` set up in this process, if any (never builds one)."""
    with _lock:
        return _context


def current() -> Context:
    """The context :func:`configure` set up; configures from the environment on first use if none was."""
    with _lock:
        context = _context
    if context is None:
        from config.settings import get_settings  # noqa: PLC0415

        context = configure(get_settings())
    return context


def reset() -> None:
    """Forget (and close) the current context."""
    global _context
    with _lock:
        previous, _context = _context, None
    if previous is not None:
        previous.close()
