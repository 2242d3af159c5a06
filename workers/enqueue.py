"""How notification jobs get onto the delivery queues: the first delivery of a batch, and a retry.

Never fails the caller when Redis is down: the rows are safe in the outbox, and the sweeper picks them up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import redis
from rq import Queue, get_current_job
from sqlalchemy import Engine

from groups.model import Priority
from workers.backlog import note_backlog
from workers.queues import QUEUE_NAMES, URGENT_QUEUES, job_id, queue_name, retry_job_id
from workers.routing import engine_for_routing, route

log = logging.getLogger(__name__)

DELIVER = "workers.delivery.deliver"
JOB_TIMEOUT_S = 120
FAILURE_TTL_S = 24 * 3600


def _job_options(notification_id: int, rq_job_id: str) -> dict[str, Any]:
    return {
        "job_id": rq_job_id,
        "result_ttl": 0,  # the database keeps the outcome; Redis keeps nothing once done
        "failure_ttl": FAILURE_TTL_S,
        "description": f"deliver notification {notification_id}",
    }


def enqueue_notifications(
    connection: redis.Redis,
    ids: Iterable[int | tuple[int, str]],
    priority_by_id: Mapping[int, str] | None = None,
    *,
    engine: Engine | None = None,
) -> int:
    """Put a delivery job for each notification on its queue; return how many were queued.

    ``ids`` are notification ids or ``(id, priority)`` pairs. The queue is read from the database
    (:func:`route`: ``engine``, else this worker process's (:mod:`workers.context`), else the one the
    settings name) unless the given priority is not urgent; if that read fails, the given priority's
    first queue is used. Never raises when Redis is down: it logs, and the sweeper picks the rows up
    from the database.
    """
    wanted = _wanted(ids, priority_by_id)
    if not wanted:
        return 0
    try:
        return _push(connection, _queues_of(wanted, engine))
    except redis.RedisError as exc:
        log.warning(
            "could not enqueue notifications %s (%s); the sweeper will deliver them", sorted(wanted), exc
        )
        return 0
    except Exception:
        # Called right after the caller's commit: the rows are safe in the outbox, so never fail loudly.
        log.exception("could not enqueue notifications %s; the sweeper will deliver them", sorted(wanted))
        return 0


def _wanted(ids: Iterable[int | tuple[int, str]], priority_by_id: Mapping[int, str] | None) -> dict[int, str | None]:
    """Each notification id with its given priority (None when the caller gave none)."""
    wanted: dict[int, str | None] = {}
    for item in ids:
        if isinstance(item, tuple):
            wanted[int(item[0])] = item[1]
        else:
            wanted[int(item)] = (priority_by_id or {}).get(int(item))
    return wanted


def _queues_of(wanted: dict[int, str | None], engine: Engine | None) -> dict[int, str]:
    """The queue of each notification: its priority's when that is not urgent, else routed (see
    :func:`enqueue_notifications`)."""
    queues: dict[int, str] = {
        nid: queue_name(priority)
        for nid, priority in wanted.items()
        if priority is not None and priority != Priority.urgent
    }
    lookup = [nid for nid in wanted if nid not in queues]
    if lookup:
        try:
            queues.update(route(engine_for_routing(engine), lookup))
        except Exception:
            log.exception("could not route notifications %s; using their priority's first queue", lookup)
        for nid in lookup:
            queues.setdefault(nid, queue_name(wanted[nid] or Priority.urgent))
    return queues


def _push(connection: redis.Redis, queues: dict[int, str]) -> int:
    """One pipeline: a job per notification on its queue, and (if any is urgent) the urgent backlog."""
    by_queue: dict[str, list[int]] = {}
    for nid, name in queues.items():
        by_queue.setdefault(name, []).append(nid)
    count = 0
    with connection.pipeline() as pipe:
        for name, nids in by_queue.items():
            queue = Queue(name, connection=connection)
            datas = [
                Queue.prepare_data(DELIVER, args=(nid,), timeout=JOB_TIMEOUT_S, **_job_options(nid, job_id(nid)))
                for nid in nids
            ]
            queue.enqueue_many(datas, pipeline=pipe)
            count += len(datas)
        urgent = any(name in URGENT_QUEUES for name in by_queue)
        if urgent:  # the backlog, in the same round-trip
            for name in URGENT_QUEUES:
                pipe.llen(Queue(name, connection=connection).key)
        results = pipe.execute()
    if urgent:
        note_backlog(sum(int(n) for n in results[-len(URGENT_QUEUES):]))
    return count


def current_queue() -> str | None:
    """The queue the running single-row delivery job came from (None outside one): a retry goes back
    onto it. A job delivering several rows (:mod:`workers.fanout`) does not say where each row belongs."""
    job = get_current_job()
    if job is None or getattr(job, "func_name", None) != DELIVER:
        return None
    origin = getattr(job, "origin", None)
    return origin if origin in QUEUE_NAMES else None


def enqueue_retry(
    connection: redis.Redis, notification_id: int, priority: str, delay_s: float, *, queue_name_: str | None = None
) -> bool:
    """Schedule another delivery attempt in ``delay_s`` seconds, on ``queue_name_`` (the queue the job came
    from) or else the priority's first queue; False (logged) when Redis refused."""
    queue = Queue(queue_name_ or queue_name(priority), connection=connection)
    options = _job_options(notification_id, retry_job_id(notification_id))
    try:
        if delay_s <= 0:
            queue.enqueue(DELIVER, notification_id, job_timeout=JOB_TIMEOUT_S, **options)
        else:
            queue.enqueue_in(
                timedelta(seconds=delay_s), DELIVER, notification_id, job_timeout=JOB_TIMEOUT_S, **options
            )
    except redis.RedisError as exc:
        log.warning("could not re-schedule notification %s (%s); the sweeper will", notification_id, exc)
        return False
    return True
