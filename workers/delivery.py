"""The delivery job: send one outbox row (``Notification``) and record the outcome. Idempotent.

``deliver(notification_id)`` first *claims* the row with a conditional UPDATE (the row must still be
``pending`` — or ``sending`` with a claim older than :data:`LEASE_S`, i.e. its worker died — and its
``attempts`` must be what was read, so two workers never both claim it). Then it asks the row's channel
(:mod:`workers.channels`) to render, pace and send, and records the channel-neutral outcome:

- sent: ``status=sent``, the channel's message id, ``sent_at``; a row re-claimed after a lost lease counts
  one possible duplicate in ``duplicates`` (the first worker may have sent before dying).
- unreachable (Telegram: 403): ``unreachable``, then the core hook ``groups.alerts.note_unreachable``
  (which marks the member and owes the head a note); not retried.
- retry later, not counted (Telegram: 429 ``retry_after``, a group migrated to a supergroup): back to
  ``pending`` at ``now + seconds`` and re-scheduled; the channel asked us to wait, it did not fail.
- retry later (network error, 5xx): back to ``pending`` with exponential backoff (1, 2, 4 … 60 s);
  ``failed`` after :data:`MAX_ATTEMPTS` attempts (:data:`MAX_ATTEMPTS_URGENT` for alerts and escalations).
- refused (Telegram: chat not found, other 400s): ``failed`` with ``last_error``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from groups.alerts import note_unreachable
from groups.db import session_scope
from groups.model import ChannelName, DeliveryStatus, Notification, Priority, utcnow
from workers import context as context_module
from workers.channels import Channel, NotReady, Refused, RetryLater, Unreachable
from workers.context import Context
from workers.enqueue import current_queue, enqueue_notifications, enqueue_retry
from workers.limiter import LATE_ROUNDS, woke_late
from workers.routing import route

log = logging.getLogger(__name__)

LEASE_S = 30.0  # a 'sending' claim older than this belongs to a dead worker
MAX_ATTEMPTS = 8
# An alert or an escalation is never given up on a passing fault: at the 60 s backoff cap this keeps
# trying for about three hours (a Telegram outage), long after staff see it pending in /case N.
MAX_ATTEMPTS_URGENT = 200
URGENT_PRIORITIES = frozenset({Priority.urgent.value, Priority.escalation.value})
MAX_BACKOFF_S = 60.0
MAX_LIMITER_WAIT_S = 1.5  # wait longer than this for a slot and the job re-schedules: a worker is never held long
NOT_READY_DELAY_S = 1.0
EARLY_TOLERANCE_S = 1.5  # RQ's scheduler may run a job up to ~1 s early


@dataclass(frozen=True)
class Claim:
    """What ``deliver`` holds once it has claimed a row."""

    id: int
    attempts: int  # after this claim
    previous_status: str
    priority: str
    incident_id: int | None
    recipient_id: int | None
    chat_id: int | None
    channel: str = ChannelName.telegram.value
    due: datetime | None = None  # next_attempt_at when the job came (slightly) early

    @property
    def label(self) -> str:
        """How logs name the row: the incident number first (what staff search for)."""
        if self.incident_id is None:
            return f"notification {self.id}"
        return f"#{self.incident_id} notification {self.id}"

    @property
    def reclaimed(self) -> bool:
        return self.previous_status == DeliveryStatus.sending


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def backoff_s(attempts: int) -> float:
    """1, 2, 4, … seconds after the 1st, 2nd, 3rd … failed attempt, at most :data:`MAX_BACKOFF_S`."""
    return float(min(MAX_BACKOFF_S, 2 ** max(0, attempts - 1)))


def claim(engine: Engine, notification_id: int, now: datetime | None = None) -> Claim | None:
    """Take the row for this worker, or None when it is not due, done, or someone else holds it."""
    now = now or utcnow()
    with Session(engine) as session:
        row = session.get(Notification, notification_id)
        if row is None:
            log.warning("notification %s does not exist; nothing to deliver", notification_id)
            return None
        status, attempts = row.status, row.attempts
        due = _aware(row.next_attempt_at) if status == DeliveryStatus.pending else None
        if status == DeliveryStatus.pending:
            if due is not None and due > now + timedelta(seconds=EARLY_TOLERANCE_S):
                return None  # an early duplicate job: the scheduled one (or the sweeper) comes back for it
        elif status == DeliveryStatus.sending:
            claimed_at = _aware(row.claimed_at)
            if claimed_at is not None and claimed_at > now - timedelta(seconds=LEASE_S):
                return None  # another worker is on it
        else:
            return None  # sent, failed or unreachable: done
        snapshot = Claim(
            id=notification_id,
            attempts=attempts + 1,
            previous_status=status,
            priority=row.priority,
            incident_id=row.incident_id,
            recipient_id=row.recipient_id,
            chat_id=row.chat_id,
            channel=row.channel,
            due=due if due is not None and due > now else None,
        )
    with engine.begin() as connection:
        result = connection.execute(
            update(Notification)
            .where(
                col(Notification.id) == notification_id,
                col(Notification.status) == status,
                col(Notification.attempts) == attempts,
            )
            .values(status=DeliveryStatus.sending, attempts=attempts + 1, claimed_at=now)
        )
    if result.rowcount != 1:
        return None
    if snapshot.reclaimed:
        log.warning("%s: re-claimed after a lost lease (attempt %s)", snapshot.label, snapshot.attempts)
    return snapshot


def _finish(engine: Engine, held: Claim, **values: Any) -> bool:
    """Record an outcome for a row this worker still holds; False if the claim was lost meanwhile."""
    with engine.begin() as connection:
        result = connection.execute(_finished(held).values(**values))
    if result.rowcount != 1:
        log.warning("%s: claim lost before its outcome was recorded (%s)", held.label, values.get("status"))
        return False
    return True


def _release(ctx: Context, held: Claim, delay_s: float, *, count_attempt: bool, error: str | None) -> None:
    """Back to ``pending``, due in ``delay_s``, and re-scheduled in RQ on the queue the job came from (so a
    neighbour's DM stays behind the group posts in overload); the sweeper covers a lost job."""
    values: dict[str, Any] = {
        "status": DeliveryStatus.pending,
        "next_attempt_at": utcnow() + timedelta(seconds=delay_s),
        "claimed_at": None,
    }
    if not count_attempt:
        values["attempts"] = held.attempts - 1
    if error is not None:
        values["last_error"] = error[:1000]
    if _finish(ctx.engine, held, **values):
        queue = current_queue()
        if queue is None and held.priority == Priority.urgent:
            try:
                queue = route(ctx.engine, [held.id]).get(held.id)
            except Exception:  # the priority's first queue will do
                log.exception("%s: could not route the retry", held.label)
        enqueue_retry(ctx.redis, held.id, held.priority, delay_s, queue_name_=queue)


def _mark_sent(ctx: Context, held: Claim, message_id: int | None) -> None:
    values: dict[str, Any] = {"status": DeliveryStatus.sent, "sent_at": utcnow(), "last_error": None}
    if message_id is not None:
        values["telegram_message_id"] = message_id  # the channel's id for it (the column predates SMS)
    if held.reclaimed:
        values["duplicates"] = col(Notification.duplicates) + 1
    if _finish(ctx.engine, held, **values) and held.reclaimed:
        log.warning("%s: sent after a lost lease; counted as a possible duplicate", held.label)


def _finished(held: Claim) -> Any:
    """The conditional UPDATE that records an outcome only while this worker still holds the row."""
    return update(Notification).where(
        col(Notification.id) == held.id,
        col(Notification.status) == DeliveryStatus.sending,
        col(Notification.attempts) == held.attempts,
    )


def _mark_unreachable(ctx: Context, held: Claim, error: str) -> None:
    """403: the row, the member's ``unreachable_at`` and the core's note to the head, in ONE transaction,
    so neither a crash nor an observer between the steps sees the 403 without the head's note owed."""
    now = utcnow()
    new_ids: list[int] = []
    with session_scope(ctx.engine) as session:
        result = session.exec(
            _finished(held).values(status=DeliveryStatus.unreachable, last_error=error[:1000], claimed_at=None)
        )
        if result.rowcount != 1:
            log.warning("%s: claim lost before its outcome was recorded (unreachable)", held.label)
            return
        log.info("%s: recipient unreachable (%s)", held.label, error)
        try:
            # The core marks the member unreachable and owes the head a note (non-private incidents).
            with session.begin_nested():  # a failing hook must not undo the 403 itself
                new_ids = list(note_unreachable(session, held.id, now))
        except Exception:
            log.exception("%s: note_unreachable failed", held.label)
    if new_ids:
        enqueue_notifications(ctx.redis, new_ids, engine=ctx.engine)


def _transient(ctx: Context, held: Claim, error: str, hint_s: float = 0.0) -> None:
    limit = MAX_ATTEMPTS_URGENT if held.priority in URGENT_PRIORITIES else MAX_ATTEMPTS
    if held.attempts >= limit:
        log.error("%s: giving up after %s attempts: %s", held.label, held.attempts, error)
        _finish(ctx.engine, held, status=DeliveryStatus.failed, last_error=error[:1000], claimed_at=None)
        return
    delay = max(hint_s, backoff_s(held.attempts))
    log.warning("%s: attempt %s failed (%s); retrying in %.0f s", held.label, held.attempts, error, delay)
    _release(ctx, held, delay, count_attempt=True, error=error)


def _render(ctx: Context, channel: Channel, notification_id: int) -> Any | None:
    with session_scope(ctx.engine) as session:
        row = session.get(Notification, notification_id)
        if row is None:
            return None
        return channel.render(session, row)


def deliver(notification_id: int, *, context: Context | None = None) -> str:
    """The RQ job: deliver notification ``notification_id`` once; returns what happened (for logs/tests)."""
    ctx = context or context_module.current()
    held = claim(ctx.engine, notification_id)
    if held is None:
        return "skipped"
    return deliver_held(ctx, held)


def claim_in(session: Session, ids: Sequence[int], now: datetime | None = None) -> list[Claim]:
    """Claim, inside the caller's transaction, the rows of ``ids`` that are ``pending`` and due (as
    :func:`claim` would, conditionally on status and attempts): they leave as ``sending`` in the same
    commit that wrote them, so no further write waits for the database before they are sent. Only the
    caller's commit makes the claims real; a crash after it leaves them to the lease and the sweeper."""
    now = now or utcnow()
    if not ids:
        return []
    rows = session.exec(
        select(Notification).where(
            col(Notification.id).in_(list(ids)),
            col(Notification.status) == DeliveryStatus.pending,
            col(Notification.next_attempt_at) <= now + timedelta(seconds=EARLY_TOLERANCE_S),
        )
    ).all()
    claims: list[Claim] = []
    for row in rows:
        assert row.id is not None
        attempts = row.attempts  # the UPDATE below refreshes ``row`` in the session
        result = session.exec(
            update(Notification)
            .where(
                col(Notification.id) == row.id,
                col(Notification.status) == DeliveryStatus.pending,
                col(Notification.attempts) == attempts,
            )
            .values(status=DeliveryStatus.sending, attempts=attempts + 1, claimed_at=now)
        )
        if result.rowcount == 1:
            claims.append(Claim(
                id=row.id, attempts=attempts + 1, previous_status=DeliveryStatus.pending.value,
                priority=row.priority, incident_id=row.incident_id, recipient_id=row.recipient_id,
                chat_id=row.chat_id, channel=row.channel,
            ))
    order = {nid: k for k, nid in enumerate(ids)}
    return sorted(claims, key=lambda c: order.get(c.id, 0))


def deliver_held(
    ctx: Context,
    held: Claim,
    *,
    max_wait: float = MAX_LIMITER_WAIT_S,
    paced: Callable[[], None] | None = None,
) -> str:
    """Deliver a row already claimed (by :func:`claim` or :func:`claim_in`): render, pace (a slot further
    than ``max_wait`` re-schedules it), send, record. ``paced`` is called once the limiter's slot is
    booked or the row left the pacing otherwise (so a caller can queue what must go after it)."""
    signalled = False

    def signal() -> None:
        nonlocal signalled
        if paced is not None and not signalled:
            signalled = True
            paced()

    try:
        return _deliver_claimed(ctx, held, max_wait, signal)
    except Exception as exc:
        # A bug or an outage (database, Redis) mid-delivery: never leave the row claimed for the lease.
        log.exception("%s: delivery failed unexpectedly", held.label)
        try:
            _transient(ctx, held, f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("%s: could not record the failure; the sweeper will retry", held.label)
        return "error"
    finally:
        signal()


def _wait_for_slot(
    channel: Channel, outgoing: Any, max_wait: float, paced: Callable[[], None] | None = None
) -> float:
    """Sleep until the limiter's slot; 0 when it is time to send, else the distance of a slot too far away to
    hold a worker for. ``paced`` is called once the first slot is booked. Woken late (a busy CPU), the slot is
    booked again (:data:`workers.limiter.LATE_S`)."""
    for _ in range(LATE_ROUNDS):
        wait = channel.pace(outgoing, max_wait)
        if paced is not None:
            paced()
            paced = None
        if wait > max_wait:
            return wait
        due = time.monotonic() + wait
        if wait > 0:
            time.sleep(wait)
        if not woke_late(due, time.monotonic()):
            return 0.0
        log.debug("%s: woke %.3f s after its slot; booking again", channel.describe(outgoing), time.monotonic() - due)
    return 0.0


def _deliver_claimed(
    ctx: Context, held: Claim, max_wait: float = MAX_LIMITER_WAIT_S, paced: Callable[[], None] | None = None
) -> str:
    if held.due is not None:
        # RQ's scheduler runs jobs up to ~1 s early (whole seconds): keep the promised backoff.
        time.sleep(max(0.0, (held.due - utcnow()).total_seconds()))
    channel = ctx.channel(held.channel)
    try:
        outgoing = _render(ctx, channel, held.id)
    except NotReady as exc:
        log.debug("%s: not ready (%s); again in %.0f s", held.label, exc, NOT_READY_DELAY_S)
        _release(ctx, held, NOT_READY_DELAY_S, count_attempt=False, error=None)
        return "not_ready"
    if outgoing is None:
        _mark_sent(ctx, held, None)
        log.info("%s: nothing to send any more", held.label)
        return "nothing"

    wait = _wait_for_slot(channel, outgoing, max_wait, paced)
    if wait > max_wait:
        # The chat is busy for a while: free this worker for other chats and come back at the slot.
        _release(ctx, held, wait, count_attempt=False, error=None)
        return "deferred"

    try:
        receipt = channel.send(outgoing)
    except Unreachable as exc:
        _mark_unreachable(ctx, held, str(exc))
        return "unreachable"
    except RetryLater as exc:
        if not exc.counted:  # the channel asked us to wait (a rate limit, a moved chat): not an attempt
            log.warning("%s: %s; again in %.1f s", held.label, exc, exc.seconds)
            _release(ctx, held, exc.seconds, count_attempt=False, error=str(exc))
            return exc.outcome
        _transient(ctx, held, str(exc), exc.seconds)
        return "retry"
    except Refused as exc:
        log.error("%s: %s refused: %s", held.label, channel.describe(outgoing), exc.description)
        _finish(ctx.engine, held, status=DeliveryStatus.failed, last_error=exc.description[:1000], claimed_at=None)
        return "failed"
    _mark_sent(ctx, held, receipt.message_id)
    log.info("%s: %s sent", held.label, channel.describe(outgoing))
    return "sent"
