"""``yihu backup FILE`` while ``yihu run`` serves and villagers raise alerts: every copy is consistent, and a
copy restored (YIHU_DATABASE_URL pointed at it) serves — its incidents are there and a new alert works."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from groups.db import dispose_engines, get_engine, session_scope, upgrade
from groups.model import Member
from groups.roster import import_roster, parse_roster
from tests.e2e.test_run import TOKEN, _polling, _until
from tests.support.harness import DATA
from workers.embedded_redis import free_port

pytestmark = pytest.mark.timeout(240)
YIHU = Path(sys.executable).parent / "yihu"
RAISERS = ("g1m2", "g1m3", "g1m4", "g2m1", "g2m2")  # each raises one alert while the backups run
LATE = "g1m5"  # raises on the restored copy


def _environment(tmp_path: Path, name: str, database: Path, api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIHU_")}
    return env | {
        "YIHU_BOT_TOKEN": TOKEN,
        "YIHU_TELEGRAM_API_URL": api,
        "YIHU_DATA_DIR": str(tmp_path / name),  # its own embedded Redis
        "YIHU_DATABASE_URL": f"sqlite:///{database}",
        "YIHU_LANGUAGE": "en",
        "YIHU_WEB_LISTEN": f"127.0.0.1:{free_port()}",  # the web listener, off the default port
    }


def _yihu(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(YIHU), *args], env=env, capture_output=True, text=True, timeout=60)


def _incidents(env: dict[str, str]) -> list[dict[str, Any]]:
    listed = _yihu(env, "incidents", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    views: list[dict[str, Any]] = json.loads(listed.stdout)
    return views


def _serve(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(YIHU), "run"], env=env, cwd=cwd, stderr=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]


def _confirmation(client: httpx.Client, user: int) -> str | None:
    for message in client.get(f"/_emu/chats/{user}/messages").json()["result"]:
        if "Alert sent" in message.get("text", ""):
            return str(message["text"])
    return None


def _keep_adding_words(api: str, users: list[int], stop: threading.Event) -> None:
    with httpx.Client(base_url=api, timeout=10) as client:
        n = 0
        while not stop.is_set():
            client.post("/_emu/send", json={"user_id": users[n % len(users)], "text": f"word {n}"})
            n += 1
            stop.wait(0.05)


def test_backup_while_serving_and_serve_from_the_copy(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    live = tmp_path / "live" / "yihu.db"
    upgrade(f"sqlite:///{live}")
    with session_scope(get_engine(f"sqlite:///{live}")) as session:
        import_roster(session, parse_roster((DATA / "village.yaml").read_text(encoding="utf-8")))
        tokens = {m.key: m.invite_token for m in session.query(Member).all()}
    dispose_engines()
    users = {key: 700 + n for n, key in enumerate((*RAISERS, LATE))}
    emulator = subprocess.Popen([sys.executable, "-m", "bot.sandbox.emulator", "--port", str(port), "--token", TOKEN])
    env = _environment(tmp_path, "live", live, api)
    serving = _serve(env, tmp_path)
    restored: subprocess.Popen[str] | None = None
    try:
        with httpx.Client(base_url=api, timeout=10) as client:
            _until(lambda: _polling(client), 90, "yihu run never started polling")
            for key, user in users.items():
                client.post("/_emu/users", json={"id": user, "first_name": key, "language_code": "en"})
                client.post("/_emu/send", json={"user_id": user, "text": f"/start {tokens[key]}"})
            for user in users.values():
                _until(lambda u=user: client.get(f"/_emu/chats/{u}/messages").json()["result"], 60, "no greeting")

            # Alerts raised; then, while copies are taken, the reporters keep adding words (each one a
            # timeline line and a forward to everyone told, written and delivered by yihu meanwhile).
            for key in RAISERS:
                client.post("/_emu/send", json={"user_id": users[key], "text": "6995"})
            for key in RAISERS:
                _until(lambda k=key: _confirmation(client, users[k]), 60, f"{key} got no confirmation")
            stop = threading.Event()
            writer = threading.Thread(target=_keep_adding_words, args=(api, [users[k] for k in RAISERS], stop))
            writer.start()
            copies = []
            try:
                for n in range(4):
                    copy = tmp_path / f"copy{n}.db"
                    made = _yihu(env, "backup", str(copy))
                    assert made.returncode == 0, made.stderr
                    assert f"backed up {live} to {copy}" in made.stdout
                    copies.append(copy)
            finally:
                stop.set()
                writer.join(30)
            final = tmp_path / "final.db"
            assert _yihu(env, "backup", str(final)).returncode == 0  # yihu still serving

        _stop(serving)
        for copy in copies:
            # Consistent: an alert is in a copy with everything its transaction wrote, or not at all.
            with sqlite3.connect(copy) as connection:
                assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            views = _incidents(_environment(tmp_path, "check", copy, api))
            for view in views:
                assert [e["kind"] for e in view["timeline"]][:1] == ["raised"]
                assert any(n["purpose"] == "confirmation" for n in view["notifications"])
        assert not list(tmp_path.glob(".*.partial"))

        # Restore: point YIHU_DATABASE_URL at the copy and serve from it.
        restored_env = _environment(tmp_path, "restored", final, api)
        before = _incidents(restored_env)
        assert sorted(v["reporter"] for v in before) == sorted(RAISERS)
        restored = _serve(restored_env, tmp_path)
        with httpx.Client(base_url=api, timeout=10) as client:
            _until(lambda: _polling(client), 90, "the restored yihu never started polling")
            client.post("/_emu/send", json={"user_id": users[LATE], "text": "6995"})
            confirmed = _until(lambda: _confirmation(client, users[LATE]), 60, "no confirmation from the copy")
        _stop(restored)
        restored = None
        after = _incidents(restored_env)
        new = [v for v in after if v["reporter"] == LATE]
        assert len(after) == len(before) + 1 and len(new) == 1 and f"#{new[0]['id']}" in confirmed
    finally:
        for process in (serving, restored):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        emulator.terminate()
        emulator.wait(10)
