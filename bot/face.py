"""What both faces share besides the conversation: the updates to ask for, the command menu, ports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from functools import partial
from typing import Any, Protocol

from bot.conversation import Conversation, Incoming, Outcome
from bot.render.texts import plain
from config.settings import LANGUAGES, Language
from workers.limiter import LATE_ROUNDS, woke_late

log = logging.getLogger(__name__)

REPLY_ATTEMPTS = 3
POLL_TIMEOUT = 10  # seconds a getUpdates long poll waits on the server
HANDLE_ATTEMPTS = 5  # a failing update (database busy or down) is tried this often before it is given up

# aiogram derives allowed_updates from its handlers; ask explicitly or button presses never arrive.
# edited_message: a live location's moves come as edits of its message.
ALLOWED_UPDATES: tuple[str, ...] = ("message", "edited_message", "callback_query", "my_chat_member")

# The default menu (every user); staff commands are listed by /help for those allowed to use them.
MENU: tuple[str, ...] = ("sos", "cancel", "help", "start")


class LimiterPort(Protocol):
    def reserve(self, chat_id: int, max_wait: float | None = None) -> float: ...


# Bot API methods that put a message in a chat (edits count): these pass the shared limiter.
LIMITED_METHOD_PREFIXES = ("send", "edit", "copy", "forward")


async def pace(limiter: LimiterPort, method: str, chat_id: object) -> None:
    """Wait for the shared limiter's slot before a message-sending call of either face (woken late, book
    again, as the workers do: :func:`workers.limiter.woke_late`)."""
    if not (isinstance(chat_id, int) and method.lower().startswith(LIMITED_METHOD_PREFIXES)):
        return
    loop = asyncio.get_running_loop()
    for _ in range(LATE_ROUNDS):
        wait = await asyncio.to_thread(limiter.reserve, chat_id)
        due = loop.time() + wait
        if wait > 0:
            await asyncio.sleep(wait)
        if not woke_late(due, loop.time()):
            return


def command_menu(fallback: Language) -> dict[str, list[tuple[str, str]]]:
    """Per Telegram language code ('' = everyone else, in the fallback language): [(command, description)]."""
    menus: dict[str, list[tuple[str, str]]] = {
        language: [(name, plain(language, f"cmd.{name}")) for name in MENU] for language in LANGUAGES
    }
    menus[""] = menus[fallback]
    return menus


def seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def send_reply(
    send: Callable[[], Awaitable[object]], retry_after: Callable[[Exception], float | None], chat_id: int
) -> None:
    """Send one direct reply; a 429 is honoured (wait ``retry_after``, try again), other errors are logged."""
    for attempt in range(1, REPLY_ATTEMPTS + 1):
        try:
            await send()
            return
        except Exception as exc:
            wait = retry_after(exc)
            if wait is None or attempt == REPLY_ATTEMPTS:
                log.warning("reply to chat %s failed: %s", chat_id, exc)
                return
            await asyncio.sleep(wait)


# -- what both faces do the same way -------------------------------------------------------------------
# aiogram's and python-telegram-bot's objects carry the Bot API's field names, so one conversion serves
# both (chat types are plain strings in aiogram and str-enums in PTB).


def live_period_of(location: Any) -> int | None:
    """A location's ``live_period`` in seconds (None: not a live location). PTB 22 warns when the attribute
    is read as a number, so its serialized form is read there (aiogram's objects have no ``to_dict``)."""
    if location is None:
        return None
    to_dict = getattr(location, "to_dict", None)
    value = to_dict().get("live_period") if callable(to_dict) else getattr(location, "live_period", None)
    return int(seconds(value)) if value else None


def incoming_from_message(update_id: int, message: Any, *, edited: bool = False) -> Incoming:
    """A message, or (``edited``) an edited message: a live location's move comes as one."""
    user = message.from_user
    location = (message.location.latitude, message.location.longitude) if message.location else None
    return Incoming(
        update_id=update_id,
        chat_id=message.chat.id,
        chat_type=str(message.chat.type),
        user_id=user.id if user else None,
        language_code=user.language_code if user else None,
        text=message.text or message.caption,
        message_id=message.message_id,
        voice=message.voice is not None,
        location=location,
        migrate_to_chat_id=message.migrate_to_chat_id,
        live_period=live_period_of(message.location),
        edited=edited,
    )


def incoming_from_chat_member(update_id: int, event: Any) -> Incoming:
    """``my_chat_member``: the bot's own status in a chat changed (added, left, kicked)."""
    user = event.from_user
    return Incoming(
        update_id=update_id,
        chat_id=event.chat.id,
        chat_type=str(event.chat.type),
        user_id=user.id if user else None,
        language_code=user.language_code if user else None,
        bot_status=str(event.new_chat_member.status),
    )


def incoming_from_callback(update_id: int, query: Any) -> Incoming:
    chat = query.message.chat if query.message else None
    return Incoming(
        update_id=update_id,
        chat_id=chat.id if chat else query.from_user.id,
        chat_type=str(chat.type) if chat else "private",
        user_id=query.from_user.id,
        language_code=query.from_user.language_code,
        callback_id=query.id,
        callback_data=query.data,
        message_id=query.message.message_id if query.message else None,
    )


def incoming_from_update(update: Any) -> Incoming | None:
    """The conversation's view of an update of either library; None for updates it does not handle."""
    if update.message is not None:
        return incoming_from_message(update.update_id, update.message)
    if update.callback_query is not None:
        return incoming_from_callback(update.update_id, update.callback_query)
    if update.edited_message is not None:
        return incoming_from_message(update.update_id, update.edited_message, edited=True)
    if update.my_chat_member is not None:
        return incoming_from_chat_member(update.update_id, update.my_chat_member)
    return None


class ReplySender:
    """Sends an :class:`Outcome` back after the update was persisted, in the background, so the next
    update is never held up by one chat's rate limit; ``drain`` waits for them on a graceful stop."""

    def __init__(self) -> None:
        self._sending: set[asyncio.Task[None]] = set()

    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        raise NotImplementedError

    async def send_text(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None, link_preview: bool = True
    ) -> None:
        raise NotImplementedError

    def retry_after(self, exc: Exception) -> float | None:
        """Seconds Telegram asked to wait when ``exc`` is a 429, else None."""
        raise NotImplementedError

    # -- a polled batch of updates --------------------------------------------------------------------
    conversation: Conversation

    def incoming_of(self, update: Any) -> Incoming | None:
        """The conversation's view of a polled update; None for one only the library's handlers know."""
        raise NotImplementedError

    async def process_one(self, update: Any, stop: asyncio.Event) -> bool:
        """Handle one update through the library's dispatcher, retrying failures; True once done with
        (persisted, or given up on and logged), False when ``stop`` came first."""
        raise NotImplementedError

    async def poll_loop(
        self,
        fetch: Callable[[int | None], Coroutine[Any, Any, Sequence[Any]]],
        stop: asyncio.Event,
        failures: tuple[type[Exception], ...],
    ) -> int | None:
        """Long-poll with ``fetch(offset)`` until ``stop`` is set, each batch through :meth:`ingest`; a fetch
        failing with one of ``failures`` is tried again with backoff. Returns the offset past the last update
        done with (None when nothing came)."""
        offset: int | None = None
        backoff = 0.5
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                fetch_task = asyncio.create_task(fetch(offset))
                await asyncio.wait({fetch_task, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch_task.done():
                    # Stopping during a long poll: nothing fetched yet, nothing to lose.
                    fetch_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, *failures):
                        await fetch_task
                    break
                try:
                    updates = fetch_task.result()
                except failures as exc:
                    log.warning("getUpdates failed: %s; retrying in %.1f s", exc, backoff)
                    await sleep_unless(stop, backoff)
                    backoff = min(backoff * 2, 15.0)
                    continue
                backoff = 0.5
                # Not interrupted by ``stop``: the updates being handled finish.
                done = await self.ingest(updates, stop)
                if done:
                    offset = updates[done - 1].update_id + 1
                if done < len(updates):
                    return offset
        finally:
            stopping.cancel()
        return offset

    async def ingest(self, updates: Sequence[Any], stop: asyncio.Event) -> int:
        """Handle one getUpdates batch; return how many updates from its start are done with (fewer than
        all only when stopping), so that the offset never moves past an update not yet persisted.

        Runs of updates the conversation knows are handled by :func:`ingest_run`; any other update by
        the library's dispatcher, in its place."""
        done: set[int] = set()
        start = 0
        while start < len(updates):
            incoming = self.incoming_of(updates[start])
            if incoming is None:
                if await self.process_one(updates[start], stop):
                    done.add(start)
                start += 1
                continue
            end = start
            run: list[Incoming] = []
            while end < len(updates) and (known := self.incoming_of(updates[end])) is not None:
                run.append(known)
                end += 1
            polled = updates[start:end]

            def one_by_one(k: int, polled: Sequence[Any] = polled) -> Awaitable[bool]:
                return self.process_one(polled[k], stop)

            finished = await ingest_run(self, run, one_by_one)
            done.update(start + k for k in finished)
            start = end
        prefix = 0
        while prefix in done:
            prefix += 1
        return prefix

    def send_later(self, chat_id: int, outcome: Outcome, callback_id: str | None) -> None:
        task = asyncio.create_task(self._send(chat_id, outcome, callback_id))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, chat_id: int, outcome: Outcome, callback_id: str | None) -> None:
        if callback_id is not None and not outcome.duplicate:
            try:
                await self.answer_callback(callback_id, outcome.callback_answer, outcome.callback_alert)
            except Exception as exc:  # an expired query: nothing to do, the press was recorded anyway
                log.info("callback %s not answered: %s", callback_id, exc)
        for reply in outcome.replies:
            send = partial(self.send_text, chat_id, reply.text, reply.reply_markup, reply.link_preview)
            await send_reply(send, self.retry_after, chat_id)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for replies still being sent (graceful stop)."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=timeout)


def lanes(incomings: Sequence[Incoming], n: int) -> list[list[int]]:
    """The indexes of ``incomings`` in at most ``n`` lanes, each in order: updates that share a chat or a
    user are always in the same lane, so one chat's (and one person's) updates are handled in order."""
    parent = list(range(len(incomings)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, int], int] = {}
    for i, incoming in enumerate(incomings):
        keys = [("chat", incoming.chat_id)] + ([("user", incoming.user_id)] if incoming.user_id is not None else [])
        for key in keys:
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(incomings)):
        groups.setdefault(root(i), []).append(i)
    out: list[list[int]] = [[] for _ in range(max(1, min(n, len(groups))))]
    for members in sorted(groups.values(), key=len, reverse=True):
        min(out, key=len).extend(members)
    return [sorted(lane) for lane in out if lane]


async def ingest_run(
    face: ReplySender, incomings: Sequence[Incoming], one_by_one: Callable[[int], Awaitable[bool]]
) -> set[int]:
    """Handle updates the conversation knows: a few at a time in one transaction (``YIHU_INGEST_BATCH``;
    a lane's first, ``YIHU_INGEST_FIRST_BATCH``),
    in several lanes at once where the database allows concurrent writers; each outcome is sent as soon
    as its transaction committed. A batch that fails is handled again one update at a time
    (``one_by_one(index)``, with its retries), so a bad update never holds back the others. Returns the
    indexes done with."""
    conversation = face.conversation
    size = max(1, conversation.ports.settings.ingest_batch)
    # Each lane's first transaction is smaller: under a flood the first reporters' confirmations are
    # committed (and leave) sooner, which is what bounds the last one (docs/architecture.md, "The
    # reporters' confirmations under a flood").
    first_size = max(1, min(size, conversation.ports.settings.ingest_first_batch))
    done: set[int] = set()

    async def lane(indexes: list[int]) -> None:
        at = 0
        while at < len(indexes):
            chunk = indexes[at : at + (first_size if at == 0 else size)]
            at += len(chunk)
            try:
                outcomes = await asyncio.to_thread(conversation.handle_batch, [incomings[k] for k in chunk])
            except Exception:
                log.exception("a batch of %d updates failed; handling them one by one", len(chunk))
                for k in chunk:
                    if not await one_by_one(k):
                        return  # stopping: the rest of this lane stays for the next start
                    done.add(k)
                continue
            for k, outcome in zip(chunk, outcomes, strict=True):
                face.send_later(incomings[k].chat_id, outcome, incomings[k].callback_id)
                done.add(k)

    # What the run owes besides the reporters' confirmations is queued after them (when the bot sends them).
    with conversation.holding():
        await asyncio.gather(*(lane(indexes) for indexes in lanes(incomings, conversation.lanes)))
    return done


async def sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep; True when ``stop`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def handle_with_retries(conversation: Conversation, incoming: Incoming) -> Outcome:
    """Persist one update (in a thread: it is database work), trying again with backoff when the
    system fails (a locked or unreachable database); raises the last error when every attempt failed,
    so webhook mode answers 500 and Telegram delivers the update again."""
    delay = 0.5
    for attempt in range(1, HANDLE_ATTEMPTS + 1):
        try:
            return await asyncio.to_thread(conversation.handle, incoming)
        except Exception:
            if attempt == HANDLE_ATTEMPTS:
                raise
            log.exception("update %s failed (attempt %d of %d)", incoming.update_id, attempt, HANDLE_ATTEMPTS)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)
    raise AssertionError("unreachable")
