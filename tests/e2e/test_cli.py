"""The `yihu` command line: roster import/export, invites and incidents, in process and as the installed script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from bot.cli import app
from bot.tables import display_width, render_table
from config.settings import get_settings
from groups.db import dispose_engines, get_engine, session_scope
from groups.model import HouseholdGroup, Incident, IncidentEvent, Member, Notification, Response

DATA = Path(__file__).resolve().parent.parent / "data"
ROOT = Path(__file__).resolve().parent.parent.parent
YIHU = ROOT / ".venv" / "bin" / "yihu"
SETTINGS = (
    "YIHU_BOT_TOKEN",
    "YIHU_BOT_USERNAME",
    "YIHU_TELEGRAM_API_URL",
    "YIHU_DATABASE_URL",
    "YIHU_DATA_DIR",
    "YIHU_LANGUAGE",
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A clean YIHU_* environment with its data directory in tmp_path (and no stray .env)."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("YIHU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("YIHU_BOT_USERNAME", "yihu_test_bot")
    get_settings.cache_clear()
    yield {"YIHU_DATA_DIR": str(tmp_path / "data"), "YIHU_BOT_USERNAME": "yihu_test_bot"}
    get_settings.cache_clear()
    dispose_engines()


def run(*args: str) -> Result:
    get_settings.cache_clear()  # each invocation reads the environment afresh, as a new process would
    return CliRunner().invoke(app, list(args))


def invites_json() -> dict[str, Any]:
    result = run("invites", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_roster_invites_and_export(
    env: dict[str, str], tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YIHU_DATABASE_URL", database_url)
    monkeypatch.setenv("YIHU_LANGUAGE", "en")  # the operator's messages in English (zh: test_operator.py)

    result = run("roster", "import", str(DATA / "roster.yaml"))
    assert result.exit_code == 0, result.stderr
    assert "members: 10 created" in result.stdout

    invites = invites_json()
    assert [m["key"] for m in invites["members"]] == ["f1", "m1", "m2", "m3", "m4", "m5", "m6", "p1", "w1", "w2"]
    assert all(m["link"] == f"https://t.me/yihu_test_bot?start={m['token']}" for m in invites["members"])
    assert [g["code"] for g in invites["groups"]] == ["g1", "g2", "g3"]

    table = run("invites")
    assert table.exit_code == 0
    assert "张三" in table.stdout and invites["members"][1]["link"] in table.stdout
    assert f"/bind {invites['groups'][0]['bind_code']}" in table.stdout

    again = run("roster", "import", str(DATA / "roster.yaml"))
    assert again.exit_code == 0 and "nothing changed" in again.stdout
    assert invites_json() == invites

    exported = run("roster", "export")
    assert exported.exit_code == 0 and "兰城街道第三网格" in exported.stdout
    out = tmp_path / "export.yaml"
    assert run("roster", "export", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == exported.stdout
    reimported = run("roster", "import", str(out))
    assert reimported.exit_code == 0 and "nothing changed" in reimported.stdout


def test_bad_roster_prints_every_error_and_changes_nothing(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YIHU_LANGUAGE", "en")
    assert run("roster", "import", str(DATA / "roster.yaml")).exit_code == 0
    before = invites_json()

    result = run("roster", "import", str(DATA / "bad_references.yaml"))

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert f"{DATA / 'bad_references.yaml'}: grids[0].groups[1].head: m1 is not a member of group g2." in lines
    assert any("grids[0].police[0]: p9 is not in staff" in line for line in lines)
    assert lines[-1].endswith("3 error(s); nothing was imported.")
    assert result.stdout == ""
    assert invites_json() == before

    syntax = run("roster", "import", str(DATA / "bad_syntax.yaml"))
    assert syntax.exit_code == 1 and "line 4, column 1: YAML syntax error" in syntax.stderr
    assert invites_json() == before


def test_db_upgrade_creates_the_database(env: dict[str, str]) -> None:
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert (Path(env["YIHU_DATA_DIR"]) / "yihu.db").is_file()
    assert run("db", "upgrade").exit_code == 0  # idempotent


def test_incidents(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIHU_LANGUAGE", "en")
    empty = run("incidents", "--format", "json")
    assert empty.exit_code == 0, empty.stderr
    assert json.loads(empty.stdout) == []
    assert run("incidents").stdout.strip() == "no incidents"

    assert run("roster", "import", str(DATA / "roster.yaml")).exit_code == 0
    engine = get_engine(get_settings().resolved_database_url)
    with session_scope(engine) as session:
        keys = {m.key: m.id for m in session.exec(select(Member)).all() if m.id is not None}
        group_id = session.exec(select(HouseholdGroup.id).where(HouseholdGroup.code == "g2")).one()
        assert group_id is not None
        at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
        incident = Incident(group_id=group_id, reporter_id=keys["m5"], category="medical", created_at=at)
        session.add(incident)
        session.flush()
        assert incident.id is not None
        session.add(IncidentEvent(incident_id=incident.id, kind="raised", actor_id=keys["m5"], at=at))
        session.add(Response(incident_id=incident.id, member_id=keys["m4"], kind="coming", at=at))
        session.add(Notification(incident_id=incident.id, recipient_id=keys["m4"], purpose="alert", status="sent"))
        session.add(Notification(incident_id=incident.id, group_id=group_id, purpose="alert"))

    result = run("incidents", "--format", "json", "--status", "open")
    assert result.exit_code == 0, result.stderr
    (view,) = json.loads(result.stdout)
    assert {k: view[k] for k in ("id", "status", "category", "group", "reporter", "escalation_level")} == {
        "id": incident.id,
        "status": "open",
        "category": "medical",
        "group": "g2",
        "reporter": "m5",
        "escalation_level": 0,
    }
    assert view["acknowledged_by"] is None
    assert view["responses"] == [{"member": "m4", "kind": "coming", "at": "2026-03-01T08:00:00Z"}]
    assert [(e["kind"], e["actor"]) for e in view["timeline"]] == [("raised", "m5")]
    assert [(n["recipient"], n["purpose"], n["status"]) for n in view["notifications"]] == [
        ("m4", "alert", "sent"),
        ("group:g2", "alert", "pending"),
    ]
    assert json.loads(run("incidents", "-f", "json", "--status", "resolved").stdout) == []

    table = run("incidents")
    assert table.exit_code == 0
    header, _rule, row = table.stdout.strip().splitlines()
    assert header.split()[:5] == ["#", "status", "category", "group", "reporter"]
    assert row.split()[:5] == [f"#{incident.id}", "open", "medical", "g2", "m5"]
    assert "coming:1" in row and "1/2" in row

    bad = run("incidents", "--status", "closed")
    assert bad.exit_code == 2 and "closed" in bad.stderr


def test_invites_without_username_or_token(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YIHU_BOT_USERNAME")
    result = run("invites", "--format", "json")
    assert result.exit_code == 2
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "YIHU_BOT_USERNAME" in message and "\n" not in message and "Traceback" not in message


def test_missing_settings_are_said_in_the_operators_language(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("YIHU_BOT_USERNAME")
    monkeypatch.delenv("YIHU_BOT_TOKEN", raising=False)
    for language, invites_words, worker_words in (
        ("zh", "邀请链接需要机器人的用户名", "没有设置 YIHU_BOT_TOKEN"),
        ("en", "Invite links need the bot's username", "YIHU_BOT_TOKEN is not set"),
    ):
        monkeypatch.setenv("YIHU_LANGUAGE", language)
        invites, worker = run("invites"), run("worker")
        assert invites.exit_code == 2 and invites_words in invites.stderr, invites.stderr
        assert worker.exit_code == 2 and worker_words in worker.stderr, worker.stderr


class _FakeBotApi(BaseHTTPRequestHandler):
    """Answers getMe like the Bot API for the token 123:abc, 401 for any other."""

    def do_GET(self) -> None:
        if self.path == "/bot123:abc/getMe":
            status, body = 200, {"ok": True, "result": {"id": 123, "is_bot": True, "username": "village_sos_bot"}}
        else:
            status, body = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def bot_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeBotApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_invites_ask_getme_for_the_username(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, bot_api: str) -> None:
    assert run("roster", "import", str(DATA / "roster.yaml")).exit_code == 0
    monkeypatch.delenv("YIHU_BOT_USERNAME")
    monkeypatch.setenv("YIHU_TELEGRAM_API_URL", bot_api)
    monkeypatch.setenv("YIHU_BOT_TOKEN", "123:abc")

    invites = invites_json()
    assert invites["members"][0]["link"].startswith("https://t.me/village_sos_bot?start=")

    monkeypatch.setenv("YIHU_BOT_TOKEN", "123:wrong")
    refused = run("invites")
    assert refused.exit_code == 2 and "Unauthorized" in refused.stderr and "Traceback" not in refused.stderr


def test_installed_script_json_and_light_import(env: dict[str, str]) -> None:
    if not YIHU.exists():
        pytest.skip("no .venv/bin/yihu")
    environment = {**os.environ, **env}
    imported = subprocess.run(
        [str(YIHU), "roster", "import", str(DATA / "roster.yaml")], env=environment, capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
    listed = subprocess.run([str(YIHU), "invites", "--format", "json"], env=environment, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["members"]) == 10

    # `yihu --help` and the data commands must not pay for a Telegram library.
    probe = "import sys, bot.cli; print(sorted(m for m in ('aiogram', 'telegram', 'sqlmodel') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_render_table_aligns_wide_characters() -> None:
    assert display_width("张三") == 4 and display_width("m1") == 2
    text = render_table(["key", "name", "n"], [["m1", "张三", 1], ["w10", "Wang", None]])
    lines = text.splitlines()
    assert lines[0] == "key  name  n"
    assert lines[2] == "m1   张三  1"
    assert lines[3] == "w10  Wang  -"
    assert {display_width(line.rstrip()) for line in lines[2:]} == {display_width(lines[0])}


def test_help_for_every_command(env: dict[str, str]) -> None:
    for command in (
        ["--help"],
        ["db", "--help"],
        ["roster", "import", "--help"],
        ["roster", "export", "--help"],
        ["invites", "--help"],
        ["incidents", "--help"],
    ):
        result = run(*command)
        assert result.exit_code == 0 and "Usage" in result.stdout
    assert "--status" in run("incidents", "--help").stdout


def test_export_of_an_empty_database(env: dict[str, str]) -> None:
    assert run("roster", "export").stdout == "grids: []\nstaff: []\n"
    with Session(get_engine(get_settings().resolved_database_url)) as session:
        assert session.exec(select(Member)).all() == []
