"""One job per use case, its rows sent in parallel: each once, the first (the confirmation) first."""

from __future__ import annotations

import redis
from rq import Queue

from config.settings import Settings
from groups.db import get_engine
from groups.model import DeliveryStatus, Notification, Priority
from tests.support.delivery import ThreadedEmulator, add, db_url, drain, emu, note, row, settings  # noqa: F401
from workers.fanout import BACKLOG_JOBS, deliver_many, enqueue_batches, enqueue_use_cases
from workers.queues import URGENT, URGENT_DM, queue_name


def test_deliver_many_sends_each_row_once_first_row_first(emu: ThreadedEmulator, settings: Settings) -> None:
    users = [emu.user(f"u{i}") for i in range(8)]
    ids = add(settings, *[note(u, f"m{i}") for i, u in enumerate(users)])
    outcomes = deliver_many(ids)
    assert outcomes == {"sent": 8}
    assert deliver_many(ids) == {"skipped": 8}  # a second run sends nothing
    sent = emu.sent()
    assert len(sent) == 8 and sent[0]["params"]["chat_id"] == users[0]
    assert all(row(settings, nid).status == DeliveryStatus.sent for nid in ids)


def test_enqueue_batches_one_job_per_priority(emu: ThreadedEmulator, settings: Settings, redis_url: str) -> None:
    users = [emu.user(f"u{i}") for i in range(3)]
    ids = add(
        settings,
        note(users[0], "confirm", priority=Priority.urgent),
        note(users[1], "alert", priority=Priority.urgent),
        note(users[2], "update", priority=Priority.updates),
    )
    connection = redis.Redis.from_url(redis_url)
    assert enqueue_batches(connection, ids, get_engine(settings.resolved_database_url)) == 3
    urgent = Queue(queue_name(Priority.urgent), connection=connection)
    updates = Queue(queue_name(Priority.updates), connection=connection)
    assert [job.args for job in urgent.get_jobs()] == [(ids[:2],)]
    assert [job.args for job in updates.get_jobs()] == [(ids[2:],)]
    drain(settings, ids)
    assert {m["params"]["text"] for m in emu.sent()} == {"confirm", "alert", "update"}


def test_under_a_backlog_rows_are_enqueued_one_by_one(
    emu: ThreadedEmulator, settings: Settings, redis_url: str
) -> None:
    connection = redis.Redis.from_url(redis_url)
    urgent = Queue(queue_name(Priority.urgent), connection=connection)
    for n in range(BACKLOG_JOBS + 1):
        urgent.enqueue("builtins.print", n, job_id=f"filler-{n}")
    rows = [note(emu.user(name), name, priority=Priority.urgent) for name in ("a", "b")]
    ids = add(settings, *rows)
    enqueue_batches(connection, ids, get_engine(settings.resolved_database_url))
    names = [name.decode().removeprefix("rq:queue:") for name in connection.keys("rq:queue:*")]
    queues = [Queue(name, connection=connection) for name in names]
    queued = {job_id for queue in queues for job_id in queue.get_job_ids()}
    assert not any(job_id.startswith("b-") for job_id in queued)
    assert {f"n-{nid}" for nid in ids} <= queued


def test_a_batch_owing_several_confirmations_sends_them_first_as_one_job(
    emu: ThreadedEmulator, settings: Settings, redis_url: str
) -> None:
    users = [emu.user(f"u{i}") for i in range(4)]

    def confirmation(chat_id: int, text: str) -> Notification:
        return Notification(purpose="confirmation", chat_id=chat_id, payload={"text": text}, priority=Priority.urgent)

    first = add(settings, confirmation(users[0], "confirm 1"), note(users[1], "alert 1", priority=Priority.urgent))
    second = add(settings, confirmation(users[2], "confirm 2"), note(users[3], "alert 2", priority=Priority.urgent))
    connection = redis.Redis.from_url(redis_url)
    assert enqueue_use_cases(connection, [first, second], get_engine(settings.resolved_database_url)) == 4
    urgent = Queue(URGENT, connection=connection)
    dms = Queue(URGENT_DM, connection=connection)
    assert [job.args for job in urgent.get_jobs()] == [([first[0], second[0]], True)]  # both reporters, at once
    assert [job.args for job in dms.get_jobs()] == [(first[1],), (second[1],)]  # then the rest, routed
    drain(settings, first + second)
    assert sorted(m["params"]["text"] for m in emu.sent()) == ["alert 1", "alert 2", "confirm 1", "confirm 2"]


def test_under_a_backlog_a_batchs_confirmations_still_go_as_one_job_behind_those_waiting(
    emu: ThreadedEmulator, settings: Settings, redis_url: str
) -> None:
    """A flood: every urgent row but the confirmations goes one by one (the order decides); the batch's
    confirmations go as one job sending them all at once, at the end of the confirmations' queue."""
    connection = redis.Redis.from_url(redis_url)
    urgent = Queue(URGENT, connection=connection)
    urgent.enqueue("builtins.print", "waiting", job_id="filler-0")  # a confirmation already waiting
    users = [emu.user(f"u{i}") for i in range(4)]

    def confirmation(chat_id: int, text: str) -> Notification:
        return Notification(purpose="confirmation", chat_id=chat_id, payload={"text": text}, priority=Priority.urgent)

    first = add(settings, confirmation(users[0], "confirm 1"), note(users[1], "alert 1", priority=Priority.urgent))
    second = add(settings, confirmation(users[2], "confirm 2"), note(users[3], "alert 2", priority=Priority.urgent))
    assert enqueue_use_cases(connection, [first, second], get_engine(settings.resolved_database_url)) == 4
    jobs = urgent.get_jobs()
    assert jobs[0].id == "filler-0"
    assert [job.args for job in jobs[1:]] == [([first[0], second[0]], True)]
    assert [job.args for job in Queue(URGENT_DM, connection=connection).get_jobs()] == [(first[1],), (second[1],)]
    urgent.remove("filler-0")
    drain(settings, first + second)
    assert sorted(m["params"]["text"] for m in emu.sent()) == ["alert 1", "alert 2", "confirm 1", "confirm 2"]


def test_deliver_many_all_at_once_sends_each_row_once(emu: ThreadedEmulator, settings: Settings) -> None:
    users = [emu.user(f"r{i}") for i in range(5)]
    ids = add(settings, *[note(u, f"c{i}") for i, u in enumerate(users)])
    assert deliver_many(ids, True) == {"sent": 5}
    assert deliver_many(ids, True) == {"skipped": 5}
    assert sorted(m["params"]["chat_id"] for m in emu.sent()) == sorted(users)
