"""Load: 100 groups x 10 members, 100 SOS at the same moment, through `yihu run` and Telegram's limits.

Run: ``.venv/bin/python bench/load.py [--groups 100] [--workers 2 4] [--framework ptb aiogram]
[--database sqlite postgresql://user@host:port/db]``. For each database, face and worker count: the Bot
API emulator in this process (enforcing 30 msg/s, 1/s per chat, 20/min per group), a private Redis, a
SQLite file in a temp dir (or a scratch database on the PostgreSQL server named), the roster generated
and imported, every member linked and "started", every group bound to a chat; then `yihu run` as a
child (that face + ``--workers`` worker processes).
Each group's ``m1`` sends "6995" at the same moment, so the bot face handles 100 SOS updates. Prints:
wall time until every confirmation, DM and group post arrived and its ratio to the 30 msg/s floor,
the 429s provoked, reporters' confirmation p50/p99 and when the last group chat was told.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _village import (
    ThreadedEmulator,
    Village,
    bench_database,
    build_village,
    database_label,
    percentile,
    raise_sos,
    start_yihu,
    stop,
    wait_delivered,
    wait_serving,
    wait_workers,
    yihu_env,
)
from sqlalchemy import func
from sqlmodel import Session, select

from groups.db import dispose_engines, get_engine
from groups.model import Incident, Notification
from workers.embedded_redis import EmbeddedRedis

FLOOR_RATE = 30.0


def measure(village: Village, emu: ThreadedEmulator, started: float, start_call: int, timeout: float) -> dict[str, Any]:
    """Wait for every owed message, then sum up (times relative to ``started``, the SOS moment)."""
    owed: dict[int, int] = {}
    for g in range(village.groups):
        for chat, n in village.expected(g).items():
            owed[chat] = owed.get(chat, 0) + n
    got = wait_delivered(emu, owed, timeout, start_call)
    missing = sum(max(0, n - got.count.get(chat, 0)) for chat, n in owed.items())
    extra = sum(max(0, got.count.get(chat, 0) - n) for chat, n in owed.items())
    def told(chats: list[int]) -> list[float]:
        return [got.first[chat] - started for chat in chats if chat in got.first]

    confirmations = told([village.reporter(g) for g in range(village.groups)])
    posts = told([village.chats[f"g{g}"] for g in range(village.groups)])
    heads = told([village.users[f"g{g}m0"] for g in range(village.groups)])
    messages = sum(owed.values())
    wall = got.last - started
    with Session(get_engine(village.database_url)) as session:
        incidents = session.exec(select(func.count()).select_from(Incident)).one()
        last_incident = session.exec(select(func.max(Incident.created_at))).one()
        duplicates = session.exec(select(func.sum(Notification.duplicates))).one() or 0
        rows = session.exec(select(Notification).where(Notification.purpose == "confirmation")).all()
    # Where a confirmation's time goes: the SOS until the bot wrote it, queued until a worker claimed
    # it, claimed until sent.
    written = [r.created_at.timestamp() - started for r in rows]
    queued = [(r.claimed_at - r.created_at).total_seconds() for r in rows if r.claimed_at]
    sending = [(r.sent_at - r.claimed_at).total_seconds() for r in rows if r.sent_at and r.claimed_at]
    handled = last_incident.timestamp() - started if last_incident is not None else float("nan")
    return {
        "messages": messages,
        "sent": got.sends,
        "missing": missing,
        "extra": extra,
        "wall": wall,
        "floor": messages / FLOOR_RATE,
        "ratio": wall / (messages / FLOOR_RATE),
        "too_many": got.too_many,
        "errors": got.errors,
        "conf_p50": statistics.median(confirmations) if confirmations else float("nan"),
        "conf_p99": percentile(confirmations, 0.99),
        # The 99th confirmation cannot leave before 99 messages went out at 30 msg/s.
        "conf_floor": math.ceil(0.99 * len(confirmations)) / FLOOR_RATE if confirmations else float("nan"),
        "post_last": max(posts) if posts else float("nan"),
        "post_p50": statistics.median(posts) if posts else float("nan"),
        "head_last": max(heads) if heads else float("nan"),
        "incidents": incidents,
        "bot_handled": handled,
        "duplicates": duplicates,
        "conf_written": (statistics.median(written), percentile(written, 0.99)) if written else (0, 0),
        "conf_queued": (statistics.median(queued), percentile(queued, 0.99)) if queued else (0, 0),
        "conf_sending": (statistics.median(sending), percentile(sending, 0.99)) if sending else (0, 0),
    }


def run_once(
    groups: int, workers: int, members: int, timeout: float, database: str | None, framework: str
) -> dict[str, Any]:
    emu = ThreadedEmulator()
    try:
        with tempfile.TemporaryDirectory(prefix="yihu-load-") as name, contextlib.ExitStack() as stack:
            directory = Path(name)
            database_url = stack.enter_context(bench_database(database))
            village = build_village(emu, directory, groups, members, database_url)
            with EmbeddedRedis(directory / "redis", persist=False) as rds:
                env = yihu_env(emu, directory, village.database_url, rds.url, workers=workers, framework=framework)
                generation = emu.poll_generation()
                launched = time.monotonic()
                process = start_yihu(["run"], env, directory / "yihu.log")
                try:
                    wait_serving(emu, generation)
                    wait_workers(rds.url, workers)
                    ready = time.monotonic() - launched
                    time.sleep(1.0)  # let the first long poll settle
                    start_call = len(emu.calls())
                    started = raise_sos(emu, village, range(groups))
                    result = measure(village, emu, started, start_call, timeout)
                    result["ready"] = ready
                finally:
                    stop(process)
                tail = (directory / "yihu.log").read_text(errors="replace").splitlines()
                if os.environ.get("BENCH_KEEP_LOG"):  # a copy of the whole log, for reading a run afterwards
                    Path(os.environ["BENCH_KEEP_LOG"]).write_text("\n".join(tail) + "\n")
                    print(f"log kept in {os.environ['BENCH_KEEP_LOG']}; SOS raised at epoch {started:.3f}")
                if os.environ.get("BENCH_SHOW_LOG"):
                    print("\n".join(tail[-60:]))
                result["log_errors"] = [line for line in tail if " ERROR " in line or "Traceback" in line][:5]
            dispose_engines()
            return result
    finally:
        emu.stop()


def report(groups: int, members: int, workers: int, setup: str, r: dict[str, Any]) -> str:
    lines = [
        f"### {groups} groups x {members} members, {groups} SOS at once, `yihu run` with {workers} workers, "
        f"{setup}",
        f"- messages owed: {r['messages']} (confirmations + DMs + group posts); sent {r['sent']}, "
        f"missing {r['missing']}, extra {r['extra']}; incidents {r['incidents']}",
        f"- wall time until all arrived: {r['wall']:.1f} s; floor {r['floor']:.1f} s at 30 msg/s; "
        f"ratio {r['ratio']:.2f}x (target <= 1.1x: {ok(r['ratio'] <= 1.1)})",
        f"- 429s provoked: {r['too_many']} (target 0: {ok(r['too_many'] == 0)}); "
        f"other API errors {r['errors'] - r['too_many']}",
        f"- reporters' confirmation: p50 {r['conf_p50']:.2f} s, p99 {r['conf_p99']:.2f} s "
        f"(floor {r['conf_floor']:.1f} s; target p99 <= floor + 0.5 s: "
        f"{ok(r['conf_p99'] <= r['conf_floor'] + 0.5)}); of which p50/p99: SOS -> written by the bot "
        f"{r['conf_written'][0]:.2f}/{r['conf_written'][1]:.2f} s, queued {r['conf_queued'][0]:.2f}/"
        f"{r['conf_queued'][1]:.2f} s, claimed -> sent {r['conf_sending'][0]:.2f}/{r['conf_sending'][1]:.2f} s",
        f"- group chats told: p50 {r['post_p50']:.2f} s, last {r['post_last']:.2f} s "
        f"(target <= 10 s: {ok(r['post_last'] <= 10.0)}); last head told {r['head_last']:.2f} s",
        f"- the bot face had written the last incident {r['bot_handled']:.2f} s after the SOS; "
        f"start to ready (serving + workers registered) {r['ready']:.1f} s; duplicates counted {r['duplicates']}",
    ]
    if r["log_errors"]:
        lines.append(f"- errors in the log: {r['log_errors']}")
    return "\n".join(lines)


def ok(good: bool) -> str:
    return "ok" if good else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--framework", nargs="+", default=["ptb"], choices=["ptb", "aiogram"],
                        help="the bot face(s) to measure (default ptb, the product's default)")
    parser.add_argument(
        "--database", nargs="+", default=["sqlite"], metavar="URL",
        help="sqlite (a file in a temp dir, the default) and/or a PostgreSQL URL (postgresql://user@host:port/db): "
        "a scratch database is created on that server and dropped afterwards",
    )
    args = parser.parse_args()
    for database in args.database:
        for framework in args.framework:
            for workers in args.workers:
                result = run_once(args.groups, workers, args.members, args.timeout, database, framework)
                setup = f"{framework} face, {database_label(database)}"
                print(report(args.groups, args.members, workers, setup, result), flush=True)
                print(flush=True)


if __name__ == "__main__":
    main()
