"""Shared fixtures: real Redis, real SQLite, PostgreSQL when YIHU_TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy

from groups.db import dispose_engines, upgrade
from workers.embedded_redis import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server on a free port, for the whole test session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """The session's Redis, emptied for each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'yihu.db'}"
    upgrade(url)
    yield url
    dispose_engines()


def _reset_postgres(url: str) -> None:
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sqlalchemy.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url = os.environ.get("YIHU_TEST_DATABASE_URL")
    if not url:
        pytest.skip("YIHU_TEST_DATABASE_URL is not set")
    dispose_engines()
    _reset_postgres(url)
    upgrade(url)
    yield url
    dispose_engines()


@pytest.fixture(params=["ptb", "aiogram"])
def framework(request: pytest.FixtureRequest) -> str:
    """Each end-to-end test runs on both Telegram faces: python-telegram-bot (the default) and aiogram."""
    return str(request.param)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs on SQLite, and on PostgreSQL when one is configured."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))
