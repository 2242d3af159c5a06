"""``yihu run`` as an operator runs it: a separate process against a Bot API server (the emulator, run
standalone), embedded Redis and SQLite, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from groups.db import dispose_engines, get_engine, session_scope, upgrade
from groups.model import Member
from groups.roster import import_roster, parse_roster
from tests.support.harness import DATA
from tests.support.waiting import until as _until
from workers.embedded_redis import free_port

pytestmark = pytest.mark.timeout(180)
TOKEN = "4242:run-test-token"


def _polling(client: httpx.Client) -> bool:
    """The bot asked for updates (the emulator remembers its allowed_updates at once)."""
    return any(bot.get("allowed_updates") for bot in client.get("/_emu/state").json()["result"]["bots"])


@pytest.mark.parametrize(
    ("framework", "face"),
    [(None, "python-telegram-bot"), ("aiogram", "aiogram")],
    ids=["default-ptb", "aiogram"],
)
def test_yihu_run_serves_and_stops_gracefully(tmp_path: Path, framework: str | None, face: str) -> None:
    """The default configuration serves with python-telegram-bot; YIHU_FRAMEWORK=aiogram with aiogram."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    emulator = subprocess.Popen([sys.executable, "-m", "bot.sandbox.emulator", "--port", str(port), "--token", TOKEN])
    database = f"sqlite:///{tmp_path / 'data' / 'yihu.db'}"
    upgrade(database)
    with session_scope(get_engine(database)) as session:
        import_roster(session, parse_roster((DATA / "village.yaml").read_text(encoding="utf-8")))
        token = session.query(Member).filter(Member.key == "g1m1").one().invite_token
    dispose_engines()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIHU_")}
    env |= {"YIHU_BOT_TOKEN": TOKEN, "YIHU_TELEGRAM_API_URL": api, "YIHU_DATA_DIR": str(tmp_path / "data")}
    env["YIHU_WEB_LISTEN"] = f"127.0.0.1:{free_port()}"  # the web listener, off the default port
    if framework:
        env["YIHU_FRAMEWORK"] = framework
    yihu = Path(sys.executable).parent / "yihu"
    run = subprocess.Popen([str(yihu), "run"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=api, timeout=10) as client:
            _until(lambda: _polling(client), 90, "yihu run never started polling")
            client.post("/_emu/users", json={"id": 555, "first_name": "张大山", "language_code": "zh"})
            client.post("/_emu/send", json={"user_id": 555, "text": f"/start {token}"})
            greeting = _until(lambda: client.get("/_emu/chats/555/messages").json()["result"], 30, "no greeting")
            assert "张大山" in greeting[0]["text"]
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 0, stderr[-2000:]
        assert f"Telegram face: {face} (YIHU_FRAMEWORK)" in stderr
        # The embedded Redis went with it: nothing is left listening for this data directory.
        leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "data" / "redis")], capture_output=True, text=True)
        assert leftovers.stdout.strip() == ""
    finally:
        if run.poll() is None:
            run.kill()
        emulator.terminate()
        emulator.wait(10)
