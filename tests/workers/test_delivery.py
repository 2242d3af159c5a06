"""Delivery end to end: outbox rows -> RQ (real Redis) -> deliver -> the Telegram channel -> Bot API emulator.

Fixtures and helpers: tests/support/delivery.py (a renderer of the payload's text, so these tests
exercise delivery alone; the real renderer has its own tests).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.registry import ScheduledJobRegistry
from sqlmodel import Session, col, select

from bot.sandbox.emulator.threaded import ThreadedEmulator
from config.settings import Settings
from groups.db import get_engine, session_scope
from groups.directory import linked_member
from groups.model import DeliveryStatus, Grid, HouseholdGroup, Member, Notification, Priority, utcnow
from tests.support.delivery import (  # noqa: F401  (fixtures)
    FINAL,
    add,
    both_databases,
    db_url,
    drain,
    emu,
    note,
    render_payload,
    row,
    settings,
)
from workers import context as context_module
from workers.delivery import LEASE_S, deliver
from workers.embedded_redis import free_port
from workers.enqueue import enqueue_notifications
from workers.queues import get_queues, queue_name
from workers.sweeper import SweeperThread, sweep


@both_databases
def test_deliver_records_the_message_id(emu: ThreadedEmulator, settings: Settings) -> None:
    user = emu.user()
    (nid,) = add(settings, note(user, "火灾 #1"))
    assert deliver(nid) == "sent"
    done = row(settings, nid)
    assert done.status == DeliveryStatus.sent
    assert done.attempts == 1 and done.sent_at is not None
    (call,) = emu.sent()
    assert done.telegram_message_id == call["result"]["message_id"]
    assert call["params"]["text"] == "火灾 #1"


@both_databases
def test_deliver_twice_sends_once(emu: ThreadedEmulator, settings: Settings) -> None:
    user = emu.user()
    (nid,) = add(settings, note(user))
    assert deliver(nid) == "sent"
    assert deliver(nid) == "skipped"
    assert len(emu.sent()) == 1


def test_enqueued_jobs_run_through_a_worker(emu: ThreadedEmulator, settings: Settings, redis_url: str) -> None:
    users = [emu.user(f"u{i}") for i in range(3)]
    ids = add(settings, *(note(u) for u in users))
    connection = redis.Redis.from_url(redis_url)
    # Twice: deterministic job ids, and the second run finds the rows done.
    assert enqueue_notifications(connection, ids) == 3
    assert enqueue_notifications(connection, ids) == 3
    drain(settings, ids)
    assert all(row(settings, nid).status == DeliveryStatus.sent for nid in ids)
    assert sorted(c["params"]["chat_id"] for c in emu.sent()) == sorted(users)


def test_nothing_to_send_marks_sent(emu: ThreadedEmulator, settings: Settings) -> None:
    (nid,) = add(settings, Notification(purpose="update", chat_id=1, payload={"nothing": True}))
    assert deliver(nid) == "nothing"
    assert row(settings, nid).status == DeliveryStatus.sent
    assert emu.sent() == []


def test_403_marks_unreachable_and_is_not_retried(emu: ThreadedEmulator, settings: Settings, redis_url: str) -> None:
    stranger = emu.user("never started", started=False)
    (member_id,) = add(settings, Member(key="m9", name="王五", invite_token="t" * 20, telegram_user_id=stranger))
    (nid,) = add(settings, note(stranger, recipient_id=member_id))
    assert deliver(nid) == "unreachable"
    done = row(settings, nid)
    assert done.status == DeliveryStatus.unreachable
    assert "initiate" in (done.last_error or "")
    with Session(get_engine(settings.resolved_database_url)) as session:
        member = session.get(Member, member_id)
        assert member is not None and member.unreachable_at is not None
    connection = redis.Redis.from_url(redis_url)
    assert all(ScheduledJobRegistry(queue=q).count == 0 and q.count == 0 for q in get_queues(connection))  # type: ignore[no-untyped-call]


@both_databases
def test_429_waits_retry_after_then_sends(emu: ThreadedEmulator, settings: Settings, redis_url: str) -> None:
    user = emu.user()
    (nid,) = add(settings, note(user))
    emu.do(emu.emulator.fail_next, "sendMessage", 429, 1, retry_after=2)
    assert deliver(nid) == "rate_limited"
    waiting = row(settings, nid)
    assert waiting.status == DeliveryStatus.pending
    assert waiting.attempts == 0  # Telegram asked us to wait: not a failed attempt
    assert waiting.next_attempt_at >= utcnow() + timedelta(seconds=1)
    # The limiter holds that chat too, for every process.
    assert context_module.current().limiter.reserve(user) >= 1.0
    drain(settings, [nid])
    assert row(settings, nid).status == DeliveryStatus.sent
    calls = emu.sent()
    assert [c["ok"] for c in calls] == [False, True]
    assert calls[1]["time"] - calls[0]["time"] >= 2.0


def test_5xx_is_retried_with_backoff_then_sent(emu: ThreadedEmulator, settings: Settings) -> None:
    user = emu.user()
    (nid,) = add(settings, note(user))
    emu.do(emu.emulator.fail_next, "sendMessage", 500, 1)
    emu.do(emu.emulator.fail_next, "sendMessage", 502, 1)
    assert deliver(nid) == "retry"
    first = row(settings, nid)
    assert first.status == DeliveryStatus.pending and first.attempts == 1 and first.last_error
    drain(settings, [nid])
    done = row(settings, nid)
    assert done.status == DeliveryStatus.sent and done.attempts == 3
    calls = emu.sent()
    assert [c["ok"] for c in calls] == [False, False, True]
    # Backoff 1 s after the first failure, 2 s after the second.
    assert calls[1]["time"] - calls[0]["time"] >= 0.9
    assert calls[2]["time"] - calls[1]["time"] >= 1.9


def test_network_errors_back_off_and_give_up(settings: Settings) -> None:
    dead = settings.model_copy(update={"telegram_api_url": f"http://127.0.0.1:{free_port()}"})
    context_module.configure(dead, renderer=render_payload)
    (nid,) = add(settings, note(12345, attempts=7, priority=Priority.updates))
    assert deliver(nid) == "retry"
    failed = row(settings, nid)
    assert failed.status == DeliveryStatus.failed and failed.attempts == 8 and failed.last_error
    # An alert is not given up after eight: it keeps trying (a Telegram outage may last a while).
    (alert,) = add(settings, note(12346, attempts=7, priority=Priority.urgent))
    deliver(alert)
    pending = row(settings, alert)
    assert pending.status == DeliveryStatus.pending and pending.attempts == 8


@both_databases
def test_migrated_group_updates_the_binding(emu: ThreadedEmulator, settings: Settings) -> None:
    admin = emu.user("head")
    old_chat = int(emu.do(emu.emulator.create_group, "第一联防组", [admin])["id"])
    emu.do(emu.emulator.add_bot_to_group, old_chat)
    new_chat = int(emu.do(emu.emulator.migrate_group, old_chat)["new_chat_id"])
    (grid_id,) = add(settings, Grid(code="lc3", name="网格"))
    group = HouseholdGroup(code="g1", name="一组", grid_id=grid_id, bind_code="b1", chat_id=old_chat)
    (group_id,) = add(settings, group)
    (nid,) = add(settings, note(None, "group post", group_id=group_id))
    assert deliver(nid) == "migrated"
    with Session(get_engine(settings.resolved_database_url)) as session:
        bound = session.get(HouseholdGroup, group_id)
        assert bound is not None and bound.chat_id == new_chat
    drain(settings, [nid])
    assert row(settings, nid).status == DeliveryStatus.sent
    texts = [m["text"] for m in emu.do(emu.emulator.chat_messages, new_chat)]
    assert "group post" in texts


def test_chat_not_found_fails(emu: ThreadedEmulator, settings: Settings) -> None:
    (nid,) = add(settings, note(987654321))
    assert deliver(nid) == "failed"
    failed = row(settings, nid)
    assert failed.status == DeliveryStatus.failed and "chat not found" in (failed.last_error or "").lower()


def test_edit_not_modified_counts_as_sent(emu: ThreadedEmulator, settings: Settings) -> None:
    user = emu.user()
    (first,) = add(settings, note(user, "tally 1"))
    assert deliver(first) == "sent"
    message_id = row(settings, first).telegram_message_id
    (same,) = add(settings, Notification(purpose="update", kind="edit", chat_id=user,
                                         payload={"text": "tally 1", "message_id": message_id}))
    assert deliver(same) == "sent"
    assert row(settings, same).status == DeliveryStatus.sent
    (changed,) = add(settings, Notification(purpose="update", kind="edit", chat_id=user,
                                            payload={"text": "tally 2", "message_id": message_id}))
    assert deliver(changed) == "sent"
    assert row(settings, changed).telegram_message_id == message_id


def test_enqueue_without_redis_does_not_raise(settings: Settings) -> None:
    (nid,) = add(settings, note(1))
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    assert enqueue_notifications(down, [(nid, Priority.urgent)]) == 0


@both_databases
def test_sweeper_reenqueues_lost_and_stuck_rows(emu: ThreadedEmulator, settings: Settings, redis_url: str) -> None:
    lost_user, stuck_user, busy_user = emu.user("a"), emu.user("b"), emu.user("c")
    now = utcnow()
    lost, stuck, busy = add(
        settings,
        note(lost_user, "lost", next_attempt_at=now - timedelta(seconds=10)),
        note(stuck_user, "stuck", status=DeliveryStatus.sending, attempts=1,
             claimed_at=now - timedelta(seconds=LEASE_S + 5)),
        note(busy_user, "busy", status=DeliveryStatus.sending, attempts=1, claimed_at=now),
    )
    connection = redis.Redis.from_url(redis_url)
    enqueue_notifications(connection, [lost])
    connection.flushall()  # Redis loses the job
    engine = get_engine(settings.resolved_database_url)
    assert sweep(engine, connection, pending_after_s=1.0) == 2
    # Now Redis carries them again: a second sweep adds nothing.
    assert sweep(engine, connection, pending_after_s=1.0) == 0
    drain(settings, [lost, stuck])
    assert row(settings, lost).status == DeliveryStatus.sent
    resent = row(settings, stuck)
    assert resent.status == DeliveryStatus.sent and resent.duplicates == 1  # counted: it may have gone out before
    assert row(settings, busy).status == DeliveryStatus.sending  # its worker is alive: left alone


def test_sweeper_thread_sweeps_once_per_interval(settings: Settings, redis_url: str) -> None:
    engine = get_engine(settings.resolved_database_url)
    (nid,) = add(settings, note(1, next_attempt_at=utcnow() - timedelta(seconds=10)))
    first = SweeperThread(engine, redis.Redis.from_url(redis_url), interval_s=5)
    second = SweeperThread(engine, redis.Redis.from_url(redis_url), interval_s=5)
    assert first.sweep_once() == 1
    assert second.sweep_once() == 0  # the lock: one sweeper per interval across processes
    assert first.sweeps == 1 and second.sweeps == 0
    queued = [q.get_job_ids() for q in get_queues(redis.Redis.from_url(redis_url))]
    assert [f"n-{nid}"] in queued


def test_worker_drains_urgent_before_bulk(emu: ThreadedEmulator, settings: Settings, redis_url: str) -> None:
    users = [emu.user(f"u{i}") for i in range(8)]
    bulk = add(settings, *(note(u, "bulk", priority=Priority.bulk) for u in users[:4]))
    updates = add(settings, *(note(u, "update", priority=Priority.updates) for u in users[4:6]))
    urgent = add(settings, *(note(u, "urgent", priority=Priority.urgent) for u in users[6:]))
    connection = redis.Redis.from_url(redis_url)
    # The backlog arrives bulk first; priorities are read from the database.
    for ids in (bulk, updates, urgent):
        enqueue_notifications(connection, ids)
    assert queue_name(Priority.bulk) != queue_name(Priority.urgent)
    drain(settings, bulk + updates + urgent)
    order = [c["params"]["text"] for c in emu.sent()]
    assert order == ["urgent"] * 2 + ["update"] * 2 + ["bulk"] * 4


def test_fan_out_stays_under_telegram_limits(emu: ThreadedEmulator, settings: Settings, redis_url: str) -> None:
    users = [emu.user(f"v{i}") for i in range(45)]
    ids = add(settings, *(note(u, f"alert {i}") for i, u in enumerate(users)))
    # Three more to one chat: 1/s per chat applies.
    ids += add(settings, *(note(users[0], f"update {i}", priority=Priority.updates) for i in range(3)))
    enqueue_notifications(redis.Redis.from_url(redis_url), ids)
    drain(settings, ids, timeout=30)
    assert all(row(settings, nid).status == DeliveryStatus.sent for nid in ids)
    calls = emu.sent()
    assert len(calls) == 48
    assert all(c["ok"] for c in calls), [c for c in calls if not c["ok"]][:3]


def test_worker_processes_deliver_a_real_alert(emu: ThreadedEmulator, sqlite_url: str, redis_url: str) -> None:
    """Two ``python -m bot.worker`` children, the real core and renderer: an SOS reaches everyone once, and a
    neighbour who blocked the bot is reported to the head (the core's ``note_unreachable`` hook)."""
    from pathlib import Path  # noqa: PLC0415

    from bot.bootstrap import start_worker_processes  # noqa: PLC0415
    from groups.alerts import raise_alert  # noqa: PLC0415
    from groups.onboarding import bind_group, link_member  # noqa: PLC0415
    from groups.roster import import_roster, parse_roster  # noqa: PLC0415
    from workers.process import stop_worker_processes  # noqa: PLC0415

    engine = get_engine(sqlite_url)
    roster = parse_roster((Path(__file__).resolve().parent.parent / "data" / "roster.yaml").read_text(encoding="utf-8"))
    users = {key: emu.user(key) for key in ("m1", "m2", "m3")}
    chat = int(emu.do(emu.emulator.create_group, "第一联防组", list(users.values()))["id"])
    emu.do(emu.emulator.add_bot_to_group, chat)
    now = utcnow()
    with session_scope(engine) as session:
        import_roster(session, roster)
        session.flush()
        for key, user_id in users.items():
            member = session.exec(select(Member).where(Member.key == key)).one()
            link_member(session, user_id, member.invite_token, "zh", now)
        bind_code = session.exec(select(HouseholdGroup).where(HouseholdGroup.code == "g1")).one().bind_code
        bind_group(session, linked_member(session, users["m1"]), chat, bind_code, now)
        raised = raise_alert(session, linked_member(session, users["m2"]), now, "fire", "厨房着火")
    emu.do(emu.emulator.block, users["m3"])  # 王五 blocked the bot after linking: a 403 awaits
    ids = raised.effects.notifications
    assert len(ids) >= 4  # the confirmation, DMs to m1 and m3, the group post

    def owed() -> list[Notification]:
        with Session(engine) as session:
            owing = col(Notification.status).in_([DeliveryStatus.pending, DeliveryStatus.sending])
            return list(session.exec(select(Notification).where(owing)).all())

    settings = Settings(
        bot_token=emu.token, telegram_api_url=emu.url, database_url=sqlite_url, redis_url=redis_url,
        sweep_interval_s=0.5, sweep_pending_after_s=1.0,
    )
    processes = start_worker_processes(settings, 2)
    try:
        enqueue_notifications(redis.Redis.from_url(redis_url), ids, engine=engine)
        deadline = time.monotonic() + 30
        while not all(row(settings, nid).status in FINAL for nid in ids) or owed():
            assert time.monotonic() < deadline, owed()
            assert all(p.poll() is None for p in processes)
            time.sleep(0.2)
    finally:
        stop_worker_processes(processes)
    assert [p.returncode for p in processes] == [0, 0]
    number = f"#{raised.incident_id}"
    assert [row(settings, nid).status for nid in ids].count(DeliveryStatus.unreachable) == 1
    with Session(engine) as session:
        blocked = session.exec(select(Member).where(Member.key == "m3")).one()
        assert blocked.unreachable_at is not None
    reporter = [m["text"] for m in emu.do(emu.emulator.chat_messages, users["m2"])]
    assert len(reporter) == 1 and number in reporter[0]
    head = [m["text"] for m in emu.do(emu.emulator.chat_messages, users["m1"])]
    assert len(head) == 2 and number in head[0]
    assert "王五" in head[1]  # the head learns who could not be reached
    assert emu.do(emu.emulator.chat_messages, users["m3"]) == []
    group_texts = [m["text"] for m in emu.do(emu.emulator.chat_messages, chat)]
    assert len(group_texts) == 1 and number in group_texts[0]


def test_scheduler_threads_share_one_lock_and_move_due_jobs(settings: Settings, redis_url: str) -> None:
    from workers.enqueue import enqueue_retry  # noqa: PLC0415
    from workers.queues import QUEUE_NAMES  # noqa: PLC0415
    from workers.scheduler import SchedulerThread  # noqa: PLC0415

    connection = redis.Redis.from_url(redis_url)
    (nid,) = add(settings, note(1))
    assert enqueue_retry(connection, nid, Priority.urgent, 1.0)
    first, second = SchedulerThread(connection, QUEUE_NAMES), SchedulerThread(connection, QUEUE_NAMES)
    urgent = get_queues(connection)[0]
    assert first.tick() and not second.tick()  # one process moves jobs at a time
    assert urgent.count == 0  # not due yet
    time.sleep(2.1)
    assert first.tick()
    assert urgent.count == 1
    first.stop()  # releases the lock: the other takes over at once
    assert second.tick()
    second.stop()


def test_sweeper_does_not_trust_overdue_scheduled_jobs(settings: Settings, redis_url: str) -> None:
    """With no scheduler running, a retry scheduled in RQ would wait forever: the sweeper enqueues it."""
    from workers.enqueue import enqueue_retry  # noqa: PLC0415

    connection = redis.Redis.from_url(redis_url)
    engine = get_engine(settings.resolved_database_url)
    (nid,) = add(settings, note(1, next_attempt_at=utcnow() - timedelta(seconds=30)))
    assert enqueue_retry(connection, nid, Priority.urgent, 0.5)
    assert sweep(engine, connection, pending_after_s=1.0) == 0  # carried by a job due just now
    registry = ScheduledJobRegistry(queue=get_queues(connection)[0])  # type: ignore[no-untyped-call]
    (job_id,) = registry.get_job_ids()
    connection.zadd(registry.key, {job_id: time.time() - 60})  # as if no scheduler ran for a minute
    assert sweep(engine, connection, pending_after_s=1.0) == 1


def test_worker_modules_never_import_aiogram() -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import sys, bot.worker, workers.delivery, workers.sweeper, workers.timers, bot.render\n"
        "assert not [m for m in sys.modules if m.startswith('aiogram')], 'aiogram imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_killed_worker_loses_nothing(emu: ThreadedEmulator, settings: Settings, redis_url: str) -> None:
    """SIGKILL a worker mid-send: the next worker delivers the rest at once and the lost row after its lease.

    Slow by nature (the lease is 30 s): this is the contract's "at least once even if a process is killed".
    """
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from bot.bootstrap import start_worker_processes  # noqa: PLC0415
    from workers.process import stop_worker_processes  # noqa: PLC0415

    users = [emu.user(f"k{i}") for i in range(4)]
    ids = add(settings, *(note(u, f"alert {i}") for i, u in enumerate(users)))
    emu.do(emu.emulator.set_faults, delay=1.0, delay_methods=["sendmessage"])
    enqueue_notifications(redis.Redis.from_url(redis_url), ids)
    (doomed,) = start_worker_processes(settings, 1)
    deadline = time.monotonic() + 20
    while not any(row(settings, nid).status == DeliveryStatus.sending for nid in ids):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    emu.do(emu.emulator.set_faults, delay=0.0)
    survivors = start_worker_processes(settings, 1)
    try:
        deadline = time.monotonic() + LEASE_S + 25
        while not all(row(settings, nid).status in FINAL for nid in ids):
            assert time.monotonic() < deadline, [row(settings, nid) for nid in ids]
            time.sleep(0.25)
    finally:
        stop_worker_processes(survivors)
    rows = [row(settings, nid) for nid in ids]
    assert all(r.status == DeliveryStatus.sent for r in rows)
    for user, done in zip(users, rows, strict=True):
        received = len(emu.do(emu.emulator.chat_messages, user))
        # At least once; a second copy only where the killed worker had already sent, and it is counted.
        assert 1 <= received <= 1 + done.duplicates


@pytest.mark.timeout(300)  # thirty process starts: ~20 s on an idle machine, minutes on a loaded one
def test_workers_stop_promptly_on_sigterm_busy_or_idle(
    emu: ThreadedEmulator, settings: Settings, redis_url: str
) -> None:
    """Ten rounds of three ``python -m bot.worker`` children (30 stops), half of the rounds mid-send: each
    worker exits 0 on SIGTERM with no kill. RQ's command-channel thread used to hang a warm shutdown for
    up to a minute now and then (see :class:`workers.process.DeliveryWorker`)."""
    from rq import Worker  # noqa: PLC0415

    from bot.bootstrap import start_worker_processes  # noqa: PLC0415
    from workers.process import stop_worker_processes  # noqa: PLC0415

    client = redis.Redis.from_url(redis_url)
    emu.do(emu.emulator.set_faults, delay=0.3, delay_methods=["sendmessage"])
    users = [emu.user(f"s{i}") for i in range(6)]
    for round_no in range(10):
        processes = start_worker_processes(settings, 3)
        busy = round_no % 2 == 0
        try:
            deadline = time.monotonic() + 30
            while len(Worker.all(connection=client)) < 3:
                assert time.monotonic() < deadline, "workers did not start"
                assert all(p.poll() is None for p in processes)
                time.sleep(0.05)
            if busy:
                ids = add(settings, *(note(u, f"round {round_no}") for u in users))
                enqueue_notifications(client, ids)
                while not any(row(settings, nid).status == DeliveryStatus.sending for nid in ids):
                    assert time.monotonic() < deadline, "no worker picked a job"
                    time.sleep(0.02)
        finally:
            # 10 s is far beyond a 0.3 s send; a hung command channel (up to 60 s) ends in a kill (-9).
            stop_worker_processes(processes, timeout=10)
        assert [p.returncode for p in processes] == [0, 0, 0], f"round {round_no} (busy={busy})"
        deadline = time.monotonic() + 10
        while Worker.all(connection=client):  # a clean exit unregisters the worker
            assert time.monotonic() < deadline, "a stopped worker stayed registered"
            time.sleep(0.05)


def test_yihu_worker_burst_delivers_through_the_composition_root(emu: ThreadedEmulator, settings: Settings) -> None:
    """The contract's ``yihu worker`` (scale-out): with the real renderer wired by the app, it delivers
    what is owed and exits 0; without YIHU_REDIS_URL it says so in one sentence and exits 2."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from workers.process import settings_environment  # noqa: PLC0415

    user = emu.user("yw")
    (nid,) = add(settings, note(user, "hello"))
    enqueue_notifications(redis.Redis.from_url(str(settings.redis_url)), [nid])
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIHU_")}
    env.update(settings_environment(settings, settings.redis_url))
    command = [sys.executable, "-m", "bot.cli", "worker", "--burst"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert row(settings, nid).status == DeliveryStatus.sent
    assert len(emu.do(emu.emulator.chat_messages, user)) == 1
    env.pop("YIHU_REDIS_URL")
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "YIHU_REDIS_URL" in refused.stderr + refused.stdout
