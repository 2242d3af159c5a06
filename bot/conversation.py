"""The conversation, face-neutral: an incoming update -> core call (one transaction) -> replies.

Both faces (aiogram, python-telegram-bot) turn their update objects into :class:`Incoming`, call
:meth:`Conversation.handle` and send the :class:`Outcome` back; no rule lives in a face. Updates are
deduplicated on ``update_id`` and on the callback query id (Telegram delivers at least once), in the
same transaction as what they cause; outbox rows and timers are handed to the workers after commit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot import callbacks, render
from bot.texts import plain, t
from config.settings import Language, Settings, pick_language
from groups import onboarding
from groups.db import session_scope
from groups.directory import who_is
from groups.effects import Effects
from groups.errors import UserError
from groups.model import ProcessedUpdate, utcnow

log = logging.getLogger(__name__)

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

    @property
    def private(self) -> bool:
        return self.chat_type == "private"


@dataclass(frozen=True)
class Reply:
    """A message to send back into the chat the update came from."""

    text: str
    reply_markup: dict[str, Any] | None = None


@dataclass
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    callback_answer: str | None = None
    callback_alert: bool = False
    duplicate: bool = False


@dataclass
class Ports:
    """What the conversation is wired to (bootstrap builds the real ones, tests may wire others)."""

    settings: Settings
    engine: Engine
    bot_id: int
    bot_username: str
    enqueue: Callable[[list[int]], None]
    arm: Callable[[list[tuple[int, datetime]]], None]
    clock: Callable[[], datetime] = utcnow


@dataclass
class Turn:
    """One update being handled: its session, user language, the time and what it leaves behind."""

    session: Session
    incoming: Incoming
    language: Language
    now: datetime
    outcome: Outcome = field(default_factory=Outcome)
    effects: Effects = field(default_factory=Effects)

    def reply(self, key: str, reply_markup: dict[str, Any] | None = None, **params: Any) -> None:
        self.outcome.replies.append(Reply(t(self.language, key, **params), reply_markup))

    def answer(self, key: str, alert: bool = False, **params: Any) -> None:
        self.outcome.callback_answer = plain(self.language, key, **params)
        self.outcome.callback_alert = alert


Handler = Callable[["Conversation", Turn, str], None]


def parse_command(text: str, bot_username: str) -> tuple[str, str] | None:
    """``/cmd@bot args`` -> ("cmd", "args"); None when not a command or addressed to another bot."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    name, addressee, args = match.groups()
    if addressee and addressee.lower() != bot_username.lower():
        return None
    return name.lower(), (args or "").strip()


class Conversation:
    """Handles updates; thread-safe (each call opens its own session)."""

    def __init__(self, ports: Ports) -> None:
        self.ports = ports
        self.private_commands: dict[str, Handler] = {}
        self.group_commands: dict[str, Handler] = {}
        self.callback_actions: dict[str, Callable[[Conversation, Turn, callbacks.Callback], None]] = {}
        self.text_handlers: list[Callable[[Conversation, Turn], bool]] = []
        self.media_handlers: list[Callable[[Conversation, Turn], bool]] = []
        from bot import features  # noqa: PLC0415  (features register themselves on this conversation)

        features.register(self)

    # -- entry point -------------------------------------------------------------------------------
    def handle(self, incoming: Incoming) -> Outcome:
        settings = self.ports.settings
        language = pick_language(incoming.language_code, settings.language)
        now = self.ports.clock()
        try:
            with session_scope(self.ports.engine) as session:
                turn = Turn(session, incoming, language, now)
                if not self._first_time(session, incoming):
                    return Outcome(duplicate=True)
                try:
                    self._dispatch(turn)
                except UserError as refusal:
                    # Nothing the refused command wrote may stay; the update still counts as handled.
                    session.rollback()
                    self._first_time(session, incoming)
                    turn.effects = Effects()
                    turn.outcome = Outcome()
                    self._refuse(turn, refusal)
        except IntegrityError:
            # The same update raced in on another instance: it is handled there. Any other conflict is
            # a failure to report (the update is then delivered again), not a duplicate to drop.
            with Session(self.ports.engine) as session:
                if self._first_time(session, incoming):
                    session.rollback()
                    raise
            log.info("update %s already handled elsewhere", incoming.update_id)
            return Outcome(duplicate=True)
        self._after_commit(turn.effects)
        return turn.outcome

    def _first_time(self, session: Session, incoming: Incoming) -> bool:
        keys = [("update", str(incoming.update_id))]
        if incoming.callback_id:
            keys.append(("callback", incoming.callback_id))
        for kind, ext_id in keys:
            seen = session.exec(
                select(ProcessedUpdate.id).where(
                    ProcessedUpdate.bot_id == self.ports.bot_id,
                    ProcessedUpdate.kind == kind,
                    ProcessedUpdate.ext_id == ext_id,
                )
            ).first()
            if seen is not None:
                return False
        for kind, ext_id in keys:
            session.add(ProcessedUpdate(bot_id=self.ports.bot_id, kind=kind, ext_id=ext_id))
        session.flush()
        return True

    def _after_commit(self, effects: Effects) -> None:
        # The database already holds the work; if Redis is down the sweeper picks it up.
        if effects.notifications:
            try:
                self.ports.enqueue(effects.notifications)
            except Exception:
                log.exception("enqueue of %s failed; the sweeper will deliver them", effects.notifications)
        if effects.timers:
            try:
                self.ports.arm(effects.timers)
            except Exception:
                log.exception("arming timers %s failed; the sweeper will re-arm them", effects.timers)

    def _refuse(self, turn: Turn, refusal: UserError) -> None:
        key = refusal.key
        if turn.incoming.callback_id:
            turn.answer(key, alert=True, **refusal.params)
        else:
            turn.reply(key, **refusal.params)

    # -- routing -----------------------------------------------------------------------------------
    def _dispatch(self, turn: Turn) -> None:
        incoming = turn.incoming
        if incoming.migrate_to_chat_id is not None:
            onboarding.migrate_group_chat(turn.session, incoming.chat_id, incoming.migrate_to_chat_id)
            return
        if incoming.callback_data is not None:
            self._dispatch_callback(turn)
            return
        if incoming.chat_type == "channel" or incoming.user_id is None:
            return
        text = (incoming.text or "").strip()
        command = parse_command(text, self.ports.bot_username) if text.startswith("/") else None
        if command is not None:
            name, args = command
            table = self.private_commands if incoming.private else self.group_commands
            handler = table.get(name)
            if handler is not None:
                handler(self, turn, args)
            elif incoming.private:
                turn.reply("error.unknown_command")
            return
        if not incoming.private:
            return
        handlers = self.media_handlers if (incoming.voice or incoming.location) else self.text_handlers
        for handle in handlers:
            if handle(self, turn):
                return

    def _dispatch_callback(self, turn: Turn) -> None:
        press = callbacks.parse(turn.incoming.callback_data)
        action = self.callback_actions.get(press.action) if press else None
        if press is None or action is None or turn.incoming.user_id is None:
            turn.answer("callback.bad", alert=True)
            return
        action(self, turn, press)

    # -- helpers for features ----------------------------------------------------------------------
    def user_info(self, turn: Turn) -> Any:
        assert turn.incoming.user_id is not None
        return who_is(turn.session, turn.incoming.user_id)

    def keyboard(self, turn: Turn) -> dict[str, Any]:
        return render.sos_keyboard(turn.language)
