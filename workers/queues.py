"""The delivery queues (RQ), drained in priority order, and how notification jobs get onto them.

Priorities (issue 5): (a) urgent — reporters' confirmations and alert DMs, (b) escalations, (c) updates
(responses, tallies, edits), (d) bulk. A worker drains its queues strictly in :data:`QUEUE_NAMES` order,
so a backlog of (c) or (d) never delays (a).

**Overload order.** The urgent band is itself four queues, drained in this order:

1. ``yihu-urgent``        reporters' confirmations (and any urgent row we cannot classify);
2. ``yihu-urgent-group``  group posts (``group_id`` set, no recipient): one message tells a whole group;
3. ``yihu-urgent-head``   the group's center household head, and the staff of a private incident
                          (domestic violence, child protection: they are its only recipients);
4. ``yihu-urgent-dm``     every other alert DM (the neighbours).

When many villages call at once and the backlog means a neighbour DM would wait longer than
``settings.overload_threshold_s``, this delivers across *all* open incidents what informs the most
people soonest: confirmations, then every group post, then the heads, then the neighbours.

Why the split is always on rather than switched on past the threshold: with no backlog every queue is
empty and a job is picked up as soon as it is queued, so the split only reorders the ~11 messages of
one fan-out (about 0.4 s at 30 msg/s): the confirmation is still the first message out of its incident,
and the group post comes second instead of last. A switch, by contrast, would leave up to
threshold x 30 jobs (600 at 20 s) already queued first-in-first-out when overload begins, so the last
group post of a flood would still wait about the threshold instead of seconds; and moving queued jobs
between queues is racy. Confirmations stay ahead of the group posts: there is one per incident, like
a group post, and the reporter must learn at once that the call went out. The threshold itself only
decides when to log that the engine is in overload (:func:`urgent_backlog_s`).

Routing reads the rows once per enqueued batch (one query joining the incident and its group), not
per message. A re-scheduled attempt goes back onto the queue its job came from. When no urgent job is
waiting, the bot may instead send one use case's rows as a single parallel job (:mod:`workers.fanout`);
as soon as any urgent job waits (:func:`urgent_waiting`), rows are queued one by one and routed here.

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
from rq import Queue, get_current_job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import Engine
from sqlalchemy import select as sa_select
from sqlmodel import col

from groups.model import HouseholdGroup, Incident, Notification, Priority, Purpose

log = logging.getLogger(__name__)

QUEUE_PREFIX = "yihu-"
PRIORITIES: tuple[Priority, ...] = (Priority.urgent, Priority.escalation, Priority.updates, Priority.bulk)
URGENT = QUEUE_PREFIX + Priority.urgent.value  # confirmations
URGENT_GROUP = URGENT + "-group"  # group posts
URGENT_HEAD = URGENT + "-head"  # heads, and the staff of private incidents
URGENT_DM = URGENT + "-dm"  # the other alert DMs
URGENT_QUEUES: tuple[str, ...] = (URGENT, URGENT_GROUP, URGENT_HEAD, URGENT_DM)
QUEUE_NAMES: tuple[str, ...] = URGENT_QUEUES + tuple(QUEUE_PREFIX + p.value for p in PRIORITIES[1:])
DELIVER = "workers.delivery.deliver"
JOB_TIMEOUT_S = 120
FAILURE_TTL_S = 24 * 3600
SEND_RATE = 1 / 0.034  # what the shared limiter lets through per second (workers.limiter: one per 34 ms tick)
DEFAULT_OVERLOAD_THRESHOLD_S = 20.0
OVERLOAD_LOG_EVERY_S = 10.0
_last_overload_log = 0.0


def queue_name(priority: str) -> str:
    """The (first) queue for a notification's ``priority`` (unknown values go to ``updates``)."""
    try:
        return QUEUE_PREFIX + Priority(priority).value
    except ValueError:
        return QUEUE_PREFIX + Priority.updates.value


def urgent_queue(purpose: str, *, group_post: bool, to_head: bool) -> str:
    """Which urgent queue a row goes on (see the module docstring for the order and why)."""
    if group_post:
        return URGENT_GROUP
    if purpose == Purpose.confirmation:
        return URGENT
    if to_head:
        return URGENT_HEAD
    if purpose == Purpose.alert:
        return URGENT_DM
    return URGENT


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


def _job_options(notification_id: int, rq_job_id: str) -> dict[str, Any]:
    return {
        "job_id": rq_job_id,
        "result_ttl": 0,  # the database keeps the outcome; Redis keeps nothing once done
        "failure_ttl": FAILURE_TTL_S,
        "description": f"deliver notification {notification_id}",
    }


def route(engine: Engine, ids: list[int]) -> dict[int, str]:
    """The queue of each notification, read in one query (rows that do not exist are left out)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa_select(
                col(Notification.id),
                col(Notification.priority),
                col(Notification.purpose),
                col(Notification.group_id),
                col(Notification.recipient_id),
                col(HouseholdGroup.head_id),
                col(Incident.private),
            )
            .outerjoin(Incident, col(Incident.id) == col(Notification.incident_id))
            .outerjoin(HouseholdGroup, col(HouseholdGroup.id) == col(Incident.group_id))
            .where(col(Notification.id).in_(ids))
        ).all()
    found: dict[int, str] = {}
    for nid, priority, purpose, group_id, recipient_id, head_id, private in rows:
        if nid is None:
            continue
        if priority != Priority.urgent:
            found[int(nid)] = queue_name(priority)
            continue
        to_head = recipient_id is not None and (bool(private) or recipient_id == head_id)
        found[int(nid)] = urgent_queue(
            purpose, group_post=group_id is not None and recipient_id is None, to_head=to_head
        )
    return found


def _engine_for_routing(engine: Engine | None) -> Engine:
    if engine is not None:
        return engine
    from workers.context import configured  # noqa: PLC0415  (context imports the sender)

    ctx = configured()
    if ctx is not None:
        return ctx.engine
    from config.settings import get_settings  # noqa: PLC0415
    from groups.db import get_engine  # noqa: PLC0415

    return get_engine(get_settings().resolved_database_url)


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


def _note_backlog(queued: int) -> None:
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
    wanted: dict[int, str | None] = {}
    for item in ids:
        if isinstance(item, tuple):
            wanted[int(item[0])] = item[1]
        else:
            wanted[int(item)] = (priority_by_id or {}).get(int(item))
    if not wanted:
        return 0
    try:
        queues: dict[int, str] = {
            nid: queue_name(priority)
            for nid, priority in wanted.items()
            if priority is not None and priority != Priority.urgent
        }
        lookup = [nid for nid in wanted if nid not in queues]
        if lookup:
            try:
                queues.update(route(_engine_for_routing(engine), lookup))
            except Exception:
                log.exception("could not route notifications %s; using their priority's first queue", lookup)
            for nid in lookup:
                queues.setdefault(nid, queue_name(wanted[nid] or Priority.urgent))
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
            _note_backlog(sum(int(n) for n in results[-len(URGENT_QUEUES):]))
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


def current_queue() -> str | None:
    """The queue the running single-row delivery job came from (None outside one): a retry goes back
    onto it. A job delivering several rows (:mod:`workers.fanout`) does not say where each row belongs."""
    job = get_current_job()
    if job is None or getattr(job, "func_name", None) != DELIVER:
        return None
    origin = getattr(job, "origin", None)
    return origin if origin in QUEUE_NAMES else None


def urgent_waiting(connection: redis.Redis) -> int:
    """Jobs waiting on the urgent queues (one round-trip). Anything above zero is a backlog in which
    queue order decides who is told first: an alert's rows should then be queued one by one, routed."""
    with connection.pipeline(transaction=False) as pipe:
        for name in URGENT_QUEUES:
            pipe.llen(Queue(name, connection=connection).key)
        return sum(int(n) for n in pipe.execute())


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
