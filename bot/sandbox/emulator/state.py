"""The emulator's state: bots, users, chats and their messages, files, callback queries, the call log.

:class:`EmulatorState` is the base of the emulator's parts (``limits``, ``updates``, ``people``,
``messages``, ``bot_api``): it holds the store and answers questions about it.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.sandbox.emulator.config import EmulatorConfig, Faults, RateLimits, make_config
from bot.sandbox.emulator.errors import JSON, ApiError, bad
from bot.sandbox.emulator.feed import Feed

LIVE_FOREVER = 0x7FFFFFFF  # a live location shared "until I stop it"
TOKEN_RE = re.compile(r"^(\d{1,20}):([A-Za-z0-9_-]{1,100})$")


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
    live_stopped: bool = False  # a live location stopped early (stopMessageLiveLocation)
    seq: int = 0  # the feed's number of its last change (bot.sandbox.emulator.feed)

    def live_open(self, now: float) -> bool:
        """A live location that can still be moved: not stopped, and within its live period."""
        location = self.message.get("location")
        if not isinstance(location, dict) or not location.get("live_period") or self.live_stopped:
            return False
        period = int(location["live_period"])
        return period == LIVE_FOREVER or now < self.time + period

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
            "seq": self.seq,
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


class EmulatorState:
    """The store, created on first use, and what can be read from it."""

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        self.config = config or make_config(**overrides)
        self._initial_limits = copy.deepcopy(self.config.limits)
        self._initial_faults = copy.deepcopy(self.config.faults)
        self.feed = Feed()  # kept across resets: its numbers only grow
        self._init_state()

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
        self.feed.notify()

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

    # ---------------------------------------------------------------- users and chats
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

    # ---------------------------------------------------------------- messages
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
        self.feed.touch(record)
        return record

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

    # ---------------------------------------------------------------- the call log and the whole state
    def log_call(
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
