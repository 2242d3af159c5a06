"""The village simulator as ``yihu demo`` serves it (the real demo: emulator, bot, workers, Redis), in a real
browser: 🆘 on one phone lights up the others and the group chat, 我来了 changes the group post's tally,
text, location and voice from a phone, the language switch. And the demo's console: only the walkthrough
and the URLs, a taken port in one sentence."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.render.texts import plain
from tests.support.browser import screenshot_path
from tests.support.demo import RunningDemo, demo_env, free_port, running_demo

ROOT = Path(__file__).resolve().parents[2]
SEEN_MS = 10_000  # how long the browser looks for what must appear (the contract's 2 s is measured in bench/)
HOSTILE = '<img src=x onerror="window.hacked=1">'
LOG_LINE = re.compile(r"\b(INFO|WARNING|DEBUG)\b|rq\.worker|Traceback")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    with running_demo(tmp_path_factory.mktemp("demo")) as running:
        yield running


def phone(page: Any, key: str) -> Any:
    return page.locator(f'[data-member="{key}"]')


async def open_simulator(browser: Any, url: str) -> Any:
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    await page.goto(url)
    await page.locator("#sim-status.live").wait_for(timeout=SEEN_MS)  # the socket is open
    return page


async def test_sos_on_one_phone_lights_up_the_others_and_i_am_coming_changes_the_tally(
    demo: RunningDemo, browser: Any
) -> None:
    from playwright.async_api import expect  # noqa: PLC0415  (only where a browser runs)

    page = await open_simulator(browser, demo.url + "/")
    group = page.locator('[data-chat="group:g1"]')
    sos = phone(page, "g1m5").locator(".keyboard button", has_text="🆘")
    await sos.click()

    for key in ("g1m2", "g1m1", "g1m10"):  # a neighbour, the head, another neighbour
        await expect(phone(page, key).locator(".msg.alert", has_text="🆘 #1")).to_be_visible(timeout=SEEN_MS)
        await expect(phone(page, key)).to_have_class(re.compile(r"\blit\b"))
    await expect(phone(page, "g1m5").locator(".msg", has_text="#1")).to_be_visible(timeout=SEEN_MS)
    post = group.locator(".msg.alert", has_text="🆘 #1")
    await expect(post).to_be_visible(timeout=SEEN_MS)

    await phone(page, "g1m2").locator(".msg.alert", has_text="🆘 #1").locator("button", has_text="我来了").click()
    await expect(post).to_contain_text("我来了 1", timeout=SEEN_MS)  # the group post, edited in place
    await expect(post).to_contain_text("我来了：李秀英")
    assert await group.locator(".msg.alert", has_text="🆘 #1").count() == 1

    shot = screenshot_path("simulator")
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(shot), animations="disabled")
    if os.environ.get("YIHU_UPDATE_DOCS_SCREENSHOT"):  # the README's picture, refreshed on purpose only
        assert shot.stat().st_size <= 200_000, "keep the README's picture small"
        shutil.copyfile(shot, ROOT / "docs" / "simulator.png")


async def test_a_phone_sends_text_a_location_and_a_voice_note_and_the_group_chat_speaks_as_a_member(
    demo: RunningDemo, browser: Any
) -> None:
    from playwright.async_api import expect  # noqa: PLC0415

    page = await open_simulator(browser, demo.url + "/")
    mine = phone(page, "g1m3")
    await mine.locator("input[name=text]").fill(HOSTILE)
    await mine.locator("button.send").click()
    await expect(mine.locator(".msg.out", has_text=HOSTILE)).to_be_visible(timeout=SEEN_MS)  # text, never HTML
    assert await page.evaluate("window.hacked === undefined")

    await mine.locator("button.tool-location").click()
    await mine.locator("button.place", has_text="村委会").click()
    await expect(mine.locator(".msg.out .location")).to_contain_text("📍", timeout=SEEN_MS)
    await mine.locator("button.tool-location").click()
    await mine.locator("img.map").click(position={"x": 40, "y": 40})  # a point picked on the map
    await expect(mine.locator(".msg.out .location")).to_have_count(2, timeout=SEEN_MS)
    await mine.locator("button.tool-voice").click()
    await expect(mine.locator(".msg.out .voice")).to_contain_text("🎤", timeout=SEEN_MS)

    group = page.locator('[data-chat="group:g1"]')
    await group.locator("select[name=member]").select_option("g1m4")
    await group.locator("input[name=text]").fill("大家注意安全")
    await group.locator("button.send").click()
    said = group.locator(".msg.user", has_text="大家注意安全")
    await expect(said).to_be_visible(timeout=SEEN_MS)
    await expect(said.locator(".sender")).to_have_text("刘桂兰")


async def test_the_page_switches_to_english_and_keeps_the_group(demo: RunningDemo, browser: Any) -> None:
    from playwright.async_api import expect  # noqa: PLC0415

    page = await open_simulator(browser, demo.url + "/?group=g2")
    await expect(page.locator("h1")).to_contain_text("村庄模拟器")  # Chinese first
    assert await page.locator('[data-member="g2m1"]').count() == 1
    assert await page.locator('[data-chat="group:g2"]').count() == 1
    await page.click("text=English")
    await expect(page.locator("h1")).to_contain_text("Village simulator")
    await expect(page.locator(".sim-ladder")).to_contain_text("30 s")
    assert await page.locator('[data-member="g2m1"] .phone-role').inner_text() == "head · 1号户"
    await expect(page.locator('[data-member="w1"] .tool-location')).to_have_text("📍 Location")
    assert await page.locator('[data-chat="group:g2"]').count() == 1  # still the second group
    await page.click("text=中文")
    await expect(page.locator("h1")).to_contain_text("村庄模拟器")


def test_the_console_shows_the_simulator_url_first_and_no_log_lines(demo: RunningDemo) -> None:
    assert demo.lines[0] == plain("zh", "sim.console.open", url=demo.url + "/")
    assert [line for line in demo.lines if LOG_LINE.search(line)] == []
    assert demo.errors == []
    log = demo.log_file.read_text(encoding="utf-8")
    assert "rq.worker" in log  # the workers' lines went to the log file


@pytest.mark.parametrize("taken", ["web", "emulator"])
def test_a_taken_port_ends_the_demo_with_one_sentence_naming_it(taken: str, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        busy = holder.getsockname()[1]
        web_port, emulator_port = (busy, free_port()) if taken == "web" else (free_port(), busy)
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "demo", "--port", str(emulator_port)],
            env=demo_env(tmp_path, web_port), capture_output=True, text=True, timeout=60, check=False,
        )
    option = "YIHU_WEB_LISTEN=127.0.0.1:<port>" if taken == "web" else "yihu demo --port <port>"
    what = plain("zh", f"sim.console.what_{taken}")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        plain("zh", "sim.console.port_taken", port=busy, what=what, option=option)
    ]
    assert result.stdout == ""


async def test_another_site_cannot_open_the_simulators_socket(demo: RunningDemo) -> None:
    import aiohttp  # noqa: PLC0415

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(demo.url.replace("http", "ws") + "/sim/ws", origin="http://evil.example")
        assert refused.value.status == 403
        async with session.ws_connect(demo.url.replace("http", "ws") + "/sim/ws", origin=demo.url) as ws:
            first = await ws.receive_json(timeout=SEEN_MS / 1000)
            assert first["type"] == "messages" and first["live"] is False


async def test_left_unanswered_by_the_head_the_ladder_climbs_to_the_grid_workers_phone(
    demo: RunningDemo, browser: Any
) -> None:
    """#1 of the first test: a neighbour came, the head never acknowledged; after the demo's 30 s the grid
    worker is told (the test waits for it, up to twice that)."""
    from playwright.async_api import expect  # noqa: PLC0415

    page = await open_simulator(browser, demo.url + "/")
    await expect(phone(page, "w1").locator(".msg", has_text="#1")).to_be_visible(timeout=60_000)
    await expect(phone(page, "p1").locator(".msg", has_text="#1")).to_have_count(0)


async def test_the_simulator_opens_the_desk_as_the_grid_worker(demo: RunningDemo, browser: Any) -> None:
    """The header's button has the grid worker send /desk; the login link the bot sends shows in their
    phone as a link, and opening it lands on the desk."""
    from playwright.async_api import expect  # noqa: PLC0415

    page = await open_simulator(browser, demo.url + "/")
    await page.locator("button.sim-desk").click()
    link = phone(page, "w1").locator(".msg a", has_text="/desk/login/")
    await expect(link).to_be_visible(timeout=SEEN_MS)
    href = await link.get_attribute("href")
    assert href is not None and href.startswith(demo.url + "/desk/login/")
    async with page.expect_popup() as popup_info:
        await link.click()
    desk = await popup_info.value
    await desk.wait_for_load_state()
    assert desk.url.rstrip("/") == demo.url + "/desk"  # logged in, the link no longer in the address bar
    assert plain("zh", "sim.console.desk", url=demo.url + "/desk") in demo.lines
