"""``yihu demo``: the whole system on embedded defaults, against the built-in Telegram emulator.

A sample village (one grid, two groups of ten households, head, grid worker, police) is imported,
its people are simulated in the emulator (:class:`bot.sandbox.village.Village`), open their invite links
and bind their group chats; one alert is played through; then everything keeps serving until Ctrl-C,
and the operator can act as any villager through the emulator's control API.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from typing import Any

from sqlmodel import select

from bot.render.texts import plain
from bot.runtime import FACE_NAMES, redis_for
from bot.sandbox.village import Village
from config.settings import Settings
from groups.db import dispose_engines
from groups.model import HouseholdGroup
from groups.roster import load_sample_village
from groups.views import list_incidents

DEMO_TOKEN = "700000001:yihu-demo-token"
FIRST_USER_ID = 8_000_001


def say(line: str = "") -> None:
    print(line, flush=True)


def line(settings: Settings, text_key: str, /, **params: Any) -> str:
    """One line of the walkthrough in the operator's language (``YIHU_LANGUAGE``)."""
    return plain(settings.language, f"demo.{text_key}", **params)


def _plain(text: str) -> str:
    return " ".join(text.replace("<b>", "").replace("</b>", "").split())[:160]


def _first_button(message: dict[str, Any]) -> str:
    return str(message["reply_markup"]["inline_keyboard"][0][0]["callback_data"])


async def people_join(village: Village, settings: Settings) -> None:
    """Every member opens their invite link; each head binds their group's chat."""
    await village.link(*village.user_ids)
    say(line(settings, "joined", count=len(village.user_ids)))
    with village.session() as session:
        groups = session.exec(select(HouseholdGroup).where(HouseholdGroup.active)).all()
    for group in sorted(groups, key=lambda g: g.code):
        chat_id = await village.bind_group_chat(group.code)
        say(line(settings, "bound", group=group.name, chat=chat_id))


async def walkthrough(village: Village, settings: Settings) -> None:
    """6995 → confirmation → nine DMs and a group post → responses → the live tally."""
    reporter, head, neighbour = "g1m5", "g1m1", "g1m2"
    name = village.name_of
    say()
    say(line(settings, "sends", name=name(reporter), key=reporter))
    await village.say(reporter, "6995")
    confirmation = (await village.wait(reporter, 2, timeout=30))[-1]
    say(line(settings, "told", key=reporter, text=_plain(confirmation["text"])))
    alert = (await village.wait(neighbour, 2, timeout=30))[-1]
    say(line(settings, "neighbours", text=_plain(alert["text"])))
    post = (await village.wait(village.group_chats["g1"], 2, timeout=30))[-1]
    say(line(settings, "group_post"))
    await village.press(neighbour, village.user_ids[neighbour], alert, _first_button(alert))
    say(line(settings, "neighbour_presses", name=name(neighbour)))
    head_alert = (await village.wait(head, 2, timeout=30))[-1]
    await village.press(head, village.user_ids[head], head_alert, _first_button(head_alert))
    say(line(settings, "head_presses", name=name(head)))
    await asyncio.sleep(2.0)
    edited = next(m for m in await village.messages(village.group_chats["g1"]) if m["message_id"] == post["message_id"])
    say(line(settings, "post_now", text=_plain(edited["text"])))
    with village.session() as session:
        incident = list_incidents(session)[-1]
    sent = sum(1 for n in incident["notifications"] if n["status"] == "sent")
    say(line(settings, "summary", id=incident["id"], status=incident["status"], responses=len(incident["responses"]),
             events=len(incident["timeline"]), sent=sent))


def help_text(village: Village, settings: Settings) -> str:
    url = village.emu.url
    key = "g2m3"
    uid = village.user_ids[key]
    return "\n".join([
        "",
        line(settings, "serving"),
        f"  curl -s {url}/_emu/send -H 'content-type: application/json' "
        f"-d '{{\"user_id\": {uid}, \"text\": \"/sos fire 厨房着火了\"}}'",
        f"  curl -s {url}/_emu/chats/{uid}/messages        # "
        + line(settings, "what_received", key=key, name=village.name_of(key)),
        f"  curl -s {url}/_emu/chats/{village.group_chats.get('g2', 0)}/messages   # "
        + line(settings, "group_chat_of"),
        f"  YIHU_DATA_DIR={village.data_dir} yihu incidents --format json",
        line(settings, "people") + ", ".join(f"{k}={v}" for k, v in village.user_ids.items()),
        line(settings, "ctrl_c"),
    ])


async def _demo(base: Settings, port: int, play: bool, exit_after: bool, stop: asyncio.Event) -> None:
    settings = base.model_copy(update={"data_dir": base.data_dir / "demo", "database_url": None})
    shutil.rmtree(settings.data_dir, ignore_errors=True)  # every demo starts from a fresh village
    settings.data_dir.mkdir(parents=True)
    say(line(settings, "data_in", path=str(settings.data_dir)))
    with redis_for(settings) as redis_url:
        village = Village(
            settings.data_dir,
            redis_url,
            load_sample_village(),
            framework=settings.framework,
            workers=settings.workers,
            emulator_port=port,
            emulator_config={"default_token": DEMO_TOKEN, "default_username": "yihu_demo_bot"},
            first_user_id=FIRST_USER_ID,
            language_code=settings.language,
            language=settings.language,
        )
        async with village:
            say(line(settings, "up", url=village.emu.url, workers=settings.workers,
                     face=FACE_NAMES[settings.framework]))
            await people_join(village, settings)
            if play:
                await walkthrough(village, settings)
            say(help_text(village, settings))
            if not exit_after:
                await stop.wait()
            say(line(settings, "stopping"))
    dispose_engines()
    say(line(settings, "bye"))


def run_demo(settings: Settings, port: int = 8089, walkthrough: bool = True, exit_after: bool = False) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await _demo(settings, port, walkthrough, exit_after, stop)

    asyncio.run(main())
