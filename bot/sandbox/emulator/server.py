"""The emulator over HTTP: the aiohttp app (Bot API, file downloads, control API) and starting it.

See the package docstring (``bot.sandbox.emulator``) for the HTTP endpoints.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.sandbox.emulator.config import DEFAULT_TOKEN, DEFAULT_USERNAME, EmulatorConfig, Faults, RateLimits
from bot.sandbox.emulator.control import add_control_routes
from bot.sandbox.emulator.emulator import Emulator
from bot.sandbox.emulator.errors import JSON, ApiError
from bot.sandbox.emulator.params import Upload, coerce

__all__ = [
    "DEFAULT_TOKEN",
    "DEFAULT_USERNAME",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "RateLimits",
    "RunningEmulator",
    "build_app",
    "start_emulator",
]


def build_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving the Bot API, file downloads and the control API."""
    # A flat list of routes and their small handlers: longer than 60 lines, one thing.
    app = web.Application(client_max_size=60 * 1024 * 1024)

    async def handle_api(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        params: JSON = {}
        files: dict[str, Upload] = {}
        for key, value in request.query.items():
            params[key] = coerce(key, value)
        try:
            if request.can_read_body:
                ctype = request.content_type
                if ctype == "application/json":
                    body = await request.json()
                    if isinstance(body, dict):
                        for key, value in body.items():
                            params[key] = coerce(key, value) if isinstance(value, str) else value
                elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                    form = await request.post()
                    for key, item in form.items():
                        if isinstance(item, str):
                            params[key] = coerce(key, item)
                        elif isinstance(item, web.FileField):
                            files[key] = Upload(item.filename, item.content_type, item.file.read())
                        elif isinstance(item, bytes | bytearray):
                            params[key] = coerce(key, bytes(item).decode("utf-8", "replace"))
        except ValueError:
            body_err = ApiError(400, "Bad Request: can't parse request body")
            emulator.log_call(token, method, params, 400, body_err, None)
            return web.json_response(body_err.payload(), status=400)
        response = await emulator.call(token, method, params, files)
        status = 200 if response.get("ok") else int(response.get("error_code", 500))
        return web.Response(
            text=json.dumps(response, ensure_ascii=False), status=status, content_type="application/json"
        )

    async def handle_file(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        try:
            emulator.bot(token)
        except ApiError as exc:
            return web.json_response(exc.payload(), status=exc.code)
        path = request.match_info["path"]
        for rec in emulator.files.values():
            if rec.file_path == path:
                return web.Response(body=rec.data, content_type=rec.mime_type or "application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def shutdown(_: web.Application) -> None:
        emulator.release_waiters()

    async def cleanup(_: web.Application) -> None:
        await emulator.close()

    app.router.add_route("*", "/bot{token}/{method}", handle_api)
    app.router.add_route("GET", "/file/bot{token}/{path:.+}", handle_file)
    add_control_routes(app, emulator)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app


class RunningEmulator:
    """A started emulator: ``url`` (``http://host:port``), ``port``, ``emulator`` and ``stop()``."""

    def __init__(self, emulator: Emulator, runner: web.AppRunner, host: str, port: int) -> None:
        self.emulator = emulator
        self.runner = runner
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self._stopped = False

    @property
    def token(self) -> str:
        return self.emulator.config.default_token

    @property
    def api_url(self) -> str:
        """``YIHU_TELEGRAM_API_URL`` for this emulator (same as ``url``)."""
        return self.url

    async def stop(self) -> None:
        """Stop serving (idempotent); waiting long polls end at once."""
        if self._stopped:
            return
        self._stopped = True
        self.emulator.release_waiters()
        await self.runner.cleanup()

    async def __aenter__(self) -> RunningEmulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_emulator(host: str = "127.0.0.1", port: int = 0, **config: Any) -> RunningEmulator:
    """Start an emulator on ``host:port`` (0 = a free port). ``config``: fields of :class:`EmulatorConfig`
    (``limits``/``faults`` may be dicts; ``limits=False`` disables rate limits)."""
    emulator = Emulator(**config)
    app = build_app(emulator)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = site._server
    if server is not None:
        sockets = getattr(server, "sockets", None)
        if sockets:
            bound = sockets[0].getsockname()[1]
    return RunningEmulator(emulator, runner, host, bound)
