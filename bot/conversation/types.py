"""What one turn of the conversation is made of: the update in, the replies out, the ports it is wired to."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session

from bot.render.texts import plain, t
from config.settings import Language, Settings
from groups.directory import linked_member
from groups.effects import Effects, Timer
from groups.errors import UserError
from groups.model import Member, utcnow

SOS_TEXT = "6995"
_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{3,64}))?(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Incoming:
    """What the conversation needs of one Telegram update, whichever library parsed it."""

    update_id: int
    chat_id: int
    chat_type: str  # private | group | supergroup | channel
    user_id: int | None
    language_code: str | None = None
    text: str | None = None
    message_id: int | None = None
    voice: bool = False
    location: tuple[float, float] | None = None
    callback_id: str | None = None
    callback_data: str | None = None
    migrate_to_chat_id: int | None = None
    live_period: int | None = None  # a live location's period (seconds); None for a plain location
    edited: bool = False  # an ``edited_message``: a live location moving, or a text edited (ignored)
    bot_status: str | None = None  # ``my_chat_member``: the bot's new status in the chat (left, kicked...)

    @property
    def private(self) -> bool:
        return self.chat_type == "private"


@dataclass(frozen=True)
class Reply:
    """A message to send back into the chat the update came from."""

    text: str
    reply_markup: dict[str, Any] | None = None
    link_preview: bool = True  # False: Telegram fetches no preview of a link (a /desk login link is single use)


@dataclass
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    callback_answer: str | None = None
    callback_alert: bool = False
    duplicate: bool = False


class ConfirmationsPort(Protocol):
    """Where the reporters' confirmations go when the bot process sends them itself
    (:class:`workers.inline.InlineConfirmations`): claimed in the batch's transaction, sent after its commit;
    what else the batch owes is queued after them."""

    def claim(self, session: Session, ids: Sequence[int]) -> Sequence[Any]: ...

    def send(self, claims: Sequence[Any]) -> None: ...

    def enqueue_after(self, use_cases: list[list[int]]) -> None: ...

    def holding(self) -> AbstractContextManager[None]: ...


@dataclass
class Ports:
    """What the conversation is wired to (bootstrap builds the real ones, tests may wire others)."""

    settings: Settings
    engine: Engine
    bot_id: int
    bot_username: str
    enqueue: Callable[[list[int]], None]  # one use case's outbox ids
    arm: Callable[[list[Timer]], None]
    clock: Callable[[], datetime] = utcnow
    # Several use cases' outbox ids at once (a batch of updates), in one round of Redis calls; when not
    # wired, ``enqueue`` is called for each.
    enqueue_many: Callable[[list[list[int]]], None] | None = None
    # The bot sends its batches' confirmations itself (None: the workers do, like every other row).
    confirmations: ConfirmationsPort | None = None

    def enqueue_use_cases(self, use_cases: list[list[int]]) -> None:
        if self.enqueue_many is not None:
            self.enqueue_many(use_cases)
            return
        for ids in use_cases:
            self.enqueue(ids)


@dataclass
class Turn:
    """One update being handled: its session, user language, the time and what it leaves behind."""

    session: Session
    incoming: Incoming
    language: Language
    now: datetime
    outcome: Outcome = field(default_factory=Outcome)
    effects: Effects = field(default_factory=Effects)
    _member: Member | None = field(default=None, init=False, repr=False)
    _looked_up: bool = field(default=False, init=False, repr=False)
    _refusal: UserError | None = field(default=None, init=False, repr=False)

    def member(self) -> Member:
        """The linked, active member who sent this update, else the core's refusal (``linked_member``'s
        UserError); looked up once."""
        member = self.member_or_none()
        if member is None:
            assert self._refusal is not None
            raise self._refusal
        return member

    def member_or_none(self) -> Member | None:
        """The sender as a linked, active member, or None for a stranger (looked up on first use, so after
        ``/start`` has linked them when that is what the update does)."""
        if not self._looked_up:
            assert self.incoming.user_id is not None
            try:
                self._member = linked_member(self.session, self.incoming.user_id)
            except UserError as refusal:
                self._member, self._refusal = None, refusal
            self._looked_up = True
        return self._member

    def reply(self, key: str, reply_markup: dict[str, Any] | None = None, **params: Any) -> None:
        self.outcome.replies.append(Reply(t(self.language, key, **params), reply_markup))

    def answer(self, key: str, alert: bool = False, **params: Any) -> None:
        self.outcome.callback_answer = plain(self.language, key, **params)
        self.outcome.callback_alert = alert


def parse_command(text: str, bot_username: str) -> tuple[str, str] | None:
    """``/cmd@bot args`` -> ("cmd", "args"); None when not a command or addressed to another bot."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    name, addressee, args = match.groups()
    if addressee and addressee.lower() != bot_username.lower():
        return None
    return name.lower(), (args or "").strip()




class Handling(Protocol):
    """What a feature's handler may ask of the conversation it runs in."""

    ports: Ports

    def user_info(self, turn: Turn) -> Any: ...

    def keyboard(self, turn: Turn) -> dict[str, Any]: ...
