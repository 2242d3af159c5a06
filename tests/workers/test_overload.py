"""Overload order (issue 5 item 3): confirmations, then group posts, then heads, then the other DMs.

Real parts: Redis (fixture), SQLite and PostgreSQL, the Bot API emulator with Telegram's limits, the core's
``raise_alert``, the real renderer and an RQ worker run in-process in burst mode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlmodel import Session, col, select

from bot.bootstrap import configure_workers, run_worker_process
from bot.sandbox.emulator.threaded import ThreadedEmulator
from bot.sandbox.village import village_yaml
from config.settings import Settings
from groups.alerts import raise_alert
from groups.db import get_engine, session_scope
from groups.directory import linked_member
from groups.model import DeliveryStatus, HouseholdGroup, Member, Notification, utcnow
from groups.onboarding import bind_group, link_member
from groups.roster import import_roster, parse_roster
from workers import backlog
from workers import context as context_module
from workers.enqueue import enqueue_notifications
from workers.queues import URGENT, URGENT_DM, URGENT_GROUP, URGENT_HEAD
from workers.routing import route

MEMBERS = 4  # per group: the head m0, the reporter m1, two neighbours


def roster(groups: int) -> str:
    """``groups`` groups of one-person households in one grid, with private-case staff."""
    return village_yaml(groups, MEMBERS, women_fed=True)


@pytest.fixture
def emu() -> Iterator[ThreadedEmulator]:
    emulator = ThreadedEmulator()
    yield emulator
    emulator.stop()


class Village:
    """A linked village with bound group chats; ``users`` maps member keys to Telegram user ids."""

    def __init__(self, emu: ThreadedEmulator, database_url: str, groups: int) -> None:
        self.emu = emu
        self.engine = get_engine(database_url)
        self.users: dict[str, int] = {}
        self.chats: dict[int, str] = {}  # chat id -> group code
        now = utcnow()
        with session_scope(self.engine) as session:
            import_roster(session, parse_roster(roster(groups)))
            session.flush()
            for member in session.exec(select(Member)).all():
                self.users[member.key] = emu.user(member.key)
                link_member(session, self.users[member.key], member.invite_token, "zh", now)
            for group in session.exec(select(HouseholdGroup)).all():
                members = [uid for key, uid in self.users.items() if key.startswith(f"{group.code}m")]
                chat = int(emu.do(emu.emulator.create_group, group.name, members)["id"])
                emu.do(emu.emulator.add_bot_to_group, chat)
                head = linked_member(session, self.users[f"{group.code}m0"])
                bind_group(session, head, chat, group.bind_code, now)
                self.chats[chat] = group.code
        self.keys = {uid: key for key, uid in self.users.items()}

    def raise_in(self, groups: range, category: str = "fire") -> list[int]:
        """One SOS per group (reporter ``m1``), in one transaction, as a flood of calls would leave them."""
        ids: list[int] = []
        now = utcnow()
        with session_scope(self.engine) as session:
            for g in groups:
                reporter = linked_member(session, self.users[f"g{g}m1"])
                ids += raise_alert(session, reporter, now, category, "test").effects.notifications
        return ids

    def kind_of(self, chat_id: int) -> str:
        """What a message to ``chat_id`` was: confirmation | group | head | dm."""
        if chat_id in self.chats:
            return "group"
        key = self.keys[chat_id]
        return {"m0": "head", "m1": "confirmation"}.get(key[-2:], "dm")

    def sent(self) -> list[dict[str, Any]]:
        return [c for c in self.emu.sent() if c["ok"]]


@pytest.fixture
def settings(emu: ThreadedEmulator, database_url: str, redis_url: str) -> Iterator[Settings]:
    """SQLite, and PostgreSQL when YIHU_TEST_DATABASE_URL is set (the routing query joins three tables)."""
    value = Settings(
        bot_token=emu.token, telegram_api_url=emu.url, database_url=database_url, redis_url=redis_url,
        overload_threshold_s=0.5,
    )
    configure_workers(value)
    yield value
    context_module.reset()


def drain(settings: Settings) -> None:
    run_worker_process(settings, burst=True, redis_url=settings.redis_url, logging_level="WARNING")
    configure_workers(settings)


def owed(settings: Settings) -> list[Notification]:
    with Session(get_engine(settings.resolved_database_url)) as session:
        waiting = col(Notification.status).in_([DeliveryStatus.pending, DeliveryStatus.sending])
        return list(session.exec(select(Notification).where(waiting)).all())


def test_under_a_backlog_group_posts_then_heads_then_other_dms(
    emu: ThreadedEmulator, settings: Settings, redis_url: str, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backlog, "_last_overload_log", 0.0)  # the warning is rate-limited per process
    village = Village(emu, settings.resolved_database_url, groups=6)
    ids = village.raise_in(range(6))
    assert len(ids) == 6 * (1 + 3 + 1)  # confirmation, head + 2 neighbours, group post
    with caplog.at_level(logging.WARNING, logger="workers.backlog"):
        # Everything is queued before a worker runs: 30 messages, about 1 s at 30/s > the 0.5 s threshold.
        assert enqueue_notifications(redis.Redis.from_url(redis_url), ids) == len(ids)
    assert any("overload" in record.getMessage() for record in caplog.records)
    drain(settings)
    assert owed(settings) == []
    kinds = [village.kind_of(int(c["params"]["chat_id"])) for c in village.sent()]
    assert kinds == ["confirmation"] * 6 + ["group"] * 6 + ["head"] * 6 + ["dm"] * 12
    assert not [c for c in emu.sent() if not c["ok"]]  # no 429 on the way


def test_without_backlog_the_confirmation_is_still_first(
    emu: ThreadedEmulator, settings: Settings, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    village = Village(emu, settings.resolved_database_url, groups=2)
    connection = redis.Redis.from_url(redis_url)
    for g in range(2):  # one incident at a time, each delivered before the next is raised
        before = len(village.sent())
        with caplog.at_level(logging.WARNING, logger="workers.backlog"):
            enqueue_notifications(connection, village.raise_in(range(g, g + 1)))
        drain(settings)
        assert owed(settings) == []
        calls = village.sent()[before:]
        kinds = [village.kind_of(int(c["params"]["chat_id"])) for c in calls]
        assert kinds[0] == "confirmation"
        assert sorted(kinds) == ["confirmation", "dm", "dm", "group", "head"]
        assert f"#{g + 1}" in calls[0]["params"]["text"]
    assert not any("overload" in record.getMessage() for record in caplog.records)


def test_routing_reads_the_rows(emu: ThreadedEmulator, settings: Settings) -> None:
    village = Village(emu, settings.resolved_database_url, groups=2)
    engine = get_engine(settings.resolved_database_url)
    fire = village.raise_in(range(1))
    violence = village.raise_in(range(1, 2), category="violence")
    queues = route(engine, fire + violence)
    with Session(engine) as session:
        rows = {n.id: n for n in session.exec(select(Notification).where(col(Notification.id).in_(queues)))}
    by_kind: dict[str, set[str]] = {}
    for nid in fire:
        row = rows[nid]
        kind = "group" if row.recipient_id is None else village.kind_of(int(row.chat_id or 0))
        by_kind.setdefault(kind, set()).add(queues[nid])
    assert by_kind == {"confirmation": {URGENT}, "group": {URGENT_GROUP}, "head": {URGENT_HEAD}, "dm": {URGENT_DM}}
    # A private case goes only to staff, who own its first response: they come with the heads.
    staff = [nid for nid in violence if rows[nid].purpose == "alert"]
    assert staff and {queues[nid] for nid in staff} == {URGENT_HEAD}
    assert not [nid for nid in violence if rows[nid].group_id is not None]


def test_a_retry_goes_back_to_the_queue_it_came_from(
    emu: ThreadedEmulator, settings: Settings, redis_url: str
) -> None:
    village = Village(emu, settings.resolved_database_url, groups=1)
    ids = village.raise_in(range(1))
    engine = get_engine(settings.resolved_database_url)
    neighbour = next(nid for nid, name in route(engine, ids).items() if name == URGENT_DM)
    connection = redis.Redis.from_url(redis_url)
    emu.do(emu.emulator.fail_next, "sendMessage", 429, 1, retry_after=30)
    enqueue_notifications(connection, [neighbour])
    drain(settings)
    with Session(engine) as session:
        row = session.get(Notification, neighbour)
        assert row is not None and row.status == DeliveryStatus.pending  # waiting for retry_after
    waiting = {name: ScheduledJobRegistry(queue=Queue(name, connection=connection)).count  # type: ignore[no-untyped-call]
               for name in (URGENT, URGENT_DM)}
    assert waiting == {URGENT: 0, URGENT_DM: 1}
