"""The shared limiter: booked slots obey Telegram's limits across OS processes; 429s slow the right things."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections import defaultdict

import pytest
import redis

from workers.limiter import Limiter, bot_id_from_token

PRIVATE = 4242
GROUP = -7777
MANY = range(1000, 1060)


def _hammer(args: tuple[str, int]) -> list[tuple[int, float]]:
    """One OS process: wait for the other, then book slots for one private chat, one group, many chats."""
    url, index = args
    connection = redis.Redis.from_url(url)
    connection.incr("test:ready")
    while int(connection.get("test:ready") or 0) < 2:
        time.sleep(0.001)
    limiter = Limiter(connection, "99")
    booked: list[tuple[int, float]] = []
    for i in range(150):
        if i % 10 == 0:
            chat = PRIVATE
        elif i % 10 == 5:
            chat = GROUP
        else:
            chat = MANY[(i * 7 + index) % len(MANY)]
        reservation = limiter.book(chat)
        assert reservation.booked
        booked.append((chat, reservation.at))
    connection.close()
    return booked


def _max_in_window(times: list[float], window: float) -> int:
    """The most slots any half-open window ``[t, t + window)`` holds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_two_processes_never_exceed_the_limits(redis_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(_hammer, [(redis_url, 0), (redis_url, 1)])
    by_chat: dict[int, list[float]] = defaultdict(list)
    everything: list[float] = []
    for booked in results:
        for chat, at in booked:
            by_chat[chat].append(at)
            everything.append(at)
    assert len(everything) == 300
    # Overall: at most 30 in any second (bursts allowed: an alert's messages may leave together).
    assert _max_in_window(everything, 1.0) <= 30
    assert _max_in_window(everything, 0.1) > 1
    # Per private chat: 1/s sustained, i.e. consecutive messages at least a second apart.
    for chat, times in by_chat.items():
        times.sort()
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= 1.0 for gap in gaps), (chat, min(gaps))
    # Per group chat: at most 20 in any minute (30 bookings were made, so the 21st had to wait).
    group = sorted(by_chat[GROUP])
    assert len(group) == 30
    assert _max_in_window(group, 60.0) <= 20
    assert group[20] - group[0] >= 60.0


def test_a_busy_chat_does_not_hold_back_others(redis_url: str) -> None:
    limiter = Limiter(redis.Redis.from_url(redis_url), bot_id_from_token("99:abc"))
    for _ in range(5):
        limiter.reserve(PRIVATE)
    assert limiter.reserve(PRIVATE) >= 4.9
    # Other chats still go at once, although PRIVATE's slots lie seconds ahead.
    assert limiter.reserve(PRIVATE + 1) < 0.5


def test_max_wait_books_nothing_beyond_it(redis_url: str) -> None:
    limiter = Limiter(redis.Redis.from_url(redis_url), "99")
    first = limiter.book(PRIVATE, max_wait=2)
    refused = limiter.book(PRIVATE, max_wait=0.5)
    assert first.booked and not refused.booked
    assert refused.wait > 0.5
    # The refused slot was not booked: the next caller gets the same one.
    again = limiter.book(PRIVATE)
    assert again.booked and again.at == pytest.approx(refused.at, abs=0.05)


def test_penalize_holds_that_chat_only(redis_url: str) -> None:
    limiter = Limiter(redis.Redis.from_url(redis_url), "99")
    assert limiter.penalize(PRIVATE, 3) is False
    assert limiter.reserve(PRIVATE) >= 2.9
    assert limiter.reserve(PRIVATE + 1) < 0.5


def test_429s_across_many_chats_slow_the_whole_token(redis_url: str) -> None:
    limiter = Limiter(redis.Redis.from_url(redis_url), "99")
    other_bot = Limiter(redis.Redis.from_url(redis_url), "100")
    assert limiter.penalize(1, 2) is False
    assert limiter.penalize(2, 2) is False
    assert limiter.penalize(3, 2) is True
    assert limiter.reserve(4) >= 1.9
    # Another token is not affected.
    assert other_bot.reserve(4) < 0.5


def test_every_key_expires(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    limiter = Limiter(connection, "99")
    for chat in (PRIVATE, GROUP, 5, 6):
        limiter.reserve(chat)
    limiter.penalize(5, 1)
    keys = connection.keys("yihu:rl:99:*")
    assert keys
    assert all(0 < connection.pttl(key) <= 130_000 for key in keys)


def test_a_sender_woken_late_books_again_behind_the_chats_next_message(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A starved CPU wakes a worker 0.8 s after its slot while the chat's next message is booked 1.1 s after
    that slot: sending now would put the two 0.3 s apart (Telegram answers 429); it books again instead."""
    from workers import delivery  # noqa: PLC0415

    limiter = Limiter(redis.Redis.from_url(redis_url), "77")
    outgoing = type("Outgoing", (), {"chat_id": PRIVATE})()
    slots: list[float] = []

    class Paced:
        def pace(self, out: object, max_wait: float) -> float:
            reservation = limiter.book(PRIVATE, max_wait)
            slots.append(reservation.at)
            return reservation.wait

        def describe(self, out: object) -> str:
            return "test message"

    real_sleep = time.sleep
    overslept = []

    def starved_sleep(seconds: float) -> None:
        if not overslept:  # the first wake-up comes 0.8 s late; meanwhile the chat's next message is booked
            overslept.append(seconds)
            slots.append(limiter.book(PRIVATE).at)
            real_sleep(seconds + 0.8)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(delivery.time, "sleep", starved_sleep)
    limiter.book(PRIVATE)  # the chat's previous message: this one waits for a slot
    assert delivery._wait_for_slot(Paced(), outgoing, delivery.MAX_LIMITER_WAIT_S) == 0.0  # type: ignore[arg-type]
    first, next_message, rebooked = slots
    spacing = limiter.limits.chat_spacing_s
    assert next_message == pytest.approx(first + spacing, abs=0.002)
    assert rebooked >= next_message + spacing - 0.002  # behind the next message, never 0.3 s before it
