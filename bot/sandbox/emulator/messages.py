"""The Bot API methods that send and edit messages, with Telegram's checks: who may be written to,
text length and parse modes, keyboards, replies, files, edits that change nothing."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from bot.sandbox.emulator.errors import JSON, bad, forbidden
from bot.sandbox.emulator.limits import Limits
from bot.sandbox.emulator.params import Upload
from bot.sandbox.emulator.state import LIVE_FOREVER, BotState, ChatState, FileRecord, MessageRecord
from bot.sandbox.emulator.textparse import HtmlParseError, parse_html, parse_markdown, parse_markdown_v2, utf16_len

MAX_TEXT = 4096

MAX_CAPTION = 1024

MIN_LIVE_PERIOD = 60
MAX_LIVE_PERIOD = 86400


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


PARSERS: dict[str, Callable[[str], tuple[str, list[JSON]]]] = {
    "html": parse_html,
    "markdownv2": parse_markdown_v2,
    "markdown": parse_markdown,
}


FILE_KINDS = ("voice", "audio", "photo", "document", "video", "animation", "video_note", "sticker")


class Messages(Limits):
    """sendMessage, sendLocation, send<File>, copyMessage, forwardMessage, editMessage*,
    editMessageLiveLocation, stopMessageLiveLocation, deleteMessage, answerCallbackQuery, sendChatAction."""

    # ---------------------------------------------------------------- checks
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

    # ---------------------------------------------------------------- sending
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
        if "live_period" in location:
            period = _int_or_none(location["live_period"])
            if period is None or not (MIN_LIVE_PERIOD <= period <= MAX_LIVE_PERIOD or period == LIVE_FOREVER):
                raise bad("wrong live period specified")
            location["live_period"] = period
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

    # ---------------------------------------------------------------- editing
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
        self.feed.touch(record)
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

    def _live_location(self, bot: BotState, params: JSON) -> tuple[ChatState, MessageRecord]:
        """The bot's live location message to move or stop; Telegram's refusals otherwise."""
        chat, record = self._editable(bot, params)
        location = record.message.get("location")
        if not isinstance(location, dict) or not location.get("live_period"):
            raise bad("there is no live location in the message to edit")
        if not record.live_open(self.now()):
            raise bad("message can't be edited")
        return chat, record

    async def _m_edit_live_location(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat, record = self._live_location(bot, params)
        try:
            lat = float(params["latitude"])
            lon = float(params["longitude"])
        except (KeyError, TypeError, ValueError):
            raise bad("wrong latitude/longitude specified") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise bad("wrong latitude/longitude specified")
        markup = self._check_markup(params.get("reply_markup"))
        old = record.message["location"]
        location = {**old, "latitude": lat, "longitude": lon}
        for key in ("horizontal_accuracy", "heading", "proximity_alert_radius"):
            if params.get(key) is not None:
                location[key] = params[key]
        if location == old and (markup or None) == record.message.get("reply_markup"):
            raise bad(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        self._take_rate(bot, chat)
        return self._record_location_edit(record, location, markup, "live_location")

    async def _m_stop_live_location(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> JSON:
        chat, record = self._live_location(bot, params)
        markup = self._check_markup(params.get("reply_markup"))
        self._take_rate(bot, chat)
        record.live_stopped = True
        return self._record_location_edit(record, dict(record.message["location"]), markup, "live_stop")

    def _record_location_edit(self, record: MessageRecord, location: JSON, markup: JSON | None, kind: str) -> JSON:
        now = self.now()
        record.message["location"] = location
        record.message["edit_date"] = int(now)
        if markup and "inline_keyboard" in markup:
            record.message["reply_markup"] = copy.deepcopy(markup)
        else:
            record.message.pop("reply_markup", None)
        record.reply_markup = copy.deepcopy(markup)
        record.edits.append({"kind": kind, "location": copy.deepcopy(location), "time": now, "date": int(now)})
        self.feed.touch(record)
        return copy.deepcopy(record.message)

    # ---------------------------------------------------------------- the rest
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
        self.feed.touch(record)
        return True

    async def _m_send_chat_action(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        self._target(bot, params.get("chat_id"))
        if not params.get("action"):
            raise bad("wrong parameter action in request")
        return True
