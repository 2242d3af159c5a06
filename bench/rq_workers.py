"""Per-job overhead of RQ's forking ``Worker`` vs ``SimpleWorker`` (why workers/process.py uses SimpleWorker).

Run: ``.venv/bin/python bench/rq_workers.py [jobs]``. Starts a private redis-server, enqueues no-op jobs
and times a burst worker draining them; prints milliseconds per job for each class.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import redis
from rq import Queue, SimpleWorker, Worker

from workers.embedded_redis import EmbeddedRedis


def per_job_ms(worker_class: type[Worker] | type[SimpleWorker], url: str, jobs: int) -> float:
    connection = redis.Redis.from_url(url)
    connection.flushall()
    queue = Queue("bench", connection=connection)
    for _ in range(jobs):
        queue.enqueue("os.getpid", result_ttl=0)  # a no-op job any worker can import
    worker = worker_class([queue], connection=connection)
    started = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed / jobs * 1000


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as directory, EmbeddedRedis(Path(directory), persist=False) as server:
        for worker_class in (SimpleWorker, Worker):
            cost = per_job_ms(worker_class, server.url, jobs)
            print(f"{worker_class.__name__:>12}: {cost:6.2f} ms/job ({jobs} jobs)")


if __name__ == "__main__":
    main()
