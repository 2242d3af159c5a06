"""The aiogram face (default): Telegram updates -> :class:`~bot.conversation.Incoming` -> replies.

Only this module imports aiogram (its import costs ~165 MB and seconds; workers never load it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import Default, DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import (
    BotCommand,
    BotCommandScopeDefault,
    CallbackQuery,
    ChatMemberUpdated,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from pydantic import ValidationError

from bot.conversation import Conversation, Incoming
from bot.face import (
    ALLOWED_UPDATES,
    POLL_TIMEOUT,
    LimiterPort,
    ReplySender,
    command_menu,
    handle_with_retries,
    incoming_from_callback,
    incoming_from_chat_member,
    incoming_from_message,
    incoming_from_update,
    pace,
)
from bot.webhook import UpdateRejected, serve_webhook
from config.settings import Settings

log = logging.getLogger(__name__)



class SharedLimit(BaseRequestMiddleware):
    """Every message the bot process sends passes the limiter the workers share (Redis)."""

    def __init__(self, limiter: LimiterPort) -> None:
        self.limiter = limiter

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        await pace(self.limiter, type(method).__name__, getattr(method, "chat_id", None))
        return await make_request(bot, method)


def make_bot(token: str, api_url: str, limiter: LimiterPort | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    if limiter is not None:
        session.middleware(SharedLimit(limiter))
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode="HTML"))


def _markup(data: dict[str, Any] | None) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | None:
    if data is None:
        return None
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.model_validate(data)
    return ReplyKeyboardMarkup.model_validate(data)


class AiogramFace(ReplySender):
    """Wires a Conversation into an aiogram Dispatcher (polling or webhook)."""

    def __init__(self, conversation: Conversation, bot: Bot) -> None:
        super().__init__()
        self.conversation = conversation
        self.bot = bot
        self.dispatcher = Dispatcher()
        router = Router(name="yihu")
        router.message.register(self.on_message)
        router.callback_query.register(self.on_callback)
        router.edited_message.register(self.on_edited)
        router.my_chat_member.register(self.on_my_chat_member)
        self.dispatcher.include_router(router)

    async def on_message(self, message: Message, event_update: Any = None) -> None:
        update_id = event_update.update_id if event_update is not None else message.message_id
        incoming = incoming_from_message(update_id, message)
        outcome = await handle_with_retries(self.conversation, incoming)
        self.send_later(incoming.chat_id, outcome, None)

    async def on_edited(self, message: Message, event_update: Any = None) -> None:
        """An edited message: a live location moving (the conversation ignores other edits)."""
        update_id = event_update.update_id if event_update is not None else message.message_id
        incoming = incoming_from_message(update_id, message, edited=True)
        outcome = await handle_with_retries(self.conversation, incoming)
        self.send_later(incoming.chat_id, outcome, None)

    async def on_my_chat_member(self, event: ChatMemberUpdated, event_update: Any = None) -> None:
        """The bot's own membership of a chat changed (removed from a bound group chat: its binding drops)."""
        update_id = event_update.update_id if event_update is not None else 0
        incoming = incoming_from_chat_member(update_id, event)
        outcome = await handle_with_retries(self.conversation, incoming)
        self.send_later(incoming.chat_id, outcome, None)

    async def on_callback(self, query: CallbackQuery, event_update: Any = None) -> None:
        update_id = event_update.update_id if event_update is not None else 0
        incoming = incoming_from_callback(update_id, query)
        outcome = await handle_with_retries(self.conversation, incoming)
        self.send_later(incoming.chat_id, outcome, query.id)

    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        await self.bot.answer_callback_query(callback_id, text=text, show_alert=alert)

    async def send_text(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None, link_preview: bool = True
    ) -> None:
        await self.bot.send_message(
            chat_id, text, reply_markup=_markup(reply_markup),
            link_preview_options=Default("link_preview") if link_preview else LinkPreviewOptions(is_disabled=True),
        )

    def retry_after(self, exc: Exception) -> float | None:
        return float(exc.retry_after) if isinstance(exc, TelegramRetryAfter) else None

    async def set_commands(self) -> None:
        for language, commands in command_menu(self.conversation.ports.settings.language).items():
            await self.bot.set_my_commands(
                [BotCommand(command=name, description=text) for name, text in commands],
                scope=BotCommandScopeDefault(),
                language_code=language or None,
            )

    async def poll(self, stop: asyncio.Event) -> None:
        """Long polling until ``stop`` is set. Each polled batch is handled a few updates per transaction
        (:meth:`~bot.face.ReplySender.ingest`) and the offset moves past an update only once it was
        persisted (aiogram's own ``start_polling`` handles one update at a time)."""
        await self.set_commands()
        try:
            offset = await self._poll_loop(stop)
            if offset is not None:
                # Confirm what was handled so a restart does not fetch it again (it would be a duplicate).
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.bot.get_updates(offset=offset, timeout=0, limit=1), 3)
        finally:
            await self.drain()
            await self.bot.session.close()

    async def _poll_loop(self, stop: asyncio.Event) -> int | None:
        async def fetch(offset: int | None) -> list[Update]:
            return await self.bot.get_updates(
                offset=offset,
                timeout=POLL_TIMEOUT,
                allowed_updates=list(ALLOWED_UPDATES),
                request_timeout=int(self.bot.session.timeout + POLL_TIMEOUT),
            )

        return await self.poll_loop(fetch, stop, (Exception,))

    def incoming_of(self, update: Update) -> Incoming | None:
        return incoming_from_update(update)

    async def process_one(self, update: Update, stop: asyncio.Event) -> bool:
        """Through the dispatcher (its handlers retry a failing update, then raise: logged, skipped)."""
        try:
            await self.dispatcher.feed_update(self.bot, update)
        except Exception:
            log.exception("update %s skipped after failed attempts", update.update_id)
        return True

    # -- webhook mode (bot/webhook.py serves the HTTP side) ----------------------------------------------
    async def open(self) -> None:
        """Ready for webhook updates: publish the command menu."""
        await self.set_commands()

    async def feed(self, data: dict[str, Any]) -> None:
        """A webhook body: parse it and handle it; returns once it is persisted, raises if it was not."""
        try:
            update = Update.model_validate(data, context={"bot": self.bot})
        except ValidationError as exc:
            raise UpdateRejected(str(exc)) from exc
        await self.dispatcher.feed_update(self.bot, update)

    async def register_webhook(self, url: str, secret: str | None) -> None:
        await self.bot.set_webhook(url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES))

    async def close(self) -> None:
        """Let replies drain (at most 10 s), then close the HTTP session."""
        await self.drain()
        await self.bot.session.close()

    async def serve_webhook(self, settings: Settings, stop: asyncio.Event) -> None:
        """Webhook mode until ``stop`` is set."""
        await serve_webhook(self, settings, self.conversation.ports.engine, stop)
