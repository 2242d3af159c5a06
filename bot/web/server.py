"""Serving the web application: one aiohttp server on ``YIHU_WEB_LISTEN`` for as long as a block runs.

``yihu run`` serves it beside the bot (when ``YIHU_WEB_LISTEN`` equals ``YIHU_WEBHOOK_LISTEN`` the webhook
is one more part of the same application, :class:`bot.webhook.WebhookSlot`), ``yihu demo`` beside the
emulator, ``yihu web`` alone (:func:`run_web`, scale-out behind a balancer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from config.settings import MissingSetting

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 15.0  # requests in flight when the server stops get this long to finish


def parse_listen(value: str, variable: str = "YIHU_WEB_LISTEN", example: str = "127.0.0.1:8088") -> tuple[str, int]:
    """A listen setting as ``host:port`` (``[::1]:8088`` for IPv6) -> (host, port); ``MissingSetting`` naming
    ``variable`` otherwise."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise MissingSetting(
            "bad_listen_address", f"{variable} must be host:port (e.g. {example}), not {value!r}",
            variable=variable, example=example, value=value,
        )
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_web_listen(value: str) -> tuple[str, int]:
    """``YIHU_WEB_LISTEN`` -> (host, port)."""
    return parse_listen(value)


def same_listen(a: str, b: str) -> bool:
    """Whether two listen settings name the same address (``0.0.0.0:8080`` == ``:8080``)."""
    try:
        return parse_web_listen(a) == parse_web_listen(b)
    except MissingSetting:
        return False


@dataclass
class RunningWeb:
    """A started server: the address it listens on and its application."""

    host: str
    port: int
    app: web.Application

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextlib.asynccontextmanager
async def serve_web(app: web.Application, listen: str) -> AsyncIterator[RunningWeb]:
    """Serve ``app`` on ``listen`` (``host:port``) while the block runs; on leaving, stop accepting and let
    requests in flight finish. A port already taken raises :class:`MissingSetting` (``web_port_taken``)."""
    host, port = parse_web_listen(listen)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise MissingSetting(
                "web_port_taken",
                f"YIHU_WEB_LISTEN {listen} cannot be served ({exc.strerror or exc}); choose another address",
                listen=listen,
                error=exc.strerror or str(exc),
            ) from exc
        log.info("web listener on http://%s:%s (health, metrics)", host, port)
        yield RunningWeb(host, port, app)
    finally:
        await runner.cleanup()


async def serve_web_until(app: web.Application, listen: str, stop: asyncio.Event) -> None:
    """Serve ``app`` until ``stop`` is set (``yihu web``)."""
    async with serve_web(app, listen):
        await stop.wait()
