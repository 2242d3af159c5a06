"""Cost: resident memory of every process of `yihu run`, idle and at the peak of a load, and start times.

Run: ``.venv/bin/python bench/cost.py [--groups 30] [--workers 2] [--framework aiogram ptb]``. For each
face: the Bot API emulator in this process, SQLite in a temp dir, `yihu run` as a child with
``YIHU_TELEGRAM_API_URL``, the token and the data dir (it starts its own embedded Redis and its worker
processes). Prints the time from start to serving (the first getUpdates the emulator sees), the RSS
(VmRSS from /proc) of each process at idle, the peak RSS of each while ``--groups`` SOS fan out (the
load bench's village), and the time from a restart (SIGTERM, then start again) to serving.

``--web-diff`` (on by default) runs the first face once more without the web listener
(bench/yihu_without_web.py) and prints what the listener adds to `yihu run` (target <= 15 MB); with the
listener, ``/healthz`` and ``/metrics`` are scraped before the idle figures and every second under load.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _village import (
    ThreadedEmulator,
    Village,
    build_village,
    children,
    describe,
    raise_sos,
    rss_mb,
    start_yihu,
    stop,
    wait_delivered,
    wait_serving,
    yihu_env,
)

from groups.db import dispose_engines

IDLE_SETTLE_S = 8.0  # after serving: the workers finish importing and go idle
WITHOUT_WEB = [sys.executable, str(Path(__file__).resolve().parent / "yihu_without_web.py")]


def scrape(web: str | None) -> None:
    """What Prometheus and a balancer would ask of the web listener: /healthz and /metrics."""
    if web is None:
        return
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(web + "/healthz", timeout=10)
        httpx.get(web + "/metrics", timeout=10)


def snapshot(root: int) -> dict[int, tuple[str, float]]:
    """pid -> (role, RSS MB) for `yihu run` and every process under it."""
    return {pid: (describe(pid), rss_mb(pid)) for pid in [root, *children(root)]}


def table(title: str, sample: dict[int, tuple[str, float]]) -> list[str]:
    lines = [f"- {title}: total {sum(mb for _, mb in sample.values()):.0f} MB"]
    for pid, (role, mb) in sorted(sample.items(), key=lambda item: item[1][0]):
        lines.append(f"  - {role} (pid {pid}): {mb:.0f} MB")
    return lines


def owed_by(village: Village) -> dict[int, int]:
    owed: dict[int, int] = {}
    for g in range(village.groups):
        for chat, n in village.expected(g).items():
            owed[chat] = owed.get(chat, 0) + n
    return owed


def run(framework: str, groups: int, workers: int, web: bool = True) -> tuple[list[str], dict[str, float]]:
    """The report's lines and the bot process's RSS (MB) at ``idle`` and ``peak``."""
    emu = ThreadedEmulator()
    lines: list[str] = []
    program = None if web else WITHOUT_WEB
    try:
        with tempfile.TemporaryDirectory(prefix="yihu-cost-") as name:
            directory = Path(name)
            village = build_village(emu, directory, groups)
            env = yihu_env(emu, directory, village.database_url, None, workers=workers, framework=framework)
            web_url = "http://" + env["YIHU_WEB_LISTEN"] if web else None
            generation = emu.poll_generation()
            process = start_yihu(["run"], env, directory / "yihu.log", program)
            try:
                to_serving = wait_serving(emu, generation)
                for _ in range(3):
                    scrape(web_url)
                time.sleep(IDLE_SETTLE_S)
                idle = snapshot(process.pid)
                # Peak: sample every 50 ms while the SOS fan out.
                peak: dict[int, tuple[str, float]] = {}
                start_call = len(emu.calls())
                raise_sos(emu, village, range(groups))
                owed = owed_by(village)
                deadline = time.monotonic() + 120
                scraped = 0.0
                while time.monotonic() < deadline:
                    if time.monotonic() - scraped >= 1.0:
                        scrape(web_url)
                        scraped = time.monotonic()
                    for pid, (role, mb) in snapshot(process.pid).items():
                        if mb >= peak.get(pid, (role, 0.0))[1]:
                            peak[pid] = (role, mb)
                    got = wait_delivered(emu, owed, 0, start_call)
                    if all(got.count.get(chat, 0) >= n for chat, n in owed.items()):
                        break
                    time.sleep(0.05)
                load_time = time.monotonic() - (deadline - 120)
                # Restart: a graceful stop, then start again.
                stopping = time.monotonic()
                stop(process)
                stopped = time.monotonic() - stopping
                generation = emu.poll_generation()
                process = start_yihu(["run"], env, directory / "yihu.log", program)
                restart = wait_serving(emu, generation)
            finally:
                stop(process)
            dispose_engines()
    finally:
        emu.stop()
    listener = "with the web listener" if web else "WITHOUT the web listener"
    lines.append(f"### `yihu run` ({framework} face, {workers} workers, embedded Redis, SQLite, {listener})")
    lines.append(f"- start to serving (first getUpdates): {to_serving:.1f} s")
    lines += table(f"idle ({IDLE_SETTLE_S:.0f} s after serving)", idle)
    lines += table(f"peak during {groups} SOS at once ({groups * 11} messages, {load_time:.1f} s)", peak)
    workers_peak = [mb for role, mb in peak.values() if role == "worker"]
    total_peak = sum(mb for _, mb in peak.values())
    lines.append(
        f"- targets: each worker <= 80 MB: max {max(workers_peak, default=0):.0f} MB "
        f"{ok(max(workers_peak, default=0) <= 80)}; all processes <= 300 MB: {total_peak:.0f} MB at peak "
        f"{ok(total_peak <= 300)}"
    )
    lines.append(
        f"- graceful stop (SIGTERM to exit) {stopped:.1f} s; restart to serving {restart:.1f} s "
        f"(target <= 5 s: {ok(restart <= 5)})"
    )
    return lines, {"idle": _bot_rss(idle), "peak": _bot_rss(peak), "total_peak": total_peak}


def _bot_rss(sample: dict[int, tuple[str, float]]) -> float:
    return sum(mb for role, mb in sample.values() if role.startswith("yihu run"))


def ok(good: bool) -> str:
    return "ok" if good else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--framework", nargs="+", default=["aiogram", "ptb"], choices=["aiogram", "ptb"])
    parser.add_argument("--web-diff", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the first face without the web listener and print the difference")
    args = parser.parse_args()
    with_web: dict[str, dict[str, float]] = {}
    for framework in args.framework:
        lines, with_web[framework] = run(framework, args.groups, args.workers)
        print("\n".join(lines), flush=True)
        print(flush=True)
    if args.web_diff:
        framework = args.framework[0]
        lines, without = run(framework, args.groups, args.workers, web=False)
        print("\n".join(lines), flush=True)
        added_idle = with_web[framework]["idle"] - without["idle"]
        added_peak = with_web[framework]["peak"] - without["peak"]
        print(
            f"- the web listener (health, metrics, the desk; scraped) adds to the bot process: "
            f"{added_idle:.1f} MB idle, {added_peak:.1f} MB at peak "
            f"(target <= 15 MB: {ok(max(added_idle, added_peak) <= 15)}); "
            f"`yihu run` in all at peak {with_web[framework]['total_peak']:.0f} MB "
            f"(target <= 300 MB: {ok(with_web[framework]['total_peak'] <= 300)})",
            flush=True,
        )


if __name__ == "__main__":
    main()
