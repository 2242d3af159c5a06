"""One job for all the messages one use case owes, its rows delivered in parallel by a small thread pool.

Each row is still claimed, rate-limited and recorded exactly as by :func:`workers.delivery.deliver`;
under a backlog rows are queued one by one instead. Why: docs/architecture.md ("One job per use case").
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import redis
from rq import Queue
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from groups.model import Notification, Priority
from workers import context as context_module
from workers.backlog import urgent_waiting
from workers.delivery import deliver
from workers.enqueue import enqueue_notifications
from workers.queues import queue_name

log = logging.getLogger(__name__)

DELIVER_MANY = "workers.fanout.deliver_many"
MAX_PARALLEL = 12
BACKLOG_JOBS = 0  # more urgent jobs than this waiting: enqueue rows one by one (queue order decides)


def deliver_many(notification_ids: Sequence[int]) -> dict[str, int]:
    """The RQ job: deliver each row as :func:`deliver` would, several at once; returns outcome counts."""
    ctx = context_module.current()
    # The first row goes first: for an alert it is the reporter's confirmation (the core writes it first).
    first, rest = notification_ids[0], notification_ids[1:]
    outcomes = Counter([deliver(first, context=ctx)])
    if rest:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(rest))) as pool:
            outcomes.update(pool.map(lambda nid: deliver(nid, context=ctx), rest))
    return dict(outcomes)


def _priorities(engine: Engine, ids: Sequence[int]) -> dict[int, str]:
    with Session(engine) as session:
        rows = session.exec(select(Notification.id, Notification.priority).where(col(Notification.id).in_(ids)))
        return {int(nid): str(priority) for nid, priority in rows if nid is not None}


def enqueue_batches(connection: redis.Redis, ids: Sequence[int], engine: Engine) -> int:
    """Enqueue one :func:`deliver_many` job per priority for ``ids`` (one use case's rows, in order).

    Never raises: on a Redis error it logs and leaves the rows to the sweeper.
    """
    if not ids:
        return 0
    try:
        by_priority: dict[str, list[int]] = {}
        priorities = _priorities(engine, ids)
        for nid in ids:
            by_priority.setdefault(priorities.get(nid, Priority.updates), []).append(nid)
        # Any urgent job waiting means a backlog: a batch would jump ahead of rows already waiting on the
        # tiered urgent queues (workers.routing), so queue the rows one by one and let the order decide.
        if urgent_waiting(connection) > BACKLOG_JOBS:
            return enqueue_notifications(connection, list(ids), engine=engine)
        for priority, members in by_priority.items():
            queue = Queue(queue_name(priority), connection=connection)
            queue.enqueue(
                DELIVER_MANY,
                members,
                job_id=f"b-{members[0]}-{members[-1]}-{len(members)}",
                result_ttl=0,
                failure_ttl=24 * 3600,
                description=f"deliver notifications {members[0]}..{members[-1]} ({len(members)})",
            )
        return len(ids)
    except redis.RedisError as exc:
        log.warning("could not enqueue notifications %s (%s); the sweeper will deliver them", list(ids), exc)
        return 0
