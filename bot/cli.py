"""The ``yihu`` command line: database, roster, invite cards and incident listings (and, later, the services).

Importing this module imports no Telegram library and no database driver: each command loads what it
needs, so ``yihu --help`` is instant and the process serving one role carries only that role's weight.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from config.settings import MissingSetting, Settings, get_settings

if TYPE_CHECKING:
    from sqlmodel import Session

log = logging.getLogger("yihu.cli")

app = typer.Typer(
    name="yihu",
    help="yihu (一呼): the village ten-household joint-defence alert group as a Telegram bot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
roster_app = typer.Typer(help="The roster: grids, groups, households, members and staff (YAML).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(roster_app, name="roster")

# The service commands `run`, `bot`, `worker` and `demo` are registered on `app` next to these
# (see the end of this module); they share `_settings()` and `_database()`.

_F = TypeVar("_F", bound=Callable[..., Any])


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class IncidentStatusChoice(StrEnum):
    """Mirrors groups.model.IncidentStatus (not imported here: that would load SQLModel for `--help`)."""

    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"
    false_alarm = "false_alarm"
    cancelled = "cancelled"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="table for people; json for programs (stdout holds only the JSON)."),
]


# --- plumbing ---------------------------------------------------------------------------------------


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with ``message`` on stderr and exit status ``code``."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    return get_settings()


def _database(settings: Settings) -> str:
    """The database URL, migrated to the latest schema (every command that uses the database calls this)."""
    from groups.db import upgrade  # noqa: PLC0415  (lazy: see module docstring)

    url = settings.resolved_database_url
    upgrade(url)
    return url


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    from groups.db import get_engine, session_scope  # noqa: PLC0415  (lazy: see module docstring)

    with session_scope(get_engine(_database(settings))) as session:
        yield session


def _handle_missing_setting(function: _F) -> _F:
    """A missing setting is the operator's to fix: one sentence and exit status 2, no traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except MissingSetting as exc:
            fail(str(exc), 2)

    return wrapper  # type: ignore[return-value]


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK wide and fullwidth characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as aligned columns under a header line (None shows as ``-``)."""
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [display_width(h) for h in headers]
    for row in cells:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], display_width(value))

    def line(values: Sequence[str]) -> str:
        padded = [v + " " * (w - display_width(v)) for v, w in zip(values, widths, strict=True)]
        return "  ".join(padded).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


@app.callback()
def _main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more (to stderr).")] = False,
) -> None:
    """yihu (一呼): the village ten-household joint-defence alert group as a Telegram bot."""
    # Logs always go to stderr so that stdout stays clean for `--format json` and exports.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# --- db ---------------------------------------------------------------------------------------------


@db_app.command("upgrade")
@_handle_missing_setting
def db_upgrade() -> None:
    """Apply every database migration (safe to repeat; other commands do this by themselves)."""
    settings = _settings()
    _database(settings)
    typer.echo("database is up to date", err=True)


# --- roster -----------------------------------------------------------------------------------------


@roster_app.command("import")
@_handle_missing_setting
def roster_import(
    file: Annotated[
        Path,
        typer.Argument(help="The roster YAML file.", exists=True, dir_okay=False, readable=True, show_default=False),
    ],
) -> None:
    """Bring the database in line with a roster file; a file with any error changes nothing."""
    from groups.roster import RosterError, import_roster, parse_roster  # noqa: PLC0415  (lazy: see module docstring)

    try:
        roster = parse_roster(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text.")
    except RosterError as exc:
        for error in exc.errors:
            typer.echo(f"{file}: {error}", err=True)
        fail(f"{file}: {len(exc.errors)} error(s); nothing was imported.")
    settings = _settings()
    with _session(settings) as session:
        summary = import_roster(session, roster)
    for line in summary.lines():
        typer.echo(line)
    if not summary.changed:
        typer.echo("nothing changed")


@roster_app.command("export")
@_handle_missing_setting
def roster_export(
    file: Annotated[
        Path | None,
        typer.Argument(help="Write here instead of stdout.", dir_okay=False, show_default=False),
    ] = None,
) -> None:
    """Write the active roster as YAML (the format `roster import` reads)."""
    from groups.roster import export_roster  # noqa: PLC0415  (lazy: see module docstring)

    with _session(_settings()) as session:
        text = export_roster(session)
    if file is None:
        typer.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")
        typer.echo(f"roster written to {file}", err=True)


# --- listings ---------------------------------------------------------------------------------------


@app.command("invites")
@_handle_missing_setting
def invites(format: FormatOption = OutputFormat.table) -> None:
    """Invite links of every member (staff included) and bind codes of every group, for the invite cards."""
    from bot.telegram_api import resolve_bot_username  # noqa: PLC0415  (lazy: see module docstring)
    from groups.invites import list_invites  # noqa: PLC0415  (lazy: see module docstring)

    settings = _settings()
    username = resolve_bot_username(settings)
    with _session(settings) as session:
        data = list_invites(session, username)
    if format is OutputFormat.json:
        _print_json(data)
        return
    typer.echo(render_table(["key", "name", "link"], [[m["key"], m["name"], m["link"]] for m in data["members"]]))
    typer.echo("")
    typer.echo(
        render_table(
            ["group", "name", "bind with"], [[g["code"], g["name"], f"/bind {g['bind_code']}"] for g in data["groups"]]
        )
    )


def _tally(view: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for response in view["responses"]:
        counts[response["kind"]] = counts.get(response["kind"], 0) + 1
    return " ".join(f"{kind}:{counts[kind]}" for kind in ("coming", "called", "cant") if kind in counts) or "-"


def _deliveries(view: dict[str, Any]) -> str:
    notifications = view["notifications"]
    sent = sum(1 for n in notifications if n["status"] == "sent")
    return f"{sent}/{len(notifications)}"


@app.command("incidents")
@_handle_missing_setting
def incidents(
    format: FormatOption = OutputFormat.table,
    status: Annotated[
        IncidentStatusChoice | None,
        typer.Option("--status", "-s", help="Only incidents with this status.", show_default=False),
    ] = None,
) -> None:
    """Incidents, oldest first, with responses, timeline and deliveries (in full with --format json)."""
    from groups.views import list_incidents  # noqa: PLC0415  (lazy: see module docstring)

    with _session(_settings()) as session:
        views = list_incidents(session, status.value if status else None)
    if format is OutputFormat.json:
        _print_json(views)
        return
    if not views:
        typer.echo("no incidents")
        return
    rows = [
        [
            f"#{v['id']}",
            v["status"],
            v["category"],
            v["group"],
            v["reporter"],
            (v["created_at"] or "")[:19].replace("T", " "),
            v["escalation_level"],
            v["acknowledged_by"],
            _tally(v),
            _deliveries(v),
        ]
        for v in views
    ]
    headers = ["#", "status", "category", "group", "reporter", "created (UTC)", "level", "ack by", "responses", "sent"]
    typer.echo(render_table(headers, rows))


# --- services ---------------------------------------------------------------------------------------
# Each imports its framework inside the command body, so a worker never loads aiogram.


def _service_logging() -> None:
    """Services tell the operator what they do: INFO for yihu's own loggers (stderr)."""
    for name in ("bot", "workers", "groups", "yihu"):
        logging.getLogger(name).setLevel(logging.INFO)


@app.command("run")
@_handle_missing_setting
def run() -> None:
    """Everything in one process group: migrations, Redis (embedded unless YIHU_REDIS_URL), workers, the bot.

    Runs in the foreground until SIGTERM or Ctrl-C, then stops gracefully.
    """
    from bot.runtime import run_all  # noqa: PLC0415  (lazy: see module docstring)

    _service_logging()
    run_all(_settings())


@app.command("bot")
@_handle_missing_setting
def bot_command() -> None:
    """The Telegram face alone (polling, or webhook with YIHU_WEBHOOK_URL); needs YIHU_REDIS_URL."""
    from bot.runtime import run_bot  # noqa: PLC0415  (lazy: see module docstring)

    settings = _settings()
    settings.require_token()
    if not settings.redis_url:
        fail("`yihu bot` runs beside separate workers and needs their Redis: set YIHU_REDIS_URL "
             "(or use `yihu run`, which starts everything).", 2)
    _service_logging()
    run_bot(settings, settings.redis_url)


@app.command("worker")
@_handle_missing_setting
def worker_command(
    burst: Annotated[bool, typer.Option("--burst", help="Stop once the queues are empty.")] = False,
) -> None:
    """One delivery worker (sending, retries, escalation timers, the outbox sweeper); needs YIHU_REDIS_URL."""
    from bot.bootstrap import run_worker_process  # noqa: PLC0415  (lazy: see module docstring)

    settings = _settings()
    settings.require_token()
    if not settings.redis_url:
        fail("`yihu worker` needs the Redis the bot uses: set YIHU_REDIS_URL (or use `yihu run`).", 2)
    _service_logging()
    _database(settings)
    run_worker_process(settings, burst=burst)


@app.command("demo")
@_handle_missing_setting
def demo(
    port: Annotated[int, typer.Option("--port", help="Port of the built-in Telegram emulator.")] = 8089,
    walkthrough: Annotated[
        bool, typer.Option("--walkthrough/--no-walkthrough", help="Play one alert through before serving.")
    ] = True,
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop after the walk-through instead of serving until Ctrl-C.")
    ] = False,
) -> None:
    """Everything on embedded defaults with a built-in Telegram emulator and a sample village; no token needed.

    Links the simulated villagers, binds their group chats, plays one alert through, then keeps serving
    until Ctrl-C and shows how to act as a villager.
    """
    from bot.sandbox.demo import run_demo  # noqa: PLC0415  (lazy: see module docstring)

    _service_logging()
    run_demo(_settings(), port=port, walkthrough=walkthrough, exit_after=exit_after)


def main() -> None:
    """The ``yihu`` console entry point."""
    app()


if __name__ == "__main__":
    main()
