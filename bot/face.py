"""What both faces share besides the conversation: the updates to ask for, the command menu, ports."""

from __future__ import annotations

from typing import Protocol

from bot.texts import plain
from config.settings import LANGUAGES, Language

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
