"""One sending limiter per bot token, kept in Redis and shared by every process.

:meth:`Limiter.reserve` books, in one atomic Lua script on Redis' clock, the earliest moment that keeps
Telegram's limits (30/s overall, 1.1 s per chat, 20 per 61 s per group chat) and returns how long to
wait; :meth:`Limiter.penalize` honours a 429. Why these margins: docs/architecture.md ("The shared
limiter"). Keys are ``yihu:rl:{bot_id}:...`` and all carry expiries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

# KEYS: 1 global log zset, 2 chat log zset, 3 chat block, 4 token block, 5 global log member counter
# ARGV: 1 max_wait_ms (-1: no limit), 2 global window ms, 3 chat spacing ms, 4 burst (0: none), 5 window ms,
#       6 global limit (messages per global window)
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_wait = tonumber(ARGV[1])
local gwindow = tonumber(ARGV[2])
local glimit = tonumber(ARGV[6])
local spacing = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local at = now
local tb = tonumber(redis.call('GET', KEYS[4]) or '0')
if tb > at then at = tb end
local cb = tonumber(redis.call('GET', KEYS[3]) or '0')
if cb > at then at = cb end
local keep = spacing
if burst > 0 and window > keep then keep = window end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - keep)
local need = 1
if burst > need then need = burst end
local log = redis.call('ZRANGE', KEYS[2], -need, -1, 'WITHSCORES')
local n = #log / 2
if n >= 1 then
  local last = tonumber(log[2 * n])
  if last + spacing > at then at = last + spacing end
end
if burst > 0 and n >= burst then
  local oldest = tonumber(log[2 * (n - burst + 1)])
  if oldest + window > at then at = oldest + window end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - gwindow - 1000)
local slot = at
for _ = 1, 200 do
  local around = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (slot - gwindow), '(' .. (slot + gwindow), 'WITHSCORES')
  local count = #around / 2
  if count < glimit then break end
  -- Too many around: move past the oldest ones, whose windows then no longer reach the slot.
  local moved = tonumber(around[2 * (count - glimit + 1)]) + gwindow
  if moved <= slot then moved = slot + 1 end
  slot = moved
end
local wait = slot - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then
  return {wait, 0, slot}
end
redis.call('ZADD', KEYS[1], slot, slot .. ':' .. redis.call('INCR', KEYS[5]))
redis.call('PEXPIRE', KEYS[5], 60000)
local gttl = redis.call('PTTL', KEYS[1])
if gttl < wait + 2 * gwindow + 1000 then redis.call('PEXPIRE', KEYS[1], wait + 2 * gwindow + 1000) end
redis.call('ZADD', KEYS[2], slot, slot)
redis.call('PEXPIRE', KEYS[2], wait + keep + 1000)
return {wait, 1, slot}
"""

# KEYS: 1 chat block, 2 recent 429 chats zset, 3 token block
# ARGV: 1 chat id, 2 retry_after ms, 3 flood window ms, 4 distinct chats that make a token flood
_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retry = tonumber(ARGV[2])
local until_at = now + retry
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_at > cur then
  redis.call('SET', KEYS[1], until_at, 'PX', retry + 1000)
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) + 1000)
local chats = redis.call('ZCARD', KEYS[2])
if chats >= tonumber(ARGV[4]) then
  local tb = tonumber(redis.call('GET', KEYS[3]) or '0')
  if until_at > tb then
    redis.call('SET', KEYS[3], until_at, 'PX', retry + 1000)
  end
  return 1
end
return 0
"""


def bot_id_from_token(token: str) -> str:
    """The numeric bot id at the start of a token (``123456:ABC...``); limits are per token."""
    return token.split(":", 1)[0]


# A sender that wakes up later than this past its slot books again before sending: the chat's next message
# may already be booked close behind the missed slot (a starved CPU would otherwise send the two too close).
LATE_S = 0.05
# How often a late sender books again before it sends anyway (a 429 is then honoured like any other).
LATE_ROUNDS = 3


def woke_late(due: float, now: float) -> bool:
    """A sender meant to send at ``due`` (monotonic seconds) is now too late for its slot."""
    return now - due > LATE_S


@dataclass(frozen=True)
class Reservation:
    """A slot: ``wait`` seconds from now, at ``at`` (Redis clock, epoch seconds); ``booked`` False if refused."""

    wait: float
    at: float
    booked: bool


@dataclass(frozen=True)
class Limits:
    """The limiter's figures; the defaults keep a small margin under Telegram's published limits."""

    global_window_s: float = 1.05  # overall: at most global_limit messages in any window this long ...
    global_limit: int = 30  # ... (so at most 30 in any second)
    chat_spacing_s: float = 1.1  # per chat, private or group
    group_burst: int = 20  # per group chat: at most this many ...
    group_window_s: float = 61.0  # ... in any window this long
    flood_window_s: float = 1.0  # 429s from this many different chats within this window ...
    flood_chats: int = 3  # ... slow the whole token


class Limiter:
    """The shared limiter of one bot token (see the module docstring)."""

    def __init__(self, connection: redis.Redis, bot_id: str | int, limits: Limits | None = None) -> None:
        self.connection = connection
        self.bot_id = str(bot_id)
        self.limits = limits or Limits()
        self._prefix = f"yihu:rl:{self.bot_id}"
        self._reserve = connection.register_script(_RESERVE)
        self._penalize = connection.register_script(_PENALIZE)

    def _chat_keys(self, chat_id: int) -> tuple[str, str]:
        return f"{self._prefix}:c:{chat_id}", f"{self._prefix}:cb:{chat_id}"

    def reserve(self, chat_id: int, max_wait: float | None = None) -> float:
        """Book the earliest slot for a message to ``chat_id``; return the seconds to wait before sending.

        With ``max_wait``, a slot further away than that is *not* booked and its distance is returned
        (greater than ``max_wait``): the caller re-schedules instead of holding a worker.
        """
        return self.book(chat_id, max_wait).wait

    def book(self, chat_id: int, max_wait: float | None = None) -> Reservation:
        """:meth:`reserve`, returning the whole :class:`Reservation`."""
        limits = self.limits
        log_key, block_key = self._chat_keys(chat_id)
        group = chat_id < 0
        max_wait_ms = -1 if max_wait is None else max(0, math.floor(max_wait * 1000))
        wait_ms, booked, slot_ms = self._reserve(
            keys=[f"{self._prefix}:g", log_key, block_key, f"{self._prefix}:tb", f"{self._prefix}:gseq"],
            args=[
                max_wait_ms,
                round(limits.global_window_s * 1000),
                round(limits.chat_spacing_s * 1000),
                limits.group_burst if group else 0,
                round(limits.group_window_s * 1000) if group else 0,
                limits.global_limit,
            ],
        )
        return Reservation(wait=int(wait_ms) / 1000, at=int(slot_ms) / 1000, booked=bool(booked))

    def penalize(self, chat_id: int, retry_after: float) -> bool:
        """After a 429: hold ``chat_id`` for ``retry_after`` s; True when the whole token was slowed too."""
        limits = self.limits
        _log_key, block_key = self._chat_keys(chat_id)
        flooded = self._penalize(
            keys=[block_key, f"{self._prefix}:429", f"{self._prefix}:tb"],
            args=[
                chat_id,
                max(1, math.ceil(retry_after * 1000)),
                round(limits.flood_window_s * 1000),
                limits.flood_chats,
            ],
        )
        return bool(flooded)
