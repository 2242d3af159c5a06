"""Timers of every kind the core defines (:data:`groups.timers.KINDS`), carried by RQ's scheduler.

A timer is durable in the database (an escalation: ``Incident.next_escalation_at``); Redis only carries
it, and :func:`rearm_all` restores what Redis lost. A job may start ~1 s early: it is scheduled
:data:`LEAD_S` before its time and the core's handler says when it came early (see docs/architecture.md,
"Timers").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from rq import Queue

from groups.db import session_scope
from groups.effects import Timer
from groups.model import Priority, utcnow
from groups.timers import ESCALATION, KINDS, pending_timers
from workers import context
from workers.enqueue import enqueue_notifications
from workers.fanout import enqueue_batches
from workers.queues import queue_name

log = logging.getLogger(__name__)

LEAD_S = 0.6  # schedule this much before the deadline ...
MAX_WAIT_S = 2.5  # ... and let the job wait up to this long for it
FIRE = "workers.timers.fire"


def timer_job_id(timer: Timer) -> str:
    """Deterministic per kind, subject and time: arming the same timer twice keeps one job."""
    return f"{KINDS[timer.kind].job_prefix}-{timer.subject}-{int(timer.at.timestamp() * 1000)}"


def arm(connection: redis.Redis, timers: Iterable[Timer], suffix: str = "") -> None:
    """Schedule each timer's job (on the escalation queue: every timer is urgent work)."""
    queue = Queue(queue_name(Priority.escalation), connection=connection)
    now = utcnow()
    for timer in timers:
        run_at = timer.at - timedelta(seconds=LEAD_S)
        job_id = timer_job_id(timer) + suffix
        options = {"job_id": job_id, "result_ttl": 60, "failure_ttl": 24 * 3600}
        if run_at <= now:
            queue.enqueue(FIRE, timer.kind, timer.subject, **options)
        else:
            queue.enqueue_at(run_at, FIRE, timer.kind, timer.subject, **options)


def fire(kind: str | int, subject: int | None = None) -> None:
    """The RQ job: run the core's handler for this timer when its time has come (idempotent).

    ``fire(incident_id)``, the form jobs scheduled before timer kinds existed carry, is an escalation.
    """
    if subject is None:
        kind, subject = ESCALATION, int(kind)
    timer_kind = KINDS[str(kind)]
    ctx = context.current()
    while True:
        now = utcnow()
        with session_scope(ctx.engine) as session:
            fired = timer_kind.fire(session, subject, now)
        rearm_at = fired.rearm_at
        if rearm_at is None:
            break
        wait = (rearm_at - utcnow()).total_seconds()
        if wait > MAX_WAIT_S:
            # Far too early (a clock step?): a fresh job, not this one's id, which is still running.
            arm(ctx.redis, [Timer(str(kind), subject, rearm_at)], suffix=f"-r{time.time_ns()}")
            return
        time.sleep(max(wait, 0) + 0.005)
    if fired.summary:
        log.info("%s", fired.summary)
    if fired.effects.notifications:
        enqueue_batches(ctx.redis, fired.effects.notifications, ctx.engine)
    if fired.effects.timers:
        arm(ctx.redis, fired.effects.timers)


def rearm_all(connection: redis.Redis, now: datetime | None = None) -> int:
    """Arm every pending timer of every kind from the database (after a Redis loss); returns how many."""
    ctx = context.current()
    with session_scope(ctx.engine) as session:
        timers = pending_timers(session)
    missing = [timer for timer in timers if not _is_armed(connection, timer)]
    if missing:
        arm(connection, missing)
    return len(missing)


def _is_armed(connection: redis.Redis, timer: Timer) -> bool:
    from rq.exceptions import NoSuchJobError  # noqa: PLC0415
    from rq.job import Job, JobStatus  # noqa: PLC0415

    try:
        status = Job.fetch(timer_job_id(timer), connection=connection).get_status(refresh=False)
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
        ids = referral_reminders_due(session, now or utcnow(), ZoneInfo(ctx.settings.timezone))
    if ids:
        log.info("queued %d referral reminder(s)", len(ids))
        enqueue_notifications(ctx.redis, ids, engine=ctx.engine)
    return len(ids)
