"""The feed of changed messages across chats: every message stored, edited, moved or deleted gets the next
sequence number, and a watcher asks for what changed after the last number it saw (``GET /_emu/feed``,
a long poll). The village simulator (``bot.web.simulator``) shows every phone live from it."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Iterable, Mapping
from typing import Protocol

from bot.sandbox.emulator.errors import JSON

FEED_KEPT = 20_000  # changes remembered; a watcher further behind gets the whole of its chats again
FEED_MAX_WAIT_S = 30.0


class MessageRecord(Protocol):  # bot.sandbox.emulator.state's, without importing it back
    chat_id: int
    message_id: int
    seq: int

    def to_json(self) -> JSON: ...


class ChatState(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def messages(self) -> Mapping[int, MessageRecord]: ...


class Feed:
    """The change log: (seq, chat id, message id), oldest first, and an event set at every change."""

    def __init__(self) -> None:
        self.seq = 0
        self._log: list[tuple[int, int, int]] = []
        self._changed = asyncio.Event()
        self.closing = False

    def touch(self, record: MessageRecord) -> None:
        self.seq += 1
        record.seq = self.seq
        self._log.append((self.seq, record.chat_id, record.message_id))
        if len(self._log) > FEED_KEPT:
            del self._log[: len(self._log) - FEED_KEPT]
        self.notify()

    def notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def changes(self, chats: Mapping[int, ChatState], after: int, only: Iterable[int] | None = None) -> JSON:
        """``{"seq", "messages"}``: the current state of each message of ``only`` (every chat when None)
        that changed after ``after``, in the order of their last change."""
        wanted = None if only is None else set(only)
        oldest = self._log[0][0] if self._log else self.seq + 1
        records: list[MessageRecord] = []
        if after + 1 < oldest:  # too far behind (or the first look): every message of those chats
            for chat in chats.values():
                if wanted is None or chat.id in wanted:
                    records += [r for r in chat.messages.values() if r.seq > after]
        else:
            seen: set[tuple[int, int]] = set()
            start = bisect.bisect_right(self._log, (after, 1 << 62, 1 << 62))
            for _, chat_id, message_id in reversed(self._log[start:]):
                if (chat_id, message_id) in seen or (wanted is not None and chat_id not in wanted):
                    continue
                seen.add((chat_id, message_id))
                holder = chats.get(chat_id)
                record = holder.messages.get(message_id) if holder is not None else None
                if record is not None:
                    records.append(record)
        records.sort(key=lambda r: r.seq)
        return {"seq": self.seq, "messages": [r.to_json() for r in records]}

    async def wait(
        self, chats: Mapping[int, ChatState], after: int, only: Iterable[int] | None = None, timeout: float = 0.0
    ) -> JSON:
        """:meth:`changes`, waiting up to ``timeout`` seconds (at most :data:`FEED_MAX_WAIT_S`) for one."""
        wanted = None if only is None else list(only)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout, 0.0), FEED_MAX_WAIT_S)
        while True:
            changed = self._changed
            result = self.changes(chats, after, wanted)
            remaining = deadline - loop.time()
            if result["messages"] or remaining <= 0 or self.closing:
                return result
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
