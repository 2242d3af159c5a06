"""Webhook mode, shared by both faces: one small aiohttp server.

``POST <path of YIHU_WEBHOOK_URL>``: an update from Telegram. The secret header is checked first (a
wrong or missing one -> 403, nothing processed); the face parses the update and the conversation
persists it before the server answers 200, so Telegram re-delivers whatever was not answered. Replies
go out in the background afterwards. ``GET /healthz``: 200 once the webhook is registered and the
database answers, 503 before. When ``YIHU_WEB_LISTEN`` equals ``YIHU_WEBHOOK_LISTEN`` the web listener serves
the webhook too: a :class:`WebhookSlot` is then one part of the web application, and the web's ``/healthz``
(bot/web/health.py: database, Redis, Telegram) is 503 until the webhook is registered and while stopping.
Several instances behind a balancer are safe: a duplicate update is
recognised by the conversation (unique constraint), whichever instance gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import Engine

from bot.web.health import OK, database_check
from bot.web.server import parse_listen
from config.settings import MissingSetting, Settings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_PATH = "/healthz"
_REGISTER_BACKOFF = (0.5, 15.0)  # first and longest pause between setWebhook attempts
_SHUTDOWN_S = 15.0  # updates in flight when the server stops get this long to be persisted


class UpdateRejected(ValueError):
    """The request body is not a Telegram update the face can read (answered 400)."""


class WebhookFace(Protocol):
    """What a face offers the webhook server."""

    async def open(self) -> None:
        """Get ready to handle updates (and publish the command menu)."""

    async def feed(self, data: dict[str, Any]) -> None:
        """Parse and handle one update; return once it is persisted, raise if it was not.
        A body that is no update raises :class:`UpdateRejected`."""

    async def register_webhook(self, url: str, secret: str | None) -> None:
        """setWebhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)."""

    async def close(self) -> None:
        """Let replies drain, release connections."""


def webhook_path(url: str) -> str:
    """The path Telegram posts to: the path of the public webhook URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MissingSetting("bad_webhook_url", f"YIHU_WEBHOOK_URL must be an https:// URL, not {url!r}", url=url)
    return parts.path or "/"


class WebhookSlot:
    """The webhook route as a part of another application (the web listener's, when the listens are equal).

    The route exists from the start (an application's routes are fixed once it serves); it answers 503
    (Telegram retries) until a :class:`WebhookServer` attaches, and the server waits on :meth:`detach` for
    the updates in flight before its face closes. :meth:`not_ready` is the web ``/healthz`` gate.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.webhook_url:
            raise MissingSetting("no_webhook_url", "YIHU_WEBHOOK_URL is not set")
        self.path = webhook_path(settings.webhook_url)
        self.server: WebhookServer | None = None
        self._stopped = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def setup(self, app: web.Application) -> None:
        app.router.add_post(self.path, self.on_update)

    def not_ready(self) -> str | None:
        server = self.server
        if self._stopped or (server is not None and server.stopping):
            return "stopping"
        if server is None or not server.registered:
            return "webhook not registered yet"
        return None

    async def on_update(self, request: web.Request) -> web.Response:
        server = self.server
        if server is None:
            return web.Response(status=503, text="not serving")
        self._in_flight += 1
        self._idle.clear()
        try:
            return await server.on_update(request)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def attach(self, server: WebhookServer) -> None:
        self.server = server

    async def detach(self, timeout: float) -> None:
        """New updates get 503 from now on; wait (at most ``timeout``) for those in flight."""
        self._stopped = True
        self.server = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)


class WebhookServer:
    """The HTTP side of webhook mode for one face: its own server on ``YIHU_WEBHOOK_LISTEN``, or ``slot``
    in the web listener's application."""

    def __init__(self, face: WebhookFace, settings: Settings, engine: Engine, slot: WebhookSlot | None = None) -> None:
        if not settings.webhook_url:
            raise MissingSetting("no_webhook_url", "YIHU_WEBHOOK_URL is not set")
        self.face = face
        self.url = settings.webhook_url
        self.secret = settings.webhook_secret
        if self.secret is None:
            log.warning("YIHU_WEBHOOK_SECRET is not set: anyone who finds the webhook URL can post updates")
        self.host, self.port = parse_listen(settings.webhook_listen, "YIHU_WEBHOOK_LISTEN", "0.0.0.0:8080")
        self.path = webhook_path(self.url)
        self.engine = engine
        self.registered = False
        self.stopping = False
        self.shared = slot is not None
        self.slot = slot or WebhookSlot(settings)
        self.app = web.Application()
        if not self.shared:
            self.slot.setup(self.app)
            self.app.router.add_get(HEALTH_PATH, self.on_health)

    async def on_update(self, request: web.Request) -> web.Response:
        if self.secret is not None:
            given = request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode(), self.secret.encode()):
                log.warning("webhook request from %s with a wrong or missing secret refused", request.remote)
                return web.Response(status=403, text="forbidden")
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return web.Response(status=400, text="not an update")
        try:
            await self.face.feed(data)
        except UpdateRejected as exc:
            log.warning("webhook body is not an update we can read: %s", exc)
            return web.Response(status=400, text="not an update")
        except Exception:
            # Not persisted: Telegram delivers it again.
            log.exception("update %s failed; answering 500 so Telegram retries", data.get("update_id"))
            return web.Response(status=500, text="failed")
        return web.Response(status=200)

    async def on_health(self, request: web.Request) -> web.Response:
        if not self.registered:
            return web.json_response({"ok": False, "reason": "webhook not registered yet"}, status=503)
        try:
            ok = await asyncio.wait_for(asyncio.to_thread(database_check, self.engine), 5) == OK
        except TimeoutError:
            ok = False
        if not ok:
            return web.json_response({"ok": False, "reason": "database does not answer"}, status=503)
        return web.json_response({"ok": True})

    async def _register(self, stop: asyncio.Event) -> bool:
        """setWebhook until it succeeds (True) or ``stop`` is set (False)."""
        delay, longest = _REGISTER_BACKOFF
        while not stop.is_set():
            try:
                await self.face.register_webhook(self.url, self.secret)
                log.info("webhook registered: %s", self.url)
                return True
            except Exception as exc:
                log.warning("setWebhook failed: %s; retrying in %.1f s", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, longest)
        return False

    async def serve(self, stop: asyncio.Event) -> None:
        """Listen (or take the slot in the web listener), register the webhook, serve until ``stop``; then
        finish requests and drain replies. The webhook stays registered: other instances behind the
        balancer keep serving it."""
        await self.face.open()
        runner = None if self.shared else web.AppRunner(self.app, access_log=None, shutdown_timeout=_SHUTDOWN_S)
        try:
            if runner is not None:
                await runner.setup()
                site = web.TCPSite(runner, self.host, self.port)
                await site.start()
                log.info("webhook server listening on %s:%s%s", self.host, self.port, self.path)
            else:
                log.info("webhook served by the web listener on %s:%s%s", self.host, self.port, self.path)
            self.slot.attach(self)
            if await self._register(stop):
                self.registered = True
                await stop.wait()
        finally:
            self.stopping = True
            self.registered = False
            # Stops accepting, then waits for requests in flight (their updates get persisted).
            if runner is not None:
                await runner.cleanup()
            else:
                await self.slot.detach(_SHUTDOWN_S)
            await self.face.close()


async def serve_webhook(
    face: WebhookFace, settings: Settings, engine: Engine, stop: asyncio.Event, slot: WebhookSlot | None = None
) -> None:
    """Webhook mode for ``face`` until ``stop`` is set (in the web listener's application with ``slot``)."""
    await WebhookServer(face, settings, engine, slot).serve(stop)
