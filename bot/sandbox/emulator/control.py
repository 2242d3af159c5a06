"""HTTP control API of the emulator (``/_emu/...``); every answer is ``{"ok": true, "result": ...}``
or ``{"ok": false, "description": ...}`` with a 4xx status. Endpoints are listed in ``bot.sandbox.emulator``."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.sandbox.emulator.errors import ApiError

if TYPE_CHECKING:
    from bot.sandbox.emulator.emulator import Emulator

JSON = dict[str, Any]
Route = Callable[[web.Request], Awaitable[web.Response]]


def _ok(result: Any) -> web.Response:
    return web.Response(
        text=json.dumps({"ok": True, "result": result}, ensure_ascii=False), content_type="application/json"
    )


def _fail(status: int, description: str) -> web.Response:
    return web.Response(
        text=json.dumps({"ok": False, "error_code": status, "description": description}, ensure_ascii=False),
        status=status,
        content_type="application/json",
    )


async def _body(request: web.Request) -> JSON:
    if not request.can_read_body:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _opt_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "on")


def add_control_routes(app: web.Application, emu: Emulator) -> None:
    # Long on purpose: one small nested handler per control route, read as one table of the API.
    def wrap(fn: Callable[[web.Request, JSON], Awaitable[Any]]) -> Route:
        async def handler(request: web.Request) -> web.Response:
            try:
                body = await _body(request) if request.method in ("POST", "PUT", "PATCH") else {}
                return _ok(await fn(request, body))
            except ApiError as exc:
                return _fail(400 if exc.code >= 500 else exc.code, exc.description)
            except (KeyError, TypeError, ValueError) as exc:
                return _fail(400, f"{type(exc).__name__}: {exc}")

        return handler

    async def create_user(request: web.Request, b: JSON) -> Any:
        return emu.create_user(
            b.get("first_name", "User"),
            id=_opt_int(b.get("id")),
            last_name=b.get("last_name"),
            username=b.get("username"),
            language_code=b.get("language_code", "zh"),
        )

    async def get_user(request: web.Request, b: JSON) -> Any:
        return emu.get_user(int(request.match_info["user_id"]))

    async def send(request: web.Request, b: JSON) -> Any:
        return emu.user_sends_text(
            int(b["user_id"]),
            str(b["text"]),
            token=b.get("token"),
            chat_id=_opt_int(b.get("chat_id")),
            reply_to_message_id=_opt_int(b.get("reply_to_message_id")),
        )

    async def location(request: web.Request, b: JSON) -> Any:
        return emu.user_sends_location(
            int(b["user_id"]),
            float(b["latitude"]),
            float(b["longitude"]),
            token=b.get("token"),
            chat_id=_opt_int(b.get("chat_id")),
            horizontal_accuracy=b.get("horizontal_accuracy"),
            live_period=_opt_int(b.get("live_period")),
        )

    async def move_location(request: web.Request, b: JSON) -> Any:
        return emu.user_moves_location(
            int(b["user_id"]),
            int(b["message_id"]),
            float(b["latitude"]),
            float(b["longitude"]),
            token=b.get("token"),
            chat_id=_opt_int(b.get("chat_id")),
        )

    async def voice(request: web.Request, b: JSON) -> Any:
        data = base64.b64decode(b["data_b64"]) if b.get("data_b64") else None
        return emu.user_sends_voice(
            int(b["user_id"]),
            int(b.get("duration", 3)),
            data=data,
            mime_type=b.get("mime_type", "audio/ogg"),
            token=b.get("token"),
            chat_id=_opt_int(b.get("chat_id")),
            caption=b.get("caption"),
        )

    async def press(request: web.Request, b: JSON) -> Any:
        return emu.press_button(
            int(b["user_id"]), int(b["chat_id"]), int(b["message_id"]), str(b["data"]), force=bool(b.get("force"))
        )

    async def callback_answer(request: web.Request, b: JSON) -> Any:
        return emu.callback_answer(request.match_info["query_id"])

    async def callback_answers(request: web.Request, b: JSON) -> Any:
        return [cb.to_json() for cb in emu.callbacks.values()]

    async def create_group(request: web.Request, b: JSON) -> Any:
        return emu.create_group(
            str(b.get("title", "Group")),
            [int(m) for m in b.get("members", [])],
            type=b.get("type", "group"),
            id=_opt_int(b.get("id")),
            creator_id=_opt_int(b.get("creator_id")),
        )

    async def add_bot(request: web.Request, b: JSON) -> Any:
        return emu.add_bot_to_group(
            int(request.match_info["chat_id"]),
            token=b.get("token"),
            by_user_id=_opt_int(b.get("by_user_id")),
            status=b.get("status", "member"),
        )

    async def remove_bot(request: web.Request, b: JSON) -> Any:
        return emu.remove_bot_from_group(
            int(request.match_info["chat_id"]),
            token=b.get("token"),
            by_user_id=_opt_int(b.get("by_user_id")),
            status=b.get("status", "kicked"),
            notify=bool(b.get("notify", True)),
        )

    async def join(request: web.Request, b: JSON) -> Any:
        return emu.user_joins_group(int(request.match_info["chat_id"]), int(b["user_id"]))

    async def migrate(request: web.Request, b: JSON) -> Any:
        return emu.migrate_group(
            int(request.match_info["chat_id"]),
            by_user_id=_opt_int(b.get("by_user_id")),
            new_chat_id=_opt_int(b.get("new_chat_id")),
        )

    async def block(request: web.Request, b: JSON) -> Any:
        return emu.block(int(b["user_id"]), token=b.get("token"), blocked=bool(b.get("blocked", True)))

    async def get_chat(request: web.Request, b: JSON) -> Any:
        return emu.get_chat_info(int(request.match_info["chat_id"]))

    async def messages(request: web.Request, b: JSON) -> Any:
        q = request.query
        return emu.chat_messages(
            int(request.match_info["chat_id"]), token=q.get("token") or None, include_all=_flag(q.get("all"))
        )

    async def calls(request: web.Request, b: JSON) -> Any:
        q = request.query
        return emu.call_log(
            since=float(q["since"]) if q.get("since") else None,
            method=q.get("method") or None,
            token=q.get("token") or None,
            after_seq=_opt_int(q.get("after_seq")),
            errors_only=_flag(q.get("errors_only")),
        )

    async def feed(request: web.Request, b: JSON) -> Any:
        q = request.query
        chats = [int(c) for c in q["chats"].split(",") if c] if "chats" in q else None  # "chats=": none
        return await emu.feed.wait(
            emu.chats, int(q.get("after") or 0), chats, float(q.get("timeout") or 0)
        )

    async def updates(request: web.Request, b: JSON) -> Any:
        return emu.pending_updates(request.query.get("token") or None)

    async def limits(request: web.Request, b: JSON) -> Any:
        return emu.set_limits(**b)

    async def faults(request: web.Request, b: JSON) -> Any:
        replace = bool(b.pop("replace", False))
        return emu.set_faults(replace=replace, **b)

    async def reset(request: web.Request, b: JSON) -> Any:
        await emu.reset()
        return True

    async def state(request: web.Request, b: JSON) -> Any:
        return emu.state()

    async def register_bot(request: web.Request, b: JSON) -> Any:
        token = b.get("token") or emu.config.default_token
        if b.get("username"):
            emu.config.bot_usernames[token] = str(b["username"])
        bot = emu.bot(token)
        if b.get("username"):
            bot.username = str(b["username"])
        if b.get("first_name"):
            bot.first_name = str(b["first_name"])
        return {**bot.user_json(), "token": bot.token}

    r = app.router
    r.add_post("/_emu/users", wrap(create_user))
    r.add_get("/_emu/users/{user_id}", wrap(get_user))
    r.add_post("/_emu/bots", wrap(register_bot))
    r.add_post("/_emu/send", wrap(send))
    r.add_post("/_emu/location", wrap(location))
    r.add_post("/_emu/location/move", wrap(move_location))
    r.add_post("/_emu/voice", wrap(voice))
    r.add_post("/_emu/press", wrap(press))
    r.add_get("/_emu/callback_answers", wrap(callback_answers))
    r.add_get("/_emu/callback_answers/{query_id}", wrap(callback_answer))
    r.add_post("/_emu/groups", wrap(create_group))
    r.add_post("/_emu/groups/{chat_id}/add_bot", wrap(add_bot))
    r.add_post("/_emu/groups/{chat_id}/remove_bot", wrap(remove_bot))
    r.add_post("/_emu/groups/{chat_id}/join", wrap(join))
    r.add_post("/_emu/groups/{chat_id}/migrate", wrap(migrate))
    r.add_post("/_emu/block", wrap(block))
    r.add_get("/_emu/chats/{chat_id}", wrap(get_chat))
    r.add_get("/_emu/chats/{chat_id}/messages", wrap(messages))
    r.add_get("/_emu/calls", wrap(calls))
    r.add_get("/_emu/feed", wrap(feed))
    r.add_get("/_emu/updates", wrap(updates))
    r.add_post("/_emu/limits", wrap(limits))
    r.add_post("/_emu/faults", wrap(faults))
    r.add_post("/_emu/reset", wrap(reset))
    r.add_get("/_emu/state", wrap(state))
