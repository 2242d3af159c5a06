"""Updates: each bot's queue, getUpdates long polling, webhook push with retries, and redelivery.

An update stays queued until the bot confirms it (a later getUpdates offset, or a 2xx from its
webhook): delivery is at least once, and injected faults may even duplicate an update.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re

import aiohttp

from bot.sandbox.emulator.errors import JSON, ApiError, bad
from bot.sandbox.emulator.params import Upload, coerce
from bot.sandbox.emulator.state import BotState, ChatState, EmulatorState

log = logging.getLogger("yihu.emulator")

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
                params[part.name] = coerce(part.name, data.decode("utf-8", "replace"))
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
        params = {k: coerce(k, v) if isinstance(v, str) else v for k, v in decoded.items()}
    if not isinstance(params.get("method"), str):
        return None
    return params, files


class Updates(EmulatorState):
    """The update queue of every bot and the two ways it is drained (getUpdates, a webhook)."""

    _closing = False
    _session: aiohttp.ClientSession | None = None

    async def call(self, token: str, method: str, params: JSON, files: dict[str, Upload] | None = None) -> JSON:
        """Run one Bot API call (:class:`bot.sandbox.emulator.bot_api.BotApi`): a webhook may answer with one."""
        raise NotImplementedError

    def release_waiters(self) -> None:
        """End every waiting long poll now (with an empty result); used when the server stops."""
        self._closing = True
        for bot in self.bots.values():
            bot.notify()
        self.feed.closing = True
        self.feed.notify()

    async def close(self) -> None:
        self.release_waiters()
        for bot in self.bots.values():
            await self._stop_webhook(bot)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _session_get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    # ---------------------------------------------------------------- the queue
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

    def pending_updates(self, token: str | None = None) -> list[JSON]:
        return copy.deepcopy(self.bot(token).queue)

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

    # ---------------------------------------------------------------- getUpdates
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

    # ---------------------------------------------------------------- webhooks
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
