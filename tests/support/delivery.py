"""Fixtures for the delivery tests: an emulator, settings per database, outbox rows and a burst drain.

The emulator runs on its own event loop in a thread because delivery jobs are synchronous (as in a
worker). The renderer is injected (plain text from the row's payload) so these tests exercise delivery
alone; the real renderer has its own tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from sqlmodel import Session

from bot.sandbox.emulator.threaded import ThreadedEmulator
from config.settings import Settings
from groups.db import get_engine, session_scope
from groups.model import DeliveryStatus, HouseholdGroup, Notification
from workers import context as context_module
from workers.channels.telegram import Outgoing, edit, message
from workers.process import run_worker

T = TypeVar("T")
FINAL = (DeliveryStatus.sent, DeliveryStatus.failed, DeliveryStatus.unreachable)


@pytest.fixture
def emu() -> Iterator[ThreadedEmulator]:
    emulator = ThreadedEmulator()
    yield emulator
    emulator.stop()


def render_payload(session: Session, notification: Notification, settings: Settings) -> Outgoing | None:
    """Test renderer: the text in the payload, to the row's chat or its group's bound chat."""
    payload = notification.payload
    if payload.get("nothing"):
        return None
    chat_id = notification.chat_id
    if notification.group_id is not None:
        group = session.get(HouseholdGroup, notification.group_id)
        assert group is not None
        chat_id = group.chat_id
    assert chat_id is not None
    if notification.kind == "edit":
        return edit(chat_id, int(payload["message_id"]), payload["text"])
    return message(chat_id, payload["text"])


@pytest.fixture
def db_url(request: pytest.FixtureRequest) -> str:
    """SQLite; tests marked with ``both_databases`` also run on PostgreSQL when one is configured."""
    name = "postgres_url" if getattr(request, "param", "sqlite") == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(name))


both_databases = pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def settings(emu: ThreadedEmulator, db_url: str, redis_url: str) -> Iterator[Settings]:
    value = Settings(
        bot_token=emu.token,
        telegram_api_url=emu.url,
        database_url=db_url,
        redis_url=redis_url,
        sweep_interval_s=0.5,
        sweep_pending_after_s=1.0,
    )
    context_module.configure(value, renderer=render_payload)
    yield value
    context_module.reset()


def add(settings: Settings, *rows: Any) -> list[int]:
    with session_scope(get_engine(settings.resolved_database_url)) as session:
        for row in rows:
            session.add(row)
        session.flush()
        return [int(row.id) for row in rows]


def note(chat_id: int | None, text: str = "hello", **fields: Any) -> Notification:
    return Notification(purpose="alert", chat_id=chat_id, payload={"text": text}, **fields)


def row(settings: Settings, notification_id: int) -> Notification:
    with Session(get_engine(settings.resolved_database_url)) as session:
        found = session.get(Notification, notification_id)
        assert found is not None
        return found


def drain(settings: Settings, ids: list[int], timeout: float = 20.0) -> None:
    """Run burst workers (with the scheduler) until every row is final."""
    deadline = time.monotonic() + timeout
    while True:
        run_worker(settings, burst=True, redis_url=settings.redis_url, renderer=render_payload, logging_level="WARNING")
        if all(row(settings, nid).status in FINAL for nid in ids):
            break
        assert time.monotonic() < deadline, [row(settings, nid) for nid in ids]
        time.sleep(0.2)
    context_module.configure(settings, renderer=render_payload)


