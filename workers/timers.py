"""Escalation timers: durable in the database (``Incident.next_escalation_at``), carried by RQ's scheduler.

RQ's scheduler polls about once a second and truncates to whole seconds, so a job may start up to ~1 s
early and ~1 s late. We schedule each check a little before its deadline; the job re-reads the deadline
from the database and, when it is near, waits for it, so a step never fires early and is rarely more than
a few hundred milliseconds late. Anything Redis loses is re-armed by the sweeper from the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

import redis
from rq import Queue
from sqlmodel import col, select

from groups.db import session_scope
from groups.model import OPEN_STATUSES, Incident, Priority, utcnow
from workers import context
from workers.enqueue import enqueue_notifications
from workers.fanout import enqueue_batches
from workers.queues import queue_name

log = logging.getLogger(__name__)

LEAD_S = 0.6  # schedule this much before the deadline ...
MAX_WAIT_S = 2.5  # ... and let the job wait up to this long for it
FIRE = "workers.timers.fire"


def timer_job_id(incident_id: int, at: datetime) -> str:
    """Deterministic per incident and deadline: arming the same step twice keeps one job."""
    return f"esc-{incident_id}-{int(at.timestamp() * 1000)}"


def arm(connection: redis.Redis, timers: Iterable[tuple[int, datetime]], suffix: str = "") -> None:
    """Schedule an escalation check for each (incident id, deadline)."""
    queue = Queue(queue_name(Priority.escalation), connection=connection)
    now = utcnow()
    for incident_id, at in timers:
        run_at = at - timedelta(seconds=LEAD_S)
        job_id = timer_job_id(incident_id, at) + suffix
        if run_at <= now:
            queue.enqueue(FIRE, incident_id, job_id=job_id, result_ttl=60, failure_ttl=24 * 3600)
        else:
            queue.enqueue_at(run_at, FIRE, incident_id, job_id=job_id, result_ttl=60, failure_ttl=24 * 3600)


def fire(incident_id: int) -> None:
    """The RQ job: run the escalation check for ``incident_id`` when its deadline has come (idempotent)."""
    from groups.escalation import escalation_due  # noqa: PLC0415

    ctx = context.current()
    while True:
        now = utcnow()
        with session_scope(ctx.engine) as session:
            result = escalation_due(session, incident_id, now)
        rearm_at = result.rearm_at
        if rearm_at is None:
            break
        wait = (rearm_at - utcnow()).total_seconds()
        if wait > MAX_WAIT_S:
            # Far too early (a clock step?): a fresh job, not this one's id, which is still running.
            arm(ctx.redis, [(incident_id, rearm_at)], suffix=f"-r{time.time_ns()}")
            return
        time.sleep(max(wait, 0) + 0.005)
    if result.effects.notifications:
        log.info("incident #%s escalated to level %s", incident_id, result.level)
        enqueue_batches(ctx.redis, result.effects.notifications, ctx.engine)
    if result.effects.timers:
        arm(ctx.redis, result.effects.timers)


def rearm_all(connection: redis.Redis, now: datetime | None = None) -> int:
    """Arm every open incident's next step from the database (after a Redis loss); returns how many."""
    ctx = context.current()
    with session_scope(ctx.engine) as session:
        rows = session.exec(
            select(Incident.id, Incident.next_escalation_at).where(
                col(Incident.next_escalation_at).is_not(None), col(Incident.status).in_(OPEN_STATUSES)
            )
        ).all()
    timers = [(int(i), at) for i, at in rows if i is not None and at is not None]
    missing = [(i, at) for i, at in timers if not _is_armed(connection, i, at)]
    if missing:
        arm(connection, missing)
    return len(missing)


def _is_armed(connection: redis.Redis, incident_id: int, at: datetime) -> bool:
    from rq.exceptions import NoSuchJobError  # noqa: PLC0415
    from rq.job import Job, JobStatus  # noqa: PLC0415

    try:
        status = Job.fetch(timer_job_id(incident_id, at), connection=connection).get_status(refresh=False)
    except NoSuchJobError:
        return False
    return status in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED)


REFERRAL_CHECK_KEY = "yihu:referrals:checked"
REFERRAL_CHECK_EVERY_S = 60


def remind_referrals(connection: redis.Redis, now: datetime | None = None, *, force: bool = False) -> int:
    """Queue the referral reminders that are due (at most one check a minute across processes)."""
    from groups.referrals import referral_reminders_due  # noqa: PLC0415

    if not force and not connection.set(REFERRAL_CHECK_KEY, "1", nx=True, ex=REFERRAL_CHECK_EVERY_S):
        return 0
    ctx = context.current()
    with session_scope(ctx.engine) as session:
        ids = referral_reminders_due(session, now or utcnow())
    if ids:
        log.info("queued %d referral reminder(s)", len(ids))
        enqueue_notifications(ctx.redis, ids, engine=ctx.engine)
    return len(ids)
