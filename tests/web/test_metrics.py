"""``/metrics`` after real alerts: the village on the emulator with real worker processes, SQLite, Redis.

The figures match what the database and Redis hold, and two separate ``yihu web`` processes on the same
database and Redis answer the very same page (nothing is counted in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, col, select

from bot.bootstrap import web_app
from bot.web.metrics import DELIVERY_BUCKETS
from bot.web.server import serve_web
from groups.model import DeliveryStatus, Incident, IncidentEvent, Notification
from tests.support.harness import Village
from workers.channels.telegram import TELEGRAM_429_KEY
from workers.embedded_redis import free_port
from workers.queues import QUEUE_NAMES

pytestmark = pytest.mark.timeout(180)

GROUP = [f"g1m{i}" for i in range(1, 11)]
NAMES = {
    "yihu_alerts_raised_total", "yihu_messages_total", "yihu_telegram_429_total", "yihu_queue_depth",
    "yihu_outbox_oldest_pending_seconds", "yihu_delivery_seconds", "yihu_escalations_total",
    "yihu_paid_messages_total",
}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def families(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples if not sample.name.endswith(("_bucket", "_count", "_sum"))}
        if family.type == "histogram":
            names.add(family.name)
    return names


async def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


@pytest.fixture
async def village(tmp_path: Path, redis_url: str) -> AsyncIterator[Village]:
    async with Village(tmp_path, redis_url, framework="ptb", workers=1) as v:
        await v.link(*GROUP, "w1", "p1")
        await v.bind_group_chat("g1")
        yield v


def _all_sent(village: Village) -> bool:
    with village.session() as session:
        waiting = session.exec(
            select(Notification.id).where(col(Notification.status).in_(["pending", "sending"]))
        ).first()
    return waiting is None


async def _scrape(village: Village) -> str:
    settings = village.settings.model_copy(update={"web_listen": f"127.0.0.1:{free_port()}"})
    app = web_app(settings, village.redis_url)
    async with serve_web(app, settings.web_listen) as running, httpx.AsyncClient() as http:
        reply = await http.get(running.url + "/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return reply.text


def _tally_edited(village: Village) -> bool:
    with village.session() as session:
        edits = session.exec(
            select(Notification).where(Notification.kind == "edit", Notification.status == DeliveryStatus.sent)
        ).all()
    return bool(edits)


def _expected(village: Village) -> tuple[Samples, float]:
    """The figures computed here from the rows themselves, and the sum of the delivery seconds."""
    with Session(village.engine) as session:
        incidents = session.exec(select(Incident)).all()
        rows = session.exec(select(Notification)).all()
        events = session.exec(select(IncidentEvent).where(IncidentEvent.kind == "escalated")).all()
    expected: Samples = {}
    for category, n in Counter(i.category for i in incidents).items():
        expected[("yihu_alerts_raised_total", (("category", category),))] = n
    for (channel, purpose, status), n in Counter((r.channel, r.purpose, r.status) for r in rows).items():
        expected[("yihu_messages_total", (("channel", channel), ("purpose", purpose), ("status", status)))] = n
    for level, n in Counter("2" if (e.detail or "").startswith("police") else e.detail for e in events).items():
        expected[("yihu_escalations_total", (("level", str(level)),))] = n
    sent = [r for r in rows if r.status == DeliveryStatus.sent and r.sent_at is not None]
    seconds = [(_ms(r.sent_at) - _ms(r.created_at)) / 1000 for r in sent if r.sent_at is not None]
    for bound in DELIVERY_BUCKETS:
        expected[("yihu_delivery_seconds_bucket", (("le", repr(bound)),))] = sum(s <= bound for s in seconds)
    expected[("yihu_delivery_seconds_bucket", (("le", "+Inf"),))] = len(seconds)
    expected[("yihu_delivery_seconds_count", ())] = len(seconds)
    expected[("yihu_outbox_oldest_pending_seconds", ())] = 0.0
    expected[("yihu_paid_messages_total", ())] = 0
    client = redis.Redis.from_url(village.redis_url)
    expected[("yihu_telegram_429_total", ())] = int(client.get(TELEGRAM_429_KEY) or 0)
    client.close()
    for name in QUEUE_NAMES:
        expected[("yihu_queue_depth", (("queue", name),))] = 0
    return expected, sum(seconds)


def _ms(value: datetime) -> int:
    """The time in whole milliseconds, rounded as SQLite's date arithmetic does."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return math.floor(aware.timestamp() * 1000 + 0.5)


async def _yihu_web(village: Village, tmp_path: Path, name: str) -> tuple[subprocess.Popen[str], str]:
    """``yihu web`` as an operator runs it for scale-out: its own process on the village's database and Redis."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIHU_")}
    env |= {
        "YIHU_BOT_TOKEN": village.emu.token,
        "YIHU_TELEGRAM_API_URL": village.emu.url,
        "YIHU_DATABASE_URL": village.database_url,
        "YIHU_REDIS_URL": village.redis_url,
        "YIHU_DATA_DIR": str(tmp_path / name),
        "YIHU_WEB_LISTEN": f"127.0.0.1:{port}",
    }
    yihu = Path(sys.executable).parent / "yihu"
    with (tmp_path / f"{name}.log").open("w") as log:
        process = subprocess.Popen([str(yihu), "web"], env=env, cwd=tmp_path, stderr=log, text=True)
    return process, f"http://127.0.0.1:{port}"


async def _healthy(http: httpx.AsyncClient, url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return (await http.get(url + "/healthz")).status_code == 200
    return False


async def test_metrics_after_real_alerts_match_the_database_and_redis_from_any_process(
    village: Village, tmp_path: Path
) -> None:
    # A fire and a general SOS, the general one escalated to the police by the grid worker; a neighbour's
    # "I'm coming" makes a worker edit the group post's tally, and Telegram answers that edit 429 once.
    await village.say("g1m7", "/sos 火灾 厨房")
    alert = (await village.wait("g1m1", 2))[-1]
    await village.wait(village.group_chats["g1"], 2)
    await village.say("g1m5", "6995")
    await village.wait("g1m1", 3)
    await village.say("w1", "/escalate 2 police 测试")
    await village.wait("p1", 2)
    await village.client.fail_next("editMessageText", 429, count=1, retry_after=1)
    await village.press("g1m1", village.user_ids["g1m1"], alert, "r:1:c")
    await _until(lambda: _tally_edited(village), 60, "the tally edit never went out")
    await _until(lambda: _all_sent(village), 60, "the outbox never emptied")
    text = await _scrape(village)
    assert families(text) == NAMES
    found = samples(text)
    expected, total = _expected(village)
    for key, value in expected.items():
        assert found.get(key) == value, key
    assert found[("yihu_alerts_raised_total", (("category", "fire"),))] == 1
    assert found[("yihu_alerts_raised_total", (("category", "general"),))] == 1
    assert found[("yihu_escalations_total", (("level", "2"),))] == 1
    assert found[("yihu_telegram_429_total", ())] == 1
    assert found[("yihu_delivery_seconds_count", ())] > 20
    assert found[("yihu_delivery_seconds_sum", ())] == pytest.approx(total, abs=0.01)

    # Two `yihu web` processes (scale-out) answer the very same page.
    processes = [await _yihu_web(village, tmp_path, name) for name in ("web-a", "web-b")]
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            pages = []
            for _, url in processes:
                deadline = time.monotonic() + 60
                while not await _healthy(http, url):
                    assert time.monotonic() < deadline, (tmp_path / "web-a.log").read_text()
                    await asyncio.sleep(0.1)
                pages.append((await http.get(url + "/metrics")).text)
        assert pages == [text, text]
    finally:
        for process, _ in processes:
            process.send_signal(signal.SIGTERM)
        for process, _ in processes:
            assert await asyncio.to_thread(process.wait, 30) == 0
