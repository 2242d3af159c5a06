"""The emulator as one object: its state, what people do, and the Bot API on top."""

from __future__ import annotations

from bot.sandbox.emulator.bot_api import BotApi
from bot.sandbox.emulator.people import People


class Emulator(People, BotApi):
    """All emulator state with the operations of people and the control API as methods, and the Bot API
    (:meth:`call`). ``bot.sandbox.emulator.server`` serves it over HTTP."""
