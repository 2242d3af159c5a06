"""Headless Chromium from Debian's packages, driven by Playwright for Python (pinned; never
``playwright install``). Without the browser the browser tests skip, saying how to get it."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("YIHU_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium")
# Screenshots the browser tests take, kept as test artefacts (not committed).
ARTIFACTS = Path(os.environ.get("YIHU_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
# This machine's network is closed: without these, Chromium keeps trying Google's hosts at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


async def launch() -> AsyncIterator[object]:
    """A headless Chromium (a Playwright ``Browser``), or a skip naming what is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver (.ci/run does)")
    from playwright.async_api import async_playwright  # noqa: PLC0415  (only where a browser runs)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
