"""The four delivery queues (RQ), drained in priority order, and how notification jobs get onto them.

Job ids are deterministic: ``n-<notification id>`` for the first delivery, ``n-<id>-r<nanoseconds>``
for a re-scheduled attempt (a new id, so the running job's own record is never overwritten). Every id
starting ``n-<id>`` belongs to notification ``<id>``; the sweeper uses that to see which rows Redis
still carries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import redis
from rq import Queue
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from groups.model import Notification, Priority

log = logging.getLogger(__name__)

QUEUE_PREFIX = "yihu-"
PRIORITIES: tuple[Priority, ...] = (Priority.urgent, Priority.escalation, Priority.updates, Priority.bulk)
QUEUE_NAMES: tuple[str, ...] = tuple(QUEUE_PREFIX + p.value for p in PRIORITIES)
DELIVER = "workers.delivery.deliver"
JOB_TIMEOUT_S = 120
FAILURE_TTL_S = 24 * 3600


def queue_name(priority: str) -> str:
    """The queue for a notification's ``priority`` (unknown values go to ``updates``)."""
    try:
        return QUEUE_PREFIX + Priority(priority).value
    except ValueError:
        return QUEUE_PREFIX + Priority.updates.value


def get_queues(connection: redis.Redis) -> list[Queue]:
    """The four queues, most urgent first (the order a worker drains them in)."""
    return [Queue(name, connection=connection) for name in QUEUE_NAMES]


def job_id(notification_id: int) -> str:
    return f"n-{notification_id}"


def retry_job_id(notification_id: int) -> str:
    return f"n-{notification_id}-r{time.time_ns()}"


def notification_id_of(rq_job_id: str) -> int | None:
    """The notification a job id belongs to (``n-12``, ``n-12-r…``, ``n-12:<execution>``), else None."""
    head = rq_job_id.split(":", 1)[0]
    parts = head.split("-")
    if len(parts) >= 2 and parts[0] == "n" and parts[1].isdigit():
        return int(parts[1])
    return None


def _job_options(notification_id: int, rq_job_id: str) -> dict[str, Any]:
    return {
        "job_id": rq_job_id,
        "result_ttl": 0,  # the database keeps the outcome; Redis keeps nothing once done
        "failure_ttl": FAILURE_TTL_S,
        "description": f"deliver notification {notification_id}",
    }


def _load_priorities(engine: Engine, ids: list[int]) -> dict[int, str]:
    with Session(engine) as session:
        rows = session.exec(
            select(Notification.id, Notification.priority).where(col(Notification.id).in_(ids))
        ).all()
    return {int(nid): str(priority) for nid, priority in rows if nid is not None}


def enqueue_notifications(
    connection: redis.Redis,
    ids: Iterable[int | tuple[int, str]],
    priority_by_id: Mapping[int, str] | None = None,
    *,
    engine: Engine | None = None,
) -> int:
    """Put a delivery job for each notification on the queue of its priority; return how many were queued.

    ``ids`` are notification ids or ``(id, priority)`` pairs. A priority not given as a pair or in
    ``priority_by_id`` is read from the database: ``engine``, else this worker process's
    (:mod:`workers.context`), else the one the settings name. Never raises
    when Redis is down: it logs, and the sweeper picks the rows up from the database.
    """
    wanted: dict[int, str | None] = {}
    for item in ids:
        if isinstance(item, tuple):
            wanted[int(item[0])] = item[1]
        else:
            wanted[int(item)] = (priority_by_id or {}).get(int(item))
    if not wanted:
        return 0
    try:
        missing = [nid for nid, priority in wanted.items() if priority is None]
        if missing:
            if engine is None:
                from workers.context import configured  # noqa: PLC0415  (context imports the sender)

                ctx = configured()
                engine = ctx.engine if ctx is not None else None
            if engine is None:
                from config.settings import get_settings  # noqa: PLC0415
                from groups.db import get_engine  # noqa: PLC0415

                engine = get_engine(get_settings().resolved_database_url)
            wanted.update(_load_priorities(engine, missing))
        by_queue: dict[str, list[int]] = {}
        for nid, priority in wanted.items():
            by_queue.setdefault(queue_name(priority or Priority.updates), []).append(nid)
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
            pipe.execute()
        return count
    except redis.RedisError as exc:
        log.warning(
            "could not enqueue notifications %s (%s); the sweeper will deliver them", sorted(wanted), exc
        )
        return 0
    except Exception:
        # Called right after the caller's commit: the rows are safe in the outbox, so never fail loudly.
        log.exception("could not enqueue notifications %s; the sweeper will deliver them", sorted(wanted))
        return 0


def enqueue_retry(connection: redis.Redis, notification_id: int, priority: str, delay_s: float) -> bool:
    """Schedule another delivery attempt in ``delay_s`` seconds; False (logged) when Redis refused."""
    queue = Queue(queue_name(priority), connection=connection)
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


def carried_notification_ids(
    connection: redis.Redis, *, include_started: bool = True, overdue_grace_s: float = 5.0
) -> set[int]:
    """Notifications Redis still carries a job for: queued, scheduled, or (optionally) running.

    A scheduled job more than ``overdue_grace_s`` past its time does not count: no scheduler is moving
    it, so the sweeper should enqueue the row itself.
    """
    found: set[int] = set()
    now = time.time()
    for queue in get_queues(connection):
        job_ids: list[str] = list(queue.get_job_ids())
        registry = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
        job_ids += [
            raw.decode() if isinstance(raw, bytes) else str(raw)
            for raw in connection.zrangebyscore(registry.key, now - overdue_grace_s, "+inf")
        ]
        if include_started:
            job_ids += StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
        for rq_job_id in job_ids:
            nid = notification_id_of(rq_job_id)
            if nid is not None:
                found.add(nid)
    return found
