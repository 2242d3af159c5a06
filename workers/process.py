"""Worker processes: an RQ ``SimpleWorker`` draining the queues in priority order, the scheduler and
sweeper threads, and stopping promptly on SIGTERM (:class:`DeliveryWorker`).

Why in-process jobs, what a SIGKILL leaves behind and the shutdown fixes: docs/architecture.md
("Worker processes"). The app starts these processes (``bot.bootstrap.start_worker_processes``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.job import Job

from config.settings import Settings
from workers import context as context_module
from workers.channels.telegram import Renderer
from workers.queues import QUEUE_NAMES, get_queues
from workers.scheduler import SchedulerThread
from workers.sweeper import SweeperThread

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 10
WORKER_TTL_S = 20
COMMAND_POLL_S = 0.5
IDLE_POLL_S = 1  # an idle worker's blocking dequeue, in whole seconds (RQ's BLPOP timeout)


class DeliveryWorker(SimpleWorker):
    """RQ's ``SimpleWorker`` that stops promptly: its command-channel thread polls every
    :data:`COMMAND_POLL_S` and is stopped flag-first (RQ's could hang a warm shutdown for up to 60 s
    with redis-py 8), and a SIGTERM during start-up is held, not fatal. docs/architecture.md
    ("Worker processes")."""

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=COMMAND_POLL_S, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def hold_signals(self) -> None:
        """Until the work loop installs RQ's handlers, remember a SIGTERM/SIGINT instead of dying of it.

        RQ installs them only after it registered the worker and started its threads: a stop in that
        window killed the process (exit -15) and left its registration behind for ``WORKER_TTL_S``.
        """

        def remember(signum: int, frame: FrameType | None) -> None:
            self._stop_before_start = True

        signal.signal(signal.SIGTERM, remember)
        signal.signal(signal.SIGINT, remember)

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()  # type: ignore[no-untyped-call]
        if getattr(self, "_stop_before_start", False):
            self.log.info("Worker %s: stop requested while starting", self.name)
            self._stop_requested = True

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """RQ's warm stop, remembered first: RQ raises ``StopRequested`` from the signal handler to
        break an idle wait, and an exception raised while a log line is written is swallowed by
        ``logging`` (seen: an idle worker that never stopped). The flag ends the wait regardless."""
        self._stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's blocking dequeue in rounds of at most :data:`IDLE_POLL_S`, checking the stop flag between."""
        if timeout is None or max_idle_time is not None:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        while True:
            if self._stop_requested:
                raise StopRequested()
            wait = min(timeout, IDLE_POLL_S)
            result = super().dequeue_job_and_maintain_ttl(wait, max_idle_time=wait)
            if result is not None:
                return result

    def unsubscribe(self) -> None:
        thread = self.pubsub_thread
        if thread is None:
            return
        thread.stop(timeout=COMMAND_POLL_S * 4)  # clears the flag, then waits for its last poll
        if thread.is_alive():
            log.warning("worker %s: command channel still polling at exit", self.name)
        self.pubsub_thread = None


def run_worker(
    settings: Settings,
    burst: bool = False,
    *,
    redis_url: str | None = None,
    renderer: Renderer,
    sweeper: bool | None = None,
    with_scheduler: bool = True,
    logging_level: str = "INFO",
) -> bool:
    """Run one RQ worker on the four queues (most urgent first) until stopped; True if it did any job.

    ``burst`` returns once the queues are empty (tests, ``--burst``); it first moves the scheduled jobs
    that are due. The sweeper thread runs unless ``sweeper`` is False (default: not in burst mode).
    """
    ctx = context_module.configure(settings, redis_url=redis_url, renderer=renderer)
    worker = DeliveryWorker(
        get_queues(ctx.redis),
        connection=ctx.redis,
        maintenance_interval=MAINTENANCE_INTERVAL_S,
        worker_ttl=WORKER_TTL_S,
    )
    if not burst:
        worker.hold_signals()
    scheduler_thread: SchedulerThread | None = None
    if with_scheduler:
        scheduler_thread = SchedulerThread(ctx.redis, QUEUE_NAMES)
        if burst:
            scheduler_thread.tick()
            scheduler_thread.stop()
            scheduler_thread = None
        else:
            scheduler_thread.start()
    sweeper_thread: SweeperThread | None = None
    if sweeper if sweeper is not None else not burst:
        sweeper_thread = SweeperThread(
            ctx.engine,
            ctx.redis,
            interval_s=settings.sweep_interval_s,
            pending_after_s=settings.sweep_pending_after_s,
            retention_days=settings.retention_days,
        )
        sweeper_thread.start()
    try:
        return bool(worker.work(burst=burst, logging_level=logging_level))
    finally:
        if sweeper_thread is not None:
            sweeper_thread.stop()
        if scheduler_thread is not None:
            scheduler_thread.stop()
        context_module.reset()


def settings_environment(settings: Settings, redis_url: str | None = None) -> dict[str, str]:
    """``YIHU_*`` variables that give a child process exactly these settings."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        env[f"YIHU_{name.upper()}"] = str(value.resolve()) if isinstance(value, Path) else str(value)
    env["YIHU_DATABASE_URL"] = settings.resolved_database_url
    if redis_url:
        env["YIHU_REDIS_URL"] = redis_url
    return env


def spawn_processes(
    argv: Sequence[str],
    settings: Settings,
    n: int,
    *,
    redis_url: str | None = None,
    env: dict[str, str] | None = None,
) -> list[subprocess.Popen[bytes]]:
    """Spawn ``n`` children running ``argv`` with exactly these settings (the app names the entry point)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("YIHU_")}
    child_env.update(settings_environment(settings, redis_url))
    child_env.update(env or {})
    return [
        subprocess.Popen(list(argv), env=child_env)
        for _ in range(n)
    ]


def stop_worker_processes(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM each child (it finishes its current job), wait, and SIGKILL whichever is still alive."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("worker %s did not stop within %.0f s; killing it", process.pid, timeout)
            process.kill()
            process.wait()
