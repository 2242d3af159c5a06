"""The emulator on its own event loop in a background thread, for synchronous callers (the workers'
tests and the benches, which drive RQ jobs and processes from plain threads)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from bot.sandbox.emulator.server import RunningEmulator, start_emulator

T = TypeVar("T")


class ThreadedEmulator:
    """``ThreadedEmulator(**config)``: started at once; ``do`` runs a call on its loop; ``stop()``."""

    def __init__(self, **config: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="emulator", daemon=True)
        self.thread.start()
        self.running: RunningEmulator = asyncio.run_coroutine_threadsafe(
            start_emulator(**config), self.loop
        ).result(10)
        self.emulator = self.running.emulator
        self.url = self.running.url
        self.token = self.running.token

    def do(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the emulator's loop (its state is not thread-safe) and return its result."""

        async def call() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(30)

    def user(self, name: str = "User", *, started: bool = True) -> int:
        """A new user; ``started``: they wrote to the bot, so it may write to them."""
        user_id = int(self.do(self.emulator.create_user, name)["id"])
        if started:
            self.do(self.emulator.user_sends_text, user_id, "/start")
        return user_id

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        return list(self.do(self.emulator.call_log, method=method))

    def calls(self, start: int = 0) -> list[tuple[float, str, bool, int | None, int | None]]:
        """Bot API calls from index ``start`` as (time, method, ok, error code, chat id), without deep copies."""

        def read() -> list[tuple[float, str, bool, int | None, int | None]]:
            out = []
            for call in self.emulator.calls[start:]:
                chat = call["params"].get("chat_id") if isinstance(call["params"], dict) else None
                out.append((
                    float(call["time"]), str(call["method"]).lower(), bool(call["ok"]), call["error_code"],
                    int(chat) if chat is not None and str(chat).lstrip("-").isdigit() else None,
                ))
            return out

        return self.do(read)

    def poll_generation(self) -> int:
        """How many getUpdates the bot has started (a new one = serving)."""
        return int(self.do(lambda: self.emulator.bot(self.token).poll_generation))

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(self.emulator.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
