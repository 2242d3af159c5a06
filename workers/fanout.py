"""One job for all the messages one use case owes, its rows delivered in parallel by a small thread pool.

Each row is still claimed, rate-limited and recorded exactly as by :func:`workers.delivery.deliver`;
under a backlog rows are queued one by one instead. Why: docs/architecture.md ("One job per use case").
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from rq import Queue
from sqlalchemy import Engine

from groups.model import Priority
from workers import context as context_module
from workers.backlog import urgent_waiting
from workers.delivery import deliver
from workers.enqueue import DELIVER, FAILURE_TTL_S, JOB_TIMEOUT_S, enqueue_notifications
from workers.queues import URGENT, URGENT_QUEUES, job_id, queue_name
from workers.routing import route

log = logging.getLogger(__name__)

DELIVER_MANY = "workers.fanout.deliver_many"
MAX_PARALLEL = 12
UPDATES = queue_name(Priority.updates)  # where a row that no longer exists would have gone
BACKLOG_JOBS = 0  # more urgent jobs than this waiting: enqueue rows one by one (queue order decides)


def deliver_many(notification_ids: Sequence[int], all_at_once: bool = False) -> dict[str, int]:
    """The RQ job: deliver each row as :func:`deliver` would, several at once; returns outcome counts.

    One use case's job sends its first row (the reporter's confirmation: the core writes it first) before
    the rest; a job of several reporters' confirmations (``all_at_once``) sends them all in parallel."""
    ctx = context_module.current()
    if all_at_once:
        first, rest = None, list(notification_ids)
    else:
        first, rest = notification_ids[0], list(notification_ids[1:])
    outcomes = Counter([deliver(first, context=ctx)] if first is not None else [])
    if rest:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(rest))) as pool:
            outcomes.update(pool.map(lambda nid: deliver(nid, context=ctx), rest))
    return dict(outcomes)


def enqueue_batches(connection: redis.Redis, ids: Sequence[int], engine: Engine) -> int:
    """Enqueue one :func:`deliver_many` job per priority for ``ids`` (one use case's rows, in order).

    Never raises: on a Redis error it logs and leaves the rows to the sweeper.
    """
    return enqueue_use_cases(connection, [ids], engine)


def enqueue_use_cases(
    connection: redis.Redis, use_cases: Sequence[Sequence[int]], engine: Engine, *, flood: bool = False
) -> int:
    """Enqueue what several use cases owe (a batch of updates: each use case's rows, in order) in one
    read of the rows and one Redis pipeline (plus one read of the backlog).

    One use case and no backlog: one :func:`deliver_many` job per priority, its rows in parallel. A
    batch owing several confirmations is a flood beginning: its confirmations go as one parallel job
    on the first urgent queue and every other row is routed one by one (:mod:`workers.routing`), so
    that the queue order tells the reporters first. Under a backlog every other row is routed one by
    one, and the batch's confirmations still go as one parallel job at the end of the confirmations'
    queue (behind the confirmations already waiting, ahead of every other urgent row, as one by one):
    their claims then wait for the database together, not one after another (docs/architecture.md,
    "The reporters' confirmations under a flood"). ``flood``: several reporters' use cases whose
    confirmations the bot sent itself (:mod:`workers.inline`): routed one by one as in a flood.
    Never raises: on a Redis error it logs and leaves the rows to the sweeper.
    """
    ids = [nid for members in use_cases for nid in members]
    if not ids:
        return 0
    try:
        # Any urgent job waiting means a backlog: a use case's job would jump ahead of rows already waiting
        # on the tiered urgent queues, so its rows go one by one and the order decides.
        backlog = urgent_waiting(connection) > BACKLOG_JOBS
        queues = route(engine, ids)
        confirmations = [nid for nid in ids if queues.get(nid) == URGENT]
        jobs: list[_Job] = []
        if len(confirmations) > 1:
            jobs.append(_Job(URGENT, confirmations, all_at_once=True))
            told = set(confirmations)
            jobs += [_Job(queues.get(nid, UPDATES), [nid]) for nid in ids if nid not in told]
        elif backlog or flood:
            return enqueue_notifications(connection, ids, engine=engine)
        else:
            # The first urgent queue carries the confirmations; every other urgent queue folds into it for a
            # use case's own job (its rows go in parallel, the confirmation first).
            first = {nid: URGENT if queues.get(nid) in URGENT_QUEUES else queues.get(nid, UPDATES) for nid in ids}
            for members in use_cases:
                by_queue: dict[str, list[int]] = {}
                for nid in members:
                    by_queue.setdefault(first[nid], []).append(nid)
                jobs += [_Job(name, rows, many=True) for name, rows in by_queue.items()]
        _push(connection, jobs)
        return len(ids)
    except redis.RedisError as exc:
        log.warning("could not enqueue notifications %s (%s); the sweeper will deliver them", ids, exc)
        return 0


@dataclass(frozen=True)
class _Job:
    """One job to push: ``rows`` on ``queue``; a single row alone as :func:`workers.delivery.deliver`
    unless ``many``, several as :func:`deliver_many` (``all_at_once``: no row goes before the others)."""

    queue: str
    rows: list[int]
    many: bool = False
    all_at_once: bool = False


def _push(connection: redis.Redis, jobs: Sequence[_Job]) -> None:
    """Every job in one pipeline."""
    with connection.pipeline() as pipe:
        for job in jobs:
            queue = Queue(job.queue, connection=connection)
            members = job.rows
            if len(members) == 1 and not job.many:
                nid = members[0]
                data = Queue.prepare_data(DELIVER, args=(nid,), timeout=JOB_TIMEOUT_S, job_id=job_id(nid),
                                          result_ttl=0, failure_ttl=FAILURE_TTL_S,
                                          description=f"deliver notification {nid}")
            else:
                data = Queue.prepare_data(
                    DELIVER_MANY,
                    args=(members, True) if job.all_at_once else (members,),
                    job_id=f"b-{members[0]}-{members[-1]}-{len(members)}",
                    result_ttl=0,
                    failure_ttl=FAILURE_TTL_S,
                    description=f"deliver notifications {members[0]}..{members[-1]} ({len(members)})",
                )
            queue.enqueue_many([data], pipeline=pipe)
        pipe.execute()
