"""The Telegram Bot API emulator: state, Bot API methods, control API and the aiohttp app.

See the package docstring (``bot.sandbox.emulator``) for the HTTP endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.emulator.control import add_control_routes
from bot.sandbox.emulator.errors import ApiError, bad, forbidden
from bot.sandbox.emulator.textparse import (
    HtmlParseError,
    auto_entities,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    utf16_len,
)

log = logging.getLogger("yihu.emulator")

JSON = dict[str, Any]

DEFAULT_TOKEN = "123456789:TEST-yihu-emulator-token"
DEFAULT_USERNAME = "yihu_test_bot"
TOKEN_RE = re.compile(r"^(\d{1,20}):([A-Za-z0-9_-]{1,100})$")
MAX_TEXT = 4096
MAX_CAPTION = 1024

# Updates a bot gets when it never chose allowed_updates (Telegram's default set).
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "purchased_paid_media",
    }
)

# Form fields that are plain strings even when they look like JSON.
STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "data",
        "callback_query_id",
        "url",
        "secret_token",
        "parse_mode",
        "title",
        "description",
        "short_description",
        "name",
        "file_id",
        "language_code",
        "action",
        "ip_address",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "performer",
        "first_name",
        "last_name",
        "username",
        "emoji",
        "address",
        "voice",
        "audio",
        "photo",
        "document",
        "video",
        "animation",
        "sticker",
        "video_note",
        "thumbnail",
        "certificate",
        "method",
    }
)

PARSERS: dict[str, Callable[[str], tuple[str, list[JSON]]]] = {
    "html": parse_html,
    "markdownv2": parse_markdown_v2,
    "markdown": parse_markdown,
}

FILE_KINDS = ("voice", "audio", "photo", "document", "video", "animation", "video_note", "sticker")


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class RateLimits:
    """Token buckets per bot token; a call is accepted while a bucket holds ``>= 1 - tolerance``."""

    enabled: bool = True
    global_rate: float = 30.0  # tokens per second, all chats of one bot
    global_capacity: float = 30.0
    private_rate: float = 1.0  # per private chat
    private_capacity: float = 1.0
    group_rate: float = 20.0 / 60.0  # per group or supergroup chat
    group_capacity: float = 20.0
    tolerance: float = 0.05


@dataclass
class FailRule:
    method: str  # lower-case method name or "*"
    code: int
    remaining: int
    description: str | None = None
    retry_after: int | None = None


@dataclass
class Faults:
    """Injected failures. Probabilities apply to each call of a send-like method (or ``methods``)."""

    p500: float = 0.0
    p502: float = 0.0
    p429: float = 0.0
    retry_after: int = 1  # retry_after of spurious 429s
    methods: list[str] | None = None  # lower-case method names the probabilities apply to
    delay: float = 0.0  # seconds added before answering every Bot API call
    delay_methods: list[str] | None = None  # restrict the delay to these methods
    duplicate_update_probability: float = 0.0
    fail_next: list[FailRule] = field(default_factory=list)

    def to_json(self) -> JSON:
        return asdict(self)


@dataclass
class EmulatorConfig:
    default_token: str = DEFAULT_TOKEN
    default_username: str = DEFAULT_USERNAME
    tokens: list[str] | None = None  # allow-list; None accepts any well-formed token
    bot_usernames: dict[str, str] = field(default_factory=dict)  # token -> username
    bot_first_name: str = "Yihu Test Bot"
    privacy_mode: bool = True  # bots that are not admins see only commands/replies/mentions in groups
    seed: int = 0
    getupdates_conflict: bool = True  # a newer getUpdates ends a waiting older one with 409
    webhook_timeout: float = 10.0
    callback_answer_timeout: float | None = None  # seconds after which a callback query is too old to answer
    webhook_retry_initial: float = 0.1
    webhook_retry_max: float = 2.0
    max_calls_logged: int = 100_000
    limits: RateLimits = field(default_factory=RateLimits)
    faults: Faults = field(default_factory=Faults)


def _make_config(**config: Any) -> EmulatorConfig:
    limits = config.pop("limits", None)
    faults = config.pop("faults", None)
    names = {f.name for f in fields(EmulatorConfig)}
    unknown = set(config) - names
    if unknown:
        raise TypeError(f"unknown emulator config: {sorted(unknown)}")
    tokens = config.get("tokens")
    if tokens is not None and len(tokens) == 1 and "default_token" not in config:
        config["default_token"] = tokens[0]
    cfg = EmulatorConfig(**config)
    if isinstance(limits, RateLimits):
        cfg.limits = limits
    elif isinstance(limits, dict):
        cfg.limits = RateLimits(**limits)
    elif limits is False:
        cfg.limits = RateLimits(enabled=False)
    if isinstance(faults, Faults):
        cfg.faults = faults
    elif isinstance(faults, dict):
        cfg.faults = _faults_from_json(faults, Faults())
    return cfg


def _faults_from_json(data: JSON, base: Faults) -> Faults:
    faults = copy.deepcopy(base)
    for key, value in data.items():
        if key == "fail_next":
            for rule in value or []:
                faults.fail_next.append(
                    FailRule(
                        method=str(rule.get("method", "*")).lower(),
                        code=int(rule.get("code", 500)),
                        remaining=int(rule.get("count", rule.get("remaining", 1))),
                        description=rule.get("description"),
                        retry_after=rule.get("retry_after"),
                    )
                )
        elif key in ("methods", "delay_methods"):
            setattr(faults, key, [str(m).lower() for m in value] if value is not None else None)
        elif key in {f.name for f in fields(Faults)}:
            setattr(faults, key, value)
        else:
            raise ValueError(f"unknown fault setting {key!r}")
    return faults


# --------------------------------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------------------------------


@dataclass
class Bucket:
    tokens: float
    stamp: float


@dataclass
class CallbackRecord:
    id: str
    bot_id: int
    token: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created: float
    answered: bool = False
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int | None = None
    answered_at: float | None = None

    def to_json(self) -> JSON:
        return asdict(self)


@dataclass
class MessageRecord:
    """A message in a chat; ``bot_token`` is set for messages a bot sent."""

    chat_id: int
    message_id: int
    message: JSON
    kind: str
    time: float
    bot_token: str | None = None
    from_user_id: int | None = None
    method: str | None = None
    raw_text: str | None = None
    parse_mode: str | None = None
    reply_markup: JSON | None = None  # as sent (reply keyboards too), current
    deleted: bool = False
    edits: list[JSON] = field(default_factory=list)

    @property
    def text(self) -> str | None:
        value = self.message.get("text", self.message.get("caption"))
        return value if isinstance(value, str) else None

    def to_json(self) -> JSON:
        bot_id = int(self.bot_token.split(":")[0]) if self.bot_token else None
        return {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "kind": self.kind,
            "bot_id": bot_id,
            "from_user_id": self.from_user_id,
            "method": self.method,
            "text": self.text,
            "raw_text": self.raw_text,
            "parse_mode": self.parse_mode,
            "entities": self.message.get("entities", self.message.get("caption_entities", [])),
            "reply_markup": self.reply_markup,
            "date": self.message.get("date"),
            "time": self.time,
            "deleted": self.deleted,
            "edits": copy.deepcopy(self.edits),
            "message": copy.deepcopy(self.message),
        }


@dataclass
class ChatState:
    id: int
    type: str  # private | group | supergroup
    title: str | None = None
    user_id: int | None = None  # private chats
    members: list[int] = field(default_factory=list)
    creator_id: int | None = None
    bot_status: dict[str, str] = field(default_factory=dict)  # token -> member|administrator|left|kicked
    migrated_to: int | None = None
    migrated_from: int | None = None
    next_message_id: int = 1
    messages: dict[int, MessageRecord] = field(default_factory=dict)


@dataclass
class FileRecord:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    mime_type: str | None
    file_name: str | None


@dataclass
class BotState:
    token: str
    id: int
    username: str
    first_name: str
    next_update_id: int = 1
    queue: list[JSON] = field(default_factory=list)
    allowed_updates: list[str] | None = None
    webhook_url: str = ""
    webhook_secret: str | None = None
    webhook_max_connections: int = 40
    webhook_task: asyncio.Task[None] | None = None
    webhook_last_error_date: int | None = None
    webhook_last_error_message: str | None = None
    webhook_delivered: list[JSON] = field(default_factory=list)
    poll_generation: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    commands: dict[tuple[str, str], list[JSON]] = field(default_factory=dict)
    menu_buttons: dict[int, JSON] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)
    closed: bool = False

    def user_json(self) -> JSON:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def notify(self) -> None:
        event, self.changed = self.changed, asyncio.Event()
        event.set()


Handler = Callable[[BotState, JSON, dict[str, "Upload"]], Awaitable[Any]]


@dataclass
class Upload:
    filename: str | None
    content_type: str | None
    data: bytes


def _is_rate_limited(method: str) -> bool:
    if method == "sendchataction":
        return False
    return method.startswith(("send", "edit")) or method in {
        "copymessage",
        "copymessages",
        "forwardmessage",
        "forwardmessages",
    }


def _coerce(name: str, value: str) -> Any:
    if name in STRING_FIELDS:
        return value
    if name in ("chat_id", "from_chat_id"):
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _webhook_reply(resp: aiohttp.ClientResponse) -> tuple[JSON, dict[str, Upload]] | None:
    """A Bot API call the webhook answered with (JSON or multipart like aiogram), if any."""
    params: JSON = {}
    files: dict[str, Upload] = {}
    if resp.content_type.startswith("multipart/"):
        reader = aiohttp.MultipartReader(resp.headers, resp.content)
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader) or not part.name:
                continue
            data = bytes(await part.read(decode=True))
            if part.filename:
                files[part.name] = Upload(part.filename, part.headers.get("Content-Type"), data)
            else:
                params[part.name] = _coerce(part.name, data.decode("utf-8", "replace"))
    else:
        body = await resp.read()
        if not body or resp.content_type != "application/json":
            return None
        try:
            decoded = json.loads(body)
        except ValueError:
            return None
        if not isinstance(decoded, dict):
            return None
        params = {k: _coerce(k, v) if isinstance(v, str) else v for k, v in decoded.items()}
    if not isinstance(params.get("method"), str):
        return None
    return params, files


# --------------------------------------------------------------------------------------------------
# the emulator
# --------------------------------------------------------------------------------------------------


class Emulator:
    """All emulator state plus the Bot API and the control API on top of it."""

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        self.config = config or _make_config(**overrides)
        self._closing = False
        self._initial_limits = copy.deepcopy(self.config.limits)
        self._initial_faults = copy.deepcopy(self.config.faults)
        self._session: aiohttp.ClientSession | None = None
        self._methods: dict[str, tuple[str, Handler]] = {}
        self._register_methods()
        self._init_state()

    # ---------------------------------------------------------------- state
    def _init_state(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.bots: dict[str, BotState] = {}
        self.users: dict[int, JSON] = {}
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, FileRecord] = {}
        self.calls: list[JSON] = []
        self.callbacks: dict[str, CallbackRecord] = {}
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self._call_seq = 0
        self._next_user_id = 10001
        self._next_group = 4000000001
        self._next_supergroup = 2000000001
        self._next_callback = 1
        self._next_file = 1

    @property
    def limits(self) -> RateLimits:
        return self.config.limits

    @property
    def faults(self) -> Faults:
        return self.config.faults

    async def reset(self) -> None:
        """Forget every user, chat, message, pending update, file, callback and call; restore the initial
        limits and faults. Bots stay registered with their webhook, allowed_updates, commands and update
        counter (so a polling client's offset keeps working)."""
        bots = self.bots
        self.config.limits = copy.deepcopy(self._initial_limits)
        self.config.faults = copy.deepcopy(self._initial_faults)
        self._init_state()
        for bot in bots.values():
            bot.queue.clear()
            bot.started.clear()
            bot.blocked.clear()
            bot.webhook_delivered.clear()
            bot.webhook_last_error_date = None
            bot.webhook_last_error_message = None
            bot.menu_buttons.clear()
            bot.notify()
        self.bots = bots

    def release_waiters(self) -> None:
        """End every waiting long poll now (with an empty result); used when the server stops."""
        self._closing = True
        for bot in self.bots.values():
            bot.notify()

    async def close(self) -> None:
        self.release_waiters()
        for bot in self.bots.values():
            await self._stop_webhook(bot)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def now(self) -> float:
        return time.time()

    # ---------------------------------------------------------------- bots
    def bot(self, token: str | None = None) -> BotState:
        """The bot for ``token``, created on first use.

        Without a token: the default token's bot, unless exactly one other bot has been seen (then that one).
        """
        if not token:
            token = self.config.default_token
            if token not in self.bots and len(self.bots) == 1:
                token = next(iter(self.bots))
        state = self.bots.get(token)
        if state is not None:
            return state
        match = TOKEN_RE.match(token)
        if not match:
            raise ApiError(404, "Not Found")
        if self.config.tokens is not None and token not in self.config.tokens:
            raise ApiError(401, "Unauthorized")
        bot_id = int(match.group(1))
        username = self.config.bot_usernames.get(token)
        if username is None:
            username = self.config.default_username if token == self.config.default_token else f"bot{bot_id}_bot"
        state = BotState(token=token, id=bot_id, username=username, first_name=self.config.bot_first_name)
        self.bots[token] = state
        return state

    # ---------------------------------------------------------------- users and chats (control)
    def create_user(
        self,
        first_name: str = "User",
        *,
        id: int | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh",
        is_bot: bool = False,
    ) -> JSON:
        if id is None:
            while self._next_user_id in self.users:
                self._next_user_id += 1
            id = self._next_user_id
            self._next_user_id += 1
        user: JSON = {"id": int(id), "is_bot": is_bot, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self.users[user["id"]] = user
        if user["id"] not in self.chats:
            self.chats[user["id"]] = ChatState(id=user["id"], type="private", user_id=user["id"])
        return dict(user)

    def get_user(self, user_id: int) -> JSON:
        user = self.users.get(int(user_id))
        if user is None:
            raise bad("user not found")
        return dict(user)

    def _user(self, user_id: int) -> JSON:
        return self.get_user(user_id)

    def create_group(
        self,
        title: str,
        members: list[int] | None = None,
        *,
        type: str = "group",
        id: int | None = None,
        creator_id: int | None = None,
    ) -> JSON:
        if type not in ("group", "supergroup"):
            raise bad("type must be group or supergroup")
        if id is None:
            if type == "group":
                id = -self._next_group
                self._next_group += 1
            else:
                id = -(1000000000000 + self._next_supergroup)
                self._next_supergroup += 1
        member_ids = [int(m) for m in members or []]
        for uid in member_ids:
            self._user(uid)
        chat = ChatState(
            id=int(id),
            type=type,
            title=title,
            members=member_ids,
            creator_id=creator_id if creator_id is not None else (member_ids[0] if member_ids else None),
        )
        self.chats[chat.id] = chat
        return self._chat_info(chat)

    def _chat_info(self, chat: ChatState) -> JSON:
        return {
            "id": chat.id,
            "type": chat.type,
            "title": chat.title,
            "members": list(chat.members),
            "creator_id": chat.creator_id,
            "bots": dict(chat.bot_status),
            "migrated_to": chat.migrated_to,
            "migrated_from": chat.migrated_from,
        }

    def get_chat_info(self, chat_id: int) -> JSON:
        return self._chat_info(self._chat(chat_id))

    def _chat(self, chat_id: int) -> ChatState:
        chat = self.chats.get(int(chat_id))
        if chat is None:
            raise bad("chat not found")
        return chat

    def chat_json(self, chat: ChatState) -> JSON:
        if chat.type == "private":
            user = self.users[chat.user_id or chat.id]
            data: JSON = {"id": chat.id, "type": "private", "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if key in user:
                    data[key] = user[key]
            return data
        return {"id": chat.id, "type": chat.type, "title": chat.title or ""}

    # ---------------------------------------------------------------- updates
    def _enqueue(self, bot: BotState, kind: str, payload: JSON) -> JSON | None:
        allowed = set(bot.allowed_updates) if bot.allowed_updates else DEFAULT_UPDATE_TYPES
        if kind not in allowed:
            return None
        update = {"update_id": bot.next_update_id, kind: payload}
        bot.next_update_id += 1
        bot.queue.append(update)
        p = self.faults.duplicate_update_probability
        if p and self.rng.random() < p:
            bot.queue.append(copy.deepcopy(update))
        bot.notify()
        return update

    def _new_message(
        self,
        chat: ChatState,
        sender: JSON,
        content: JSON,
        *,
        kind: str,
        bot_token: str | None = None,
        method: str | None = None,
        raw_text: str | None = None,
        parse_mode: str | None = None,
        reply_markup: JSON | None = None,
    ) -> MessageRecord:
        message_id = chat.next_message_id
        chat.next_message_id += 1
        now = self.now()
        message: JSON = {
            "message_id": message_id,
            "from": dict(sender),
            "chat": self.chat_json(chat),
            "date": int(now),
        }
        message.update(content)
        if reply_markup and "inline_keyboard" in reply_markup:
            message["reply_markup"] = copy.deepcopy(reply_markup)
        record = MessageRecord(
            chat_id=chat.id,
            message_id=message_id,
            message=message,
            kind=kind,
            time=now,
            bot_token=bot_token,
            from_user_id=None if bot_token else sender.get("id"),
            method=method,
            raw_text=raw_text,
            parse_mode=parse_mode,
            reply_markup=copy.deepcopy(reply_markup),
        )
        chat.messages[message_id] = record
        return record

    def _bots_seeing(self, chat: ChatState, message: JSON, token: str | None) -> list[BotState]:
        """Bots that receive a user's message in ``chat`` (privacy mode honoured in groups)."""
        if chat.type == "private":
            return [self.bot(token)]
        result = []
        for bot_token, status in chat.bot_status.items():
            if status not in ("member", "administrator"):
                continue
            bot = self.bot(bot_token)
            if self._bot_sees(bot, status, message):
                result.append(bot)
        return result

    def _bot_sees(self, bot: BotState, status: str, message: JSON) -> bool:
        if not self.config.privacy_mode or status == "administrator":
            return True
        if not any(k in message for k in ("text", "caption")):
            reply = message.get("reply_to_message")
            if reply and reply.get("from", {}).get("id") == bot.id:
                return True
            # service messages are always delivered
            return not any(k in message for k in ("location", "voice", "photo", "document", "audio"))
        text = message.get("text") or message.get("caption") or ""
        match = re.match(r"/[A-Za-z0-9_]+(?:@([A-Za-z0-9_]+))?", text)
        if match and (match.group(1) is None or match.group(1).lower() == bot.username.lower()):
            return True
        reply = message.get("reply_to_message")
        if reply and reply.get("from", {}).get("id") == bot.id:
            return True
        return f"@{bot.username.lower()}" in text.lower()

    def _user_post(
        self,
        user_id: int,
        content: JSON,
        *,
        kind: str,
        token: str | None,
        chat_id: int | None,
        reply_to_message_id: int | None = None,
    ) -> JSON:
        user = self._user(user_id)
        chat = self._chat(chat_id if chat_id is not None else user["id"])
        if chat.migrated_to is not None:
            raise bad("group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": chat.migrated_to})
        if chat.type == "private" and chat.id != user["id"]:
            raise bad("a user can only write to their own private chat with the bot")
        if chat.type != "private" and user["id"] not in chat.members:
            raise bad("user is not a member of the chat")
        if reply_to_message_id is not None:
            replied = chat.messages.get(int(reply_to_message_id))
            if replied is None:
                raise bad("message to reply not found")
            content = {**content, "reply_to_message": copy.deepcopy(replied.message)}
        record = self._new_message(chat, user, content, kind=kind)
        updates: list[JSON] = []
        if chat.type == "private":
            bot = self.bot(token)
            bot.blocked.discard(user["id"])
            bot.started.add(user["id"])
        for bot in self._bots_seeing(chat, record.message, token):
            update = self._enqueue(bot, "message", copy.deepcopy(record.message))
            if update is not None:
                updates.append(update)
        return {"message": copy.deepcopy(record.message), "updates": updates, "update": updates[0] if updates else None}

    def user_sends_text(
        self,
        user_id: int,
        text: str,
        *,
        token: str | None = None,
        chat_id: int | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSON:
        """A user writes ``text`` (``/start`` etc. get ``bot_command`` entities) to the bot or a group."""
        if not text:
            raise bad("message text is empty")
        content: JSON = {"text": text}
        entities = auto_entities(text)
        if entities:
            content["entities"] = entities
        return self._user_post(
            user_id, content, kind="text", token=token, chat_id=chat_id, reply_to_message_id=reply_to_message_id
        )

    def user_sends_location(
        self,
        user_id: int,
        latitude: float,
        longitude: float,
        *,
        token: str | None = None,
        chat_id: int | None = None,
        horizontal_accuracy: float | None = None,
        live_period: int | None = None,
    ) -> JSON:
        location: JSON = {"latitude": float(latitude), "longitude": float(longitude)}
        if horizontal_accuracy is not None:
            location["horizontal_accuracy"] = float(horizontal_accuracy)
        if live_period is not None:
            location["live_period"] = int(live_period)
        return self._user_post(user_id, {"location": location}, kind="location", token=token, chat_id=chat_id)

    def user_sends_voice(
        self,
        user_id: int,
        duration: int = 3,
        *,
        data: bytes | None = None,
        mime_type: str = "audio/ogg",
        token: str | None = None,
        chat_id: int | None = None,
        caption: str | None = None,
    ) -> JSON:
        payload = data if data is not None else b"OggS" + bytes(60)
        rec = self._store_file(payload, "voice", mime_type, None)
        voice = {
            "file_id": rec.file_id,
            "file_unique_id": rec.file_unique_id,
            "duration": int(duration),
            "mime_type": mime_type,
            "file_size": len(payload),
        }
        content: JSON = {"voice": voice}
        if caption:
            content["caption"] = caption
        return self._user_post(user_id, content, kind="voice", token=token, chat_id=chat_id)

    send_text = user_sends_text
    send_location = user_sends_location
    send_voice = user_sends_voice

    def press_button(
        self,
        user_id: int,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        force: bool = False,
    ) -> JSON:
        """A user presses an inline button with ``callback_data == data``; returns the callback id."""
        user = self._user(user_id)
        chat = self._chat(chat_id)
        record = chat.messages.get(int(message_id))
        if record is None or record.deleted:
            raise bad("message not found")
        if record.bot_token is None:
            raise bad("the message was not sent by a bot")
        if chat.type != "private" and user["id"] not in chat.members:
            raise bad("user is not a member of the chat")
        if chat.type == "private" and chat.id != user["id"]:
            raise bad("the message is in another user's private chat")
        if not force:
            markup = record.message.get("reply_markup") or {}
            datas = [
                button.get("callback_data")
                for row in markup.get("inline_keyboard", [])
                for button in row
                if isinstance(button, dict)
            ]
            if data not in datas:
                raise bad(f"the message has no inline button with callback_data {data!r} (has {datas})")
        bot = self.bot(record.bot_token)
        query_id = str(4_000_000_000_000_000 + self._next_callback * 7919)
        self._next_callback += 1
        cb = CallbackRecord(
            id=query_id,
            bot_id=bot.id,
            token=bot.token,
            user_id=user["id"],
            chat_id=chat.id,
            message_id=record.message_id,
            data=data,
            created=self.now(),
        )
        self.callbacks[query_id] = cb
        payload = {
            "id": query_id,
            "from": dict(user),
            "message": copy.deepcopy(record.message),
            "chat_instance": str(abs(hash((bot.id, chat.id))) % 10**18),
            "data": data,
        }
        update = self._enqueue(bot, "callback_query", payload)
        return {"callback_query_id": query_id, "update": update}

    def callback_answer(self, query_id: str) -> JSON:
        cb = self.callbacks.get(str(query_id))
        if cb is None:
            raise bad("unknown callback query id")
        return cb.to_json()

    def _member_json(self, user: JSON, status: str) -> JSON:
        data: JSON = {"user": dict(user), "status": status}
        if status == "kicked":
            data["until_date"] = 0
        elif status == "administrator":
            data.update(
                can_be_edited=False,
                is_anonymous=False,
                can_manage_chat=True,
                can_delete_messages=True,
                can_manage_video_chats=True,
                can_restrict_members=True,
                can_promote_members=False,
                can_change_info=True,
                can_invite_users=True,
                can_post_stories=False,
                can_edit_stories=False,
                can_delete_stories=False,
                can_send_welcome_messages=False,
                can_pin_messages=True,
            )
        elif status == "creator":
            data["is_anonymous"] = False
        return data

    def add_bot_to_group(
        self, chat_id: int, *, token: str | None = None, by_user_id: int | None = None, status: str = "member"
    ) -> JSON:
        """Someone adds the bot to a group: a ``my_chat_member`` update and a ``new_chat_members`` message."""
        chat = self._chat(chat_id)
        if chat.type == "private":
            raise bad("not a group")
        bot = self.bot(token)
        adder_id = by_user_id if by_user_id is not None else chat.creator_id
        if adder_id is None:
            raise bad("by_user_id is required for a group without members")
        adder = self._user(adder_id)
        old = chat.bot_status.get(bot.token, "left")
        chat.bot_status[bot.token] = status
        updates: list[JSON] = []
        member_update = {
            "chat": self.chat_json(chat),
            "from": dict(adder),
            "date": int(self.now()),
            "old_chat_member": self._member_json(bot.user_json(), old),
            "new_chat_member": self._member_json(bot.user_json(), status),
        }
        up = self._enqueue(bot, "my_chat_member", member_update)
        if up:
            updates.append(up)
        if old in ("left", "kicked"):
            record = self._new_message(chat, adder, {"new_chat_members": [bot.user_json()]}, kind="service")
            for seen in self._bots_seeing(chat, record.message, None):
                up = self._enqueue(seen, "message", copy.deepcopy(record.message))
                if up:
                    updates.append(up)
        return {"chat": self._chat_info(chat), "updates": updates}

    def user_joins_group(self, chat_id: int, user_id: int) -> JSON:
        chat = self._chat(chat_id)
        user = self._user(user_id)
        if chat.type == "private":
            raise bad("not a group")
        if user["id"] not in chat.members:
            chat.members.append(user["id"])
        record = self._new_message(chat, user, {"new_chat_members": [dict(user)]}, kind="service")
        updates = []
        for bot in self._bots_seeing(chat, record.message, None):
            up = self._enqueue(bot, "message", copy.deepcopy(record.message))
            if up:
                updates.append(up)
        return {"message": copy.deepcopy(record.message), "updates": updates}

    def block(self, user_id: int, *, token: str | None = None, blocked: bool = True) -> JSON:
        """The user blocks (or unblocks) the bot: a ``my_chat_member`` update in the private chat."""
        user = self._user(user_id)
        bot = self.bot(token)
        chat = self._chat(user["id"])
        was_blocked = user["id"] in bot.blocked
        if blocked:
            bot.blocked.add(user["id"])
        else:
            bot.blocked.discard(user["id"])
        update = None
        if was_blocked != blocked:
            update = self._enqueue(
                bot,
                "my_chat_member",
                {
                    "chat": self.chat_json(chat),
                    "from": dict(user),
                    "date": int(self.now()),
                    "old_chat_member": self._member_json(bot.user_json(), "kicked" if was_blocked else "member"),
                    "new_chat_member": self._member_json(bot.user_json(), "kicked" if blocked else "member"),
                },
            )
        return {"blocked": blocked, "update": update}

    def migrate_group(self, chat_id: int, *, by_user_id: int | None = None, new_chat_id: int | None = None) -> JSON:
        """Upgrade a group to a supergroup: service messages in both chats; the old id then answers 400."""
        old = self._chat(chat_id)
        if old.type != "group" or old.migrated_to is not None:
            raise bad("only a basic group that was not migrated yet can be migrated")
        if new_chat_id is None:
            new_chat_id = -(1000000000000 + self._next_supergroup)
            self._next_supergroup += 1
        actor_id = by_user_id if by_user_id is not None else old.creator_id
        if actor_id is None:
            raise bad("by_user_id is required")
        actor = self._user(actor_id)
        new = ChatState(
            id=int(new_chat_id),
            type="supergroup",
            title=old.title,
            members=list(old.members),
            creator_id=old.creator_id,
            bot_status=dict(old.bot_status),
            migrated_from=old.id,
        )
        self.chats[new.id] = new
        updates: list[JSON] = []
        rec_old = self._new_message(old, actor, {"migrate_to_chat_id": new.id}, kind="service")
        for bot in self._bots_seeing(old, rec_old.message, None):
            up = self._enqueue(bot, "message", copy.deepcopy(rec_old.message))
            if up:
                updates.append(up)
        old.migrated_to = new.id
        rec_new = self._new_message(new, actor, {"migrate_from_chat_id": old.id}, kind="service")
        for bot in self._bots_seeing(new, rec_new.message, None):
            up = self._enqueue(bot, "message", copy.deepcopy(rec_new.message))
            if up:
                updates.append(up)
        return {"old_chat_id": old.id, "new_chat_id": new.id, "updates": updates}

    def chat_messages(self, chat_id: int, *, token: str | None = None, include_all: bool = False) -> list[JSON]:
        """Messages bots sent to a chat (with edit history); ``include_all`` adds users' messages."""
        chat = self.chats.get(int(chat_id))
        if chat is None:
            return []
        out = []
        for record in chat.messages.values():
            if not include_all and (record.bot_token is None or (token and record.bot_token != token)):
                continue
            out.append(record.to_json())
        return out

    messages = chat_messages

    async def wait_for_messages(
        self, chat_id: int, count: int = 1, timeout: float = 5.0, *, token: str | None = None
    ) -> list[JSON]:
        """Wait until bots sent at least ``count`` messages to the chat (in-process twin of the client's)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msgs = self.chat_messages(chat_id, token=token)
            if len(msgs) >= count:
                return msgs
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"chat {chat_id} has {len(msgs)} bot message(s) after {timeout}s, expected >= {count}; "
                    f"got: {[m.get('text') for m in msgs]!r}"
                )
            await asyncio.sleep(0.01)

    def call_log(
        self,
        *,
        since: float | None = None,
        method: str | None = None,
        token: str | None = None,
        after_seq: int | None = None,
        errors_only: bool = False,
    ) -> list[JSON]:
        out = []
        for call in self.calls:
            if since is not None and call["time"] < since:
                continue
            if after_seq is not None and call["seq"] <= after_seq:
                continue
            if method and call["method"].lower() != method.lower():
                continue
            if token and call["token"] != token:
                continue
            if errors_only and call["ok"]:
                continue
            out.append(copy.deepcopy(call))
        return out

    def pending_updates(self, token: str | None = None) -> list[JSON]:
        return copy.deepcopy(self.bot(token).queue)

    def set_limits(self, **changes: Any) -> JSON:
        for key, value in changes.items():
            if key not in {f.name for f in fields(RateLimits)}:
                raise ValueError(f"unknown limit {key!r}")
            setattr(self.config.limits, key, value)
        self.buckets.clear()
        return asdict(self.config.limits)

    def set_faults(self, *, replace: bool = False, **changes: Any) -> JSON:
        seed = changes.pop("seed", None)
        base = Faults() if replace else self.config.faults
        self.config.faults = _faults_from_json(changes, base)
        if seed is not None:
            self.rng.seed(seed)
        return self.config.faults.to_json()

    def fail_next(
        self,
        method: str,
        code: int = 500,
        count: int = 1,
        *,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.config.faults.fail_next.append(FailRule(method.lower(), int(code), int(count), description, retry_after))

    def state(self) -> JSON:
        return {
            "bots": [
                {
                    **bot.user_json(),
                    "token": bot.token,
                    "pending_updates": len(bot.queue),
                    "allowed_updates": bot.allowed_updates,
                    "webhook_url": bot.webhook_url,
                    "started": sorted(bot.started),
                    "blocked": sorted(bot.blocked),
                }
                for bot in self.bots.values()
            ],
            "users": list(self.users.values()),
            "chats": [self._chat_info(c) for c in self.chats.values()],
            "callbacks": [cb.to_json() for cb in self.callbacks.values()],
            "limits": asdict(self.config.limits),
            "faults": self.config.faults.to_json(),
            "calls": len(self.calls),
        }

    # ---------------------------------------------------------------- files
    def _store_file(self, data: bytes, kind: str, mime: str | None, name: str | None) -> FileRecord:
        n = self._next_file
        self._next_file += 1
        ext = {"voice": "oga", "photo": "jpg", "audio": "mp3"}.get(kind, "bin")
        rec = FileRecord(
            file_id=f"{kind[:2].upper()}ACAgEmU{n:08d}",
            file_unique_id=f"AgAD{n:06d}",
            file_path=f"{kind}s/file_{n}.{ext}",
            data=data,
            mime_type=mime,
            file_name=name,
        )
        self.files[rec.file_id] = rec
        return rec

    def _input_file(self, params: JSON, files: dict[str, Upload], kind: str) -> FileRecord:
        value = params.get(kind)
        upload = files.get(kind)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value[len("attach://") :])
            if upload is None:
                raise bad(f"wrong file identifier/HTTP URL specified ({value})")
        if upload is not None:
            return self._store_file(upload.data, kind, upload.content_type, upload.filename)
        if isinstance(value, str) and value:
            existing = self.files.get(value)
            if existing is not None:
                return existing
            if value.startswith(("http://", "https://")):
                return self._store_file(b"", kind, None, value.rsplit("/", 1)[-1])
        if not value:
            raise bad(f"there is no {kind} in the request")
        raise bad("wrong file identifier/HTTP URL specified")

    # ---------------------------------------------------------------- Bot API plumbing
    async def _session_get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _log_call(
        self, token: str, method: str, params: JSON, status: int, error: ApiError | None, result: Any
    ) -> None:
        self._call_seq += 1
        bot_id = None
        match = TOKEN_RE.match(token)
        if match:
            bot_id = int(match.group(1))
        self.calls.append(
            {
                "seq": self._call_seq,
                "time": self.now(),
                "token": token,
                "bot_id": bot_id,
                "method": method,
                "params": params,
                "status": status,
                "ok": error is None,
                "error_code": error.code if error else None,
                "error": error.description if error else None,
                "parameters": error.parameters if error else None,
                "result": result,
            }
        )
        if len(self.calls) > self.config.max_calls_logged:
            del self.calls[: len(self.calls) - self.config.max_calls_logged]

    async def call(self, token: str, method: str, params: JSON, files: dict[str, Upload] | None = None) -> JSON:
        """Run one Bot API call and return the Telegram response body (also logs it)."""
        files = files or {}
        lname = method.lower()
        entry = self._methods.get(lname)
        name = entry[0] if entry else method
        logged_params = dict(params)
        for key, upload in files.items():
            logged_params[key] = {"_file": upload.filename, "size": len(upload.data)}
        result: Any = None
        try:
            bot = self.bot(token)
            if entry is None:
                raise ApiError(404, "Not Found")
            await self._apply_faults(lname)
            result = await entry[1](bot, params, files)
        except ApiError as exc:
            self._log_call(token, name, logged_params, exc.code, exc, None)
            return exc.payload()
        self._log_call(token, name, logged_params, 200, None, copy.deepcopy(result))
        return {"ok": True, "result": result}

    async def _apply_faults(self, method: str) -> None:
        faults = self.config.faults
        if faults.delay and (faults.delay_methods is None or method in faults.delay_methods):
            await asyncio.sleep(faults.delay)
        for rule in faults.fail_next:
            if rule.remaining > 0 and rule.method in ("*", method):
                rule.remaining -= 1
                faults.fail_next = [r for r in faults.fail_next if r.remaining > 0]
                raise self._fault_error(rule.code, rule.description, rule.retry_after)
        applies = method in faults.methods if faults.methods is not None else _is_rate_limited(method)
        if not applies:
            return
        for code, p in ((500, faults.p500), (502, faults.p502), (429, faults.p429)):
            if p and self.rng.random() < p:
                raise self._fault_error(code, None, faults.retry_after)

    @staticmethod
    def _fault_error(code: int, description: str | None, retry_after: int | None) -> ApiError:
        if code == 429:
            ra = max(1, int(retry_after or 1))
            return ApiError(429, description or f"Too Many Requests: retry after {ra}", {"retry_after": ra})
        default = {
            500: "Internal Server Error",
            502: "Bad Gateway",
            400: "Bad Request: injected fault",
            403: "Forbidden: injected fault",
            409: "Conflict: injected fault",
        }.get(code, "Injected fault")
        return ApiError(code, description or default)

    # ---------------------------------------------------------------- rate limits
    def _take_rate(self, bot: BotState, chat: ChatState) -> None:
        limits = self.config.limits
        if not limits.enabled:
            return
        now = time.monotonic()
        if chat.type == "private":
            rate, cap = limits.private_rate, limits.private_capacity
        else:
            rate, cap = limits.group_rate, limits.group_capacity
        checks = [
            ((bot.token, "*"), limits.global_rate, limits.global_capacity),
            ((bot.token, str(chat.id)), rate, cap),
        ]
        need = 1.0 - limits.tolerance
        wait = 0.0
        buckets = []
        for key, r, c in checks:
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = Bucket(tokens=c, stamp=now)
            bucket.tokens = min(c, bucket.tokens + (now - bucket.stamp) * r)
            bucket.stamp = now
            buckets.append(bucket)
            if bucket.tokens < need:
                wait = max(wait, (need - bucket.tokens) / r if r > 0 else 3600.0)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        for bucket in buckets:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)

    # ---------------------------------------------------------------- target checks
    def _target(self, bot: BotState, chat_id: Any, *, for_read: bool = False) -> ChatState:
        if chat_id is None or chat_id == "":
            raise bad("chat_id is empty")
        if isinstance(chat_id, str):
            if re.fullmatch(r"-?\d+", chat_id):
                chat_id = int(chat_id)
            else:
                raise bad("chat not found")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise bad("chat not found")
        chat = self.chats.get(chat_id)
        if chat is None:
            raise bad("chat not found")
        if chat.migrated_to is not None:
            raise bad("group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": chat.migrated_to})
        if chat.type == "private":
            uid = chat.user_id or chat.id
            if uid in bot.blocked:
                if for_read:
                    return chat
                raise forbidden("bot was blocked by the user")
            if uid not in bot.started:
                if for_read:
                    raise bad("chat not found")
                raise forbidden("bot can't initiate conversation with a user")
            return chat
        status = chat.bot_status.get(bot.token, "left")
        kind = "supergroup chat" if chat.type == "supergroup" else "group chat"
        if status == "kicked":
            raise forbidden(f"bot was kicked from the {kind}")
        if status not in ("member", "administrator"):
            if for_read:
                raise bad("chat not found")
            raise forbidden(f"bot is not a member of the {kind}")
        return chat

    def _text_and_entities(
        self, text: Any, parse_mode: Any, entities: Any, *, limit: int, what: str
    ) -> tuple[str, list[JSON]]:
        if text is None or text == "":
            raise bad(f"{what} text is empty") if what == "message" else bad(f"{what} is empty")
        if not isinstance(text, str):
            text = str(text)
        result_entities: list[JSON] = []
        plain = text
        if isinstance(entities, list) and entities:
            result_entities = [dict(e) for e in entities if isinstance(e, dict)]
        elif isinstance(parse_mode, str) and parse_mode.lower() in PARSERS:
            try:
                plain, result_entities = PARSERS[parse_mode.lower()](text)
            except HtmlParseError as exc:
                raise bad(f"can't parse entities: {exc}") from None
            for entity in result_entities:
                uid = entity.pop("_user_id", None)
                if uid is not None:
                    entity["user"] = dict(self.users.get(uid, {"id": uid, "is_bot": False, "first_name": "?"}))
        elif parse_mode not in (None, ""):
            raise bad(f"unsupported parse_mode {parse_mode!r}")
        if not plain.strip():
            raise bad("message text is empty") if what == "message" else bad(f"{what} is empty")
        if utf16_len(plain) > limit:
            raise bad("message is too long") if what == "message" else bad("message caption is too long")
        return plain, result_entities

    @staticmethod
    def _check_markup(markup: Any) -> JSON | None:
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise bad("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is not None:
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not button.get("text"):
                        raise bad('can\'t find field "text"')
                    data = button.get("callback_data")
                    if data is not None and (not isinstance(data, str) or not 1 <= len(data.encode()) <= 64):
                        raise bad("BUTTON_DATA_INVALID")
                    actions = set(button) - {"text", "style", "icon_custom_emoji_id"}
                    if not actions:
                        raise bad("text buttons are unallowed in the inline keyboard")
        return markup

    def _reply_to(self, chat: ChatState, params: JSON) -> JSON:
        reply_id: Any = params.get("reply_to_message_id")
        rp = params.get("reply_parameters")
        allow = bool(params.get("allow_sending_without_reply"))
        if isinstance(rp, dict):
            reply_id = rp.get("message_id")
            allow = allow or bool(rp.get("allow_sending_without_reply"))
        if reply_id is None:
            return {}
        replied = chat.messages.get(int(reply_id))
        if replied is None or replied.deleted:
            if allow:
                return {}
            raise bad("message to be replied not found")
        return {"reply_to_message": copy.deepcopy(replied.message)}

    def _bot_send(
        self,
        bot: BotState,
        chat: ChatState,
        params: JSON,
        content: JSON,
        *,
        kind: str,
        method: str,
        raw_text: str | None = None,
    ) -> JSON:
        markup = self._check_markup(params.get("reply_markup"))
        extra = self._reply_to(chat, params)
        self._take_rate(bot, chat)
        record = self._new_message(
            chat,
            bot.user_json(),
            {**extra, **content},
            kind=kind,
            bot_token=bot.token,
            method=method,
            raw_text=raw_text,
            parse_mode=params.get("parse_mode"),
            reply_markup=markup,
        )
        return copy.deepcopy(record.message)

    # ---------------------------------------------------------------- Bot API methods
    def _register_methods(self) -> None:
        table: dict[str, Handler] = {
            "getMe": self._m_get_me,
            "getUpdates": self._m_get_updates,
            "setWebhook": self._m_set_webhook,
            "deleteWebhook": self._m_delete_webhook,
            "getWebhookInfo": self._m_get_webhook_info,
            "sendMessage": self._m_send_message,
            "editMessageText": self._m_edit_text,
            "editMessageCaption": self._m_edit_caption,
            "editMessageReplyMarkup": self._m_edit_markup,
            "answerCallbackQuery": self._m_answer_callback,
            "sendLocation": self._m_send_location,
            "sendVoice": self._m_send_file,
            "sendAudio": self._m_send_file,
            "sendPhoto": self._m_send_file,
            "sendDocument": self._m_send_file,
            "sendVideo": self._m_send_file,
            "copyMessage": self._m_copy_message,
            "forwardMessage": self._m_forward_message,
            "deleteMessage": self._m_delete_message,
            "sendChatAction": self._m_send_chat_action,
            "setMyCommands": self._m_set_commands,
            "getMyCommands": self._m_get_commands,
            "deleteMyCommands": self._m_delete_commands,
            "getChat": self._m_get_chat,
            "getChatMember": self._m_get_chat_member,
            "getChatMemberCount": self._m_get_chat_member_count,
            "getChatAdministrators": self._m_get_chat_admins,
            "leaveChat": self._m_leave_chat,
            "getFile": self._m_get_file,
            "setChatMenuButton": self._m_set_menu_button,
            "getChatMenuButton": self._m_get_menu_button,
            "setMyName": self._m_set_name,
            "getMyName": self._m_get_name,
            "setMyDescription": self._m_set_name,
            "getMyDescription": self._m_get_name,
            "setMyShortDescription": self._m_set_name,
            "getMyShortDescription": self._m_get_name,
            "pinChatMessage": self._m_true_in_chat,
            "unpinChatMessage": self._m_true_in_chat,
            "close": self._m_close,
            "logOut": self._m_close,
        }
        # handlers that need to know which method they serve get it through the params key "__method__"
        self._methods = {name.lower(): (name, handler) for name, handler in table.items()}

    async def _m_get_me(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        return {
            **bot.user_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": not self.config.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _m_get_updates(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> list[JSON]:
        if bot.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        limit = min(max(limit, 1), 100)
        timeout = float(params.get("timeout") or 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            bot.allowed_updates = [str(a) for a in allowed] or None
        if offset > 0:
            bot.queue = [u for u in bot.queue if u["update_id"] >= offset]
        elif offset < 0:
            bot.queue = bot.queue[offset:]
        generation = bot.poll_generation + 1
        if self.config.getupdates_conflict:
            bot.poll_generation = generation
            bot.notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if bot.webhook_url:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            if bot.poll_generation != generation and self.config.getupdates_conflict:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
            if self._closing:
                return []
            if bot.queue:
                return copy.deepcopy(bot.queue[:limit])
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            event = bot.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def _m_set_webhook(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        url = params.get("url") or ""
        if not isinstance(url, str):
            raise bad("bad webhook: invalid URL")
        if url and not re.match(r"^https?://", url):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad("secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            bot.allowed_updates = [str(a) for a in allowed] or None
        if params.get("drop_pending_updates"):
            bot.queue.clear()
        if params.get("max_connections"):
            bot.webhook_max_connections = int(params["max_connections"])
        if not url:
            await self._stop_webhook(bot)
            bot.webhook_url = ""
            bot.webhook_secret = None
            return True
        bot.webhook_url = url
        bot.webhook_secret = str(secret) if secret else None
        bot.poll_generation += 1
        bot.notify()
        if bot.webhook_task is None or bot.webhook_task.done():
            bot.webhook_task = asyncio.create_task(self._webhook_loop(bot))
        return True

    async def _stop_webhook(self, bot: BotState) -> None:
        task, bot.webhook_task = bot.webhook_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _m_delete_webhook(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        await self._stop_webhook(bot)
        bot.webhook_url = ""
        bot.webhook_secret = None
        if params.get("drop_pending_updates"):
            bot.queue.clear()
        return True

    async def _m_get_webhook_info(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        info: JSON = {
            "url": bot.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(bot.queue),
        }
        if bot.webhook_url:
            info["max_connections"] = bot.webhook_max_connections
            info["ip_address"] = "127.0.0.1"
            if bot.allowed_updates:
                info["allowed_updates"] = list(bot.allowed_updates)
        if bot.webhook_last_error_date:
            info["last_error_date"] = bot.webhook_last_error_date
            info["last_error_message"] = bot.webhook_last_error_message or ""
        return info

    async def _webhook_loop(self, bot: BotState) -> None:
        backoff = self.config.webhook_retry_initial
        while bot.webhook_url:
            if not bot.queue:
                event = bot.changed
                await event.wait()
                continue
            update = bot.queue[0]
            headers = {"Content-Type": "application/json"}
            if bot.webhook_secret:
                headers["X-Telegram-Bot-Api-Secret-Token"] = bot.webhook_secret
            error: str | None = None
            reply: tuple[JSON, dict[str, Upload]] | None = None
            try:
                session = await self._session_get()
                async with session.post(
                    bot.webhook_url,
                    data=json.dumps(update, ensure_ascii=False).encode(),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.config.webhook_timeout),
                ) as resp:
                    if not 200 <= resp.status < 300:
                        await resp.read()
                        error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
                    else:
                        reply = await _webhook_reply(resp)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"Connection failed: {type(exc).__name__}: {exc}"
            if error is None:
                if bot.queue and bot.queue[0] is update:
                    bot.queue.pop(0)
                bot.webhook_delivered.append(update)
                backoff = self.config.webhook_retry_initial
                if reply is not None:
                    params, files = reply
                    method = str(params.pop("method"))
                    await self.call(bot.token, method, params, files)
                continue
            bot.webhook_last_error_date = int(self.now())
            bot.webhook_last_error_message = error
            log.debug("webhook delivery to %s failed: %s", bot.webhook_url, error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.config.webhook_retry_max)

    async def _m_send_message(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat = self._target(bot, params.get("chat_id"))
        text, entities = self._text_and_entities(
            params.get("text"), params.get("parse_mode"), params.get("entities"), limit=MAX_TEXT, what="message"
        )
        content: JSON = {"text": text}
        if entities:
            content["entities"] = entities
        raw = params.get("text")
        return self._bot_send(
            bot,
            chat,
            params,
            content,
            kind="text",
            method="sendMessage",
            raw_text=raw if isinstance(raw, str) else None,
        )

    async def _m_send_location(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat = self._target(bot, params.get("chat_id"))
        try:
            lat = float(params["latitude"])
            lon = float(params["longitude"])
        except (KeyError, TypeError, ValueError):
            raise bad("wrong latitude/longitude specified") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise bad("wrong latitude/longitude specified")
        location: JSON = {"latitude": lat, "longitude": lon}
        for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
            if params.get(key) is not None:
                location[key] = params[key]
        return self._bot_send(bot, chat, params, {"location": location}, kind="location", method="sendLocation")

    async def _m_send_file(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        kind = next((k for k in FILE_KINDS if k in params or k in files), None)
        if kind is None:
            raise bad("there is no file in the request")
        chat = self._target(bot, params.get("chat_id"))
        content: JSON = {}
        caption = params.get("caption")
        if caption:
            text, entities = self._text_and_entities(
                caption, params.get("parse_mode"), params.get("caption_entities"), limit=MAX_CAPTION, what="caption"
            )
            content["caption"] = text
            if entities:
                content["caption_entities"] = entities
        rec = self._input_file(params, files, kind)
        base: JSON = {"file_id": rec.file_id, "file_unique_id": rec.file_unique_id, "file_size": len(rec.data)}
        if kind == "photo":
            content["photo"] = [
                {**base, "width": 90, "height": 90},
                {**base, "file_id": rec.file_id + "_m", "width": 320, "height": 320},
            ]
        else:
            obj = dict(base)
            if kind in ("voice", "audio", "video"):
                obj["duration"] = int(params.get("duration") or 1)
            if kind == "video":
                obj["width"] = int(params.get("width") or 320)
                obj["height"] = int(params.get("height") or 240)
            if kind in ("document", "audio", "video") and rec.file_name:
                obj["file_name"] = rec.file_name
            mime = rec.mime_type or {"voice": "audio/ogg", "audio": "audio/mpeg"}.get(kind)
            if mime and mime != "application/octet-stream":
                obj["mime_type"] = mime
            elif kind == "voice":
                obj["mime_type"] = "audio/ogg"
            content[kind] = obj
        method = "send" + kind.replace("_", " ").title().replace(" ", "")
        return self._bot_send(bot, chat, params, content, kind=kind, method=method)

    def _source_message(self, params: JSON, what: str) -> MessageRecord:
        from_id = params.get("from_chat_id")
        try:
            source_chat = self.chats.get(int(from_id)) if from_id is not None else None
        except (TypeError, ValueError):
            source_chat = None
        if source_chat is None:
            raise bad("chat not found")
        record = source_chat.messages.get(int(params.get("message_id") or 0))
        if record is None or record.deleted:
            raise bad(f"message to {what} not found")
        return record

    async def _m_copy_message(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat = self._target(bot, params.get("chat_id"))
        source = self._source_message(params, "copy")
        content = {
            k: copy.deepcopy(v)
            for k, v in source.message.items()
            if k
            in (
                "text",
                "entities",
                "location",
                "voice",
                "audio",
                "photo",
                "document",
                "video",
                "caption",
                "caption_entities",
            )
        }
        if not content:
            raise bad("message can't be copied")
        if "caption" in params:
            content["caption"] = params["caption"]
        message = self._bot_send(bot, chat, params, content, kind=source.kind, method="copyMessage")
        return {"message_id": message["message_id"]}

    async def _m_forward_message(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat = self._target(bot, params.get("chat_id"))
        source = self._source_message(params, "forward")
        content = {
            k: copy.deepcopy(v)
            for k, v in source.message.items()
            if k not in ("message_id", "from", "chat", "date", "reply_markup", "reply_to_message", "edit_date")
        }
        content["forward_origin"] = {
            "type": "user",
            "sender_user": copy.deepcopy(source.message.get("from")),
            "date": source.message.get("date"),
        }
        return self._bot_send(bot, chat, {}, content, kind=source.kind, method="forwardMessage")

    def _editable(self, bot: BotState, params: JSON) -> tuple[ChatState, MessageRecord]:
        if params.get("inline_message_id"):
            raise bad("MESSAGE_ID_INVALID")
        chat = self._target(bot, params.get("chat_id"))
        try:
            message_id = int(params.get("message_id") or 0)
        except (TypeError, ValueError):
            raise bad("message identifier is not specified") from None
        record = chat.messages.get(message_id)
        if record is None or record.deleted:
            raise bad("message to edit not found")
        if record.bot_token != bot.token:
            raise bad("message can't be edited")
        return chat, record

    def _apply_edit(
        self,
        bot: BotState,
        chat: ChatState,
        record: MessageRecord,
        changes: JSON,
        markup: JSON | None,
        kind: str,
        raw_text: str | None = None,
        parse_mode: str | None = None,
    ) -> JSON:
        new_message = copy.deepcopy(record.message)
        for key, value in changes.items():
            if value is None:
                new_message.pop(key, None)
            else:
                new_message[key] = value
        if markup and "inline_keyboard" in markup:
            new_message["reply_markup"] = copy.deepcopy(markup)
        else:
            new_message.pop("reply_markup", None)
        compare_keys = ("text", "entities", "caption", "caption_entities", "reply_markup")
        if all(new_message.get(k) == record.message.get(k) for k in compare_keys):
            raise bad(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        self._take_rate(bot, chat)
        now = self.now()
        new_message["edit_date"] = int(now)
        record.message = new_message
        record.reply_markup = copy.deepcopy(markup)
        if raw_text is not None:
            record.raw_text = raw_text
            record.parse_mode = parse_mode
        record.edits.append(
            {
                "kind": kind,
                "text": record.text,
                "raw_text": raw_text,
                "parse_mode": parse_mode,
                "entities": new_message.get("entities", new_message.get("caption_entities", [])),
                "reply_markup": copy.deepcopy(markup),
                "time": now,
                "date": int(now),
            }
        )
        return copy.deepcopy(new_message)

    async def _m_edit_text(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat, record = self._editable(bot, params)
        if "text" not in record.message:
            raise bad("there is no text in the message to edit")
        text, entities = self._text_and_entities(
            params.get("text"), params.get("parse_mode"), params.get("entities"), limit=MAX_TEXT, what="message"
        )
        markup = self._check_markup(params.get("reply_markup"))
        raw = params.get("text")
        return self._apply_edit(
            bot,
            chat,
            record,
            {"text": text, "entities": entities or None},
            markup,
            "text",
            raw_text=raw if isinstance(raw, str) else None,
            parse_mode=params.get("parse_mode"),
        )

    async def _m_edit_caption(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat, record = self._editable(bot, params)
        if "text" in record.message:
            raise bad("there is no caption in the message to edit")
        caption = params.get("caption")
        changes: JSON = {"caption": None, "caption_entities": None}
        if caption:
            text, entities = self._text_and_entities(
                caption, params.get("parse_mode"), params.get("caption_entities"), limit=MAX_CAPTION, what="caption"
            )
            changes = {"caption": text, "caption_entities": entities or None}
        markup = self._check_markup(params.get("reply_markup"))
        return self._apply_edit(bot, chat, record, changes, markup, "caption")

    async def _m_edit_markup(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat, record = self._editable(bot, params)
        markup = self._check_markup(params.get("reply_markup"))
        return self._apply_edit(bot, chat, record, {}, markup, "reply_markup")

    async def _m_answer_callback(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        cb = self.callbacks.get(query_id)
        limit = self.config.callback_answer_timeout
        too_old = limit is not None and cb is not None and self.now() - cb.created > limit
        if cb is None or cb.answered or cb.token != bot.token or too_old:
            raise bad("query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise bad("MESSAGE_TOO_LONG")
        cb.answered = True
        cb.text = str(text) if text is not None else None
        cb.show_alert = bool(params.get("show_alert"))
        cb.url = params.get("url")
        cb.cache_time = params.get("cache_time")
        cb.answered_at = self.now()
        return True

    async def _m_delete_message(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        chat = self._target(bot, params.get("chat_id"))
        record = chat.messages.get(int(params.get("message_id") or 0))
        if record is None or record.deleted:
            raise bad("message to delete not found")
        if (
            record.bot_token != bot.token
            and chat.type != "private"
            and chat.bot_status.get(bot.token) != "administrator"
        ):
            raise bad("message can't be deleted")
        record.deleted = True
        return True

    async def _m_send_chat_action(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        self._target(bot, params.get("chat_id"))
        if not params.get("action"):
            raise bad("wrong parameter action in request")
        return True

    @staticmethod
    def _commands_key(params: JSON) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _m_set_commands(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad("commands must be an array of at most 100 BotCommand")
        cleaned = []
        for cmd in commands:
            if not isinstance(cmd, dict) or not re.fullmatch(r"[a-z0-9_]{1,32}", str(cmd.get("command", ""))):
                raise bad("BOT_COMMAND_INVALID")
            description = str(cmd.get("description", ""))
            if not 1 <= len(description) <= 256:
                raise bad("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": cmd["command"], "description": description})
        bot.commands[self._commands_key(params)] = cleaned
        return True

    async def _m_get_commands(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> list[JSON]:
        return copy.deepcopy(bot.commands.get(self._commands_key(params), []))

    async def _m_delete_commands(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        bot.commands.pop(self._commands_key(params), None)
        return True

    async def _m_get_chat(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat = self._target(bot, params.get("chat_id"), for_read=True)
        info = self.chat_json(chat)
        info.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        if chat.migrated_from is not None:
            info["migrated_from_chat_id"] = chat.migrated_from
        return info

    def _membership(self, bot: BotState, chat: ChatState, user_id: int) -> JSON:
        if user_id == bot.id:
            status = "member" if chat.type == "private" else chat.bot_status.get(bot.token, "left")
            return self._member_json(bot.user_json(), status)
        user = self.users.get(user_id)
        if user is None:
            raise bad("user not found")
        if chat.type == "private":
            if user_id != chat.id:
                raise bad("user not found")
            return self._member_json(user, "member")
        if user_id not in chat.members:
            return self._member_json(user, "left")
        return self._member_json(user, "creator" if user_id == chat.creator_id else "member")

    async def _m_get_chat_member(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat = self._target(bot, params.get("chat_id"), for_read=True)
        try:
            user_id = int(params.get("user_id") or 0)
        except (TypeError, ValueError):
            raise bad("invalid user_id specified") from None
        return self._membership(bot, chat, user_id)

    async def _m_get_chat_member_count(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> int:
        chat = self._target(bot, params.get("chat_id"), for_read=True)
        if chat.type == "private":
            return 2
        bots = sum(1 for s in chat.bot_status.values() if s in ("member", "administrator"))
        return len(chat.members) + bots

    async def _m_get_chat_admins(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> list[JSON]:
        chat = self._target(bot, params.get("chat_id"), for_read=True)
        admins = []
        if chat.creator_id is not None and chat.creator_id in self.users:
            admins.append(self._member_json(self.users[chat.creator_id], "creator"))
        for token, status in chat.bot_status.items():
            if status == "administrator":
                admins.append(self._member_json(self.bot(token).user_json(), "administrator"))
        return admins

    async def _m_leave_chat(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        chat = self._target(bot, params.get("chat_id"))
        if chat.type == "private":
            raise bad("chat member status can't be changed in private chats")
        old = chat.bot_status.get(bot.token, "left")
        chat.bot_status[bot.token] = "left"
        self._enqueue(
            bot,
            "my_chat_member",
            {
                "chat": self.chat_json(chat),
                "from": bot.user_json(),
                "date": int(self.now()),
                "old_chat_member": self._member_json(bot.user_json(), old),
                "new_chat_member": self._member_json(bot.user_json(), "left"),
            },
        )
        return True

    async def _m_get_file(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        rec = self.files.get(str(params.get("file_id") or ""))
        if rec is None:
            raise bad("invalid file_id")
        return {
            "file_id": rec.file_id,
            "file_unique_id": rec.file_unique_id,
            "file_size": len(rec.data),
            "file_path": rec.file_path,
        }

    async def _m_set_menu_button(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        chat_id = int(params.get("chat_id") or 0)
        button = params.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in ("commands", "web_app", "default"):
            raise bad("can't parse menu button")
        bot.menu_buttons[chat_id] = button
        return True

    async def _m_get_menu_button(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat_id = int(params.get("chat_id") or 0)
        button = bot.menu_buttons.get(chat_id) or bot.menu_buttons.get(0) or {"type": "commands"}
        if button.get("type") == "default":
            button = {"type": "commands"}
        return dict(button)

    async def _m_set_name(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        lang = str(params.get("language_code") or "")
        for key in ("name", "description", "short_description"):
            if key in params:
                bot.names[f"{key}:{lang}"] = str(params[key] or "")
        return True

    async def _m_get_name(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        lang = str(params.get("language_code") or "")
        return {
            "name": bot.names.get(f"name:{lang}", bot.first_name),
            "description": bot.names.get(f"description:{lang}", ""),
            "short_description": bot.names.get(f"short_description:{lang}", ""),
        }

    async def _m_true_in_chat(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        self._target(bot, params.get("chat_id"))
        return True

    async def _m_close(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        bot.closed = True
        return True

    # ---------------------------------------------------------------- aiohttp app
    def build_app(self) -> web.Application:
        """The aiohttp application serving the Bot API, file downloads and the control API."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        add_control_routes(app, self)

        async def _shutdown(_: web.Application) -> None:
            self.release_waiters()

        async def _cleanup(_: web.Application) -> None:
            await self.close()

        app.on_shutdown.append(_shutdown)
        app.on_cleanup.append(_cleanup)
        return app

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        params: JSON = {}
        files: dict[str, Upload] = {}
        for key, value in request.query.items():
            params[key] = _coerce(key, value)
        try:
            if request.can_read_body:
                ctype = request.content_type
                if ctype == "application/json":
                    body = await request.json()
                    if isinstance(body, dict):
                        for key, value in body.items():
                            params[key] = _coerce(key, value) if isinstance(value, str) else value
                elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                    form = await request.post()
                    for key, item in form.items():
                        if isinstance(item, str):
                            params[key] = _coerce(key, item)
                        elif isinstance(item, web.FileField):
                            files[key] = Upload(item.filename, item.content_type, item.file.read())
                        elif isinstance(item, bytes | bytearray):
                            params[key] = _coerce(key, bytes(item).decode("utf-8", "replace"))
        except ValueError:
            body_err = ApiError(400, "Bad Request: can't parse request body")
            self._log_call(token, method, params, 400, body_err, None)
            return web.json_response(body_err.payload(), status=400)
        response = await self.call(token, method, params, files)
        status = 200 if response.get("ok") else int(response.get("error_code", 500))
        return web.Response(
            text=json.dumps(response, ensure_ascii=False), status=status, content_type="application/json"
        )

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        try:
            self.bot(token)
        except ApiError as exc:
            return web.json_response(exc.payload(), status=exc.code)
        path = request.match_info["path"]
        for rec in self.files.values():
            if rec.file_path == path:
                return web.Response(body=rec.data, content_type=rec.mime_type or "application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)


# --------------------------------------------------------------------------------------------------
# running it
# --------------------------------------------------------------------------------------------------


class RunningEmulator:
    """A started emulator: ``url`` (``http://host:port``), ``port``, ``emulator`` and ``stop()``."""

    def __init__(self, emulator: Emulator, runner: web.AppRunner, host: str, port: int) -> None:
        self.emulator = emulator
        self.runner = runner
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self._stopped = False

    @property
    def token(self) -> str:
        return self.emulator.config.default_token

    @property
    def api_url(self) -> str:
        """``YIHU_TELEGRAM_API_URL`` for this emulator (same as ``url``)."""
        return self.url

    async def stop(self) -> None:
        """Stop serving (idempotent); waiting long polls end at once."""
        if self._stopped:
            return
        self._stopped = True
        self.emulator.release_waiters()
        await self.runner.cleanup()

    async def __aenter__(self) -> RunningEmulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_emulator(host: str = "127.0.0.1", port: int = 0, **config: Any) -> RunningEmulator:
    """Start an emulator on ``host:port`` (0 = a free port). ``config``: fields of :class:`EmulatorConfig`
    (``limits``/``faults`` may be dicts; ``limits=False`` disables rate limits)."""
    emulator = Emulator(**config)
    app = emulator.build_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = site._server
    if server is not None:
        sockets = getattr(server, "sockets", None)
        if sockets:
            bound = sockets[0].getsockname()[1]
    return RunningEmulator(emulator, runner, host, bound)
