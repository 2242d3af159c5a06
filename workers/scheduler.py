"""Moves due ``enqueue_in`` / ``enqueue_at`` jobs onto their queues: a thread in every worker process.

One thread at a time holds a 3 s Redis lock and moves the due jobs with RQ's own code; why not RQ's
forked scheduler: docs/architecture.md ("Timers and the scheduler thread").
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Sequence

import redis
from rq.scheduler import RQScheduler

log = logging.getLogger(__name__)

LOCK_KEY = "yihu:scheduler:lock"

# Take the lock if free, renew it if ours; 1 when we hold it afterwards.
_HOLD = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class SchedulerThread(threading.Thread):
    """Every ``interval_s``: if this process holds the scheduler lock, enqueue the jobs that are due."""

    def __init__(
        self,
        connection: redis.Redis,
        queue_names: Sequence[str],
        *,
        interval_s: float = 0.5,
        lock_ttl_s: float = 3.0,
    ) -> None:
        super().__init__(name="yihu-scheduler", daemon=True)
        self.connection = connection
        self.token = uuid.uuid4().hex
        self.interval_s = interval_s
        self.lock_ttl_ms = int(lock_ttl_s * 1000)
        self.scheduler = RQScheduler(list(queue_names), connection=connection)
        self.scheduler.prepare_registries(list(queue_names))
        self._hold = connection.register_script(_HOLD)
        self._release = connection.register_script(_RELEASE)
        self.stopping = threading.Event()

    def tick(self) -> bool:
        """One pass; True if this process held the lock and moved due jobs. Errors are logged."""
        try:
            if not self._hold(keys=[LOCK_KEY], args=[self.token, self.lock_ttl_ms]):
                return False
            self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            return True
        except Exception:
            log.exception("scheduler: moving due jobs failed; trying again")
            return False

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.tick()

    def stop(self, timeout: float | None = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
        with contextlib.suppress(redis.RedisError):  # the lock expires on its own
            self._release(keys=[LOCK_KEY], args=[self.token])
