"""The shared web application: security headers, escaping, the language switch, in a real browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import create_engine

from bot.web.app import TEMPLATES, WebContext, build_web_app, render
from config.settings import Settings
from tests.support.browser import screenshot_path

HOSTILE = '<script>window.hacked = 1</script><b onmouseover="x">张三</b>'


async def _page(request: web.Request) -> web.Response:
    return render(request, "base.html")


def _hostile_part(app: web.Application) -> None:
    async def name(request: web.Request) -> web.Response:
        snippet = request.app[TEMPLATES].from_string("<p id=name>{{ name }}</p>")
        return web.Response(text=snippet.render(name=HOSTILE), content_type="text/html")

    app.router.add_get("/", _page)
    app.router.add_get("/name", name)


@pytest.fixture
async def site(tmp_path: Any) -> AsyncIterator[str]:
    engine = create_engine(f"sqlite:///{tmp_path / 'web.db'}")
    app = build_web_app(WebContext(Settings(data_dir=tmp_path), engine), [_hostile_part])
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
    engine.dispose()


async def test_pages_escape_names_carry_a_csp_and_switch_language(site: str, browser: Any) -> None:
    page = await browser.new_page()
    response = await page.goto(site + "/")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    assert await page.inner_text(".brand") == "一呼 · 十户联防"  # Chinese first
    await page.click("text=English")
    assert await page.inner_text(".brand") == "yihu · ten-household joint defence"
    await page.goto(site + "/")  # remembered in a cookie
    assert await page.inner_text(".brand") == "yihu · ten-household joint defence"
    await page.goto(site + "/name")
    assert await page.inner_text("#name") == HOSTILE  # shown as text, never run
    assert await page.evaluate("window.hacked === undefined")
    await page.screenshot(path=str(screenshot_path("web-app-escaping")))
