"""The staff desk (工作台) on the web: login by the single-use link the bot sends on ``/desk``, then a
server-side session in an HttpOnly SameSite cookie; pages of incidents, one incident (timeline,
responses, notifications, an offline map), group health, the ledger's place; JSON ``/api/incidents``.

Read-only. What a session sees is decided in the core (:mod:`groups.desk`), never in templates; anything
out of scope answers 404 like a number that does not exist. Live updates of ``/desk`` come over a
WebSocket that polls the database every ``YIHU_DESK_LIVE_POLL_S`` (any process serving the web sees the
same database). Mount with ``build_web_app(context, [desk.setup])``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from sqlmodel import Session

from bot.render.format import local_time, waiting
from bot.render.texts import plain
from bot.render.timeline import event_detail
from bot.web.app import CONTEXT, page_language, render
from config.policies import REFERRAL_ROLES, TOP_LEVEL
from config.settings import Language, Settings
from groups import desk
from groups.errors import UserError
from groups.model import DeliveryStatus, Member, Purpose, ResponseKind, utcnow
from groups.views import STATUSES

COOKIE: Final[str] = "yihu_desk"
NO_STORE: Final[dict[str, str]] = {"Cache-Control": "no-store"}
SOCKETS = web.AppKey("yihu_desk_sockets", set[web.WebSocketResponse])
MAP_W: Final[int] = 600
MAP_H: Final[int] = 360

R = TypeVar("R")


class NoSession(Exception):
    """The request carries no live desk session."""


def setup(app: web.Application) -> None:
    """The desk's routes (a part for :func:`bot.web.app.build_web_app`)."""
    app[SOCKETS] = set()
    app.on_shutdown.append(_close_sockets)
    # GET only: a HEAD (as link checkers send) must not use the link up.
    app.router.add_get("/desk/login/{token}", login, allow_head=False)
    app.router.add_get("/desk", incidents_page)
    app.router.add_get("/desk/", incidents_page)
    app.router.add_get("/desk/incidents/{number}", incident_page)
    app.router.add_get("/desk/health", health_page)
    app.router.add_get("/desk/report", report_page)
    app.router.add_get("/desk/live", live)
    app.router.add_get("/api/incidents", incidents_api)
    app.router.add_get("/api/incidents/{number}", incident_api)


def _settings(request: web.Request) -> Settings:
    return request.app[CONTEXT].settings


def _secure(settings: Settings) -> bool:
    return settings.public_web_url.lower().startswith("https://")


async def _in_session(request: web.Request, work: Callable[[Session, Member, datetime], R]) -> R:
    """``work(session, viewer, now)`` in a worker thread for the request's desk session; committed (a
    private incident's view is recorded). Raises :class:`NoSession`."""
    engine = request.app[CONTEXT].engine
    session_id = request.cookies.get(COOKIE)

    def run() -> R:
        with Session(engine, expire_on_commit=False) as session:
            now = utcnow()
            viewer = desk.session_member(session, session_id, now)
            if viewer is None:
                raise NoSession
            result = work(session, viewer, now)
            session.commit()
            return result

    return await asyncio.to_thread(run)


def _minutes(settings: Settings) -> int:
    return max(1, round(settings.desk_link_s / 60))


def _message(request: web.Request, status: int, key: str) -> web.Response:
    response = render(
        request, "desk_message.html", status=status, viewer=None, heading=key, how=f"{key}.how",
        minutes=_minutes(_settings(request)),
    )
    response.headers.update(NO_STORE)
    return response


def _page(request: web.Request, template: str, viewer: str, **values: Any) -> web.Response:
    response = render(request, template, viewer=viewer, **values)
    response.headers.update(NO_STORE)
    return response


def _api_error(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status, headers=NO_STORE)


# --- login ----------------------------------------------------------------------------------------------


async def login(request: web.Request) -> web.StreamResponse:
    """``/desk/login/<token>``: a good link sets the session cookie and leaves for ``/desk`` (the token
    never stays in the address bar); a used or expired one is 403; too many bad ones from here, 429."""
    context = request.app[CONTEXT]
    settings = context.settings
    token = request.match_info["token"]
    address = request.remote or "?"

    def redeem() -> desk.Login:
        with Session(context.engine, expire_on_commit=False) as session:
            result = desk.redeem_login(
                session, token, address, utcnow(), session_s=settings.desk_session_s,
                failures=settings.desk_login_failures, window_s=settings.desk_login_window_s,
            )
            session.commit()
            return result

    result = await asyncio.to_thread(redeem)
    if result.refused == "limited":
        return _message(request, 429, "desk.login_limited")
    if result.session_id is None:
        return _message(request, 403, "desk.login_refused")
    response = web.HTTPSeeOther("/desk", headers=NO_STORE)
    response.set_cookie(
        COOKIE, result.session_id, max_age=int(settings.desk_session_s), path="/", httponly=True,
        samesite="Lax", secure=_secure(settings),
    )
    return response


# --- pages ----------------------------------------------------------------------------------------------


def _category(language: Language, incident_category: str) -> str:
    return plain(language, f"category.{incident_category}")


def _row(row: desk.DeskRow, language: Language, settings: Settings) -> dict[str, Any]:
    """One incident line as shown (plain text; the page and the live script escape it)."""
    nobody = plain(language, "desk.nobody")
    level = min(row.level, TOP_LEVEL)
    return {
        "number": row.incident_id,
        "href": f"/desk/incidents/{row.incident_id}",
        "category": _category(language, row.category),
        "private": plain(language, "desk.private") if row.private else "",
        "group": row.group_name,
        "age": waiting(row.age_s, language),
        "responders": ("、" if language == "zh" else ", ").join(row.responders) or nobody,
        "level": plain(language, f"desk.level.{level}"),
        "owner": row.owner or nobody,
        "status": plain(language, f"status.{row.status}"),
        "closed": local_time(row.closed_at, settings) if row.closed_at else "",
    }


async def incidents_page(request: web.Request) -> web.StreamResponse:
    """``/desk``: open incidents first, then the recently closed ones."""
    language, settings = page_language(request), _settings(request)

    def work(session: Session, viewer: Member, now: datetime) -> tuple[str, desk.DeskList]:
        return viewer.name, desk.desk_list(session, viewer, now)

    try:
        name, found = await _in_session(request, work)
    except NoSession:
        return _message(request, 401, "desk.login_needed")
    return _page(
        request, "desk_list.html", name,
        open_rows=[_row(r, language, settings) for r in found.open],
        closed_rows=[_row(r, language, settings) for r in found.closed],
    )


def _number(request: web.Request) -> int | None:
    raw = request.match_info["number"].lstrip("#")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


async def incident_page(request: web.Request) -> web.StreamResponse:
    """``/desk/incidents/<N>``: timeline, responses, notifications, referrals and an offline map."""
    language, settings = page_language(request), _settings(request)
    number = _number(request)

    def work(session: Session, viewer: Member, now: datetime) -> tuple[str, desk.Detail | None]:
        if number is None:
            return viewer.name, None
        try:
            return viewer.name, desk.incident_detail(session, viewer, number, now)
        except UserError:
            return viewer.name, None

    try:
        name, detail = await _in_session(request, work)
    except NoSession:
        return _message(request, 401, "desk.login_needed")
    if detail is None:
        response = render(request, "desk_message.html", status=404, viewer=name, heading="desk.not_found",
                          how="desk.not_found.how", minutes=_minutes(settings))
        response.headers.update(NO_STORE)
        return response

    def when(at: datetime) -> str:
        return local_time(at, settings, "%m-%d %H:%M:%S")

    return _page(
        request, "desk_incident.html", name,
        row=_row(detail.row, language, settings),
        private=detail.row.private,
        grid=detail.grid_name,
        reporter=detail.reporter,
        text=detail.text,
        created=when(detail.row.created_at),
        acknowledged=when(detail.acknowledged_at) if detail.acknowledged_at else "",
        timeline=[
            {"at": when(at), "kind": _event_kind(language, kind), "actor": actor or "",
             "detail": event_detail(language, kind, text)}
            for at, kind, actor, text in detail.timeline
        ],
        responses=[{"name": n, "kind": _response(language, k), "at": when(at)} for n, k, at in detail.responses],
        notifications=[
            {"recipient": r, "purpose": _coded(language, "desk.purpose", p, Purpose), "kind": k,
             "status": _coded(language, "desk.delivery", s, DeliveryStatus), "sent": when(sent) if sent else ""}
            for r, p, k, s, sent in detail.notifications
        ],
        referrals=[
            {"department": _department(language, d), "due": local_time(due, settings, "%Y-%m-%d"),
             "done": local_time(done, settings, "%Y-%m-%d") if done else ""}
            for d, due, done in detail.referrals
        ],
        map=plot(detail.points),
    )


async def health_page(request: web.Request) -> web.StreamResponse:
    """``/desk/health``: the groups of a head or grid worker."""

    def work(session: Session, viewer: Member, now: datetime) -> tuple[str, list[desk.GroupHealth]]:
        return viewer.name, desk.group_health(session, viewer)

    try:
        name, groups = await _in_session(request, work)
    except NoSession:
        return _message(request, 401, "desk.login_needed")
    return _page(request, "desk_health.html", name, groups=groups)


async def report_page(request: web.Request) -> web.StreamResponse:
    """``/desk/report``: the ledger's place (filled by the ledger work)."""
    try:
        name = await _in_session(request, lambda session, viewer, now: viewer.name)
    except NoSession:
        return _message(request, 401, "desk.login_needed")
    return _page(request, "desk_report.html", name)


# --- JSON -----------------------------------------------------------------------------------------------


async def incidents_api(request: web.Request) -> web.StreamResponse:
    """``GET /api/incidents[?status=]``: the shape of ``yihu incidents --format json``, scoped."""
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        return _api_error(400, "bad_status")
    try:
        views = await _in_session(request, lambda s, viewer, now: desk.incidents_json(s, viewer, now, status))
    except NoSession:
        return _api_error(401, "login_needed")
    return web.json_response(views, headers=NO_STORE)


async def incident_api(request: web.Request) -> web.StreamResponse:
    """``GET /api/incidents/<N>``: one incident; 404 when it does not exist or is out of scope."""
    number = _number(request)

    def work(session: Session, viewer: Member, now: datetime) -> dict[str, Any] | None:
        if number is None:
            return None
        try:
            return desk.incident_json(session, viewer, number, now)
        except UserError:
            return None

    try:
        view = await _in_session(request, work)
    except NoSession:
        return _api_error(401, "login_needed")
    if view is None:
        return _api_error(404, "not_found")
    return web.json_response(view, headers=NO_STORE)


# --- live updates ---------------------------------------------------------------------------------------


def _same_origin(request: web.Request) -> bool:
    """A WebSocket opened by a page of this site (browsers always send Origin on a WebSocket)."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    return urlsplit(origin).netloc.lower() == request.host.lower()


async def live(request: web.Request) -> web.StreamResponse:
    """``/desk/live``: a WebSocket that sends ``{"open": [rows]}`` whenever the viewer's open incidents
    change (and once at the start); closed with 4401 when the session ends."""
    language, settings = page_language(request), _settings(request)
    if not _same_origin(request):
        return _api_error(403, "cross_origin")

    def rows(session: Session, viewer: Member, now: datetime) -> list[dict[str, Any]]:
        return [_row(r, language, settings) for r in desk.open_rows(session, viewer, now)]

    try:
        first = await _in_session(request, rows)
    except NoSession:
        return _api_error(401, "login_needed")
    socket = web.WebSocketResponse(heartbeat=30)
    await socket.prepare(request)
    request.app[SOCKETS].add(socket)

    async def push() -> None:
        current = first
        await socket.send_json({"open": current})
        while not socket.closed:
            await asyncio.sleep(settings.desk_live_poll_s)
            try:
                fresh = await _in_session(request, rows)
            except NoSession:
                await socket.close(code=4401, message=b"session ended")
                return
            if fresh != current and not socket.closed:
                current = fresh
                await socket.send_json({"open": current})

    pusher = asyncio.create_task(push())
    try:
        async for message in socket:  # the page sends nothing; this waits for the close
            if message.type == WSMsgType.ERROR:
                break
    finally:
        request.app[SOCKETS].discard(socket)
        pusher.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await pusher
    return socket


async def _close_sockets(app: web.Application) -> None:
    sockets = app[SOCKETS]
    for socket in tuple(sockets):
        await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")


# --- words and the map ----------------------------------------------------------------------------------


def _event_kind(language: Language, kind: str) -> str:
    return plain(language, f"event.{kind}")


def _response(language: Language, kind: str) -> str:
    return plain(language, f"response.{kind}") if kind in {k.value for k in ResponseKind} else kind


def _coded(language: Language, prefix: str, code: str, known: type[StrEnum]) -> str:
    """A code the core stores, in words when the catalogue knows it."""
    return plain(language, f"{prefix}.{code}") if code in {k.value for k in known} else code


def _department(language: Language, name: str) -> str:
    return plain(language, f"department.{name}") if name in REFERRAL_ROLES else name


def plot(points: list[desk.Point]) -> dict[str, Any] | None:
    """The points in an SVG viewBox (equirectangular, north up, padded): no tiles, no network."""
    if not points:
        return None
    lats = [p.latitude for p in points]
    lons = [p.longitude for p in points]
    mid_lat = (min(lats) + max(lats)) / 2
    squeeze = max(math.cos(math.radians(mid_lat)), 0.01)  # a degree of longitude is shorter away from the equator
    span_x = max((max(lons) - min(lons)) * squeeze, 0.002)
    span_y = max(max(lats) - min(lats), 0.002)
    scale = min((MAP_W - 60) / span_x, (MAP_H - 60) / span_y)
    centre_x, centre_y = (min(lons) + max(lons)) / 2, mid_lat

    def place(point: desk.Point) -> dict[str, Any]:
        x = MAP_W / 2 + (point.longitude - centre_x) * squeeze * scale
        y = MAP_H / 2 - (point.latitude - centre_y) * scale
        return {"x": round(x, 1), "y": round(y, 1), "kind": point.kind, "number": point.incident_id,
                "lat": f"{point.latitude:.5f}", "lon": f"{point.longitude:.5f}",
                "diamond": f"{x:.1f},{y - 8:.1f} {x + 8:.1f},{y:.1f} {x:.1f},{y + 8:.1f} {x - 8:.1f},{y:.1f}"}

    # Others first, so that the incident's own marks are drawn on top.
    order = {"other": 0, "live": 1, "incident": 2}
    return {"width": MAP_W, "height": MAP_H,
            "points": [place(p) for p in sorted(points, key=lambda p: order.get(p.kind, 0))]}
