"""Delivery throughput and latency: one SOS in each of many groups, through real worker processes.

Run: ``.venv/bin/python bench/delivery.py [groups] [workers]``. Starts the Bot API emulator (with
Telegram's rate limits, so a 429 would show), a private Redis and a SQLite file; imports a village of
``groups`` ten-household groups and links every villager; raises one SOS per group at once (each fans out
to 9 neighbours, the group chat and the reporter's confirmation: distinct chats, so the 30/s token
limit is what binds) and prints messages/s, the 429s the emulator answered, and the outbox latency
(enqueued -> sent) at p50 / p95 / max.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from sqlmodel import Session, col, select

from bot.bootstrap import start_worker_processes
from bot.sandbox.emulator.server import start_emulator
from config.settings import Settings
from groups.alerts import raise_alert
from groups.db import get_engine, session_scope, upgrade
from groups.directory import linked_member
from groups.model import DeliveryStatus, HouseholdGroup, Member, Notification, utcnow
from groups.onboarding import bind_group, link_member
from groups.roster import import_roster, parse_roster
from workers.embedded_redis import EmbeddedRedis
from workers.enqueue import enqueue_notifications
from workers.process import stop_worker_processes


def village(groups: int) -> str:
    """A roster of ``groups`` groups of ten one-person households in one grid."""
    lines = ["grids:", "  - code: b1", "    name: bench", "    workers: [w1]", "    police: [p1]", "    groups:"]
    for g in range(groups):
        lines += [f"      - code: g{g}", f"        name: group {g}", f"        head: g{g}m0", "        households:"]
        for h in range(10):
            member = f"              - {{key: g{g}m{h}, name: m{h}}}"
            lines += [f"          - label: h{h}", "            members:", member]
    lines += ["staff:", "  - {key: w1, name: w, role: grid_worker}", "  - {key: p1, name: p, role: police}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    groups = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    running = asyncio.run_coroutine_threadsafe(start_emulator(), loop).result(10)
    emulator = running.emulator

    def do(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(10)

    with tempfile.TemporaryDirectory() as directory, EmbeddedRedis(Path(directory) / "redis", persist=False) as rds:
        url = f"sqlite:///{directory}/bench.db"
        upgrade(url)
        engine = get_engine(url)
        now = utcnow()
        with session_scope(engine) as session:
            import_roster(session, parse_roster(village(groups)))
            session.flush()
            members = session.exec(select(Member)).all()
            users: dict[str, int] = {}
            for member in members:
                users[member.key] = int(do(emulator.create_user, member.name)["id"])
                do(emulator.user_sends_text, users[member.key], "/start")
                link_member(session, users[member.key], member.invite_token, "zh", now)
            for group in session.exec(select(HouseholdGroup)).all():
                head = session.get(Member, group.head_id)
                assert head is not None
                chat = int(do(emulator.create_group, group.name, [users[head.key]])["id"])
                do(emulator.add_bot_to_group, chat)
                bind_group(session, head, chat, group.bind_code, now)
            ids: list[int] = []
            for g in range(groups):
                reporter = linked_member(session, users[f"g{g}m1"])
                ids += raise_alert(session, reporter, now, "fire", "bench").effects.notifications
        settings = Settings(
            bot_token=running.token, telegram_api_url=running.url, database_url=url, redis_url=rds.url
        )
        processes = start_worker_processes(settings, workers, extra_args=["--log-level", "WARNING"])
        try:
            time.sleep(2.0)  # let the workers import and connect before the clock starts
            started = time.monotonic()
            enqueued_at = utcnow()
            enqueue_notifications(redis.Redis.from_url(rds.url), ids, engine=engine)
            while True:
                with Session(engine) as session:
                    left = session.exec(
                        select(Notification.id).where(
                            col(Notification.id).in_(ids),
                            col(Notification.status).in_([DeliveryStatus.pending, DeliveryStatus.sending]),
                        )
                    ).all()
                if not left:
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - started
        finally:
            stop_worker_processes(processes)
        with Session(engine) as session:
            rows = session.exec(select(Notification).where(col(Notification.id).in_(ids))).all()
        latencies = sorted(
            (r.sent_at - enqueued_at).total_seconds() for r in rows if r.sent_at is not None
        )
        calls = do(emulator.call_log)
        sends = [c for c in calls if c["method"] in ("sendMessage", "editMessageText", "copyMessage")]
        limited = [c for c in calls if not c["ok"] and "Too Many Requests" in str(c.get("error", c))]
        print(f"{groups} alerts (one per group), {len(rows)} messages, {workers} worker processes")
        print(f"  all delivered in {elapsed:.2f} s: {len(sends) / elapsed:.1f} messages/s; 429s: {len(limited)}")
        held = sorted((r.sent_at - r.claimed_at).total_seconds() for r in rows if r.sent_at and r.claimed_at)
        if held:
            print(f"  claim -> sent per job: p50 {statistics.median(held):.3f} s, max {held[-1]:.3f} s")
        if latencies:
            p95 = latencies[int(0.95 * (len(latencies) - 1))]
            print(
                f"  enqueue -> sent: p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, "
                f"max {latencies[-1]:.2f} s"
            )
    asyncio.run_coroutine_threadsafe(running.stop(), loop).result(10)


if __name__ == "__main__":
    main()
