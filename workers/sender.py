"""Send one Bot API call synchronously: a plain ``httpx.Client`` posting the renderer's ready JSON.

The renderer already yields Bot API methods and parameters as plain data, so a worker needs no Telegram
library at all: one ``POST {api_url}/bot{token}/{method}`` with a JSON body, and Telegram's answer
(``{"ok": false, "error_code", "description", "parameters"}``) sorted into :mod:`workers.errors`.
DESIGN.md first named python-telegram-bot's ``telegram.Bot`` here; measured (bench/cost.py), its
import and its event-loop thread cost a worker ~6 MB of an 80 MB budget and bought nothing the raw call
does not do. One ``httpx.Client`` (one connection pool, thread-safe) per worker process.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.outgoing import Outgoing
from workers.errors import BadRequest, ChatMigrated, RetryLater, SendError, Unreachable

NETWORK_RETRY_HINT_S = 1.0


class Sender:
    """One HTTP connection pool to the Bot API; :meth:`send` is blocking and thread-safe."""

    def __init__(self, token: str, api_url: str = "https://api.telegram.org", *, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._base = f"{api_url.rstrip('/')}/bot{token}/"
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=5.0, pool=5.0),
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )
        self._closed = False

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """One raw Bot API call; returns its ``result``. Telegram's refusals come out as exceptions.

        Raises:
            Unreachable: 403.
            RetryLater: 429 (``flood=True``, Telegram's ``retry_after``), or a network error / 5xx.
            ChatMigrated: the group became a supergroup (``migrate_to_chat_id``).
            BadRequest: 400 and other permanent refusals (401/404/409 too: retrying will not help).
            SendError: anything else Telegram refused.
        """
        if self._closed:
            raise RuntimeError("sender is closed")
        try:
            response = self._client.post(self._base + method, json=params)
        except httpx.HTTPError as exc:  # timeouts, refused connections, broken streams
            raise RetryLater(NETWORK_RETRY_HINT_S, f"{type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if response.status_code >= 500:
                raise RetryLater(NETWORK_RETRY_HINT_S, f"{response.status_code} {response.reason_phrase}")
            raise SendError(f"{response.status_code}: not a Bot API answer")
        if body.get("ok"):
            return body.get("result")
        raise _refusal(int(body.get("error_code") or response.status_code), body)

    def send(self, outgoing: Outgoing) -> dict[str, Any]:
        """Perform ``outgoing``; the API's result (a Message as a dict; ``{}`` when it answers ``true``)."""
        result = self.call(outgoing.method, outgoing.params)
        return result if isinstance(result, dict) else {}

    def close(self) -> None:
        """Close the connection pool."""
        if not self._closed:
            self._closed = True
            self._client.close()


def _refusal(code: int, body: dict[str, Any]) -> SendError:
    description = str(body.get("description") or f"error {code}")
    parameters = body.get("parameters") or {}
    if code == 429:
        retry_after = parameters.get("retry_after")
        seconds = float(retry_after) if isinstance(retry_after, int | float) else NETWORK_RETRY_HINT_S
        return RetryLater(seconds, description, flood=True)
    migrated = parameters.get("migrate_to_chat_id")
    if isinstance(migrated, int):
        return ChatMigrated(migrated)
    if code == 403:
        return Unreachable(description)
    if code in (400, 401, 404, 409):
        return BadRequest(description)
    if code >= 500:
        return RetryLater(NETWORK_RETRY_HINT_S, description)
    return SendError(description)
