"""The delivery queues (RQ), drained in priority order, and the ids of the jobs on them.

Priorities (issue 5): (a) urgent — reporters' confirmations and alert DMs, (b) escalations, (c) updates
(responses, tallies, edits), (d) bulk. A worker drains its queues strictly in :data:`QUEUE_NAMES` order,
so a backlog of (c) or (d) never delays (a). Which urgent queue a row goes on: :mod:`workers.routing`;
how jobs get onto the queues: :mod:`workers.enqueue`.

Job ids are deterministic: ``n-<notification id>`` for the first delivery, ``n-<id>-r<nanoseconds>``
for a re-scheduled attempt (a new id, so the running job's own record is never overwritten). Every id
starting ``n-<id>`` belongs to notification ``<id>``; the sweeper uses that to see which rows Redis
still carries.
"""

from __future__ import annotations

import time

import redis
from rq import Queue
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from groups.model import Priority

QUEUE_PREFIX = "yihu-"
PRIORITIES: tuple[Priority, ...] = (Priority.urgent, Priority.escalation, Priority.updates, Priority.bulk)
URGENT = QUEUE_PREFIX + Priority.urgent.value  # confirmations
URGENT_GROUP = URGENT + "-group"  # group posts
URGENT_HEAD = URGENT + "-head"  # heads, and the staff of private incidents
URGENT_DM = URGENT + "-dm"  # the other alert DMs
URGENT_QUEUES: tuple[str, ...] = (URGENT, URGENT_GROUP, URGENT_HEAD, URGENT_DM)
QUEUE_NAMES: tuple[str, ...] = URGENT_QUEUES + tuple(QUEUE_PREFIX + p.value for p in PRIORITIES[1:])


def queue_name(priority: str) -> str:
    """The (first) queue for a notification's ``priority`` (unknown values go to ``updates``)."""
    try:
        return QUEUE_PREFIX + Priority(priority).value
    except ValueError:
        return QUEUE_PREFIX + Priority.updates.value


def get_queues(connection: redis.Redis) -> list[Queue]:
    """Every queue, most urgent first (the order a worker drains them in)."""
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
