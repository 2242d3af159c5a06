"""What can go wrong while delivering one notification, as typed exceptions the delivery job sorts out."""

from __future__ import annotations

# The renderer (bot/render.py) raises bot.outgoing.NotReady for an edit whose original message has no
# message id yet; one class, re-exported here so the workers name it in their own vocabulary.
from bot.outgoing import NotReady as NotReady

__all__ = ["BadRequest", "ChatMigrated", "NotReady", "RetryLater", "SendError", "Unreachable"]


class SendError(Exception):
    """A Bot API call did not succeed."""


class Unreachable(SendError):
    """403: the user never started the bot or blocked it; retrying will not help."""


class RetryLater(SendError):
    """429 (``flood`` true, ``retry_after`` from Telegram) or a transient network / 5xx error (a hint)."""

    def __init__(self, seconds: float, description: str = "", *, flood: bool = False) -> None:
        super().__init__(description or f"retry in {seconds:g} s")
        self.seconds = seconds
        self.flood = flood
        self.description = description


class ChatMigrated(SendError):
    """400: the group became a supergroup with a new chat id."""

    def __init__(self, new_chat_id: int) -> None:
        super().__init__(f"chat migrated to {new_chat_id}")
        self.new_chat_id = new_chat_id


class BadRequest(SendError):
    """400 (or another permanent refusal): ``description`` is Telegram's text."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    @property
    def not_modified(self) -> bool:
        """An edit that changes nothing: the message already says it, count it as sent."""
        return "message is not modified" in self.description.lower()
