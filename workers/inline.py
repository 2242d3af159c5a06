"""The bot process delivers its own reporters' confirmations, right after the commit that wrote them.

Under a flood the (k+30)th message cannot leave before 1.05 s after the kth, so the last confirmation
is decided by how soon the first ones leave (docs/architecture.md, "The reporters' confirmations under a
flood"). The face's transaction claims its confirmation rows itself (:func:`workers.delivery.claim_in`:
``sending`` in the same commit that wrote them, so no further write waits for SQLite's lock), then a
small thread pool delivers them with :func:`workers.delivery.deliver_held`, the workers' own path:
render, the shared limiter, send, record; a 429 is penalized and re-scheduled on RQ; a crash after the
commit leaves them ``sending`` until the lease runs out and the sweeper re-enqueues them. They are never
enqueued on RQ, so no worker contends for them.

What else the same updates owe (alert DMs, group posts) is queued only once every confirmation handed
over so far has booked its limiter slot, and not while a polled run of updates is being ingested
(:meth:`InlineConfirmations.holding`): the workers' bookings then come after the confirmations instead
of taking the first seconds' slots. Held rows are released at the latest after ``hold_max_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlmodel import Session, col, select

from groups.model import DeliveryStatus, Notification, Purpose
from workers.context import Context
from workers.delivery import Claim, claim_in, deliver_held

log = logging.getLogger(__name__)

EnqueueUseCases = Callable[[list[list[int]]], None]


class InlineConfirmations:
    """Claims a batch's confirmations in its transaction and sends them from this process (thread-safe)."""

    def __init__(
        self,
        context: Context,
        enqueue_use_cases: EnqueueUseCases,
        *,
        threads: int,
        max_wait_s: float,
        hold_max_s: float,
    ) -> None:
        self.context = context
        self.enqueue_use_cases = enqueue_use_cases
        self.max_wait_s = max_wait_s
        self.hold_max_s = hold_max_s
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="yihu-confirm")
        self._lock = threading.Lock()
        self._unbooked = 0  # confirmations handed over whose slot is not booked yet
        self._holds = 0  # polled runs being ingested
        self._held: list[list[int]] = []
        self._held_since: float | None = None
        self._closed = False

    # -- inside the batch's transaction -------------------------------------------------------------
    def claim(self, session: Session, ids: Sequence[int]) -> list[Claim]:
        """Claim the confirmations among ``ids`` (rows this transaction wrote) for this process."""
        if not ids or self._closed:
            return []
        confirmations = session.exec(
            select(Notification.id).where(
                col(Notification.id).in_(list(ids)),
                col(Notification.purpose) == Purpose.confirmation,
                col(Notification.status) == DeliveryStatus.pending,
                col(Notification.channel).in_(list(self.context.channels)),
            )
        ).all()
        mine = {int(nid) for nid in confirmations if nid is not None}
        return claim_in(session, [nid for nid in ids if nid in mine])

    # -- after the commit ---------------------------------------------------------------------------
    def send(self, claims: Sequence[Claim]) -> None:
        """Deliver the committed claims in the pool (each as a worker would)."""
        if not claims:
            return
        with self._lock:
            self._unbooked += len(claims)
        for held in claims:
            try:
                self._pool.submit(self._deliver, held)
            except RuntimeError:  # shutting down: the lease and the sweeper take over
                log.warning("%s: not sent by the bot (stopping); the sweeper will deliver it", held.label)
                self._booked()

    def enqueue_after(self, use_cases: list[list[int]]) -> None:
        """Queue what the batch owes besides its confirmations, once they have booked their slots."""
        if not use_cases:
            return
        with self._lock:
            if self._held_since is None:
                self._held_since = time.monotonic()
            self._held.extend(use_cases)
        self._flush()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """While a polled run of updates is ingested, hold what it owes besides confirmations."""
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
            self._flush()

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking confirmations; wait (up to ``timeout``) for those being sent; queue what is held."""
        self._closed = True
        waiter = threading.Thread(target=self._pool.shutdown, kwargs={"wait": True}, daemon=True)
        waiter.start()
        waiter.join(timeout)
        with self._lock:
            self._holds = 0
            self._unbooked = 0
        self._flush()

    # -- internals ----------------------------------------------------------------------------------
    def _deliver(self, held: Claim) -> None:
        outcome = deliver_held(self.context, held, max_wait=self.max_wait_s, paced=self._booked)
        log.debug("%s: %s by the bot", held.label, outcome)

    def _booked(self) -> None:
        with self._lock:
            self._unbooked = max(0, self._unbooked - 1)
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            if not self._held:
                return
            waited = time.monotonic() - (self._held_since or time.monotonic())
            if (self._unbooked or self._holds) and waited < self.hold_max_s:
                return
            use_cases, self._held, self._held_since = self._held, [], None
        try:
            self.enqueue_use_cases(use_cases)
        except Exception:
            log.exception("enqueue of %s failed; the sweeper will deliver them", use_cases)
