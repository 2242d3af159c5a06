"""What every ``yihu`` command shares: settings, the migrated database, failing with an exit status, output."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from config.settings import MissingSetting, Settings, get_settings

if TYPE_CHECKING:
    from sqlmodel import Session

_F = TypeVar("_F", bound=Callable[..., Any])


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="table for people; json for programs (stdout holds only the JSON)."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with ``message`` on stderr and exit status ``code``."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    return get_settings()


def database(settings: Settings) -> str:
    """The database URL, migrated to the latest schema (every command that uses the database calls this)."""
    from groups.db import upgrade  # noqa: PLC0415  (lazy: see bot.cli)

    url = settings.resolved_database_url
    upgrade(url)
    return url


@contextmanager
def session(settings: Settings) -> Iterator[Session]:
    from groups.db import get_engine, session_scope  # noqa: PLC0415  (lazy: see bot.cli)

    with session_scope(get_engine(database(settings))) as db_session:
        yield db_session


def handle_missing_setting(function: _F) -> _F:
    """A missing setting is the operator's to fix: one sentence and exit status 2, no traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except MissingSetting as exc:
            from bot.cli.messages import say  # noqa: PLC0415  (lazy: see bot.cli)

            fail(say(f"setting.{exc.key}", **exc.params), 2)

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
