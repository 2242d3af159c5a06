"""What the benches share: a threaded Bot API emulator, a generated village, `yihu` processes, /proc.

Not a bench itself. Every address is loopback; every process a bench starts, it stops.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import select

from bot.sandbox.emulator.threaded import ThreadedEmulator
from bot.sandbox.village import village_yaml
from groups.db import get_engine, session_scope, upgrade
from groups.directory import linked_member
from groups.model import HouseholdGroup, Member, utcnow
from groups.onboarding import bind_group, link_member
from groups.roster import import_roster, parse_roster
from workers.embedded_redis import free_port

T = TypeVar("T")
SEND_METHODS = frozenset({"sendmessage", "editmessagetext", "copymessage", "sendlocation", "sendvoice"})
VENV_BIN = Path(sys.executable).parent


def roster_yaml(groups: int, members: int = 10) -> str:
    """``groups`` groups of ``members`` one-person households (head ``g<N>m0``) in one grid. The
    escalation ladder is set an hour out so no escalation DM mixes into the figures."""
    return village_yaml(groups, members, head_ack_s=3600, worker_ack_s=3600)


@dataclass
class Village:
    """A linked village: every member has a started Telegram user, every group a bound chat."""

    database_url: str
    users: dict[str, int] = field(default_factory=dict)  # member key -> Telegram user id
    chats: dict[str, int] = field(default_factory=dict)  # group code -> chat id
    groups: int = 0
    members: int = 10

    def reporter(self, g: int) -> int:
        return self.users[f"g{g}m1"]

    def expected(self, g: int) -> dict[int, int]:
        """Chat id -> messages one SOS by ``g<g>m1`` owes: the confirmation, 9 DMs and the group post."""
        owed = {self.users[f"g{g}m{h}"]: 1 for h in range(self.members)}
        owed[self.chats[f"g{g}"]] = 1
        return owed


def build_village(
    emu: ThreadedEmulator, directory: Path, groups: int, members: int = 10, database_url: str | None = None
) -> Village:
    """Roster imported, users created and started in the emulator (no update is left for the bot),
    members linked and group chats bound directly in the database (SQLite in ``directory`` unless
    ``database_url`` names an empty one)."""
    url = database_url or f"sqlite:///{directory / 'yihu.db'}"
    upgrade(url)
    village = Village(url, groups=groups, members=members)
    now = utcnow()
    with session_scope(get_engine(url)) as session:
        import_roster(session, parse_roster(roster_yaml(groups, members)))
        session.flush()
        for member in session.exec(select(Member).where(col_key_is_villager())).all():
            user_id = int(emu.do(emu.emulator.create_user, member.name, language_code="zh")["id"])
            village.users[member.key] = user_id
            link_member(session, user_id, member.invite_token, "zh", now)
        emu.do(lambda: emu.emulator.bot(emu.token).started.update(village.users.values()))
        for group in session.exec(select(HouseholdGroup)).all():
            members_of = [uid for key, uid in village.users.items() if key.startswith(f"{group.code}m")]
            chat = int(emu.do(emu.emulator.create_group, group.name, members_of)["id"])
            emu.do(emu.emulator.add_bot_to_group, chat)
            head = linked_member(session, village.users[f"{group.code}m0"])
            bind_group(session, head, chat, group.bind_code, now)
            village.chats[group.code] = chat
    return village


def col_key_is_villager() -> Any:
    """Members of households (the staff are left unlinked: the ladder is an hour out)."""
    from sqlmodel import col  # noqa: PLC0415

    return col(Member.household_id).is_not(None)


def raise_sos(emu: ThreadedEmulator, village: Village, groups: Sequence[int]) -> float:
    """Each group's reporter sends "6995" to the bot, all in one go; returns the wall time it started."""
    started = time.time()

    def send() -> None:
        for g in groups:
            emu.emulator.user_sends_text(village.reporter(g), "6995")

    emu.do(send)
    return started


def yihu_env(
    emu: ThreadedEmulator, directory: Path, database_url: str, redis_url: str | None, **extra: Any
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIHU_")}
    env.update({
        "YIHU_BOT_TOKEN": emu.token,
        "YIHU_TELEGRAM_API_URL": emu.url,
        "YIHU_DATA_DIR": str(directory / "data"),
        "YIHU_DATABASE_URL": database_url,
        "YIHU_FRAMEWORK": "ptb",  # the default face; ``framework="aiogram"`` in ``extra`` for the other
        "YIHU_WEB_LISTEN": f"127.0.0.1:{free_port()}",  # `yihu run`'s web listener, off the default port
    })
    if redis_url:
        env["YIHU_REDIS_URL"] = redis_url
    env.update({f"YIHU_{k.upper()}": str(v) for k, v in extra.items()})
    # Experiments: BENCH_YIHU_INGEST_LANES=1 runs yihu with YIHU_INGEST_LANES=1 (the bench's own YIHU_* are dropped).
    env.update({k.removeprefix("BENCH_"): v for k, v in os.environ.items() if k.startswith("BENCH_YIHU_")})
    return env


def start_yihu(
    command: Sequence[str], env: dict[str, str], log: Path, program: Sequence[str] | None = None
) -> subprocess.Popen[bytes]:
    """``yihu <command>`` (or ``program <command>``) as a child in its own process group, logging to ``log``."""
    out = log.open("ab")
    return subprocess.Popen(
        [*(program or [str(VENV_BIN / "yihu")]), *command], env=env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL the whole group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_serving(emu: ThreadedEmulator, generation: int, timeout: float = 60.0) -> float:
    """Seconds until the bot starts a getUpdates beyond ``generation``."""
    started = time.monotonic()
    while emu.poll_generation() <= generation:
        if time.monotonic() - started > timeout:
            raise TimeoutError("the bot did not start serving")
        time.sleep(0.02)
    return time.monotonic() - started


def wait_workers(redis_url: str, n: int, timeout: float = 60.0) -> None:
    """Until ``n`` RQ workers are registered in Redis."""
    import redis  # noqa: PLC0415
    from rq import Worker  # noqa: PLC0415

    connection = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while Worker.count(connection=connection) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} workers registered")
        time.sleep(0.05)
    connection.close()


@dataclass
class Arrivals:
    """Successful sends per chat and the 429s, read from the emulator's call log."""

    first: dict[int, float] = field(default_factory=dict)  # chat id -> time of its first message
    count: dict[int, int] = field(default_factory=dict)
    sends: int = 0
    last: float = 0.0
    too_many: int = 0
    errors: int = 0


def arrivals(emu: ThreadedEmulator, start: int = 0) -> Arrivals:
    found = Arrivals()
    for at, method, ok, code, chat in emu.calls(start):
        if method not in SEND_METHODS:
            continue
        if not ok:
            found.errors += 1
            found.too_many += code == 429
            continue
        found.sends += 1
        found.last = max(found.last, at)
        if chat is not None:
            found.first.setdefault(chat, at)
            found.count[chat] = found.count.get(chat, 0) + 1
    return found


def wait_delivered(
    emu: ThreadedEmulator, owed: dict[int, int], timeout: float, start: int = 0
) -> Arrivals:
    """Until every chat in ``owed`` got at least its count of messages (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while True:
        got = arrivals(emu, start)
        if all(got.count.get(chat, 0) >= n for chat, n in owed.items()) or time.monotonic() > deadline:
            return got
        time.sleep(0.25)


# -- /proc ---------------------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """Every descendant of ``pid``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else 0.0


def describe(pid: int) -> str:
    """A short name for a process of `yihu run`: bot, worker, redis."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in cmd if part)
    if "redis-server" in text:
        return "redis-server"
    if "-m bot.worker" in text or "-m workers" in text:
        return "worker"
    if "yihu" in text:
        return "yihu run (bot face)"
    return text[:40]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]  # nearest rank


@contextmanager
def scratch_postgres(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server at ``server_url`` (``postgresql://user@host:port``,
    any database named in it is ignored), dropped afterwards; yields its URL."""
    import sqlalchemy  # noqa: PLC0415

    name = f"yihu_bench_{os.getpid()}"
    server = sqlalchemy.engine.make_url(server_url)
    admin = sqlalchemy.create_engine(
        server.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        from groups.db import dispose_engines  # noqa: PLC0415

        dispose_engines()
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def bench_database(url: str | None) -> Iterator[str | None]:
    """What ``--database URL`` names: None (SQLite in the bench's temp dir) for none or ``sqlite``; for a
    PostgreSQL URL, a scratch database on that server (see :func:`scratch_postgres`)."""
    if not url or url == "sqlite":
        yield None
        return
    if not url.startswith("postgresql"):
        raise SystemExit(f"--database: sqlite or a postgresql:// URL, not {url!r}")
    with scratch_postgres(url) as scratch:
        yield scratch


def database_label(url: str | None) -> str:
    return "PostgreSQL" if url and url.startswith("postgresql") else "SQLite"
