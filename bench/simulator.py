"""The village simulator in a real browser against a real ``yihu demo`` (emulator, bot, workers, Redis):
how long the page takes to load and go live, and how long from a 🆘 tap on one phone until the other
phones of the group show the alert (the contract: within 2 s).

    python bench/simulator.py [--loads 5] [--rounds 8]

Needs Debian's Chromium (/usr/bin/chromium) and Playwright (the dev extra). Prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.async_api import async_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.demo import running_demo

# Tap 🆘 on ``reporter``'s phone and resolve when every other villager's phone of the page shows one more
# alert: {first, all} in ms after the tap (the page's clock; animation frames, ~16 ms apart).
TAP_AND_WATCH = """
(reporter) => {
  const others = [...document.querySelectorAll('[data-member]')]
    .filter(e => e.dataset.member !== reporter && /^g\\d+m\\d+$/.test(e.dataset.member));
  const before = new Map(others.map(e => [e, e.querySelectorAll('.msg.alert').length]));
  const sos = [...document.querySelectorAll(`[data-member="${reporter}"] .kb-button`)]
    .find(b => b.textContent.includes('🆘'));
  const t0 = performance.now();
  let first = null;
  sos.click();
  return new Promise(resolve => {
    const check = () => {
      const now = performance.now();
      const shown = others.filter(e => e.querySelectorAll('.msg.alert').length > before.get(e)).length;
      if (shown && first === null) first = now - t0;
      if (shown === others.length) resolve({first: first, all: now - t0});
      else requestAnimationFrame(check);
    };
    check();
  });
}
"""


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))]
    median = statistics.median(ordered)
    return f"median {median:7.0f} ms   p90 {p90:7.0f} ms   max {ordered[-1]:7.0f} ms   (n={len(ordered)})"


async def measure(url: str, loads: int, rounds: int) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        load_ms: list[float] = []
        live_ms: list[float] = []
        for _ in range(loads):
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            start = time.perf_counter()
            await page.goto(url + "/")
            load_ms.append((time.perf_counter() - start) * 1000)
            await page.locator("#sim-status.live").wait_for()
            await page.locator('[data-member="g1m1"] .msg').first.wait_for()
            live_ms.append((time.perf_counter() - start) * 1000)
            await page.close()
        pages: dict[str, Any] = {}
        for group in ("g1", "g2"):
            pages[group] = await browser.new_page(viewport={"width": 1280, "height": 720})
            await pages[group].goto(f"{url}/?group={group}")
            await pages[group].locator("#sim-status.live").wait_for()
        first_ms: list[float] = []
        all_ms: list[float] = []
        for n in range(rounds):
            group = ("g1", "g2")[n % 2]
            reporter = f"{group}m{3 + n // 2}"
            result = await pages[group].evaluate(TAP_AND_WATCH, reporter)
            first_ms.append(result["first"])
            all_ms.append(result["all"])
            await asyncio.sleep(2.0)  # the group chats' rate limit (20 posts a minute) stays out of the figures
        await browser.close()
    print(f"page load (navigation until the load event)       {summary(load_ms)}")
    print(f"page live (socket open, every chat drawn)         {summary(live_ms)}")
    print(f"🆘 tap -> first other phone shows the alert        {summary(first_ms)}")
    print(f"🆘 tap -> every other phone of the group shows it  {summary(all_ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp, running_demo(Path(tmp)) as demo:
        asyncio.run(measure(demo.url, args.loads, args.rounds))


if __name__ == "__main__":
    main()
