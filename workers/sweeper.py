"""The outbox sweeper: the database is the truth, so anything it still owes gets back onto a queue.

Every ``sweep_interval_s`` one process re-enqueues ``pending`` rows no job carries and ``sending`` rows
whose lease expired, re-arms timers Redis lost (:func:`workers.timers.rearm_all`), once a minute queues
due referral reminders, and once an hour prunes what the retention lets go (:mod:`groups.retention`).
docs/architecture.md ("The sweeper").
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import redis
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from groups.db import session_scope
from groups.model import DeliveryStatus, Notification, utcnow
from groups.retention import Pruned, prune
from workers.delivery import LEASE_S
from workers.enqueue import enqueue_notifications
from workers.queues import carried_notification_ids

log = logging.getLogger(__name__)

LOCK_KEY = "yihu:sweeper:lock"
PRUNE_KEY = "yihu:sweeper:pruned"
PRUNE_EVERY_S = 3600
BATCH = 1000


def sweep(
    engine: Engine,
    connection: redis.Redis,
    now: datetime | None = None,
    *,
    pending_after_s: float = 3.0,
    lease_s: float = LEASE_S,
) -> int:
    """Re-enqueue what the outbox owes and Redis lost; return how many rows were re-enqueued."""
    now = now or utcnow()
    with Session(engine) as session:
        pending = session.exec(
            select(Notification.id, Notification.priority)
            .where(
                col(Notification.status) == DeliveryStatus.pending,
                col(Notification.next_attempt_at) < now - timedelta(seconds=pending_after_s),
            )
            .order_by(col(Notification.next_attempt_at))
            .limit(BATCH)
        ).all()
        stuck = session.exec(
            select(Notification.id, Notification.priority)
            .where(
                col(Notification.status) == DeliveryStatus.sending,
                col(Notification.claimed_at) < now - timedelta(seconds=lease_s),
            )
            .limit(BATCH)
        ).all()
    if not pending and not stuck:
        return 0
    # A job SIGKILLed mid-run can linger as "started" in RQ: for stuck rows only queued/scheduled count.
    carried = carried_notification_ids(connection, include_started=True)
    waiting = carried_notification_ids(connection, include_started=False) if stuck else set()
    todo: dict[int, str] = {}
    for nid, priority in pending:
        if nid is not None and nid not in carried:
            todo[nid] = priority
    for nid, priority in stuck:
        if nid is not None and nid not in waiting:
            todo[nid] = priority
    if not todo:
        return 0
    log.warning(
        "sweeper: re-enqueueing %s notification(s) Redis lost or a dead worker held: %s",
        len(todo), sorted(todo)[:20],
    )
    return enqueue_notifications(connection, list(todo.items()))


class SweeperThread(threading.Thread):
    """Runs :func:`sweep` every ``interval_s``; across processes one sweep per interval (a Redis lock)."""

    def __init__(
        self,
        engine: Engine,
        connection: redis.Redis,
        *,
        interval_s: float = 2.0,
        pending_after_s: float = 3.0,
        retention_days: float | None = None,
    ) -> None:
        super().__init__(name="yihu-sweeper", daemon=True)
        self.engine = engine
        self.connection = connection
        self.interval_s = interval_s
        self.pending_after_s = pending_after_s
        self.retention_days = retention_days
        self.stopping = threading.Event()
        self.sweeps = 0

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.sweep_once()

    def sweep_once(self) -> int:
        """One sweep if no other process swept within the interval; errors are logged, never raised."""
        try:
            # The lock expires on its own: whoever takes it sweeps, the others skip this interval.
            if not self.connection.set(LOCK_KEY, "1", nx=True, px=max(100, int(self.interval_s * 900))):
                return 0
            self.sweeps += 1
            count = sweep(self.engine, self.connection, pending_after_s=self.pending_after_s)
        except Exception:
            log.exception("sweeper: sweep failed; trying again in %.0f s", self.interval_s)
            return 0
        self.rearm_timers()
        self.remind_referrals()
        self.prune()
        return count

    def prune(self, now: datetime | None = None, *, force: bool = False) -> Pruned | None:
        """Retention (``YIHU_RETENTION_DAYS``), at most once every :data:`PRUNE_EVERY_S` across processes."""
        if self.retention_days is None:
            return None
        try:
            if not force and not self.connection.set(PRUNE_KEY, "1", nx=True, ex=PRUNE_EVERY_S):
                return None
            with session_scope(self.engine) as session:
                pruned = prune(session, now or utcnow(), self.retention_days)
        except Exception:
            log.exception("sweeper: pruning old data failed")
            return None
        if pruned.updates or pruned.payloads:
            log.info("sweeper: pruned %s handled-update ids and %s delivered payloads", pruned.updates, pruned.payloads)
        return pruned

    def remind_referrals(self) -> int:
        """Referral reminders that are due (checked at most once a minute across processes)."""
        try:
            from workers.timers import remind_referrals  # noqa: PLC0415  (timers need the process context)

            return remind_referrals(self.connection)
        except Exception:
            log.exception("sweeper: queueing referral reminders failed")
            return 0

    def rearm_timers(self) -> int:
        """Escalation timers the database has and Redis lost, armed again; errors are logged."""
        try:
            from workers.timers import rearm_all  # noqa: PLC0415  (timers need the process context)

            armed = rearm_all(self.connection)
        except Exception:
            log.exception("sweeper: re-arming escalation timers failed")
            return 0
        if armed:
            log.warning("sweeper: re-armed %s escalation timer(s) Redis had lost", armed)
        return armed

    def stop(self, timeout: float | None = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
