"""The staff desk in a real browser (issue 13, items 2, 3 and 5): login by a single-use link, reuse and
expiry answer 403, the cookie's flags, scope (a head never sees a private incident; another grid's
incident is 404 for the page and the JSON), hostile names shown as text, live updates, the CSP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.web import desk as desk_web
from bot.web.app import WebContext, build_web_app
from config.settings import Settings
from groups import alerts, desk
from groups.db import get_engine, session_scope
from groups.model import IncidentEvent, Member, utcnow
from groups.roster import import_roster, parse_roster
from tests.support.browser import screenshot_path
from tests.support.harness import DATA

HOSTILE = '<img src=x onerror="window.hacked=1"><script>window.hacked=2</script>李&amp;四'
PHONE = {"width": 390, "height": 844}


def _roster() -> str:
    """The test village plus a second grid (v2: group h1, grid worker w9)."""
    data = yaml.safe_load((DATA / "village.yaml").read_text(encoding="utf-8"))
    data["grids"].append({
        "code": "v2", "name": "第二网格", "workers": ["w9"], "police": ["p1"],
        "groups": [{"code": "h1", "name": "河边联防组", "head": "h1m1", "households": [
            {"label": "1号户", "members": [{"key": "h1m1", "name": "钱一"}]},
            {"label": "2号户", "members": [{"key": "h1m2", "name": "钱二"}]},
        ]}],
    })
    data["staff"].append({"key": "w9", "name": "另网格员", "role": "grid_worker"})
    return yaml.safe_dump(data, allow_unicode=True)


@dataclass
class Desk:
    url: str
    engine: Engine
    settings: Settings

    def member(self, session: Session, key: str) -> Member:
        return session.exec(select(Member).where(Member.key == key)).one()

    def link(self, key: str, age_s: float = 0) -> str:
        """A login link for ``key`` as the bot makes it, issued ``age_s`` seconds ago."""
        with session_scope(self.engine) as session:
            issued = utcnow() - timedelta(seconds=age_s)
            token = desk.issue_login(session, self.member(session, key), issued, self.settings.desk_link_s)
        return f"{self.url}/desk/login/{token}"

    def raise_alert(self, key: str, category: str, text: str | None = None) -> int:
        with session_scope(self.engine) as session:
            found = alerts.raise_alert(session, self.member(session, key), utcnow(), category, text=text,
                                       location=(30.60, 114.30))
        return found.incident_id

    def rename(self, key: str, name: str) -> None:
        with session_scope(self.engine) as session:
            self.member(session, key).name = name


Serve = Callable[..., Any]


@pytest.fixture
async def serve(sqlite_url: str) -> AsyncIterator[Serve]:
    """Start the desk (mounted as the lead mounts it) with these settings; stopped after the test."""
    engine = get_engine(sqlite_url)
    with session_scope(engine) as session:
        import_roster(session, parse_roster(_roster()))
    runners: list[web.AppRunner] = []

    async def start(**options: Any) -> Desk:
        settings = Settings(database_url=sqlite_url, desk_live_poll_s=0.2, **options)
        app = build_web_app(WebContext(settings, engine), [desk_web.setup])
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return Desk(f"http://127.0.0.1:{runner.addresses[0][1]}", engine, settings)

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_login_by_link_then_reuse_and_expiry_are_refused(serve: Serve, browser: Any) -> None:
    site = await serve()
    fire = site.raise_alert("g1m2", "fire")
    link = site.link("w1")
    context = await browser.new_context()
    page = await context.new_page()
    response = await page.goto(link)
    assert response is not None and response.status == 200
    assert page.url == site.url + "/desk"  # the token does not stay in the address bar
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    (cookie,) = [c for c in await context.cookies() if c["name"] == desk_web.COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    assert link.rsplit("/", 1)[1] not in cookie["value"]
    assert await page.inner_text(f"#open-rows tr[data-incident='{fire}'] td:nth-child(2)") == "火灾"
    await page.screenshot(path=str(screenshot_path("desk-list")), full_page=True)

    other = await (await browser.new_context()).new_page()
    reused = await other.goto(link)
    assert reused is not None and reused.status == 403
    assert "/desk" in await other.inner_text("[data-desk=message]")  # says how to get a new link
    expired = await other.goto(site.link("w1", age_s=site.settings.desk_link_s + 1))
    assert expired is not None and expired.status == 403
    nothing = await other.goto(site.url + "/desk")
    assert nothing is not None and nothing.status == 401  # no session came of either
    assert "/desk" in await other.inner_text("[data-desk=message]")
    api = await other.goto(site.url + "/api/incidents")
    assert api is not None and api.status == 401 and (await api.json()) == {"error": "login_needed"}


async def test_the_cookie_is_secure_behind_https(serve: Serve) -> None:
    site = await serve(web_url="https://desk.example.org")
    link = site.link("w1")
    async with aiohttp.ClientSession() as client:
        head = await client.head(link, allow_redirects=False)
        assert head.status == 405  # a link checker's HEAD does not use the link up
        answer = await client.get(link, allow_redirects=False)
        assert answer.status == 303 and answer.headers["Location"] == "/desk"
        cookie = answer.cookies[desk_web.COOKIE]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"

async def test_bad_links_are_rate_limited(serve: Serve) -> None:
    site = await serve(desk_login_failures=2)
    async with aiohttp.ClientSession() as client:
        statuses = []
        for _ in range(3):
            async with client.get(site.url + "/desk/login/guessed", allow_redirects=False) as answer:
                statuses.append(answer.status)
        async with client.get(site.link("w1"), allow_redirects=False) as answer:
            statuses.append(answer.status)
    assert statuses == [403, 403, 429, 429]


async def _signed_in(browser: Any, link: str) -> Any:
    page = await browser.new_page()
    await page.goto(link)
    return page


async def test_scope_a_head_and_another_grid(serve: Serve, browser: Any) -> None:
    site = await serve()
    fire = site.raise_alert("g1m2", "fire")
    violence = site.raise_alert("g1m3", "violence", text="他又打我了")
    elsewhere = site.raise_alert("h1m2", "fire")
    head = await _signed_in(browser, site.link("g1m1"))
    rows = await head.eval_on_selector_all("#open-rows tr", "rows => rows.map(r => r.dataset.incident)")
    assert rows == [str(fire)]  # never the private incident of their own group
    for path in (f"/desk/incidents/{violence}", f"/desk/incidents/{elsewhere}", "/desk/incidents/99999"):
        answer = await head.goto(site.url + path)
        assert answer is not None and answer.status == 404
        assert "他又打我了" not in await head.content()
    for number in (violence, elsewhere, 99999):
        answer = await head.goto(f"{site.url}/api/incidents/{number}")
        assert answer is not None and answer.status == 404 and (await answer.json()) == {"error": "not_found"}
    listed = await head.goto(site.url + "/api/incidents")
    assert listed is not None and [view["id"] for view in await listed.json()] == [fire]

    worker = await _signed_in(browser, site.link("w1"))
    for path in (f"/desk/incidents/{elsewhere}", f"/api/incidents/{elsewhere}"):
        answer = await worker.goto(site.url + path)
        assert answer is not None and answer.status == 404  # another grid's incident
    listed = await worker.goto(site.url + "/api/incidents")
    assert listed is not None and [view["id"] for view in await listed.json()] == [fire, violence]
    one = await worker.goto(f"{site.url}/api/incidents/{fire}")
    assert one is not None and (await one.json())["group"] == "g1"
    other_worker = await _signed_in(browser, site.link("w9"))
    rows = await other_worker.eval_on_selector_all("#open-rows tr", "rows => rows.map(r => r.dataset.incident)")
    assert rows == [str(elsewhere)]


async def test_a_private_incident_shows_who_looked(serve: Serve, browser: Any) -> None:
    site = await serve()
    violence = site.raise_alert("g1m3", "violence", text="他又打我了")
    officer = await _signed_in(browser, site.link("f1"))
    await officer.set_viewport_size(PHONE)
    await officer.goto(f"{site.url}/desk/incidents/{violence}")
    assert await officer.inner_text("#text") == "他又打我了"
    assert await officer.is_visible("#map .here")  # the shared location, drawn offline
    timeline = await officer.inner_text("#timeline")
    assert "在工作台查看" in timeline and "刘执委" in timeline
    await officer.screenshot(path=str(screenshot_path("desk-incident-phone")), full_page=True)
    worker = await _signed_in(browser, site.link("w1"))
    await worker.goto(f"{site.url}/api/incidents/{violence}")
    with Session(site.engine) as session:
        query = select(IncidentEvent).where(IncidentEvent.incident_id == violence, IncidentEvent.kind == "viewed")
        viewers = [e.actor_id for e in session.exec(query.order_by(col(IncidentEvent.id))).all()]
        assert viewers == [site.member(session, "f1").id, site.member(session, "w1").id]


async def test_hostile_names_are_text_and_the_list_updates_live(serve: Serve, browser: Any) -> None:
    site = await serve()
    site.rename("g1m4", HOSTILE)
    page = await _signed_in(browser, site.link("w1"))
    await page.wait_for_selector("#live:not([hidden])")  # the live connection is up
    number = site.raise_alert("g1m4", "medical", text=HOSTILE)
    row = f"#open-rows tr[data-incident='{number}']"
    await page.wait_for_selector(row)  # pushed without a reload
    assert await page.inner_text(f"{row} td:nth-child(2)") == "急病"
    await page.click(f"{row} a")
    assert await page.inner_text("#reporter") == HOSTILE
    assert await page.inner_text("#text") == HOSTILE
    assert await page.evaluate("window.hacked === undefined")
    await page.click("text=English")
    assert await page.inner_text("h1#incident") == f"Incident #{number} · Medical"
    await page.screenshot(path=str(screenshot_path("desk-incident-hostile-en")), full_page=True)


async def test_health_and_report_pages(serve: Serve, browser: Any) -> None:
    site = await serve()
    page = await _signed_in(browser, site.link("w1"))
    answer = await page.goto(site.url + "/desk/health")
    assert answer is not None and answer.status == 200
    assert await page.inner_text("#health tr[data-group='g1'] td:nth-child(3)") == "10"  # households
    assert await page.inner_text("#health tr[data-group='g2'] td:nth-child(5)") == "0"  # nobody linked yet
    assert await page.query_selector("#health tr[data-group='h1']") is None  # another grid
    await page.screenshot(path=str(screenshot_path("desk-health")), full_page=True)
    await page.goto(site.url + "/desk/report")
    assert "台账" in await page.inner_text("#report")



async def test_the_live_socket_is_for_this_site_and_a_session_only(serve: Serve) -> None:
    site = await serve()
    number = site.raise_alert("g1m2", "fire")
    live = site.url.replace("http://", "ws://") + "/desk/live"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(live, origin=site.url)
        assert refused.value.status == 401  # no session yet
        answer = await client.get(site.link("w1"))
        assert answer.status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(live, origin="http://evil.example")
        assert refused.value.status == 403  # another site's page may not read the desk
        async with client.ws_connect(live, origin=site.url) as socket:
            first = await socket.receive_json()
    assert [row["number"] for row in first["open"]] == [number]
