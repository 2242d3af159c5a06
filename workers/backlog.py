"""The urgent backlog: how many urgent jobs wait, how long the last of them waits, and the overload warning."""

from __future__ import annotations

import logging
import time

import redis
from rq import Queue

from workers.queues import URGENT_QUEUES

log = logging.getLogger(__name__)

SEND_RATE = 1 / 0.034  # what the shared limiter lets through per second (workers.limiter: one per 34 ms tick)
DEFAULT_OVERLOAD_THRESHOLD_S = 20.0
OVERLOAD_LOG_EVERY_S = 10.0
_last_overload_log = 0.0


def _overload_threshold_s() -> float:
    """This worker's setting, else the environment's (the bot process), else the default."""
    from workers.context import configured  # noqa: PLC0415

    ctx = configured()
    if ctx is not None:
        return ctx.settings.overload_threshold_s
    try:
        from config.settings import get_settings  # noqa: PLC0415

        return get_settings().overload_threshold_s
    except Exception:  # a bad environment must not stop an alert from being queued
        return DEFAULT_OVERLOAD_THRESHOLD_S


def urgent_backlog_s(queued: int) -> float:
    """How long the last of ``queued`` urgent jobs waits at the shared limiter's rate (a lower bound)."""
    return queued / SEND_RATE


def note_backlog(queued: int) -> None:
    """Log (at most every :data:`OVERLOAD_LOG_EVERY_S` per process) when the urgent backlog is past the
    threshold: staff reading the log learn why neighbours' DMs come late."""
    global _last_overload_log
    backlog = urgent_backlog_s(queued)
    threshold = _overload_threshold_s()
    now = time.monotonic()
    if backlog > threshold and now - _last_overload_log >= OVERLOAD_LOG_EVERY_S:
        _last_overload_log = now
        log.warning(
            "overload: %s urgent messages queued (about %.0f s at %.0f msg/s, threshold %.0f s): "
            "confirmations, then group posts, then heads, then the other DMs",
            queued, backlog, SEND_RATE, threshold,
        )


def urgent_waiting(connection: redis.Redis) -> int:
    """Jobs waiting on the urgent queues (one round-trip). Anything above zero is a backlog in which
    queue order decides who is told first: an alert's rows should then be queued one by one, routed."""
    with connection.pipeline(transaction=False) as pipe:
        for name in URGENT_QUEUES:
            pipe.llen(Queue(name, connection=connection).key)
        return sum(int(n) for n in pipe.execute())
