"""Async client of the emulator's control API (``/_emu/...``)."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import aiohttp

JSON = dict[str, Any]

__all__ = ["EmulatorClient", "EmulatorError"]


class EmulatorError(RuntimeError):
    """The control API refused a request."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(f"{status}: {description}")
        self.status = status
        self.description = description


def _clean(data: JSON) -> JSON:
    return {k: v for k, v in data.items() if v is not None}


class EmulatorClient:
    """Drive a running emulator over HTTP. Use as ``async with EmulatorClient(url) as emu: ...``.

    ``token`` is the bot token used when a method's own ``token`` argument is omitted (None: the
    emulator's default token).
    """

    def __init__(self, url: str, *, token: str | None = None, session: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> EmulatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def _request(self, method: str, path: str, body: JSON | None = None, params: JSON | None = None) -> Any:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self._sess().request(method, f"{self.url}/_emu{path}", json=body, params=query) as resp:
            data = await resp.json(content_type=None)
        if not isinstance(data, dict) or not data.get("ok"):
            description = data.get("description", str(data)) if isinstance(data, dict) else str(data)
            raise EmulatorError(resp.status, description)
        return data["result"]

    def _tok(self, token: str | None) -> str | None:
        return token or self.token

    # ---------------------------------------------------------------- users, groups
    async def create_user(
        self,
        first_name: str = "User",
        *,
        id: int | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh",
    ) -> JSON:
        return await self._request(  # type: ignore[no-any-return]
            "POST",
            "/users",
            {
                "first_name": first_name,
                "id": id,
                "last_name": last_name,
                "username": username,
                "language_code": language_code,
            },
        )

    async def get_user(self, user_id: int) -> JSON:
        return await self._request("GET", f"/users/{user_id}")  # type: ignore[no-any-return]

    async def register_bot(
        self, token: str | None = None, *, username: str | None = None, first_name: str | None = None
    ) -> JSON:
        body = _clean({"token": self._tok(token), "username": username, "first_name": first_name})
        return await self._request("POST", "/bots", body)  # type: ignore[no-any-return]

    async def create_group(
        self,
        title: str,
        members: list[int] | None = None,
        *,
        type: str = "group",
        id: int | None = None,
        creator_id: int | None = None,
    ) -> JSON:
        body = _clean({"title": title, "members": members or [], "type": type, "id": id, "creator_id": creator_id})
        return await self._request("POST", "/groups", body)  # type: ignore[no-any-return]

    async def add_bot_to_group(
        self, chat_id: int, *, token: str | None = None, by_user_id: int | None = None, status: str = "member"
    ) -> JSON:
        body = _clean({"token": self._tok(token), "by_user_id": by_user_id, "status": status})
        return await self._request("POST", f"/groups/{chat_id}/add_bot", body)  # type: ignore[no-any-return]

    async def remove_bot_from_group(
        self,
        chat_id: int,
        *,
        token: str | None = None,
        by_user_id: int | None = None,
        status: str = "kicked",
        notify: bool = True,
    ) -> JSON:
        """Remove (``left``) or ban (``kicked``) the bot; ``notify=False``: the bot gets no my_chat_member
        and learns it from the 403 of its next post there."""
        body = _clean({"token": self._tok(token), "by_user_id": by_user_id, "status": status, "notify": notify})
        return await self._request("POST", f"/groups/{chat_id}/remove_bot", body)  # type: ignore[no-any-return]

    async def join_group(self, chat_id: int, user_id: int) -> JSON:
        return await self._request("POST", f"/groups/{chat_id}/join", {"user_id": user_id})  # type: ignore[no-any-return]

    async def migrate_group(
        self, chat_id: int, *, by_user_id: int | None = None, new_chat_id: int | None = None
    ) -> JSON:
        """Upgrade a group to a supergroup; returns ``{"old_chat_id", "new_chat_id", "updates"}``."""
        body = _clean({"by_user_id": by_user_id, "new_chat_id": new_chat_id})
        return await self._request("POST", f"/groups/{chat_id}/migrate", body)  # type: ignore[no-any-return]

    async def block(self, user_id: int, *, token: str | None = None, blocked: bool = True) -> JSON:
        body = _clean({"user_id": user_id, "token": self._tok(token), "blocked": blocked})
        return await self._request("POST", "/block", body)  # type: ignore[no-any-return]

    async def unblock(self, user_id: int, *, token: str | None = None) -> JSON:
        return await self.block(user_id, token=token, blocked=False)

    async def chat(self, chat_id: int) -> JSON:
        return await self._request("GET", f"/chats/{chat_id}")  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- user actions
    async def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        token: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSON:
        """The user sends ``text`` (private chat unless ``chat_id``); returns ``{"message", "update", "updates"}``."""
        body = _clean(
            {
                "user_id": user_id,
                "text": text,
                "chat_id": chat_id,
                "token": self._tok(token),
                "reply_to_message_id": reply_to_message_id,
            }
        )
        return await self._request("POST", "/send", body)  # type: ignore[no-any-return]

    async def send_location(
        self,
        user_id: int,
        latitude: float,
        longitude: float,
        *,
        chat_id: int | None = None,
        token: str | None = None,
        horizontal_accuracy: float | None = None,
        live_period: int | None = None,
    ) -> JSON:
        body = _clean(
            {
                "user_id": user_id,
                "latitude": latitude,
                "longitude": longitude,
                "chat_id": chat_id,
                "token": self._tok(token),
                "horizontal_accuracy": horizontal_accuracy,
                "live_period": live_period,
            }
        )
        return await self._request("POST", "/location", body)  # type: ignore[no-any-return]

    async def move_location(
        self,
        user_id: int,
        message_id: int,
        latitude: float,
        longitude: float,
        *,
        chat_id: int | None = None,
        token: str | None = None,
    ) -> JSON:
        """The user's live location ``message_id`` moves (an ``edited_message`` to the bot)."""
        body = _clean(
            {
                "user_id": user_id,
                "message_id": message_id,
                "latitude": latitude,
                "longitude": longitude,
                "chat_id": chat_id,
                "token": self._tok(token),
            }
        )
        return await self._request("POST", "/location/move", body)  # type: ignore[no-any-return]

    async def send_voice(
        self,
        user_id: int,
        duration: int = 3,
        *,
        data: bytes | None = None,
        mime_type: str = "audio/ogg",
        chat_id: int | None = None,
        token: str | None = None,
        caption: str | None = None,
    ) -> JSON:
        body = _clean(
            {
                "user_id": user_id,
                "duration": duration,
                "mime_type": mime_type,
                "chat_id": chat_id,
                "token": self._tok(token),
                "caption": caption,
                "data_b64": base64.b64encode(data).decode() if data is not None else None,
            }
        )
        return await self._request("POST", "/voice", body)  # type: ignore[no-any-return]

    async def press_button(self, user_id: int, chat_id: int, message_id: int, data: str, *, force: bool = False) -> str:
        """Press the inline button carrying ``data``; returns the callback query id."""
        body = {"user_id": user_id, "chat_id": chat_id, "message_id": message_id, "data": data, "force": force}
        result = await self._request("POST", "/press", body)
        return str(result["callback_query_id"])

    async def callback_answer(self, query_id: str) -> JSON:
        """``{"answered", "text", "show_alert", "url", ...}`` of one callback query."""
        return await self._request("GET", f"/callback_answers/{query_id}")  # type: ignore[no-any-return]

    async def callback_answers(self) -> list[JSON]:
        return await self._request("GET", "/callback_answers")  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- observation
    async def messages(self, chat_id: int, *, token: str | None = None, include_all: bool = False) -> list[JSON]:
        """Messages bots sent to the chat, oldest first, each with ``text``, ``reply_markup``, ``edits``..."""
        params = {"token": token, "all": "1" if include_all else None}
        return await self._request("GET", f"/chats/{chat_id}/messages", params=params)  # type: ignore[no-any-return]

    async def calls(
        self,
        *,
        method: str | None = None,
        since: float | None = None,
        token: str | None = None,
        after_seq: int | None = None,
        errors_only: bool = False,
    ) -> list[JSON]:
        params = {
            "method": method,
            "since": since,
            "token": token,
            "after_seq": after_seq,
            "errors_only": "1" if errors_only else None,
        }
        return await self._request("GET", "/calls", params=params)  # type: ignore[no-any-return]

    async def feed(self, after: int = 0, *, chats: list[int] | None = None, timeout: float = 0.0) -> JSON:
        """``{"seq", "messages"}``: the messages of ``chats`` (all when None, none when []; users' too, as
        they are now) changed after feed number ``after``, waiting up to ``timeout`` seconds (≤ 30) for one."""
        params = {
            "after": after,
            "chats": ",".join(str(c) for c in chats) if chats is not None else None,
            "timeout": timeout or None,
        }
        return await self._request("GET", "/feed", params=params)  # type: ignore[no-any-return]

    async def pending_updates(self, token: str | None = None) -> list[JSON]:
        return await self._request("GET", "/updates", params={"token": self._tok(token)})  # type: ignore[no-any-return]

    async def state(self) -> JSON:
        return await self._request("GET", "/state")  # type: ignore[no-any-return]

    async def wait_for_messages(
        self, chat_id: int, count: int = 1, timeout: float = 5.0, *, token: str | None = None, interval: float = 0.02
    ) -> list[JSON]:
        """Poll until the chat holds at least ``count`` bot messages; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = await self.messages(chat_id, token=token)
            if len(msgs) >= count:
                return msgs
            if time.monotonic() >= deadline:
                texts = [m.get("text") for m in msgs]
                raise TimeoutError(
                    f"chat {chat_id} has {len(msgs)} bot message(s) after {timeout}s, expected >= {count}; "
                    f"got: {texts!r}"
                )
            await asyncio.sleep(interval)

    # ---------------------------------------------------------------- configuration
    async def set_limits(self, **limits: Any) -> JSON:
        """Change rate limits: enabled, global_rate, global_capacity, private_rate, private_capacity,
        group_rate, group_capacity, tolerance."""
        return await self._request("POST", "/limits", limits)  # type: ignore[no-any-return]

    async def set_faults(self, *, replace: bool = False, **faults: Any) -> JSON:
        """Change faults: p500, p502, p429, retry_after, methods, delay, delay_methods,
        duplicate_update_probability, seed, fail_next=[{"method", "code", "count"}]."""
        return await self._request("POST", "/faults", {"replace": replace, **faults})  # type: ignore[no-any-return]

    async def fail_next(
        self,
        method: str,
        code: int = 500,
        count: int = 1,
        *,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> JSON:
        rule = _clean(
            {"method": method, "code": code, "count": count, "description": description, "retry_after": retry_after}
        )
        return await self.set_faults(fail_next=[rule])

    async def reset(self) -> None:
        await self._request("POST", "/reset", {})
