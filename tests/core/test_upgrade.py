"""A database made by the v1 schema (tests/data/v1_database.sql) upgrades in place and keeps working."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bot.cli import app
from bot.render import render_notification
from config.settings import Settings, get_settings
from groups.alerts import raise_alert
from groups.db import dispose_engines, get_engine, session_scope
from groups.directory import linked_member
from groups.escalation import escalation_due
from groups.model import DeliveryStatus, Incident, Notification

V1_DUMP = Path(__file__).resolve().parent.parent / "data" / "v1_database.sql"


@pytest.fixture
def v1_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A SQLite file loaded from the v1 dump, and the environment pointing `yihu` at it."""
    path = tmp_path / "yihu.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(V1_DUMP.read_text(encoding="utf-8"))
    url = f"sqlite:///{path}"
    for name in ("YIHU_DATABASE_URL", "YIHU_REDIS_URL", "YIHU_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("YIHU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("YIHU_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    dispose_engines()


def revision(url: str) -> str:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        return str(connection.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_yihu_db_upgrade_brings_a_v1_database_forward(v1_url: str) -> None:
    assert revision(v1_url) == "0001"
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert revision(v1_url) == "0003_wire"
    again = CliRunner().invoke(app, ["db", "upgrade"])  # idempotent
    assert again.exit_code == 0, again.output

    engine = get_engine(v1_url)
    settings = Settings(database_url=v1_url)
    with Session(engine) as session:
        owed = session.exec(select(Notification).where(Notification.status == DeliveryStatus.pending)).all()
        assert len(owed) == 4
        assert {row.channel for row in owed} == {"telegram"}  # what every v1 row went by
        rendered = [render_notification(session, row, settings) for row in owed]  # from the current state
        # the reporter's confirmation, the DMs to the head and the neighbour, the group post
        assert sorted(o.chat_id for o in rendered if o is not None) == [-100500, 1001, 1002, 1003]
        incident = session.exec(select(Incident)).one()
        assert incident.next_escalation_at is not None
        due = incident.next_escalation_at + timedelta(seconds=1)

    with session_scope(engine) as session:  # the v1 timer still fires: the ladder climbs
        fired = escalation_due(session, int(incident.id or 0), due)
    assert fired.level == 1 and fired.effects.timers  # level 1 reached (its staff never linked), level 2 armed
    with session_scope(engine) as session:  # and new work goes on in the upgraded database
        raised = raise_alert(session, linked_member(session, 1003), due, "medical", None)
    assert raised.incident_id != incident.id and raised.effects.notifications
    with Session(engine) as session:
        new_rows = session.exec(
            select(Notification).where(col(Notification.id).in_(raised.effects.notifications))
        ).all()
        assert {row.channel for row in new_rows} == {"telegram"}
