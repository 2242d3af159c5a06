"""The web listener of ``yihu run`` and ``yihu web`` as an operator runs them: separate processes against the
emulator (run standalone), SQLite, Redis; ``/healthz`` and ``/metrics`` over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.render.texts import plain
from groups.db import dispose_engines, get_engine, session_scope, upgrade
from groups.model import Member
from groups.roster import import_roster, parse_roster
from tests.support.harness import DATA
from tests.support.waiting import until as _until
from workers.embedded_redis import EmbeddedRedis, free_port

pytestmark = pytest.mark.timeout(180)
TOKEN = "4343:web-test-token"
YIHU = Path(sys.executable).parent / "yihu"


@pytest.fixture
def api() -> Iterator[str]:
    port = free_port()
    emulator = subprocess.Popen([sys.executable, "-m", "bot.sandbox.emulator", "--port", str(port), "--token", TOKEN])
    url = f"http://127.0.0.1:{port}"
    _until(lambda: httpx.get(url + "/_emu/state").status_code == 200, 30, "the emulator did not start")
    yield url
    emulator.terminate()
    emulator.wait(10)


def _village(tmp_path: Path) -> str:
    """The test roster in the data directory's database; g1m1's invite token."""
    database = f"sqlite:///{tmp_path / 'data' / 'yihu.db'}"
    upgrade(database)
    with session_scope(get_engine(database)) as session:
        import_roster(session, parse_roster((DATA / "village.yaml").read_text(encoding="utf-8")))
        token = session.query(Member).filter(Member.key == "g1m1").one().invite_token
    dispose_engines()
    return token


def _env(tmp_path: Path, api: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIHU_")}
    env |= {"YIHU_BOT_TOKEN": TOKEN, "YIHU_TELEGRAM_API_URL": api, "YIHU_DATA_DIR": str(tmp_path / "data")}
    return env | {f"YIHU_{name.upper()}": value for name, value in settings.items()}


def _start(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(YIHU), *args], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return process.returncode, stderr


def _health(web: str) -> tuple[int, dict[str, Any]]:
    reply = httpx.get(web + "/healthz", timeout=15)
    return reply.status_code, reply.json()


def _healthy(web: str) -> dict[str, Any]:
    """The first 200 answer of ``/healthz`` (the listener starts with the process; Telegram, the webhook
    registration and the workers come after)."""
    return dict(_until(lambda: (lambda answer: answer[1] if answer[0] == 200 else None)(_health(web)), 90,
                       "/healthz never answered 200"))


def test_yihu_run_serves_health_and_metrics_in_polling_mode_and_names_redis_when_it_goes(
    tmp_path: Path, api: str
) -> None:
    _village(tmp_path)
    redis_server = EmbeddedRedis(tmp_path / "redis", persist=False).start()
    web = f"http://127.0.0.1:{free_port()}"
    env = _env(tmp_path, api, redis_url=redis_server.url, web_listen=web.removeprefix("http://"), workers="1")
    run = _start(["run"], env, tmp_path)
    try:
        checks = {"database": "ok", "redis": "ok", "telegram": "ok", "process": "ok"}
        assert _healthy(web) == {"ok": True, "checks": checks}
        metrics = httpx.get(web + "/metrics", timeout=15)
        assert metrics.status_code == 200 and "yihu_outbox_oldest_pending_seconds 0.0" in metrics.text
        _desk_through_the_bot(tmp_path, api, web)
        redis_server.stop()
        status, body = _health(web)
        assert status == 503 and body["failing"] == ["redis"]
        assert httpx.get(web + "/metrics", timeout=15).status_code == 503
    finally:
        redis_server.stop()
        _stop(run)


def _desk_through_the_bot(tmp_path: Path, api: str, web: str) -> None:
    """The grid worker sends /desk to the running bot, opens the link once and reads the scoped JSON."""
    with session_scope(get_engine(f"sqlite:///{tmp_path / 'data' / 'yihu.db'}")) as session:
        invite = session.query(Member).filter(Member.key == "w1").one().invite_token
    dispose_engines()
    with httpx.Client(base_url=api, timeout=10) as client:
        client.post("/_emu/users", json={"id": 557, "first_name": "王", "language_code": "zh"})
        client.post("/_emu/send", json={"user_id": 557, "text": f"/start {invite}"})
        _until(lambda: client.get("/_emu/chats/557/messages").json()["result"], 30, "no greeting")
        client.post("/_emu/send", json={"user_id": 557, "text": "/desk"})
        reply = _until(lambda: [m for m in client.get("/_emu/chats/557/messages").json()["result"]
                                if "/desk/login/" in (m.get("text") or "")], 30, "no desk link")
    link = next(word for word in reply[0]["text"].split() if "/desk/login/" in word)
    assert link.startswith(web + "/desk/login/")
    with httpx.Client(timeout=15) as browser:
        assert browser.get(web + "/api/incidents").status_code == 401
        login = browser.get(link)
        assert login.status_code == 303 and login.headers["location"] == "/desk"
        assert browser.get(web + "/api/incidents").json() == []
        assert browser.get(link).status_code == 403  # used once


def test_one_server_serves_the_webhook_and_the_web_when_the_listens_are_equal(tmp_path: Path, api: str) -> None:
    invite = _village(tmp_path)
    listen = f"127.0.0.1:{free_port()}"
    web = f"http://{listen}"
    env = _env(
        tmp_path, api, web_listen=listen, webhook_listen=listen, webhook_url=f"{web}/telegram/update",
        webhook_secret="s3cret-for-the-test", workers="1",
    )
    run = _start(["run"], env, tmp_path)
    try:
        assert _healthy(web)["checks"]["webhook"] == "ok"
        with httpx.Client(base_url=api, timeout=10) as client:
            client.post("/_emu/users", json={"id": 556, "first_name": "张", "language_code": "zh"})
            client.post("/_emu/send", json={"user_id": 556, "text": f"/start {invite}"})
            greeting = _until(lambda: client.get("/_emu/chats/556/messages").json()["result"], 30, "no greeting")
            assert "张大山" in greeting[0]["text"]  # the update came in through the webhook on the web listener
            [hook] = [bot for bot in client.get("/_emu/state").json()["result"]["bots"] if bot.get("webhook_url")]
            assert hook["webhook_url"] == f"{web}/telegram/update"
        assert httpx.get(web + "/metrics", timeout=15).status_code == 200
    finally:
        code, stderr = _stop(run)
    assert code == 0, stderr[-2000:]
    assert "webhook served by the web listener" in stderr


def test_yihu_web_refuses_without_redis_in_one_sentence(tmp_path: Path, api: str) -> None:
    done = subprocess.run([str(YIHU), "web"], env=_env(tmp_path, api), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == plain("zh", "cli.web_needs_redis")


def test_a_taken_web_port_is_one_sentence(tmp_path: Path, api: str, redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        env = _env(tmp_path, api, web_listen=listen, redis_url=redis_url, language="en")
        done = subprocess.run([str(YIHU), "web"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"The web listen address {listen} cannot be used")
    assert "Traceback" not in done.stderr
