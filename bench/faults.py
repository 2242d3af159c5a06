"""Faults: 20 % of Bot API calls fail (500s and 429s) and every yihu process is SIGKILLed mid-flood.

Run: ``.venv/bin/python bench/faults.py [--groups 100] [--workers 2] [--framework ptb|aiogram]``. The
Bot API emulator in this process fails 10 % of send calls with 500 and 10 % with 429 (``retry_after``
1 s), on top of Telegram's limits; a private Redis and SQLite in a temp dir; `yihu bot` (the
python-telegram-bot face unless ``--framework aiogram``) and ``--workers`` ``python -m bot.worker``
processes. The first half of the groups' reporters send "6995" at once; while the bot is still writing
them and the workers are mid-fan-out, the bot and every worker are SIGKILLed; the second half send
"6995" while nothing runs; then everything is restarted. Counted from the emulator's
per-chat messages against what each SOS owes (the confirmation, 9 DMs, the group post) and against the
outbox: lost messages (target 0) and duplicates (target <= 0.1 %).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from _village import (
    ThreadedEmulator,
    Village,
    arrivals,
    build_village,
    raise_sos,
    start_yihu,
    stop,
    wait_serving,
    wait_workers,
    yihu_env,
)
from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.bootstrap import start_worker_processes
from config.settings import Settings
from groups.db import dispose_engines, get_engine
from groups.model import DeliveryStatus, Incident, Notification
from workers.embedded_redis import EmbeddedRedis
from workers.process import stop_worker_processes

FAULTS = {"p500": 0.10, "p429": 0.10 / 0.90, "retry_after": 1}  # 10 % + 10 % of all sends
NUMBER = re.compile(r"#(\d+)")


class Yihu:
    """`yihu bot` and the worker processes, startable and killable together."""

    def __init__(
        self, emu: ThreadedEmulator, directory: Path, village: Village, redis_url: str, workers: int, framework: str
    ) -> None:
        self.emu = emu
        self.directory = directory
        self.redis_url = redis_url
        self.n = workers
        self.env = yihu_env(emu, directory, village.database_url, redis_url, framework=framework)
        self.settings = Settings(
            bot_token=emu.token, telegram_api_url=emu.url, database_url=village.database_url,
            data_dir=directory / "data", redis_url=redis_url,
        )
        self.bot: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def start(self) -> float:
        generation = self.emu.poll_generation()
        started = time.monotonic()
        self.bot = start_yihu(["bot"], self.env, self.directory / "yihu.log")
        self.workers = start_worker_processes(self.settings, self.n, redis_url=self.redis_url,
                                              extra_args=["--log-level", "ERROR"])
        wait_serving(self.emu, generation)
        wait_workers(self.redis_url, self.n)
        return time.monotonic() - started

    def kill(self) -> None:
        for process in [p for p in (self.bot, *self.workers) if p is not None]:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        # A SIGKILLed worker leaves its registration behind until its TTL: forget them so that
        # wait_workers counts only the new ones.
        import redis  # noqa: PLC0415
        from rq import Worker  # noqa: PLC0415

        connection = redis.Redis.from_url(self.redis_url)
        for worker in Worker.all(connection=connection):
            worker.register_death()  # type: ignore[no-untyped-call]
        connection.close()

    def stop(self) -> None:
        if self.bot is not None:
            stop(self.bot)
        stop_worker_processes(self.workers)


def incidents_written(database_url: str) -> int:
    with Session(get_engine(database_url)) as session:
        return int(session.exec(select(func.count()).select_from(Incident)).one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--framework", default="ptb", choices=["ptb", "aiogram"], help="the bot face (default ptb)")
    args = parser.parse_args()
    half = args.groups // 2
    emu = ThreadedEmulator(faults=FAULTS, seed=6995)
    try:
        with tempfile.TemporaryDirectory(prefix="yihu-faults-") as name, \
                EmbeddedRedis(Path(name) / "redis", persist=False) as rds:
            directory = Path(name)
            village = build_village(emu, directory, args.groups)
            yihu = Yihu(emu, directory, village, rds.url, args.workers, args.framework)
            yihu.start()
            time.sleep(1.0)
            start_call = len(emu.calls())
            began = raise_sos(emu, village, range(half))
            # Kill once the bot has written some of the first half and the fan-out is under way.
            deadline = time.monotonic() + 30
            while incidents_written(village.database_url) < half // 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            yihu.kill()
            killed_at = time.time() - began
            written_at_kill = incidents_written(village.database_url)
            with Session(get_engine(village.database_url)) as session:
                in_flight = session.exec(
                    select(func.count()).where(col(Notification.status) == DeliveryStatus.sending)
                ).one()
            sent_at_kill = arrivals(emu, start_call).sends
            raise_sos(emu, village, range(half, args.groups))  # while nothing runs
            restart = yihu.start()
            owed_total = args.groups * (village.members + 1)
            deadline = time.monotonic() + args.timeout
            per_chat: dict[int, list[int]] = {}
            while time.monotonic() < deadline:
                per_chat = delivered_numbers(emu, village)
                if sum(len(set(v)) for v in per_chat.values()) >= owed_total and not owed(village.database_url):
                    break
                time.sleep(0.5)
            wall = time.time() - began
            time.sleep(2.0)  # anything still in flight lands before counting
            per_chat = delivered_numbers(emu, village)
            yihu.stop()
            report(args, village, emu, start_call, per_chat, wall, killed_at, written_at_kill, in_flight,
                   sent_at_kill, restart)
            dispose_engines()
    finally:
        emu.stop()


def owed(database_url: str) -> int:
    with Session(get_engine(database_url)) as session:
        waiting = col(Notification.status).in_([DeliveryStatus.pending, DeliveryStatus.sending])
        return int(session.exec(select(func.count()).where(waiting)).one())


def delivered_numbers(emu: ThreadedEmulator, village: Village) -> dict[int, list[int]]:
    """Chat id -> the incident numbers of every message the bot sent there (one entry per message)."""
    chats = list(village.users.values()) + list(village.chats.values())

    def read() -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for chat in chats:
            for record in emu.emulator.chat_messages(chat):
                match = NUMBER.search(str(record.get("text") or ""))
                if match:
                    out.setdefault(chat, []).append(int(match.group(1)))
        return out

    return emu.do(read)


def report(
    args: argparse.Namespace, village: Village, emu: ThreadedEmulator, start_call: int,
    per_chat: dict[int, list[int]], wall: float, killed_at: float, written_at_kill: int, in_flight: int,
    sent_at_kill: int, restart: float,
) -> None:
    engine = get_engine(village.database_url)
    with Session(engine) as session:
        incidents = session.exec(select(Incident)).all()
        rows = session.exec(select(Notification)).all()
    by_reporter = {i.reporter_id: i for i in incidents}
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    counted = sum(row.duplicates for row in rows)
    # What each SOS owed, by chat and incident number, from the outbox.
    owed_pairs = {(int(row.chat_id), int(row.incident_id)) for row in rows
                  if row.chat_id is not None and row.incident_id is not None and row.kind == "message"}
    got_pairs: dict[tuple[int, int], int] = {}
    for chat, numbers in per_chat.items():
        for number in numbers:
            got_pairs[(chat, number)] = got_pairs.get((chat, number), 0) + 1
    lost = [pair for pair in owed_pairs if pair not in got_pairs]
    duplicates = sum(n - 1 for n in got_pairs.values() if n > 1)
    expected = args.groups * (village.members + 1)
    calls = arrivals(emu, start_call)
    print(f"### faults: {args.groups} SOS, 20 % of sends failing (500 / 429), every process SIGKILLed, "
          f"{args.workers} workers, {args.framework} face")
    print(f"- SOS sent {args.groups} (half before the kill, half while nothing ran); incidents written "
          f"{len(incidents)} (reporters {len(by_reporter)}); SOS lost {args.groups - len(by_reporter)}")
    print(f"- killed {killed_at:.1f} s after the first SOS: {written_at_kill} incidents written, "
          f"{sent_at_kill} messages out, {in_flight} rows mid-send; restart to serving {restart:.1f} s")
    print(f"- messages owed {expected} (outbox rows {len(owed_pairs)}, statuses {statuses}); delivered "
          f"{len(got_pairs)} distinct; lost {len(lost)} (target 0: {'ok' if not lost else 'MISSED'})")
    rate = duplicates / max(1, expected)
    print(f"- duplicates {duplicates} = {rate:.2%} (target <= 0.1 %: {'ok' if rate <= 0.001 else 'MISSED'}); "
          f"counted by the outbox {counted}")
    print(f"- API errors answered {calls.errors} ({calls.too_many} x 429) of {calls.errors + calls.sends} send "
          f"calls; all delivered {wall:.1f} s after the first SOS")
    if lost:
        print(f"- lost (chat, #N): {sorted(lost)[:10]}")


if __name__ == "__main__":
    main()
