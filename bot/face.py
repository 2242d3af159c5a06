"""What both faces share besides the conversation: the updates to ask for, the command menu, ports."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from bot.texts import plain
from config.settings import LANGUAGES, Language

log = logging.getLogger(__name__)

REPLY_ATTEMPTS = 3

# aiogram derives allowed_updates from its handlers; ask explicitly or button presses never arrive.
ALLOWED_UPDATES: tuple[str, ...] = ("message", "callback_query", "my_chat_member")

# The default menu (every user); staff commands are listed by /help for those allowed to use them.
MENU: tuple[str, ...] = ("sos", "cancel", "help", "start")


class LimiterPort(Protocol):
    def reserve(self, chat_id: int, max_wait: float | None = None) -> float: ...


def command_menu(fallback: Language) -> dict[str, list[tuple[str, str]]]:
    """Per Telegram language code ('' = everyone else, in the fallback language): [(command, description)]."""
    menus: dict[str, list[tuple[str, str]]] = {
        language: [(name, plain(language, f"cmd.{name}")) for name in MENU] for language in LANGUAGES
    }
    menus[""] = menus[fallback]
    return menus


def seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def send_reply(
    send: Callable[[], Awaitable[object]], retry_after: Callable[[Exception], float | None], chat_id: int
) -> None:
    """Send one direct reply; a 429 is honoured (wait ``retry_after``, try again), other errors are logged."""
    for attempt in range(1, REPLY_ATTEMPTS + 1):
        try:
            await send()
            return
        except Exception as exc:
            wait = retry_after(exc)
            if wait is None or attempt == REPLY_ATTEMPTS:
                log.warning("reply to chat %s failed: %s", chat_id, exc)
                return
            await asyncio.sleep(wait)
