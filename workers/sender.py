"""Send one Bot API call synchronously, through python-telegram-bot's light ``telegram.Bot``.

RQ jobs are synchronous; rather than ``asyncio.run`` per job (a new loop and a new connection pool each
time), a :class:`Sender` keeps one event loop in a background thread and one ``telegram.Bot`` (one HTTP
connection pool) per worker process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import warnings
from datetime import timedelta
from typing import Any

import telegram
from telegram import error as tg_error
from telegram.request import HTTPXRequest
from telegram.warnings import PTBUserWarning

from bot.outgoing import Outgoing
from workers.errors import BadRequest, ChatMigrated, RetryLater, SendError, Unreachable

NETWORK_RETRY_HINT_S = 1.0


class RawBot(telegram.Bot):
    """A ``telegram.Bot`` for raw calls: ``do_api_request`` warns "use Bot.send_message instead" for
    methods PTB knows, but the renderer hands us ready Bot API dicts on purpose."""

    __slots__ = ()

    @classmethod
    def _warn(
        cls, message: str | PTBUserWarning, category: type[Warning] = PTBUserWarning, stacklevel: int = 0
    ) -> None:
        if str(message).startswith("Please use 'Bot."):
            return
        warnings.warn(message=message, category=category, stacklevel=stacklevel + 2)


class Sender:
    """One ``telegram.Bot`` on a persistent event loop; :meth:`send` is blocking and thread-safe."""

    def __init__(self, token: str, api_url: str = "https://api.telegram.org", *, timeout_s: float = 10.0) -> None:
        api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        request = HTTPXRequest(
            connection_pool_size=8,
            connect_timeout=5.0,
            read_timeout=timeout_s,
            write_timeout=timeout_s,
            pool_timeout=5.0,
        )
        self.bot = RawBot(
            token, base_url=f"{api_url}/bot", base_file_url=f"{api_url}/file/bot", request=request
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="yihu-sender", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self, coro: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=self.timeout_s * 2 + 10)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RetryLater(NETWORK_RETRY_HINT_S, "send timed out") from None

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        return await self.bot.do_api_request(method, api_kwargs=params)

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """One raw Bot API call; Telegram's refusals come out as :mod:`workers.errors` exceptions.

        Raises:
            Unreachable: 403.
            RetryLater: 429 (``flood=True``, Telegram's ``retry_after``), or a network error / 5xx.
            ChatMigrated: the group became a supergroup.
            BadRequest: 400 and other permanent refusals (401/404/409 too: retrying will not help).
        """
        if self._closed:
            raise RuntimeError("sender is closed")
        try:
            return self._run(self._call(method, params))
        except tg_error.RetryAfter as exc:
            raise RetryLater(_seconds(exc.retry_after), str(exc), flood=True) from exc
        except tg_error.ChatMigrated as exc:
            raise ChatMigrated(int(exc.new_chat_id)) from exc
        except tg_error.Forbidden as exc:
            raise Unreachable(str(exc)) from exc
        except tg_error.BadRequest as exc:
            raise BadRequest(str(exc)) from exc
        except (tg_error.InvalidToken, tg_error.Conflict) as exc:
            raise BadRequest(str(exc)) from exc
        except (tg_error.TimedOut, tg_error.NetworkError) as exc:
            # NetworkError also covers 5xx answers.
            raise RetryLater(NETWORK_RETRY_HINT_S, str(exc)) from exc
        except tg_error.TelegramError as exc:
            raise SendError(str(exc)) from exc

    def send(self, outgoing: Outgoing) -> dict[str, Any]:
        """Perform ``outgoing``; the API's result (a Message as a dict; ``{}`` when it answers ``true``)."""
        result = self.call(outgoing.method, outgoing.params)
        return result if isinstance(result, dict) else {}

    def close(self) -> None:
        """Close the HTTP pool and stop the loop thread."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # closing is best effort
            asyncio.run_coroutine_threadsafe(self.bot.shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
