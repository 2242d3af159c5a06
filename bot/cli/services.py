"""``yihu run``, ``yihu bot``, ``yihu worker``, ``yihu web`` and ``yihu demo``: the long-running services.

Each imports its framework inside the command body, so a worker never loads aiogram.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from bot.cli.common import database, fail, handle_missing_setting, load_settings
from bot.cli.messages import say
from config.settings import Settings


def _service_logging() -> None:
    """Services tell the operator what they do: INFO for yihu's own loggers (stderr)."""
    for name in ("bot", "workers", "groups", "yihu"):
        logging.getLogger(name).setLevel(logging.INFO)


@handle_missing_setting
def run() -> None:
    """Everything in one process group: migrations, Redis (embedded unless YIHU_REDIS_URL), workers, the bot.

    The bot's face is python-telegram-bot unless YIHU_FRAMEWORK=aiogram. Runs in the foreground until
    SIGTERM or Ctrl-C, then stops gracefully.
    """
    from bot.runtime import run_all  # noqa: PLC0415  (lazy: see bot.cli)

    _service_logging()
    run_all(load_settings())


def _scale_out_settings(needs_redis: str) -> tuple[Settings, str]:
    """A scale-out process's settings: the token and a shared Redis are required (one sentence each)."""
    settings = load_settings()
    settings.require_token()
    if not settings.redis_url:
        fail(say(needs_redis), 2)
    _service_logging()
    return settings, settings.redis_url


@handle_missing_setting
def bot_command() -> None:
    """The Telegram face alone (polling, or webhook with YIHU_WEBHOOK_URL); needs YIHU_REDIS_URL.

    The face is python-telegram-bot unless YIHU_FRAMEWORK=aiogram (the same behaviour).
    """
    from bot.runtime import run_bot  # noqa: PLC0415  (lazy: see bot.cli)

    settings, redis_url = _scale_out_settings("cli.bot_needs_redis")
    run_bot(settings, redis_url)


@handle_missing_setting
def worker_command(
    burst: Annotated[bool, typer.Option("--burst", help="Stop once the queues are empty.")] = False,
) -> None:
    """One delivery worker (sending, retries, escalation timers, the outbox sweeper); needs YIHU_REDIS_URL."""
    from bot.bootstrap import run_worker_process  # noqa: PLC0415  (lazy: see bot.cli)

    settings, _ = _scale_out_settings("cli.worker_needs_redis")
    database(settings)
    run_worker_process(settings, burst=burst)


@handle_missing_setting
def web_command() -> None:
    """The web listener alone on YIHU_WEB_LISTEN (health, metrics, the desk), for scale-out; needs YIHU_REDIS_URL.

    The bot and the workers run elsewhere (`yihu bot`, `yihu worker`) on the same database and Redis.
    """
    from bot.runtime import run_web  # noqa: PLC0415  (lazy: see bot.cli)

    settings, redis_url = _scale_out_settings("cli.web_needs_redis")
    run_web(settings, redis_url)


@handle_missing_setting
def demo(
    port: Annotated[int, typer.Option("--port", help="Port of the built-in Telegram emulator.")] = 8089,
    walkthrough: Annotated[
        bool, typer.Option("--walkthrough/--no-walkthrough", help="Play one alert through before serving.")
    ] = True,
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop after the walk-through instead of serving until Ctrl-C.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the logs here instead of in the data directory's log file.")
    ] = False,
) -> None:
    """Everything on embedded defaults with a built-in Telegram emulator and a sample village; no token needed.

    Serves the village simulator (every simulated phone, live in a browser) on YIHU_WEB_LISTEN (default
    127.0.0.1:8088) and prints its URL first; links the simulated villagers, binds their group chats, plays
    one alert through, then keeps serving until Ctrl-C. Logs go to a file in the data directory.
    """
    # The one place product code reaches into the sandbox (tests/test_architecture.py allows only this).
    from bot.sandbox.demo import run_demo  # noqa: PLC0415

    _service_logging()
    verbose = verbose or logging.getLogger().level <= logging.DEBUG  # `yihu -v demo` too
    run_demo(load_settings(), port=port, walkthrough=walkthrough, exit_after=exit_after, verbose=verbose)
