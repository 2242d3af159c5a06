"""``yihu demo``: the whole system on embedded defaults, against the built-in Telegram emulator.

A sample village (one grid, two groups of ten households, head, grid worker, police) is imported,
its people are simulated in the emulator, link themselves and bind their group chats; one alert is
played through; then everything keeps serving until Ctrl-C, and the operator can act as any villager
through the emulator's control API.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
from typing import Any

from sqlmodel import col, select

from bot.emulator import EmulatorClient
from bot.emulator.server import RunningEmulator, start_emulator
from bot.runtime import redis_for, serve_bot
from config.settings import Settings
from groups.db import dispose_engines, get_engine, session_scope, upgrade
from groups.model import Household, HouseholdGroup, Member
from groups.roster import import_roster, load_sample_village, parse_roster
from groups.views import list_incidents

FIRST_USER_ID = 8_000_001
DEMO_TOKEN = "700000001:yihu-demo-token"


def say(line: str = "") -> None:
    print(line, flush=True)


class Demo:
    """The simulated village around a running yihu."""

    def __init__(self, settings: Settings, emulator: RunningEmulator) -> None:
        self.settings = settings
        self.emulator = emulator
        self.client = EmulatorClient(emulator.url)
        self.user_ids: dict[str, int] = {}
        self.members: dict[str, Member] = {}
        self.groups: dict[str, HouseholdGroup] = {}
        self.group_members: dict[str, list[str]] = {}
        self.chats: dict[str, int] = {}

    def load(self) -> None:
        engine = get_engine(self.settings.resolved_database_url)
        with session_scope(engine) as session:
            members = session.exec(select(Member).where(Member.active).order_by(Member.key)).all()
            self.members = {m.key: m for m in members}
            groups = session.exec(select(HouseholdGroup).where(HouseholdGroup.active)).all()
            self.groups = {g.code: g for g in groups}
            rows = session.exec(
                select(HouseholdGroup.code, Member.key)
                .join(Household, col(Household.group_id) == col(HouseholdGroup.id))
                .join(Member, col(Member.household_id) == col(Household.id))
                .where(Member.active)
            ).all()
            for code, key in rows:
                self.group_members.setdefault(code, []).append(key)

    async def people_join(self) -> None:
        """Every member opens their invite link; the heads bind their group chats."""
        for index, (key, member) in enumerate(sorted(self.members.items())):
            user_id = FIRST_USER_ID + index
            self.user_ids[key] = user_id
            await self.client.create_user(member.name, id=user_id, language_code=self.settings.language)
            await self.client.send_text(user_id, f"/start {member.invite_token}")
        for key in self.members:
            await self.client.wait_for_messages(self.user_ids[key], 1, timeout=30)
        say(f"  ✓ {len(self.members)} people opened their invite links and were greeted by name")
        for code, group in sorted(self.groups.items()):
            head = next(m for m in self.members.values() if m.id == group.head_id)
            member_ids = {self.user_ids[k] for k in self.group_members.get(code, [])}
            chat = await self.client.create_group(group.name, sorted(member_ids | {self.user_ids[head.key]}))
            chat_id = int(chat["id"])
            await self.client.add_bot_to_group(chat_id, by_user_id=self.user_ids[head.key])
            await self.client.send_text(self.user_ids[head.key], f"/bind {group.bind_code}", chat_id=chat_id)
            await self.client.wait_for_messages(chat_id, 1, timeout=30)
            self.chats[code] = chat_id
            say(f"  ✓ {head.name} bound the group chat of {group.name} ({chat_id})")

    async def walkthrough(self) -> None:
        reporter, head = self.key_in("g1", 5), self.key_in("g1", 1)
        neighbour = self.key_in("g1", 2)
        say()
        say(f"▶ {self.members[reporter].name} ({reporter}) sends 6995 …")
        await self.client.send_text(self.user_ids[reporter], "6995")
        confirmation = (await self.client.wait_for_messages(self.user_ids[reporter], 2, timeout=30))[-1]
        say(f"  ← {reporter} is told: {_plain(confirmation['text'])}")
        alert = (await self.client.wait_for_messages(self.user_ids[neighbour], 2, timeout=30))[-1]
        say(f"  ← every neighbour gets: {_plain(alert['text'])}")
        post = (await self.client.wait_for_messages(self.chats["g1"], 2, timeout=30))[-1]
        say("  ← the group chat gets one post with the same buttons")
        await self.press(neighbour, self.user_ids[neighbour], alert, 0)
        say(f"▶ {self.members[neighbour].name} presses 我来了 I'm coming")
        head_alert = (await self.client.wait_for_messages(self.user_ids[head], 2, timeout=30))[-1]
        await self.press(head, self.user_ids[head], head_alert, 0)
        say(f"▶ {self.members[head].name} (the head) presses 我来了 too, which takes ownership")
        await asyncio.sleep(1.5)
        edited = await self.client.messages(self.chats["g1"])
        post = next(m for m in edited if m["message_id"] == post["message_id"])
        say(f"  ← the group post now reads: {_plain(post['text'])}")
        await asyncio.sleep(1.0)
        with session_scope(get_engine(self.settings.resolved_database_url)) as session:
            incident = list_incidents(session)[-1]
        sent = sum(1 for n in incident["notifications"] if n["status"] == "sent")
        say(f"  ✓ incident #{incident['id']}: status {incident['status']}, {len(incident['responses'])} responses, "
            f"{len(incident['timeline'])} timeline events, {sent} messages delivered")

    def key_in(self, group: str, n: int) -> str:
        return f"{group}m{n}"

    async def press(self, key: str, chat_id: int, message: dict[str, Any], row: int) -> None:
        data = message["reply_markup"]["inline_keyboard"][row][0]["callback_data"]
        await self.client.press_button(self.user_ids[key], chat_id, int(message["message_id"]), data)

    def help_text(self) -> str:
        url = self.emulator.url
        reporter = self.key_in("g2", 3)
        uid = self.user_ids.get(reporter, FIRST_USER_ID)
        return "\n".join([
            "",
            "yihu is serving. Act as a villager through the emulator's control API, e.g.:",
            f"  curl -s {url}/_emu/send -H 'content-type: application/json' "
            f"-d '{{\"user_id\": {uid}, \"text\": \"/sos fire 厨房着火了\"}}'",
            f"  curl -s {url}/_emu/chats/{uid}/messages        # what {reporter} received",
            f"  curl -s {url}/_emu/chats/{self.chats.get('g2', 0)}/messages   # the group chat of g2",
            "  yihu incidents --format json                  # with YIHU_DATA_DIR="
            f"{self.settings.data_dir} (the demo's data)",
            "People (key → Telegram user id): "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.user_ids.items())),
            "Press Ctrl-C to stop.",
        ])


def _plain(text: str) -> str:
    return " ".join(text.replace("<b>", "").replace("</b>", "").split())[:160]


def demo_settings(base: Settings, emulator: RunningEmulator) -> Settings:
    data_dir = base.data_dir / "demo"
    return base.model_copy(update={
        "bot_token": emulator.token,
        "bot_username": None,
        "telegram_api_url": emulator.url,
        "data_dir": data_dir,
        "database_url": f"sqlite:///{(data_dir / 'yihu.db').resolve()}",
        "webhook_url": None,
        "framework": base.framework,
    })


async def _demo(base: Settings, port: int, walkthrough: bool, exit_after: bool, stop: asyncio.Event) -> None:
    from workers.process import start_worker_processes, stop_worker_processes  # noqa: PLC0415

    emulator = await start_emulator(port=port, default_token=DEMO_TOKEN, default_username="yihu_demo_bot")
    settings = demo_settings(base, emulator)
    shutil.rmtree(settings.data_dir, ignore_errors=True)  # every demo starts from a fresh village
    settings.data_dir.mkdir(parents=True)
    say(f"yihu demo — Telegram emulator on {emulator.url}, data in {settings.data_dir}")
    upgrade(settings.resolved_database_url)
    with session_scope(get_engine(settings.resolved_database_url)) as session:
        summary = import_roster(session, parse_roster(load_sample_village()))
    say(f"  ✓ sample village imported ({summary.members.created} people)")
    workers: list[subprocess.Popen[bytes]] = []
    with redis_for(settings) as redis_url:
        say("  ✓ Redis is up; starting delivery workers and the bot")
        workers = start_worker_processes(settings, settings.workers, redis_url=redis_url)
        bot = asyncio.create_task(serve_bot(settings, redis_url, stop))
        demo = Demo(settings, emulator)
        try:
            demo.load()
            await demo.people_join()
            if walkthrough:
                await demo.walkthrough()
            say(demo.help_text())
            if exit_after:
                stop.set()
            await stop.wait()
        finally:
            say("stopping …")
            stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(bot, timeout=20)
            stop_worker_processes(workers)
            await demo.client.close()
            await emulator.stop()
            dispose_engines()
    say("bye")


def run_demo(settings: Settings, port: int = 8089, walkthrough: bool = True, exit_after: bool = False) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await _demo(settings, port, walkthrough, exit_after, stop)

    asyncio.run(main())

