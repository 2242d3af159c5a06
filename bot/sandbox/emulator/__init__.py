"""A Telegram Bot API emulator (aiohttp) for the tests and ``yihu demo``.

Real clients talk to it as to a local Bot API server:

- aiogram: ``AiohttpSession(api=TelegramAPIServer.from_base(url))``
- python-telegram-bot: ``Bot(token, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot")``
- ``YIHU_TELEGRAM_API_URL=url``: requests go to ``{url}/bot{TOKEN}/{method}``, files to
  ``{url}/file/bot{TOKEN}/{file_path}``.

Bot API (``/bot{token}/{method}``, GET/POST; query, JSON, urlencoded or multipart bodies; method
names case-insensitive; answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code",
"description", "parameters"?}``): getMe, getUpdates, setWebhook, deleteWebhook, getWebhookInfo,
sendMessage, sendLocation, editMessageLiveLocation, stopMessageLiveLocation, sendVoice, sendAudio,
sendPhoto, sendDocument, sendVideo, copyMessage, forwardMessage, editMessageText, editMessageCaption,
editMessageReplyMarkup, deleteMessage,
answerCallbackQuery, sendChatAction, setMyCommands, getMyCommands, deleteMyCommands, getChat,
getChatMember, getChatMemberCount, getChatAdministrators, leaveChat, getFile, setChatMenuButton,
getChatMenuButton, set/getMyName, set/getMyDescription, set/getMyShortDescription,
pinChatMessage, unpinChatMessage, close, logOut. Anything else: 404 ``Not Found``.

Telegram behaviour emulated: 403 for users who never wrote to the bot or blocked it, 400 ``chat
not found``, 400 with ``migrate_to_chat_id`` for upgraded groups, ``message is too long`` (4096
UTF-16 units after HTML parsing), ``message is not modified``, ``message to edit not found``,
callback answers once per query, live locations (``live_period`` 60..86400 or 0x7FFFFFFF; moved
or stopped only within it, else ``message can't be edited``), ``BUTTON_DATA_INVALID`` for
callback_data over 64 bytes, HTML parse mode turned into entities, editing without ``reply_markup``
removes the inline keyboard, privacy mode in groups (a bot that is not an admin sees only commands,
replies to it, mentions and service messages), ``allowed_updates`` remembered and applied when updates are created,
409 for getUpdates while a webhook is set and for a getUpdates superseded by a newer one, webhook
delivery in order with retries and the ``X-Telegram-Bot-Api-Secret-Token`` header (a JSON reply
with ``method`` is executed), rate limits as token buckets per bot token (global, per private chat,
per group) answering 429 ``Too Many Requests: retry after N`` with ``parameters.retry_after``
(send*, copy/forward, edit*; not sendChatAction).

Control API (JSON; answers ``{"ok": true, "result": ...}``, errors ``{"ok": false, "description"}``
with status 400; ``token`` may be omitted everywhere: the default token):

=======================================  ==========================================================
``POST /_emu/users``                     {first_name, id?, last_name?, username?, language_code?}
``GET  /_emu/users/{user_id}``           the user
``POST /_emu/bots``                      {token?, username?, first_name?} register/rename a bot
``POST /_emu/send``                      {user_id, text, chat_id?, token?, reply_to_message_id?}
                                         -> {message, update, updates}; a private message marks
                                         the user as having started the bot
``POST /_emu/location``                  {user_id, latitude, longitude, chat_id?, token?, ...}
``POST /_emu/location/move``             {user_id, message_id, latitude, longitude, chat_id?, token?}
                                         -> {message, update}: a live location moves (edited_message)
``POST /_emu/voice``                     {user_id, duration?, data_b64?, mime_type?, chat_id?, ...}
``POST /_emu/press``                     {user_id, chat_id, message_id, data, force?}
                                         -> {callback_query_id, update}
``GET  /_emu/callback_answers[/{id}]``   {id, data, answered, text, show_alert, url, ...}
``POST /_emu/groups``                    {title, members: [user_id], type: group|supergroup, id?}
``POST /_emu/groups/{chat_id}/add_bot``  {token?, by_user_id?, status: member|administrator}
``POST /_emu/groups/{chat_id}/remove_bot``
                                         {token?, by_user_id?, status: left|kicked, notify?}: a
                                         my_chat_member (unless notify is false); posts then 403
``POST /_emu/groups/{chat_id}/join``     {user_id}
``POST /_emu/groups/{chat_id}/migrate``  {by_user_id?, new_chat_id?} -> {old_chat_id, new_chat_id}
``POST /_emu/block``                     {user_id, token?, blocked: true|false}
``GET  /_emu/chats/{chat_id}``           chat info (members, bots, migration)
``GET  /_emu/chats/{chat_id}/messages``  ?token=&all=1 -> bot messages with ``edits``
``GET  /_emu/calls``                     ?method=&since=<epoch>&after_seq=&token=&errors_only=1
``GET  /_emu/feed``                      ?after=<seq>&chats=<id,id>&timeout=<s> -> {seq, messages}: every
                                         message (users' too) stored, edited or deleted after ``after``,
                                         as now, waiting up to ``timeout`` (≤ 30 s) for one (a long poll)
``GET  /_emu/updates``                   ?token= pending (unconfirmed) updates
``POST /_emu/limits``                    {enabled?, global_rate?, global_capacity?, private_rate?,
                                         private_capacity?, group_rate?, group_capacity?, tolerance?}
``POST /_emu/faults``                    {p500?, p502?, p429?, retry_after?, methods?, delay?,
                                         delay_methods?, duplicate_update_probability?, seed?,
                                         fail_next?: [{method, code, count, description?,
                                         retry_after?}], replace?}
``POST /_emu/reset``                     forget all state; initial limits and faults
``GET  /_emu/state``                     bots, users, chats, callbacks, limits, faults
=======================================  ==========================================================

Configuration (``start_emulator(**config)`` / :class:`EmulatorConfig`): ``default_token``,
``default_username`` (``yihu_test_bot``), ``tokens`` (allow-list; others get 401), ``bot_usernames``
({token: username}; otherwise ``bot<id>_bot``), ``privacy_mode`` (True), ``seed``, ``limits``
(:class:`RateLimits` or dict; ``False`` disables), ``faults`` (:class:`Faults` or dict),
``getupdates_conflict``, ``webhook_timeout``, ``webhook_retry_initial``, ``webhook_retry_max``,
``callback_answer_timeout`` (None: callback queries never expire), ``max_calls_logged``.

Python: :func:`start_emulator` (in-process, returns :class:`RunningEmulator` with ``url``,
``port``, ``emulator`` and ``stop()``), :class:`Emulator` (state with the same operations as
methods), :class:`EmulatorClient` (async HTTP client of the control API) and
``python -m bot.sandbox.emulator --host --port --token``.

The parts, each on the ones before it: ``config`` (what it starts with), ``state`` (the store),
``limits`` (429s and injected faults), ``updates`` (queues, getUpdates, webhook push),
``people`` (what users do), ``messages`` (sending and editing), ``bot_api`` (the method table and
the other methods), ``emulator`` (:class:`Emulator`, all of them), ``feed`` (the change log
the control API's ``/_emu/feed`` reads), ``control`` (the control API),
``server`` (the aiohttp app); ``params`` and ``textparse`` read requests and texts.
"""

from bot.sandbox.emulator.client import EmulatorClient, EmulatorError
from bot.sandbox.emulator.config import DEFAULT_TOKEN, DEFAULT_USERNAME, EmulatorConfig, Faults, RateLimits
from bot.sandbox.emulator.emulator import Emulator
from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.server import RunningEmulator, start_emulator

__all__ = [
    "DEFAULT_TOKEN",
    "DEFAULT_USERNAME",
    "ApiError",
    "Emulator",
    "EmulatorClient",
    "EmulatorConfig",
    "EmulatorError",
    "Faults",
    "RateLimits",
    "RunningEmulator",
    "start_emulator",
]
