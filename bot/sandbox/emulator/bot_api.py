"""The Bot API: the method table, one call run from start to end (faults, the handler, the call log),
and the methods about the bot itself, chats, members and files. Sending and editing messages is in
``messages``, getUpdates and webhooks in ``updates``."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from bot.sandbox.emulator.config import EmulatorConfig
from bot.sandbox.emulator.errors import JSON, ApiError, bad
from bot.sandbox.emulator.messages import Messages
from bot.sandbox.emulator.params import Upload
from bot.sandbox.emulator.state import BotState, ChatState
from bot.sandbox.emulator.updates import Updates

Handler = Callable[[BotState, JSON, dict[str, Upload]], Awaitable[Any]]


class BotApi(Messages, Updates):
    """Every Bot API method by name (case-insensitive); anything else answers 404."""

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._methods: dict[str, tuple[str, Handler]] = {}
        self._register_methods()

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
            self.log_call(token, name, logged_params, exc.code, exc, None)
            return exc.payload()
        self.log_call(token, name, logged_params, 200, None, copy.deepcopy(result))
        return {"ok": True, "result": result}

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
            "editMessageLiveLocation": self._m_edit_live_location,
            "stopMessageLiveLocation": self._m_stop_live_location,
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

    # ---------------------------------------------------------------- commands, menu button, names
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

    # ---------------------------------------------------------------- chats and members
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

    async def _m_true_in_chat(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        self._target(bot, params.get("chat_id"))
        return True

    # ---------------------------------------------------------------- files, close
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

    async def _m_close(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> bool:
        bot.closed = True
        return True
