"""The village simulator (``yihu demo`` only) at ``/``: every simulated person's phone side by side — the
villagers of one group, its head, the grid worker, the police — and the group chat, each drawn like a
Telegram chat and live over one WebSocket (``/sim/ws``).

It talks only to the built-in Telegram emulator's control API, through the client ``yihu demo`` hands it
(:class:`EmulatorControl`; the emulator's feed ``/_emu/feed`` says what changed, ``/_emu/send`` and the rest
act as the people): it adds nothing to the product's path, and nothing of the product imports it.

The page's hooks are kept stable for outside tests: each phone is an element with
``data-member="<member key>"``, the group chat ``data-chat="group:<group code>"``, every button a
``<button>`` with its label, messages visible text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from aiohttp import ClientError, WSCloseCode, WSMsgType, web

from bot.render.texts import catalogue, plain
from bot.web.app import CONTEXT, Setup, page_language, render
from config.settings import Language

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Role = Literal["villager", "head", "grid_worker", "police"]

FEED_POLL_S = 25.0  # one long poll of the emulator's feed; a change ends it at once
FEED_RETRY_S = 1.0  # after the emulator did not answer
ANSWER_WAIT_S = 5.0  # how long a button press waits for the bot's answer (its toast)
ANSWER_POLL_S = 0.05
VOICE_CLIP_S = 3  # the canned voice note: the emulator's own small Ogg clip, this long
MAX_TEXT = 4096  # Telegram's limit for one message

# The demo village's map: an SVG of VIEW_W × VIEW_H units over this box of latitude and longitude.
VIEW_W, VIEW_H = 400, 300
NORTH, SOUTH, WEST, EAST = 30.2790, 30.2700, 120.1500, 120.1640


@dataclass(frozen=True)
class Place:
    key: str  # its name is the text sim.place.<key>
    x: int
    y: int

    @property
    def latitude(self) -> float:
        return round(NORTH - (NORTH - SOUTH) * self.y / VIEW_H, 6)

    @property
    def longitude(self) -> float:
        return round(WEST + (EAST - WEST) * self.x / VIEW_W, 6)


PLACES = (
    Place("committee", 205, 145),
    Place("hall", 120, 95),
    Place("school", 305, 80),
    Place("pond", 85, 225),
    Place("bridge", 250, 190),
    Place("field", 335, 245),
)


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    role: Role
    user_id: int
    household: str = ""


@dataclass(frozen=True)
class SimGroup:
    code: str
    name: str
    chat_id: int | None  # its bound group chat in the emulator
    members: tuple[str, ...]  # member keys, the head first


@dataclass(frozen=True)
class Cast:
    """Who the simulator shows: the people (by member key), the groups, the staff shown with every group,
    and the village's ladder times (the page says them)."""

    people: Mapping[str, Person]
    groups: tuple[SimGroup, ...]
    staff: tuple[str, ...]
    head_ack_s: int
    worker_ack_s: int

    def group(self, code: str | None) -> SimGroup:
        return next((g for g in self.groups if g.code == code), self.groups[0])

    def phones(self, group: SimGroup) -> list[Person]:
        return [self.people[key] for key in (*group.members, *self.staff) if key in self.people]

    def chats(self, group: SimGroup) -> dict[int, str]:
        """Chat id -> what shows it (a member key, or ``group:<code>``)."""
        shown = {person.user_id: person.key for person in self.phones(group)}
        if group.chat_id is not None:
            shown[group.chat_id] = f"group:{group.code}"
        return shown


class EmulatorControl(Protocol):
    """What the simulator asks of the emulator (``bot.sandbox.emulator.EmulatorClient`` is one)."""

    async def feed(self, after: int = 0, *, chats: list[int] | None = None, timeout: float = 0.0) -> JSON: ...

    async def send_text(self, user_id: int, text: str, *, chat_id: int | None = None) -> JSON: ...

    async def send_location(
        self, user_id: int, latitude: float, longitude: float, *, chat_id: int | None = None
    ) -> JSON: ...

    async def send_voice(self, user_id: int, duration: int = 3, *, chat_id: int | None = None) -> JSON: ...

    async def press_button(self, user_id: int, chat_id: int, message_id: int, data: str) -> str: ...

    async def callback_answer(self, query_id: str) -> JSON: ...


# -- what the browser gets of a message --------------------------------------------------------------


def _buttons(markup: JSON | None) -> tuple[list[list[JSON]], list[list[str]] | None, bool]:
    """(inline buttons, reply keyboard rows or None, whether it removes the reply keyboard)."""
    if not isinstance(markup, dict):
        return [], None, False
    inline = [
        [
            {"text": str(b.get("text", "")), "data": b.get("callback_data"), "url": b.get("url")}
            for b in row if isinstance(b, dict)
        ]
        for row in markup.get("inline_keyboard") or [] if isinstance(row, list)
    ]
    keyboard = None
    if isinstance(markup.get("keyboard"), list):
        keyboard = [
            [str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in row]
            for row in markup["keyboard"] if isinstance(row, list)
        ]
    return inline, keyboard, bool(markup.get("remove_keyboard"))


def bubble(record: JSON) -> JSON:
    """One message of the emulator's feed as the page draws it (text and entities, never HTML)."""
    message = record.get("message") or {}
    inline, keyboard, remove = _buttons(record.get("reply_markup"))
    location = message.get("location")
    voice = message.get("voice")
    sender = message.get("from") or {}
    return {
        "chat": record["chat_id"],
        "id": record["message_id"],
        "seq": record.get("seq", 0),
        "from": record.get("from_user_id"),  # None: the bot
        "sender": str(sender.get("first_name", "")),
        "text": record.get("text") or "",
        "entities": record.get("entities") or [],
        "buttons": inline,
        "keyboard": keyboard,
        "remove_keyboard": remove,
        "location": (
            {"lat": location.get("latitude"), "lon": location.get("longitude"),
             "live": bool(location.get("live_period"))}
            if isinstance(location, dict) else None
        ),
        "voice": int(voice.get("duration", 0)) if isinstance(voice, dict) else None,
        "service": record.get("kind") == "service",
        "edited": bool(record.get("edits")),
        "deleted": bool(record.get("deleted")),
        "date": message.get("date"),
    }


# -- one watcher of the emulator's feed for every open page ------------------------------------------


@dataclass
class Hub:
    """Long-polls the emulator's feed and hands each change to the pages watching its chat."""

    emulator: EmulatorControl
    chats: list[int]
    subscribers: dict[asyncio.Queue[list[JSON]], set[int]] = field(default_factory=dict)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    seq: int = 0
    task: asyncio.Task[None] | None = None

    def subscribe(self, chats: set[int]) -> asyncio.Queue[list[JSON]]:
        queue: asyncio.Queue[list[JSON]] = asyncio.Queue()
        self.subscribers[queue] = chats
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._watch())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[list[JSON]]) -> None:
        self.subscribers.pop(queue, None)

    async def _watch(self) -> None:
        self.seq = int((await self.emulator.feed(0, chats=[]))["seq"]) if self.seq == 0 else self.seq
        while self.subscribers:
            try:
                result = await self.emulator.feed(self.seq, chats=self.chats, timeout=FEED_POLL_S)
            except Exception as exc:  # the emulator stopping or restarting: try again shortly
                log.warning("simulator: the emulator's feed did not answer (%s)", exc)
                await asyncio.sleep(FEED_RETRY_S)
                continue
            self.seq = max(self.seq, int(result["seq"]))
            for queue, wanted in list(self.subscribers.items()):
                mine = [bubble(m) for m in result["messages"] if m["chat_id"] in wanted]
                if mine:
                    queue.put_nowait(mine)

    async def close_sockets(self) -> None:
        """Close the pages' sockets (the server is stopping: their handlers end at once)."""
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


HUB = web.AppKey("yihu_simulator_hub", Hub)


# -- the page and its socket -------------------------------------------------------------------------


def _page_texts(language: Language) -> dict[str, str]:
    """The texts simulator.js writes itself (the rest is in the page)."""
    texts = catalogue(language)
    return {key: value for key, value in texts.items() if key.startswith("sim.") and not key.startswith("sim.console.")}


def simulator_part(emulator: EmulatorControl, cast: Cast) -> Setup:
    """The part serving ``/`` (the page) and ``/sim/ws`` (its live socket) for ``cast``."""
    all_chats = sorted({chat for group in cast.groups for chat in cast.chats(group)})

    async def page(request: web.Request) -> web.Response:
        group = cast.group(request.query.get("group"))
        language = page_language(request)
        desk = any(resource.canonical == "/desk" for resource in request.app.router.resources())
        config = {
            "group": group.code,
            "timezone": request.app[CONTEXT].settings.timezone,  # phones show the village's time
            "chats": {str(chat): shown for chat, shown in cast.chats(group).items()},
            "texts": _page_texts(language),
            "places": [
                {"key": p.key, "name": plain(language, f"sim.place.{p.key}"), "lat": p.latitude, "lon": p.longitude,
                 "x": p.x, "y": p.y}
                for p in PLACES
            ],
            "map": {"w": VIEW_W, "h": VIEW_H, "north": NORTH, "south": SOUTH, "west": WEST, "east": EAST},
            "desk": next((k for k in cast.staff if cast.people[k].role == "grid_worker"), None) if desk else None,
        }
        return render(
            request, "simulator.html", cast=cast, group=group, phones=cast.phones(group), config=config,
            places=PLACES,
        )

    async def socket(request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="cross-site WebSocket refused")
        group = cast.group(request.query.get("group"))
        chats = cast.chats(group)
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        hub = request.app[HUB]
        hub.sockets.add(ws)
        queue = hub.subscribe(set(chats))

        async def forward() -> None:
            snapshot = await emulator.feed(0, chats=list(chats))
            await ws.send_json({"type": "messages", "live": False,
                                "messages": [bubble(m) for m in snapshot["messages"]]})
            while True:
                await ws.send_json({"type": "messages", "live": True, "messages": await queue.get()})

        sender = asyncio.create_task(forward())
        actions: set[asyncio.Task[None]] = set()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                task = asyncio.create_task(_act(ws, emulator, cast, group, message.json(), page_language(request)))
                actions.add(task)
                task.add_done_callback(actions.discard)
        finally:
            hub.sockets.discard(ws)
            hub.unsubscribe(queue)
            sender.cancel()
            for task in (sender, *actions):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        return ws

    async def close_sockets(app: web.Application) -> None:
        await app[HUB].close_sockets()

    async def stop_hub(app: web.Application) -> None:
        await app[HUB].stop()

    def setup(app: web.Application) -> None:
        app[HUB] = Hub(emulator, all_chats)
        app.router.add_get("/", page, name="simulator")
        app.router.add_get("/sim/ws", socket, name="simulator_ws")
        app.on_shutdown.append(close_sockets)
        app.on_cleanup.append(stop_hub)

    return setup


class Refused(ValueError):
    """An action the page asked for that the simulator does not pass on (its text is shown)."""


def _chat_for(cast: Cast, group: SimGroup, person: Person, chat: Any) -> int | None:
    """The chat an action of ``person`` goes to: their own with the bot (None), or their group's chat."""
    if chat in (None, "", person.user_id):
        return None
    if group.chat_id is not None and int(chat) == group.chat_id and person.key in group.members:
        return group.chat_id
    raise Refused(f"{person.key} is not in chat {chat}")


async def _act(
    ws: web.WebSocketResponse, emulator: EmulatorControl, cast: Cast, group: SimGroup, action: Any, language: Language
) -> None:
    """Do what one phone asked: send a text, a location or a voice note, press a button."""
    try:
        if not isinstance(action, dict):
            raise Refused("not an action")
        person = cast.people.get(str(action.get("member")))
        if person is None or person not in cast.phones(group):
            raise Refused("no such phone")
        chat = _chat_for(cast, group, person, action.get("chat"))
        op = action.get("op")
        if op == "text":
            text = str(action.get("text") or "").strip()
            if not text or len(text) > MAX_TEXT:
                raise Refused("empty or too long")
            await emulator.send_text(person.user_id, text, chat_id=chat)
        elif op == "location":
            lat, lon = float(action["lat"]), float(action["lon"])
            if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
                raise Refused("not a place on Earth")
            await emulator.send_location(person.user_id, lat, lon, chat_id=chat)
        elif op == "voice":
            await emulator.send_voice(person.user_id, VOICE_CLIP_S, chat_id=chat)
        elif op == "press":
            where = chat if chat is not None else person.user_id
            query = await emulator.press_button(person.user_id, where, int(action["message"]), str(action["data"]))
            answer = await _answer(emulator, query)
            if answer.get("text"):
                await ws.send_json({"type": "toast", "member": person.key, "chat": where, "text": answer["text"],
                                    "alert": bool(answer.get("show_alert"))})
        else:
            raise Refused("unknown action")
    except (Refused, KeyError, TypeError, ValueError, RuntimeError, ClientError) as exc:
        if not ws.closed:
            await ws.send_json({"type": "refused", "member": action.get("member") if isinstance(action, dict) else None,
                                "text": plain(language, "sim.refused", reason=str(exc))})


async def _answer(emulator: EmulatorControl, query_id: str) -> JSON:
    """The bot's answer to a button press (its toast), once it came; {} if it did not within a few seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ANSWER_WAIT_S
    while loop.time() < deadline:
        answer = await emulator.callback_answer(query_id)
        if answer.get("answered"):
            return answer
        await asyncio.sleep(ANSWER_POLL_S)
    return {}
