"""A simulated village around a running yihu: the Bot API emulator, Redis, the database, RQ worker
processes and a real Telegram face. The tests, the benchmarks and ``yihu demo`` act as villagers
through it and read what each chat received.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import socket
import subprocess
from pathlib import Path
from typing import Any, Self

from sqlmodel import Session, col, select

from bot.bootstrap import start_worker_processes
from bot.runtime import serve_bot
from bot.sandbox.emulator import EmulatorClient
from bot.sandbox.emulator.server import RunningEmulator, start_emulator
from config.settings import Settings
from groups.db import get_engine, session_scope, upgrade
from groups.model import Household, HouseholdGroup, Member
from groups.roster import import_roster, parse_roster
from workers.process import stop_worker_processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def village_yaml(
    groups: int, households: int = 10, *, head_ack_s: int = 120, worker_ack_s: int = 300, women_fed: bool = False
) -> str:
    """A generated roster: one grid ``v1`` (grid worker w1, police p1, optionally women's federation f1),
    ``groups`` groups ``g0``… of ``households`` one-person households ``g<G>m<H>``, heads ``g<G>m0``."""
    lines = [
        "grids:", "  - code: v1", "    name: 生成网格", "    workers: [w1]", "    police: [p1]",
        *(["    women_fed: [f1]"] if women_fed else []),
        f"    escalation: {{head_ack_s: {head_ack_s}, worker_ack_s: {worker_ack_s}}}", "    groups:",
    ]
    for g in range(groups):
        lines += [f"      - code: g{g}", f"        name: 第{g}联防组", f"        head: g{g}m0", "        households:"]
        for h in range(households):
            member = f"              - {{key: g{g}m{h}, name: 村民{g}-{h}}}"
            lines += [f"          - label: {h}号户", "            members:", member]
    lines += ["staff:", "  - {key: w1, name: 王网格, role: grid_worker}", "  - {key: p1, name: 赵警官, role: police}"]
    if women_fed:
        lines.append("  - {key: f1, name: 刘执委, role: women_fed}")
    return "\n".join(lines) + "\n"


def _natural(key: str) -> list[Any]:
    """g1m2 before g1m10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


class Village:
    """One running yihu against the emulator; ``async with Village(...) as v``."""

    def __init__(
        self,
        data_dir: Path,
        redis_url: str,
        roster: str,
        *,
        framework: str = "ptb",
        workers: int = 1,
        database_url: str | None = None,
        emulator_config: dict[str, Any] | None = None,
        emulator_port: int = 0,
        webhook: bool = False,
        first_user_id: int = 7_000_001,
        language_code: str = "zh",
        **settings: Any,
    ) -> None:
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.roster_text = roster
        self.framework = framework
        self.n_workers = workers
        self.database_url = database_url or f"sqlite:///{(data_dir / 'yihu.db').resolve()}"
        self.emulator_config = emulator_config or {}
        self.emulator_port = emulator_port
        self.first_user_id = first_user_id
        self.language_code = language_code
        self.extra_settings = settings
        # Webhook mode: the face listens on a free local port, the emulator posts there with the secret.
        self.webhook = webhook
        self.webhook_port = 0
        self.emu: RunningEmulator
        self.client: EmulatorClient
        self.settings: Settings
        self.user_ids: dict[str, int] = {}
        self.group_chats: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._bot: asyncio.Task[None] | None = None
        self._workers: list[subprocess.Popen[bytes]] = []

    # -- lifecycle -----------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.emu = await start_emulator(port=self.emulator_port, **self.emulator_config)
        self.client = EmulatorClient(self.emu.url)
        if self.webhook:
            self.webhook_port = _free_port()
            self.extra_settings = {
                "webhook_url": f"http://127.0.0.1:{self.webhook_port}/telegram/update",
                "webhook_secret": secrets.token_urlsafe(24),
                "webhook_listen": f"127.0.0.1:{self.webhook_port}",
                **self.extra_settings,
            }
        self.settings = Settings(
            bot_token=self.emu.token,
            telegram_api_url=self.emu.url,
            data_dir=self.data_dir,
            database_url=self.database_url,
            redis_url=self.redis_url,
            framework=self.framework,  # type: ignore[arg-type]
            sweep_interval_s=0.5,
            sweep_pending_after_s=2.0,
            **self.extra_settings,
        )
        upgrade(self.database_url)
        with session_scope(self.engine) as session:
            import_roster(session, parse_roster(self.roster_text))
        for index, key in enumerate(sorted(self.member_keys(), key=_natural)):
            self.user_ids[key] = self.first_user_id + index
            await self.client.create_user(self.name_of(key), id=self.user_ids[key], language_code=self.language_code)
        if self.n_workers:
            self.start_workers()
        self._bot = asyncio.create_task(serve_bot(self.settings, self.redis_url, self._stop))
        await self.until_serving()
        return self

    async def until_serving(self, timeout: float = 60.0) -> None:
        """Wait until the bot asks for updates (polling) or registered its webhook: starting the Telegram
        stack takes seconds, longer while worker processes start beside it on two cores."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if self._bot is not None and self._bot.done():
                self._bot.result()  # raises what stopped it
                raise RuntimeError("the bot stopped before serving")
            # A getUpdates is logged when it returns (a long poll: seconds later); the allowed_updates it
            # carries are remembered as soon as it arrives.
            state = await self.client.state()
            if any(bot.get("allowed_updates") for bot in state["bots"]):
                return
            for method in ("getUpdates", "setWebhook"):
                if await self.client.calls(method=method):
                    return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the bot did not start serving within {timeout:.0f} s")

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_bot()
        await self.stop_workers()
        await self.client.close()
        await self.emu.stop()

    async def stop_bot(self) -> None:
        self._stop.set()
        if self._bot is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._bot, timeout=20)
            self._bot = None

    def start_workers(self, n: int | None = None) -> None:
        self._workers += start_worker_processes(self.settings, n or self.n_workers, redis_url=self.redis_url)

    async def stop_workers(self, kill: bool = False) -> None:
        """Stop the worker processes (SIGTERM: each finishes its job; ``kill``: SIGKILL, as a crash would).

        In a thread: a worker finishing its job may still be talking to the emulator on this event loop.
        """
        workers, self._workers = self._workers, []
        if kill:
            for process in workers:
                process.kill()
            await asyncio.to_thread(lambda: [process.wait() for process in workers])
        else:
            await asyncio.to_thread(stop_worker_processes, workers)

    # -- the roster ----------------------------------------------------------------------------------
    @property
    def engine(self) -> Any:
        return get_engine(self.database_url)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def member_keys(self) -> list[str]:
        with self.session() as session:
            return list(session.exec(select(Member.key).where(Member.active)).all())

    def member(self, key: str) -> Member:
        with self.session() as session:
            member = session.exec(select(Member).where(Member.key == key)).one()
            return member

    def name_of(self, key: str) -> str:
        return self.member(key).name

    def group(self, code: str) -> HouseholdGroup:
        with self.session() as session:
            return session.exec(select(HouseholdGroup).where(HouseholdGroup.code == code)).one()

    def group_member_keys(self, code: str) -> list[str]:
        """Keys of the active members of the households of group ``code``."""
        with self.session() as session:
            keys = session.exec(
                select(Member.key)
                .join(Household, col(Household.id) == col(Member.household_id))
                .join(HouseholdGroup, col(HouseholdGroup.id) == col(Household.group_id))
                .where(HouseholdGroup.code == code, Member.active)
            ).all()
        return sorted(keys, key=_natural)

    # -- acting as people ----------------------------------------------------------------------------
    async def say(self, key: str, text: str, chat_id: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.client.send_text(self.user_ids[key], text, chat_id=chat_id)
        return result

    async def messages(self, key_or_chat: str | int) -> list[dict[str, Any]]:
        chat_id = self.user_ids[key_or_chat] if isinstance(key_or_chat, str) else key_or_chat
        result: list[dict[str, Any]] = await self.client.messages(chat_id)
        return result

    async def wait(self, key_or_chat: str | int, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        chat_id = self.user_ids[key_or_chat] if isinstance(key_or_chat, str) else key_or_chat
        result: list[dict[str, Any]] = await self.client.wait_for_messages(chat_id, count, timeout)
        return result

    async def wait_for_text(self, key_or_chat: str | int, needle: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first message of that chat whose text contains ``needle``, waiting for it to arrive."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for message in await self.messages(key_or_chat):
                if needle in (message.get("text") or ""):
                    return message
            if asyncio.get_running_loop().time() > deadline:
                texts = [m.get("text") for m in await self.messages(key_or_chat)]
                raise TimeoutError(f"no message with {needle!r} in {key_or_chat} after {timeout:.0f} s: {texts!r}")
            await asyncio.sleep(0.05)

    async def link(self, *keys: str) -> None:
        """Each member opens their invite link (``/start <token>``) and gets the greeting."""
        before = {key: len(await self.messages(key)) for key in keys}
        for key in keys:
            await self.say(key, f"/start {self.member(key).invite_token}")
        for key in keys:
            await self.wait(key, before[key] + 1)

    async def link_all(self) -> None:
        await self.link(*sorted(self.user_ids))

    async def bind_group_chat(self, code: str, by: str | None = None) -> int:
        """Create the group's chat with its linked members, add the bot, and bind it (by the head)."""
        group = self.group(code)
        with self.session() as session:
            head = session.get(Member, group.head_id)
            assert head is not None
        members = {self.user_ids[key] for key in self.group_member_keys(code)} | {self.user_ids[head.key]}
        chat = await self.client.create_group(group.name, sorted(members))
        chat_id = int(chat["id"])
        await self.client.add_bot_to_group(chat_id, by_user_id=self.user_ids[by or head.key])
        await self.say(by or head.key, f"/bind {group.bind_code}", chat_id=chat_id)
        await self.wait(chat_id, 1)
        self.group_chats[code] = chat_id
        return chat_id

    async def press(
        self, key: str, chat_id: int, message: dict[str, Any], data: str, *, force: bool = False
    ) -> dict[str, Any]:
        """``key`` presses a button (``force``: data the message does not carry, as a forger would send)."""
        query_id = await self.client.press_button(
            self.user_ids[key], chat_id, int(message["message_id"]), data, force=force
        )
        for _ in range(500):
            answer: dict[str, Any] = await self.client.callback_answer(query_id)
            if answer.get("answered"):
                return answer
            await asyncio.sleep(0.02)
        raise TimeoutError(f"callback {query_id} was never answered")
