"""Telegram's flood limits (token buckets answering 429 with ``retry_after``) and injected faults."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, fields
from typing import Any

from bot.sandbox.emulator.config import FailRule, Faults, RateLimits, faults_from_json
from bot.sandbox.emulator.errors import JSON, ApiError
from bot.sandbox.emulator.state import BotState, Bucket, ChatState, EmulatorState


def is_rate_limited(method: str) -> bool:
    if method == "sendchataction":
        return False
    return method.startswith(("send", "edit")) or method in {
        "copymessage",
        "copymessages",
        "forwardmessage",
        "forwardmessages",
    }


class Limits(EmulatorState):
    """Rate limits per bot token (global, per private chat, per group) and faults set by the control API."""

    def set_limits(self, **changes: Any) -> JSON:
        for key, value in changes.items():
            if key not in {f.name for f in fields(RateLimits)}:
                raise ValueError(f"unknown limit {key!r}")
            setattr(self.config.limits, key, value)
        self.buckets.clear()
        return asdict(self.config.limits)

    def set_faults(self, *, replace: bool = False, **changes: Any) -> JSON:
        seed = changes.pop("seed", None)
        base = Faults() if replace else self.config.faults
        self.config.faults = faults_from_json(changes, base)
        if seed is not None:
            self.rng.seed(seed)
        return self.config.faults.to_json()

    def fail_next(
        self,
        method: str,
        code: int = 500,
        count: int = 1,
        *,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.config.faults.fail_next.append(FailRule(method.lower(), int(code), int(count), description, retry_after))

    async def _apply_faults(self, method: str) -> None:
        faults = self.config.faults
        if faults.delay and (faults.delay_methods is None or method in faults.delay_methods):
            await asyncio.sleep(faults.delay)
        for rule in faults.fail_next:
            if rule.remaining > 0 and rule.method in ("*", method):
                rule.remaining -= 1
                faults.fail_next = [r for r in faults.fail_next if r.remaining > 0]
                raise self._fault_error(rule.code, rule.description, rule.retry_after)
        applies = method in faults.methods if faults.methods is not None else is_rate_limited(method)
        if not applies:
            return
        for code, p in ((500, faults.p500), (502, faults.p502), (429, faults.p429)):
            if p and self.rng.random() < p:
                raise self._fault_error(code, None, faults.retry_after)

    @staticmethod
    def _fault_error(code: int, description: str | None, retry_after: int | None) -> ApiError:
        if code == 429:
            ra = max(1, int(retry_after or 1))
            return ApiError(429, description or f"Too Many Requests: retry after {ra}", {"retry_after": ra})
        default = {
            500: "Internal Server Error",
            502: "Bad Gateway",
            400: "Bad Request: injected fault",
            403: "Forbidden: injected fault",
            409: "Conflict: injected fault",
        }.get(code, "Injected fault")
        return ApiError(code, description or default)

    def _take_rate(self, bot: BotState, chat: ChatState) -> None:
        limits = self.config.limits
        if not limits.enabled:
            return
        now = time.monotonic()
        if chat.type == "private":
            rate, cap = limits.private_rate, limits.private_capacity
        else:
            rate, cap = limits.group_rate, limits.group_capacity
        checks = [
            ((bot.token, "*"), limits.global_rate, limits.global_capacity),
            ((bot.token, str(chat.id)), rate, cap),
        ]
        need = 1.0 - limits.tolerance
        wait = 0.0
        buckets = []
        for key, r, c in checks:
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = Bucket(tokens=c, stamp=now)
            bucket.tokens = min(c, bucket.tokens + (now - bucket.stamp) * r)
            bucket.stamp = now
            buckets.append(bucket)
            if bucket.tokens < need:
                wait = max(wait, (need - bucket.tokens) / r if r > 0 else 3600.0)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        for bucket in buckets:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
