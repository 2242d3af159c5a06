"""What the people do (the control side): write to the bot or in groups, send a location (live, and move
it) or a voice note, press buttons, add the bot to groups or remove it, join, block the bot, upgrade a
group to a supergroup."""

from __future__ import annotations

import copy

from bot.sandbox.emulator.errors import JSON, bad
from bot.sandbox.emulator.state import BotState, CallbackRecord, ChatState
from bot.sandbox.emulator.textparse import auto_entities
from bot.sandbox.emulator.updates import Updates


class People(Updates):
    """Each action stores its message and queues the update(s) every bot concerned gets."""

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

    def user_moves_location(
        self,
        user_id: int,
        message_id: int,
        latitude: float,
        longitude: float,
        *,
        token: str | None = None,
        chat_id: int | None = None,
    ) -> JSON:
        """The user's live location ``message_id`` moves: the message is edited and each bot that saw it
        gets an ``edited_message``. Refused (400) once the live period is over, or for any other message."""
        user = self._user(user_id)
        chat = self._chat(chat_id if chat_id is not None else user["id"])
        record = chat.messages.get(int(message_id))
        if record is None or record.deleted or record.from_user_id != user["id"]:
            raise bad("message to edit not found")
        location = record.message.get("location")
        if not isinstance(location, dict) or not location.get("live_period"):
            raise bad("there is no live location in the message to edit")
        if not record.live_open(self.now()):
            raise bad("message can't be edited")
        moved = {**location, "latitude": float(latitude), "longitude": float(longitude)}
        now = self.now()
        record.message["location"] = moved
        record.message["edit_date"] = int(now)
        record.edits.append({"kind": "live_location", "location": copy.deepcopy(moved), "time": now, "date": int(now)})
        self.feed.touch(record)
        updates: list[JSON] = []
        for bot in self._bots_seeing(chat, record.message, token):
            update = self._enqueue(bot, "edited_message", copy.deepcopy(record.message))
            if update is not None:
                updates.append(update)
        return {"message": copy.deepcopy(record.message), "updates": updates, "update": updates[0] if updates else None}

    send_text = user_sends_text

    send_location = user_sends_location

    send_voice = user_sends_voice

    # ---------------------------------------------------------------- buttons
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

    # ---------------------------------------------------------------- groups and blocking
    def add_bot_to_group(
        self, chat_id: int, *, token: str | None = None, by_user_id: int | None = None, status: str = "member"
    ) -> JSON:
        """Someone adds the bot to a group: a ``my_chat_member`` update and a ``new_chat_members`` message."""
        chat, bot, adder, old, member_update = self._bot_status_change(chat_id, token, by_user_id, status)
        updates: list[JSON] = []
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

    def remove_bot_from_group(
        self,
        chat_id: int,
        *,
        token: str | None = None,
        by_user_id: int | None = None,
        status: str = "kicked",
        notify: bool = True,
    ) -> JSON:
        """Someone removes (``left``) or bans (``kicked``) the bot from a group: a ``my_chat_member`` update,
        unless ``notify`` is false (an update the bot never got); posting there then answers 403."""
        if status not in ("left", "kicked"):
            raise bad("status must be left or kicked")
        chat, bot, _, old, member_update = self._bot_status_change(chat_id, token, by_user_id, status)
        update = self._enqueue(bot, "my_chat_member", member_update) if notify and old != status else None
        return {"chat": self._chat_info(chat), "update": update}

    def _bot_status_change(
        self, chat_id: int, token: str | None, by_user_id: int | None, status: str
    ) -> tuple[ChatState, BotState, JSON, str, JSON]:
        """Set the bot's status in a group chat; (chat, bot, actor, old status, the my_chat_member body)."""
        chat = self._chat(chat_id)
        if chat.type == "private":
            raise bad("not a group")
        bot = self.bot(token)
        actor_id = by_user_id if by_user_id is not None else chat.creator_id
        if actor_id is None:
            raise bad("by_user_id is required for a group without members")
        actor = self._user(actor_id)
        old = chat.bot_status.get(bot.token, "left")
        chat.bot_status[bot.token] = status
        body = {
            "chat": self.chat_json(chat),
            "from": dict(actor),
            "date": int(self.now()),
            "old_chat_member": self._member_json(bot.user_json(), old),
            "new_chat_member": self._member_json(bot.user_json(), status),
        }
        return chat, bot, actor, old, body

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
