"""The Telegram channel: Bot API calls as plain data, posted by a plain ``httpx.Client``.

The renderer (wired by the app) yields :class:`Outgoing` Bot API calls, so a worker needs no Telegram
library; :class:`BotApi` posts them and sorts Telegram's refusals (403, 429 ``retry_after``, a group
migrated to a supergroup, "message is not modified", other 400s) into the channel-neutral outcomes of
:mod:`workers.channels`. Why raw HTTP and not ``telegram.Bot``: docs/architecture.md ("Sending").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import Engine, update
from sqlmodel import col

from config.settings import Settings
from groups.db import session_scope
from groups.model import ChannelName, DeliveryStatus, Notification
from groups.onboarding import migrate_group_chat
from workers.channels import Receipt, Refused, RetryLater, Unreachable
from workers.limiter import Limiter

if TYPE_CHECKING:
    from sqlmodel import Session

log = logging.getLogger(__name__)

NETWORK_RETRY_HINT_S = 1.0
TELEGRAM_429_KEY = "yihu:metrics:telegram_429"  # 429s delivery got, for yihu_telegram_429_total (bot/web/metrics)
NAME = ChannelName.telegram.value

Button = dict[str, str]  # {"text": ..., "callback_data": ...} or {"text": ..., "url": ...}


@dataclass(frozen=True)
class Outgoing:
    """One Bot API call: ``method`` with ``params``; ``chat_id`` is the chat the limiter charges."""

    method: str  # sendMessage | editMessageText | copyMessage | sendLocation | sendVoice
    chat_id: int
    params: dict[str, Any] = field(default_factory=dict)


def inline_keyboard(rows: list[list[Button]]) -> dict[str, Any]:
    """A Bot API ``InlineKeyboardMarkup`` as a plain dict."""
    return {"inline_keyboard": rows}


def message(chat_id: int, text: str, buttons: list[list[Button]] | None = None, **extra: Any) -> Outgoing:
    """A ``sendMessage`` in HTML parse mode, with inline buttons when given."""
    params: dict[str, Any] = {"chat_id": chat_id, "text": text, "parse_mode": "HTML", **extra}
    if buttons:
        params["reply_markup"] = inline_keyboard(buttons)
    return Outgoing("sendMessage", chat_id, params)


def edit(chat_id: int, message_id: int, text: str, buttons: list[list[Button]] | None = None) -> Outgoing:
    """An ``editMessageText`` of a message the bot sent earlier."""
    params: dict[str, Any] = {"chat_id": chat_id, "message_id": message_id, "text": text, "parse_mode": "HTML"}
    if buttons:
        params["reply_markup"] = inline_keyboard(buttons)
    return Outgoing("editMessageText", chat_id, params)


Renderer = Callable[["Session", Notification, Settings], "Outgoing | None"]


class BotApiError(Exception):
    """Telegram refused a call: ``code`` is its ``error_code``, ``parameters`` its ``parameters``."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters or {}


class NetworkError(Exception):
    """No Bot API answer (a timeout, a refused connection, a page that is not the Bot API's JSON)."""


class BotApi:
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
            NetworkError: no Bot API answer (a timeout, a refused connection, a page that is not JSON).
            BotApiError: Telegram's refusal, with its code and parameters.
        """
        if self._closed:
            raise RuntimeError("the Bot API client is closed")
        try:
            response = self._client.post(self._base + method, json=params)
        except httpx.HTTPError as exc:  # timeouts, refused connections, broken streams
            raise NetworkError(f"{type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # A proxy's error page or a 5xx: not Telegram's refusal, so a passing fault (retried).
            raise NetworkError(f"{response.status_code} {response.reason_phrase}: not a Bot API answer")
        if body.get("ok"):
            return body.get("result")
        code = int(body.get("error_code") or response.status_code)
        description = str(body.get("description") or f"error {code}")
        parameters = body.get("parameters")
        raise BotApiError(code, description, parameters if isinstance(parameters, dict) else None)

    def send(self, outgoing: Outgoing) -> dict[str, Any]:
        """Perform ``outgoing``; the API's result (a Message as a dict; ``{}`` when it answers ``true``)."""
        result = self.call(outgoing.method, outgoing.params)
        return result if isinstance(result, dict) else {}

    def close(self) -> None:
        """Close the connection pool."""
        if not self._closed:
            self._closed = True
            self._client.close()


def _not_modified(error: BotApiError) -> bool:
    """An edit that changes nothing: the message already says it, count it as sent."""
    return "message is not modified" in error.description.lower()


@dataclass
class TelegramChannel:
    """The :class:`~workers.channels.Channel` for Telegram: a renderer, the shared limiter, the Bot API."""

    api: BotApi
    limiter: Limiter
    renderer: Renderer
    engine: Engine
    settings: Settings
    name: str = field(default=NAME)

    def render(self, session: Session, row: Notification) -> Outgoing | None:
        return self.renderer(session, row, self.settings)

    def pace(self, outgoing: Outgoing, max_wait: float) -> float:
        return self.limiter.reserve(outgoing.chat_id, max_wait=max_wait)

    def describe(self, outgoing: Outgoing) -> str:
        return f"{outgoing.method} to chat {outgoing.chat_id}"

    def send(self, outgoing: Outgoing) -> Receipt:
        """Post it; Telegram's refusals sorted into the channel-neutral outcomes."""
        try:
            result = self.api.send(outgoing)
        except NetworkError as exc:
            raise RetryLater(NETWORK_RETRY_HINT_S, str(exc)) from exc
        except BotApiError as exc:
            if _not_modified(exc):
                return Receipt()
            raise self._sorted(outgoing, exc) from exc
        message_id = result.get("message_id")
        return Receipt(message_id if isinstance(message_id, int) else None)

    def _sorted(self, outgoing: Outgoing, error: BotApiError) -> Exception:
        if error.code == 429:
            retry_after = error.parameters.get("retry_after")
            seconds = float(retry_after) if isinstance(retry_after, int | float) else NETWORK_RETRY_HINT_S
            slowed = self.limiter.penalize(outgoing.chat_id, seconds)
            self.limiter.connection.incr(TELEGRAM_429_KEY)
            log.warning(
                "429 from Telegram for chat %s, retry after %s s%s",
                outgoing.chat_id, seconds, " (whole token slowed)" if slowed else "",
            )
            return RetryLater(seconds, error.description, counted=False, outcome="rate_limited")
        migrated = error.parameters.get("migrate_to_chat_id")
        if isinstance(migrated, int):
            self._migrate(outgoing.chat_id, migrated)
            return RetryLater(0, f"chat migrated to {migrated}", counted=False, outcome="migrated")
        if error.code == 403:
            return Unreachable(error.description)
        if error.code in (400, 401, 404, 409):  # retrying will not help
            return Refused(error.description)
        return RetryLater(NETWORK_RETRY_HINT_S if error.code >= 500 else 0.0, error.description)

    def _migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """The group became a supergroup: move the binding (the core's rule) and the owed rows."""
        with session_scope(self.engine) as session:
            moved = migrate_group_chat(session, old_chat_id, new_chat_id)
            session.exec(
                update(Notification)
                .where(
                    col(Notification.chat_id) == old_chat_id,
                    col(Notification.status).in_([DeliveryStatus.pending, DeliveryStatus.sending]),
                )
                .values(chat_id=new_chat_id)
            )
        log.warning(
            "chat %s migrated to %s; %s", old_chat_id, new_chat_id,
            "binding updated" if moved else "no group was bound to it",
        )

    def close(self) -> None:
        self.api.close()
