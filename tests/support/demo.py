"""``yihu demo`` as a user starts it: a child process on free ports, its console read line by line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.render.texts import plain

START_TIMEOUT_S = 120.0  # two cores shared with other work: the bot, two workers and Redis start slowly
STOP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_env(data_dir: Path, web_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIHU_")}
    env.update(YIHU_DATA_DIR=str(data_dir), YIHU_WEB_LISTEN=f"127.0.0.1:{web_port}", YIHU_LANGUAGE="zh",
               PYTHONUNBUFFERED="1", **extra)
    return env


@dataclass
class RunningDemo:
    process: subprocess.Popen[str]
    url: str
    data_dir: Path
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def log_file(self) -> Path:
        return self.data_dir / "demo" / "yihu-demo.log"


def _pump(stream: object, into: list[str], ready: threading.Event, needle: str) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        into.append(raw.rstrip("\n"))
        if needle in raw:
            ready.set()
    ready.set()


@contextmanager
def running_demo(
    data_dir: Path, args: Sequence[str] = ("--no-walkthrough",), python: str = sys.executable,
    cwd: Path | None = None, command: Sequence[str] | None = None,
) -> Iterator[RunningDemo]:
    """``yihu demo`` on free ports until it says it is serving (the Ctrl-C line); SIGINT at the end."""
    web_port, emulator_port = free_port(), free_port()
    argv = [*(command or [python, "-m", "bot.cli"]), "demo", "--port", str(emulator_port), *args]
    process = subprocess.Popen(argv, env=demo_env(data_dir, web_port), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=cwd)
    demo = RunningDemo(process, f"http://127.0.0.1:{web_port}", data_dir)
    ready = threading.Event()
    threads = [
        threading.Thread(target=_pump, args=(process.stdout, demo.lines, ready, plain("zh", "demo.ctrl_c")),
                         daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, demo.errors, threading.Event(), "\0"), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        if not ready.wait(START_TIMEOUT_S) or process.poll() is not None:
            raise RuntimeError(f"yihu demo did not start: {demo.lines!r} {demo.errors!r}")
        yield demo
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in threads:
            thread.join(5)

