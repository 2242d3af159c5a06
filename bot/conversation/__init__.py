"""The conversation, face-neutral: an incoming update -> core call (one transaction) -> replies.

Both faces (aiogram, python-telegram-bot) turn their update objects into :class:`Incoming`, call
:meth:`Conversation.handle` and send the :class:`Outcome` back; no rule lives in a face. Updates are
deduplicated on ``update_id`` and on the callback query id (Telegram delivers at least once), in the
same transaction as what they cause; outbox rows and timers are handed to the workers after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.conversation.router import Router, prefix_of
from bot.conversation.types import SOS_TEXT, Incoming, Outcome, Ports, Reply, Turn, parse_command
from bot.render.keyboards import sos_keyboard
from config.settings import pick_language
from groups import onboarding
from groups.db import session_scope
from groups.directory import who_is
from groups.effects import Effects
from groups.errors import UserError
from groups.model import ProcessedUpdate

__all__ = ["SOS_TEXT", "Conversation", "Incoming", "Outcome", "Ports", "Reply", "Router", "Turn", "parse_command"]

log = logging.getLogger(__name__)


class Conversation:
    """Handles updates; thread-safe (each call opens its own session)."""

    def __init__(self, ports: Ports, routers: Sequence[Router]) -> None:
        self.ports = ports
        self.routes = Router("conversation")  # the routers merged, in their order
        for router in routers:
            self.routes.include(router)

    @property
    def lanes(self) -> int:
        """How many transactions may write at once: ``YIHU_INGEST_LANES`` on PostgreSQL; one on SQLite,
        which has one writer at a time anyway."""
        if self.ports.engine.dialect.name == "sqlite":
            return 1
        return max(1, self.ports.settings.ingest_lanes)

    # -- entry point -------------------------------------------------------------------------------
    def handle(self, incoming: Incoming) -> Outcome:
        try:
            return self.handle_batch([incoming])[0]
        except IntegrityError:
            # The same update raced in on another instance: it is handled there. Any other conflict is
            # a failure to report (the update is then delivered again), not a duplicate to drop.
            with Session(self.ports.engine) as session:
                if self._first_time(session, incoming):
                    session.rollback()
                    raise
            log.info("update %s already handled elsewhere", incoming.update_id)
            return Outcome(duplicate=True)

    def handle_batch(self, incomings: Sequence[Incoming]) -> list[Outcome]:
        """Handle updates in their order in one transaction (one outcome each); what they owe is handed
        to the workers after the commit, in one go. A user's refusal undoes only that update's writes
        (a savepoint). Any other failure raises with nothing committed: the caller then handles the
        updates one by one (:meth:`handle`), so a bad update never holds back the others."""
        turns: list[Turn | None] = []
        claims: Sequence[Any] = ()
        port = self.ports.confirmations
        with session_scope(self.ports.engine) as session:
            for incoming in incomings:
                turns.append(self._turn(session, incoming))
            if port is not None:
                # Claimed in the commit that writes them: sent by this process right after it.
                owed = [nid for turn in turns if turn is not None for nid in turn.effects.notifications]
                claims = port.claim(session, owed)
        self._after_commit([turn.effects for turn in turns if turn is not None], claims)
        return [turn.outcome if turn is not None else Outcome(duplicate=True) for turn in turns]

    def _turn(self, session: Session, incoming: Incoming) -> Turn | None:
        """One update inside the batch's transaction; None when it was handled before."""
        if not self._first_time(session, incoming):
            return None
        language = pick_language(incoming.language_code, self.ports.settings.language)
        turn = Turn(session, incoming, language, self.ports.clock())
        try:
            with session.begin_nested():
                self._dispatch(turn)
        except UserError as refusal:
            # Nothing the refused command wrote may stay; the update still counts as handled.
            turn.effects = Effects()
            turn.outcome = Outcome()
            self._refuse(turn, refusal)
        return turn

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

    def holding(self) -> AbstractContextManager[None]:
        """While a polled run of updates is ingested: what it owes besides the reporters' confirmations is
        queued after them (when the bot sends them itself; otherwise nothing is held)."""
        port = self.ports.confirmations
        return port.holding() if port is not None else nullcontext()

    def _after_commit(self, effects: Sequence[Effects], claims: Sequence[Any] = ()) -> None:
        # The database already holds the work; if Redis is down the sweeper picks it up.
        use_cases = [e.notifications for e in effects if e.notifications]
        port = self.ports.confirmations
        if port is not None:
            try:
                port.send(claims)
                mine = {claim.id for claim in claims}
                rest = [left for ids in use_cases if (left := [nid for nid in ids if nid not in mine])]
                port.enqueue_after(rest)
            except Exception:
                log.exception("delivery of %s failed; the sweeper will deliver them", use_cases)
        elif use_cases:
            try:
                self.ports.enqueue_use_cases(use_cases)
            except Exception:
                log.exception("enqueue of %s failed; the sweeper will deliver them", use_cases)
        timers = [timer for e in effects for timer in e.timers]
        if timers:
            try:
                self.ports.arm(timers)
            except Exception:
                log.exception("arming timers %s failed; the sweeper will re-arm them", timers)

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
        if incoming.bot_status is not None:
            if self.routes.membership is not None:
                self.routes.membership(self, turn)
            return
        if incoming.callback_data is not None:
            self._dispatch_callback(turn)
            return
        if incoming.chat_type == "channel" or incoming.user_id is None:
            return
        if incoming.edited:
            if incoming.private and self.routes.edited is not None:
                self.routes.edited(self, turn)
            return
        text = (incoming.text or "").strip()
        command = parse_command(text, self.ports.bot_username) if text.startswith("/") else None
        if command is not None:
            name, args = command
            table = self.routes.private_commands if incoming.private else self.routes.group_commands
            handler = table.get(name)
            if handler is not None:
                handler(self, turn, args)
            elif incoming.private:
                turn.reply("error.unknown_command")
            return
        if not incoming.private:
            return
        if incoming.voice or incoming.location:
            if self.routes.media is not None:
                self.routes.media(self, turn)
            return
        for match, handle in self.routes.texts:
            if match(turn):
                handle(self, turn)
                return
        if self.routes.other_text is not None:
            self.routes.other_text(self, turn)

    def _dispatch_callback(self, turn: Turn) -> None:
        data = turn.incoming.callback_data or ""
        press = self.routes.presses.get(prefix_of(data))
        payload = press.parse(data) if press is not None else None
        if press is None or payload is None or turn.incoming.user_id is None:
            turn.answer("callback.bad", alert=True)
            return
        press.handle(self, turn, payload)

    # -- helpers for features ----------------------------------------------------------------------
    def user_info(self, turn: Turn) -> Any:
        return who_is(turn.session, turn.member_or_none())

    def keyboard(self, turn: Turn) -> dict[str, Any]:
        return sos_keyboard(turn.language)
