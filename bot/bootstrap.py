"""The one composition root: it wires real parts together for the conversation and for the workers.

The conversation gets the database, Redis queues and timers; a worker process gets the renderer and the
channels (the workers know no template). Worker processes start here (:func:`start_worker_processes`
spawns ``python -m bot.worker``, which calls :func:`run_worker_process`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from bot.conversation import Conversation, Ports, Router
from bot.features.alerts.router import router as alerts
from bot.features.cases.router import router as cases
from bot.features.desk.router import router as desk
from bot.features.onboarding.router import router as onboarding
from bot.render import render_notification
from config.settings import Settings
from groups.db import get_engine
from workers import context as worker_context
from workers import timers
from workers.fanout import enqueue_batches, enqueue_use_cases
from workers.inline import InlineConfirmations
from workers.limiter import Limiter, Limits, bot_id_from_token
from workers.process import run_worker, spawn_processes

if TYPE_CHECKING:
    from aiohttp import web

    from bot.web.app import Setup, WebContext

WORKER_ENTRY = "bot.worker"
# The conversation's features in order: the first router whose text matches wins (the help button
# before the alert feature's SOS texts; the alert feature says what any other text means).
ROUTERS: tuple[Router, ...] = (onboarding, alerts, cases, desk)


def build_conversation(settings: Settings, redis_url: str, bot_username: str) -> tuple[Conversation, Limiter]:
    """The conversation wired to the database and Redis, and the shared limiter for the face's replies.
    With ``YIHU_INGEST_CONFIRM_THREADS`` > 0 this process's worker context is configured too: the bot sends
    its batches' confirmations itself (:mod:`workers.inline`); :func:`close_conversation` stops that."""
    token = settings.require_token()
    engine = get_engine(settings.resolved_database_url)
    connection = redis.Redis.from_url(redis_url)

    def enqueue(ids: list[int]) -> None:
        enqueue_batches(connection, ids, engine)

    def enqueue_many(use_cases: list[list[int]]) -> None:
        enqueue_use_cases(connection, use_cases, engine)

    confirmations: InlineConfirmations | None = None
    if settings.ingest_confirm_threads > 0:
        # The bot delivers its batches' confirmations itself, through the workers' delivery path.
        context = configure_workers(settings, redis_url=redis_url)

        def enqueue_after(use_cases: list[list[int]]) -> None:
            enqueue_use_cases(connection, use_cases, engine, flood=len(use_cases) > 1)

        confirmations = InlineConfirmations(
            context,
            enqueue_after,
            threads=settings.ingest_confirm_threads,
            max_wait_s=settings.ingest_confirm_max_wait_s,
            hold_max_s=settings.ingest_confirm_hold_s,
        )

    ports = Ports(
        settings=settings,
        engine=engine,
        bot_id=int(bot_id_from_token(token)),
        bot_username=bot_username,
        enqueue=enqueue,
        enqueue_many=enqueue_many,
        arm=lambda due: timers.arm(connection, due),
        confirmations=confirmations,
    )
    return Conversation(ports, ROUTERS), Limiter(connection, bot_id_from_token(token))


def configure_workers(
    settings: Settings, *, redis_url: str | None = None, limits: Limits | None = None
) -> worker_context.Context:
    """This process's worker context with the real renderer and channels (jobs run in-process)."""
    return worker_context.configure(settings, redis_url=redis_url, renderer=render_notification, limits=limits)


def run_worker_process(
    settings: Settings, burst: bool = False, *, redis_url: str | None = None, logging_level: str = "INFO"
) -> bool:
    """One delivery worker with the real renderer and channels (``python -m bot.worker``, ``yihu worker``)."""
    return run_worker(
        settings, burst, redis_url=redis_url, renderer=render_notification, logging_level=logging_level
    )


def start_worker_processes(
    settings: Settings,
    n: int,
    *,
    redis_url: str | None = None,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> list[subprocess.Popen[bytes]]:
    """Spawn ``n`` ``python -m bot.worker`` children with these settings (``yihu run`` uses it)."""
    argv = [sys.executable, "-m", WORKER_ENTRY, *extra_args]
    return spawn_processes(argv, settings, n, redis_url=redis_url, env=env)


def close_conversation(conversation: Conversation, timeout: float = 10.0) -> None:
    """On a graceful stop: let the confirmations being sent finish and queue what is held."""
    confirmations = conversation.ports.confirmations
    if isinstance(confirmations, InlineConfirmations):
        confirmations.close(timeout)
        if worker_context.configured() is confirmations.context:
            worker_context.reset()


def web_context(settings: Settings, redis_url: str | None) -> WebContext:
    """What the web parts share: the settings, the database engine and Redis."""
    from bot.web.app import WebContext  # noqa: PLC0415  (workers import this module: no aiohttp/jinja2 there)

    return WebContext(settings=settings, engine=get_engine(settings.resolved_database_url), redis_url=redis_url)


def web_parts(settings: Settings) -> list[Setup]:
    """The web listener's parts, in order, for ``yihu run``, ``yihu web`` and ``yihu demo``: health and metrics,
    the staff desk (in ``yihu demo`` the simulator comes after them)."""
    from bot.web import desk, health, metrics  # noqa: PLC0415  (see web_context)

    return [health.setup, metrics.setup, desk.setup]


def web_app(settings: Settings, redis_url: str | None, extra_parts: Sequence[Setup] = ()) -> web.Application:
    """The web application of :func:`web_parts` then ``extra_parts`` (the simulator, the webhook slot)."""
    from bot.web.app import build_web_app  # noqa: PLC0415  (see web_context)

    return build_web_app(web_context(settings, redis_url), [*web_parts(settings), *extra_parts])
