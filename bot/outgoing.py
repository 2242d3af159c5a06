"""What the renderer yields: plain data a sender turns into one Bot API call (no Telegram library here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


class NotReady(Exception):
    """The message cannot be rendered yet (an edit whose original has not been sent): try again shortly."""
