"""``yihu demo``: the whole system on embedded defaults, against the built-in Telegram emulator.

A sample village (one grid, two groups of ten households, head, grid worker, police) is imported with short
ladder times, its people are simulated in the emulator (:class:`bot.sandbox.village.Village`), open their
invite links and bind their group chats; the web pages are served with the village simulator at ``/``
(``bot.web.simulator``: every phone live in a browser), its URL printed first; one alert is played through;
then everything keeps serving until Ctrl-C.

The console shows only the walkthrough and the URLs: the logs (the bot's, the workers' RQ lines) go to a
file in the data directory unless ``-v``; a port already taken ends the demo with one sentence naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml
from aiohttp import web
from sqlmodel import col, select

from bot import bootstrap
from bot.render.texts import plain
from bot.runtime import FACE_NAMES, redis_for
from bot.sandbox.emulator import EmulatorClient
from bot.sandbox.village import Village
from bot.web.app import WebContext, build_web_app
from bot.web.server import parse_web_listen
from bot.web.simulator import Cast, Person, SimGroup, simulator_part
from config.settings import Settings
from groups.db import dispose_engines
from groups.model import Household, HouseholdGroup, Member
from groups.roster import load_sample_village
from groups.views import list_incidents

DEMO_TOKEN = "700000001:yihu-demo-token"
FIRST_USER_ID = 8_000_001
# The demo village's ladder, short enough to watch it climb (the simulator's page says so).
HEAD_ACK_S = 30
WORKER_ACK_S = 60
LOG_FILE = "yihu-demo.log"
STOP_WEB_S = 2.0  # how long stopping waits for the web pages' connections

log = logging.getLogger(__name__)


class PortTaken(Exception):
    """A port the demo needs is in use: one sentence for the operator, no traceback."""

    def __init__(self, port: int, what: str, option: str) -> None:
        super().__init__(port, what, option)
        self.port, self.what, self.option = port, what, option

    def sentence(self, settings: Settings) -> str:
        return plain(settings.language, "sim.console.port_taken", port=self.port,
                     what=plain(settings.language, f"sim.console.what_{self.what}"), option=self.option)


def say(line: str = "") -> None:
    print(line, flush=True)


def line(settings: Settings, text_key: str, /, **params: Any) -> str:
    """One line of the walkthrough in the operator's language (``YIHU_LANGUAGE``)."""
    return plain(settings.language, f"demo.{text_key}", **params)


def _plain(text: str) -> str:
    return " ".join(text.replace("<b>", "").replace("</b>", "").split())[:160]


def _first_button(message: dict[str, Any]) -> str:
    return str(message["reply_markup"]["inline_keyboard"][0][0]["callback_data"])


def demo_roster(head_ack_s: int = HEAD_ACK_S, worker_ack_s: int = WORKER_ACK_S) -> str:
    """The sample village with the demo's short ladder times on every grid."""
    roster = yaml.safe_load(load_sample_village())
    for grid in roster["grids"]:
        grid["escalation"] = {"head_ack_s": head_ack_s, "worker_ack_s": worker_ack_s}
    return yaml.safe_dump(roster, allow_unicode=True, sort_keys=False)


def listening_socket(host: str, port: int) -> socket.socket:
    """The web listener's socket, bound now (a taken port is found before anything starts)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortTaken(port, "web", f"YIHU_WEB_LISTEN={host}:<port>") from None
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def check_emulator_port(port: int) -> None:
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortTaken(port, "emulator", "yihu demo --port <port>") from None
            raise


def cast_of(village: Village, head_ack_s: int, worker_ack_s: int) -> Cast:
    """Who the simulator shows: every person of the village by member key, its groups with their chats,
    the grid workers and the police."""
    people: dict[str, Person] = {}
    groups: list[SimGroup] = []
    with village.session() as session:
        rows = session.exec(
            select(Member, Household).join(Household, col(Household.id) == col(Member.household_id), isouter=True)
            .where(Member.active)
        ).all()
        heads = {g.head_id for g in session.exec(select(HouseholdGroup)).all()}
        for member, household in rows:
            if member.key not in village.user_ids:
                continue
            role = "head" if member.id in heads else member.role
            if role not in ("villager", "head", "grid_worker", "police"):
                continue
            people[member.key] = Person(member.key, member.name, role, village.user_ids[member.key],  # type: ignore[arg-type]
                                        household.label if household is not None else "")
        for group in sorted(session.exec(select(HouseholdGroup).where(HouseholdGroup.active)).all(),
                            key=lambda g: g.code):
            head = session.get(Member, group.head_id)
            keys = [k for k in village.group_member_keys(group.code) if k in people]
            if head is not None and head.key in people:
                keys = [head.key, *(k for k in keys if k != head.key)]
            groups.append(SimGroup(group.code, group.name, village.group_chats.get(group.code), tuple(keys)))
    staff = tuple(sorted((k for k, p in people.items() if p.role in ("grid_worker", "police")),
                         key=lambda k: (people[k].role != "grid_worker", k)))
    return Cast(people=people, groups=tuple(groups), staff=staff, head_ack_s=head_ack_s, worker_ack_s=worker_ack_s)


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


async def serve_web(village: Village, redis_url: str, sock: socket.socket, cast: Cast) -> web.AppRunner:
    """The web pages on ``sock``: the product's parts (``yihu run``'s: health, metrics, the desk), then the
    simulator at ``/``."""
    emulator = EmulatorClient(village.emu.url)
    parts = [*bootstrap.web_parts(village.settings), simulator_part(emulator, cast)]
    app = build_web_app(WebContext(village.settings, village.engine, redis_url), parts)

    async def close_client(_: web.Application) -> None:
        await emulator.close()

    app.on_cleanup.append(close_client)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, shutdown_timeout=STOP_WEB_S).start()
    return runner


def _web_settings(settings: Settings, url: str, host: str, port: int) -> dict[str, Any]:
    """``YIHU_WEB_LISTEN`` as bound and ``YIHU_WEB_URL`` (the links the bot sends, e.g. the desk's): the
    operator's own URL if they set one, else the address actually served (port 0 becomes the real one)."""
    derived = f"http://{settings.web_listen.strip()}".rstrip("/")
    return {"web_listen": f"{host}:{port}", "web_url": url if settings.web_url == derived else settings.web_url}


async def _demo(
    settings: Settings, port: int, play: bool, exit_after: bool, stop: asyncio.Event, sock: socket.socket,
    *, head_ack_s: int = HEAD_ACK_S, worker_ack_s: int = WORKER_ACK_S, log_path: Path | None = None,
) -> None:
    host, web_port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{web_port}"
    say(plain(settings.language, "sim.console.open", url=url + "/"))
    say(plain(settings.language, "sim.console.ladder", head=head_ack_s, worker=worker_ack_s))
    if log_path is not None:
        say(plain(settings.language, "sim.console.log", path=str(log_path)))
    say(line(settings, "data_in", path=str(settings.data_dir)))
    with redis_for(settings) as redis_url:
        village = Village(
            settings.data_dir,
            redis_url,
            demo_roster(head_ack_s, worker_ack_s),
            framework=settings.framework,
            workers=settings.workers,
            emulator_port=port,
            emulator_config={"default_token": DEMO_TOKEN, "default_username": "yihu_demo_bot"},
            first_user_id=FIRST_USER_ID,
            language_code=settings.language,
            language=settings.language,
            **_web_settings(settings, url, host, web_port),
        )
        async with village:
            say(line(settings, "up", url=village.emu.url, workers=settings.workers,
                     face=FACE_NAMES[settings.framework]))
            await people_join(village, settings)
            runner = await serve_web(village, redis_url, sock, cast_of(village, head_ack_s, worker_ack_s))
            if any(resource.canonical == "/desk" for resource in runner.app.router.resources()):
                say(plain(settings.language, "sim.console.desk", url=url + "/desk"))
            try:
                if play:
                    await walkthrough(village, settings)
                say(help_text(village, settings))
                if not exit_after:
                    await stop.wait()
                say(line(settings, "stopping"))
            finally:
                await runner.cleanup()
    dispose_engines()
    say(line(settings, "bye"))


@contextlib.contextmanager
def logs_to(path: Path, verbose: bool) -> Iterator[TextIO]:
    """Unless ``verbose``, everything written to stderr — this process's log lines, the worker processes'
    (they inherit it), stray warnings — goes to ``path``; yields the console's own stderr for the one
    sentence the operator must read."""
    console = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    if verbose:
        try:
            yield console
        finally:
            console.close()
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("a", encoding="utf-8") as logfile:
        os.dup2(logfile.fileno(), 2)
        try:
            yield console
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            console.close()


def run_demo(
    settings: Settings,
    port: int = 8089,
    walkthrough: bool = True,
    exit_after: bool = False,
    *,
    verbose: bool = False,
    head_ack_s: int = HEAD_ACK_S,
    worker_ack_s: int = WORKER_ACK_S,
) -> None:
    """``yihu demo``; exits with status 2 (one sentence, no traceback) when a port it needs is taken, 1 when
    it fails otherwise (the traceback in the log file)."""
    settings = settings.model_copy(update={"data_dir": settings.data_dir / "demo", "database_url": None})
    try:
        host, web_port = parse_web_listen(settings.web_listen)
        check_emulator_port(port)
        sock = listening_socket(host, web_port)
    except PortTaken as taken:
        print(taken.sentence(settings), file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    shutil.rmtree(settings.data_dir, ignore_errors=True)  # every demo starts from a fresh village
    settings.data_dir.mkdir(parents=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await _demo(settings, port, walkthrough, exit_after, stop, sock, head_ack_s=head_ack_s,
                    worker_ack_s=worker_ack_s, log_path=None if verbose else log_path)

    log_path = settings.data_dir / LOG_FILE
    with logs_to(log_path, verbose) as console:
        try:
            asyncio.run(main())
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            log.exception("a port was taken while the demo started")
            print(PortTaken(port, "emulator", "yihu demo --port <port>").sentence(settings), file=console)
            raise SystemExit(2) from None
        except Exception as exc:
            traceback.print_exc()  # into the log file, unless -v
            print(plain(settings.language, "sim.console.failed", error=str(exc) or type(exc).__name__,
                        path=str(log_path)), file=console)
            raise SystemExit(1) from None
        finally:
            sock.close()
