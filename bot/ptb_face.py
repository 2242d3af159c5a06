"""The python-telegram-bot face (``YIHU_FRAMEWORK=ptb``): Telegram updates -> Incoming -> replies.

Same behaviour as the aiogram face: the conversation parses commands itself, so one ``MessageHandler``
for messages and one ``CallbackQueryHandler`` for button presses pass everything on. PTB's ``Updater``
is not used: it confirms offsets before the handlers finished, and an update may only be confirmed
once it was persisted. Only this module imports ``telegram``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeDefault,
    InlineKeyboardMarkup,
    KeyboardButton,
    LinkPreviewOptions,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import RetryAfter, TelegramError
from telegram.ext import (
    Application,
    BaseRateLimiter,
    CallbackQueryHandler,
    ChatMemberHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.conversation import Conversation, Incoming
from bot.face import (
    ALLOWED_UPDATES,
    POLL_TIMEOUT,
    LimiterPort,
    ReplySender,
    command_menu,
    incoming_from_callback,
    incoming_from_chat_member,
    incoming_from_message,
    incoming_from_update,
    pace,
    seconds,
    sleep_unless,
)
from bot.webhook import UpdateRejected, serve_webhook
from config.settings import Settings

log = logging.getLogger(__name__)

_ATTEMPTS = 5  # a failing update (database down) is retried this often before it is skipped

# Where a handler reports that the conversation failed, so the caller does not confirm the update
# (PTB hands handler exceptions to error handlers and never re-raises them).
_failures: ContextVar[list[BaseException] | None] = ContextVar("yihu_ptb_failures", default=None)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


class SharedRateLimiter(BaseRateLimiter[None]):
    """Every message the bot process sends passes the limiter the workers share (Redis)."""

    def __init__(self, limiter: LimiterPort) -> None:
        self.limiter = limiter

    async def initialize(self) -> None:
        """Nothing to set up: the Redis connection belongs to the limiter."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        await pace(self.limiter, endpoint, data.get("chat_id"))
        return await callback(*args, **kwargs)


def markup(data: dict[str, Any] | None) -> Markup | None:
    """The renderer's keyboard dicts as PTB objects (sent exactly as the aiogram face sends them)."""
    if data is None:
        return None
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.de_json(data)
    if data.get("remove_keyboard"):
        return ReplyKeyboardRemove(selective=data.get("selective"))
    options = {key: value for key, value in data.items() if key != "keyboard"}
    rows = [
        [KeyboardButton.de_json(button) if isinstance(button, dict) else str(button) for button in row]
        for row in data["keyboard"]
    ]
    return ReplyKeyboardMarkup(rows, **options)


class PtbFace(ReplySender):
    """Wires a Conversation into a python-telegram-bot ``Application`` (long polling or webhook)."""

    def __init__(self, conversation: Conversation, token: str, api_url: str, limiter: LimiterPort | None) -> None:
        super().__init__()
        self.conversation = conversation
        builder = (
            Application.builder()
            .token(token)
            .base_url(f"{api_url}/bot")
            .base_file_url(f"{api_url}/file/bot")
            .updater(None)
        )
        if limiter is not None:
            builder = builder.rate_limiter(SharedRateLimiter(limiter))
        self.application = builder.build()
        # New messages, edited ones (a live location moving) and the bot's own membership: exactly what the
        # aiogram face's message, edited_message and my_chat_member routers get.
        self.application.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self.on_message))
        self.application.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, self.on_edited))
        self.application.add_handler(CallbackQueryHandler(self.on_callback))
        self.application.add_handler(ChatMemberHandler(self.on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
        self._opened = False

    @property
    def settings(self) -> Settings:
        return self.conversation.ports.settings

    # -- handlers ------------------------------------------------------------------------------------
    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None  # the filter lets only messages through
        await self._converse(incoming_from_message(update.update_id, update.message), None)

    async def on_edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.edited_message is not None
        await self._converse(incoming_from_message(update.update_id, update.edited_message, edited=True), None)

    async def on_my_chat_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.my_chat_member is not None
        await self._converse(incoming_from_chat_member(update.update_id, update.my_chat_member), None)

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        query = update.callback_query
        await self._converse(incoming_from_callback(update.update_id, query), query.id)

    async def _converse(self, incoming: Incoming, callback_id: str | None) -> None:
        try:
            outcome = await asyncio.to_thread(self.conversation.handle, incoming)
        except Exception as exc:
            failures = _failures.get()
            if failures is None:
                raise
            failures.append(exc)
            return
        self.send_later(incoming.chat_id, outcome, callback_id)

    async def process(self, update: Update) -> None:
        """Handle one update through the Application; returns once it is persisted, raises if it was not."""
        failures: list[BaseException] = []
        token = _failures.set(failures)
        try:
            await self.application.process_update(update)
        finally:
            _failures.reset(token)
        if failures:
            raise failures[0]

    # -- replies -------------------------------------------------------------------------------------
    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        await self.application.bot.answer_callback_query(callback_id, text=text, show_alert=alert)

    async def send_text(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None, link_preview: bool = True
    ) -> None:
        await self.application.bot.send_message(
            chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup(reply_markup),
            link_preview_options=None if link_preview else LinkPreviewOptions(is_disabled=True),
        )

    def retry_after(self, exc: Exception) -> float | None:
        return seconds(exc.retry_after) if isinstance(exc, RetryAfter) else None

    # -- lifecycle -----------------------------------------------------------------------------------
    async def set_commands(self) -> None:
        for language, commands in command_menu(self.settings.language).items():
            await self.application.bot.set_my_commands(
                [BotCommand(name, text) for name, text in commands],
                scope=BotCommandScopeDefault(),
                language_code=language or None,
            )

    async def open(self) -> None:
        """Initialize the Application (getMe) and publish the command menu."""
        await self.application.initialize()
        self._opened = True
        await self.set_commands()

    async def close(self) -> None:
        """Let replies drain (at most 10 s), then shut the Application down."""
        await self.drain()
        if self._opened:
            self._opened = False
            await self.application.shutdown()

    async def feed(self, data: dict[str, Any]) -> None:
        """A webhook body: parse it and handle it; returns once it is persisted."""
        try:
            update = Update.de_json(data, self.application.bot)
        except (TypeError, ValueError, KeyError) as exc:
            raise UpdateRejected(str(exc)) from exc
        await self.process(update)

    async def register_webhook(self, url: str, secret: str | None) -> None:
        await self.application.bot.set_webhook(url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES))

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set: webhook when ``YIHU_WEBHOOK_URL`` is set, else long polling."""
        if self.settings.webhook_url:
            await serve_webhook(self, self.settings, self.conversation.ports.engine, stop)
            return
        await self.poll(stop)

    async def poll(self, stop: asyncio.Event) -> None:
        """Long polling until ``stop`` is set. Each polled batch is handled a few updates per transaction
        (:meth:`~bot.face.ReplySender.ingest`) and the offset moves past an update only once it was
        persisted."""
        await self.open()
        try:
            with contextlib.suppress(TelegramError):
                # A webhook left over from webhook mode would make every getUpdates fail with 409.
                await self.application.bot.delete_webhook(drop_pending_updates=False)
            offset = await self._poll_loop(stop)
            if offset is not None:
                # Confirm what was handled so a restart does not fetch it again (it would be a duplicate).
                with contextlib.suppress(TelegramError, TimeoutError):
                    await asyncio.wait_for(self.application.bot.get_updates(offset=offset, timeout=0, limit=1), 3)
        finally:
            await self.close()

    async def _poll_loop(self, stop: asyncio.Event) -> int | None:
        bot = self.application.bot

        async def fetch(offset: int | None) -> tuple[Update, ...]:
            return await bot.get_updates(offset=offset, timeout=POLL_TIMEOUT, allowed_updates=list(ALLOWED_UPDATES))

        return await self.poll_loop(fetch, stop, (TelegramError,))

    def incoming_of(self, update: Update) -> Incoming | None:
        return incoming_from_update(update)

    async def process_one(self, update: Update, stop: asyncio.Event) -> bool:
        return await self._process_with_retries(update, stop)

    async def _process_with_retries(self, update: Update, stop: asyncio.Event) -> bool:
        """True once the update is done with (persisted, or given up on); False when stopping first."""
        delay = 0.5
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                await self.process(update)
                return True
            except Exception:
                log.exception("update %s failed (attempt %d of %d)", update.update_id, attempt, _ATTEMPTS)
            if attempt == _ATTEMPTS:
                break
            if await sleep_unless(stop, delay):
                return False
            delay *= 2
        log.error("update %s skipped after %d failed attempts", update.update_id, _ATTEMPTS)
        return True


