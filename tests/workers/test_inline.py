"""The bot sends its batches' confirmations itself (workers/inline.py): claimed in the transaction that
writes them, sent by the bot's pool through the workers' delivery path, each once; a crash after the
commit leaves them to the lease and the sweeper; a 429 is honoured; the rest is queued after them."""

from __future__ import annotations

import threading
from datetime import timedelta

import redis
from rq import Queue

from config.settings import Settings
from groups.db import get_engine, session_scope
from groups.model import DeliveryStatus, Notification, Priority, Purpose, utcnow
from tests.support.delivery import (  # noqa: F401  (fixtures)
    ThreadedEmulator,
    both_databases,
    db_url,
    drain,
    emu,
    note,
    row,
    settings,
)
from workers import context as context_module
from workers.delivery import LEASE_S, Claim, deliver
from workers.fanout import enqueue_use_cases
from workers.inline import InlineConfirmations
from workers.queues import URGENT_DM
from workers.sweeper import sweep


def confirmation(chat_id: int, text: str) -> Notification:
    return Notification(purpose=Purpose.confirmation, chat_id=chat_id, payload={"text": text}, priority=Priority.urgent)


def inline(settings: Settings, enqueued: list[list[list[int]]] | None = None) -> InlineConfirmations:
    def enqueue(use_cases: list[list[int]]) -> None:
        if enqueued is not None:
            enqueued.append(use_cases)
        enqueue_use_cases(
            redis.Redis.from_url(settings.redis_url or ""), use_cases,
            get_engine(settings.resolved_database_url), flood=len(use_cases) > 1,
        )

    return InlineConfirmations(context_module.current(), enqueue, threads=4, max_wait_s=5.0, hold_max_s=5.0)


def ingest(
    settings: Settings, port: InlineConfirmations, *use_cases: list[Notification]
) -> tuple[list[list[int]], list[Claim]]:
    """As the conversation does: write a batch's rows and claim its confirmations in one transaction."""
    with session_scope(get_engine(settings.resolved_database_url)) as session:
        for rows in use_cases:
            session.add_all(rows)
        session.flush()
        ids = [[int(r.id) for r in rows if r.id is not None] for rows in use_cases]
        claims = port.claim(session, [nid for members in ids for nid in members])
    return ids, claims


@both_databases
def test_the_bot_sends_a_batchs_confirmations_itself_and_workers_never_again(
    emu: ThreadedEmulator, settings: Settings, redis_url: str
) -> None:
    users = [emu.user(f"u{i}") for i in range(4)]
    enqueued: list[list[list[int]]] = []
    port = inline(settings, enqueued)
    ids, claims = ingest(
        settings, port,
        [confirmation(users[0], "confirm 1"), note(users[1], "alert 1", priority=Priority.urgent)],
        [confirmation(users[2], "confirm 2"), note(users[3], "alert 2", priority=Priority.urgent)],
    )
    confirmations = [ids[0][0], ids[1][0]]
    # Committed as claimed by the bot: no worker may take them.
    assert [c.id for c in claims] == confirmations
    assert all(row(settings, nid).status == DeliveryStatus.sending for nid in confirmations)
    assert [deliver(nid) for nid in confirmations] == ["skipped", "skipped"]
    with port.holding():  # the polled run is still being ingested: the alerts wait
        port.send(claims)
        port.enqueue_after([ids[0][1:], ids[1][1:]])
        assert enqueued == []
    port.close()
    assert enqueued == [[ids[0][1:], ids[1][1:]]]  # queued once the run ended and the confirmations booked
    assert all(row(settings, nid).status == DeliveryStatus.sent for nid in confirmations)
    connection = redis.Redis.from_url(redis_url)
    assert [job.args for job in Queue(URGENT_DM, connection=connection).get_jobs()] == [(ids[0][1],), (ids[1][1],)]
    drain(settings, [nid for members in ids for nid in members])
    # Even a stray job (the sweeper, a duplicate) for a confirmation sends nothing more.
    assert [deliver(nid) for nid in confirmations] == ["skipped", "skipped"]
    texts = sorted(m["params"]["text"] for m in emu.sent())
    assert texts == ["alert 1", "alert 2", "confirm 1", "confirm 2"]


def test_a_bot_killed_after_the_commit_leaves_its_confirmations_to_the_sweeper(
    emu: ThreadedEmulator, settings: Settings, redis_url: str
) -> None:
    users = [emu.user(f"u{i}") for i in range(3)]
    port = inline(settings)
    _, claims = ingest(settings, port, [confirmation(users[0], "confirm 1")], [confirmation(users[1], "confirm 2")])
    assert len(claims) == 2
    # The bot dies here: committed and claimed, never sent. Within the lease nobody takes them ...
    connection = redis.Redis.from_url(redis_url)
    assert sweep(get_engine(settings.resolved_database_url), connection, pending_after_s=0) == 0
    # ... once it ran out (time passes: the claims age) the sweeper re-enqueues them and the workers deliver
    # each exactly once.
    with session_scope(get_engine(settings.resolved_database_url)) as session:
        for held in claims:
            found = session.get(Notification, held.id)
            assert found is not None
            found.claimed_at = utcnow() - timedelta(seconds=LEASE_S + 1)
    assert sweep(get_engine(settings.resolved_database_url), connection, pending_after_s=0) == 2
    drain(settings, [held.id for held in claims])
    assert sorted(m["params"]["text"] for m in emu.sent()) == ["confirm 1", "confirm 2"]
    for held in claims:
        # Sent once; counted as a possible duplicate, as any row re-claimed after a lost lease.
        assert row(settings, held.id).status == DeliveryStatus.sent


def test_a_429_on_a_confirmation_is_honoured(emu: ThreadedEmulator, settings: Settings, redis_url: str) -> None:
    user = emu.user()
    port = inline(settings)
    ids, claims = ingest(settings, port, [confirmation(user, "confirm")])
    emu.do(emu.emulator.fail_next, "sendMessage", 429, 1, retry_after=2)
    port.send(claims)
    port.close()
    waiting = row(settings, ids[0][0])
    assert waiting.status == DeliveryStatus.pending  # handed back, due after retry_after
    assert waiting.attempts == 0  # Telegram asked us to wait: not a failed attempt
    assert waiting.next_attempt_at >= utcnow() + timedelta(seconds=1)
    assert context_module.current().limiter.reserve(user) >= 1.0  # the chat is held for every process
    drain(settings, ids[0])
    calls = emu.sent()
    assert [c["ok"] for c in calls] == [False, True]
    assert calls[1]["time"] - calls[0]["time"] >= 2.0


def test_held_rows_wait_for_the_confirmations_slots(emu: ThreadedEmulator, settings: Settings) -> None:
    """What the batch owes besides goes to the queue only after every confirmation booked its slot."""
    users = [emu.user(f"u{i}") for i in range(2)]
    booked = threading.Event()
    enqueued: list[list[list[int]]] = []
    port = inline(settings, enqueued)
    ids, claims = ingest(settings, port, [confirmation(users[0], "confirm"), note(users[1], "alert")])
    limiter = context_module.current().limiter
    reserve = limiter.reserve

    def slow_reserve(chat_id: int, max_wait: float | None = None) -> float:
        booked.wait(10)
        return reserve(chat_id, max_wait)

    limiter.reserve = slow_reserve  # type: ignore[method-assign]
    port.send(claims)
    port.enqueue_after([ids[0][1:]])
    assert enqueued == []  # the confirmation has not booked yet
    booked.set()
    port.close()
    assert enqueued == [[ids[0][1:]]]
    assert row(settings, ids[0][0]).status == DeliveryStatus.sent
