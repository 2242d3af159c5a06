"""``yihu db``, ``yihu roster``, ``yihu invites`` and ``yihu incidents``: the commands on the data."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import (
    FormatOption,
    OutputFormat,
    database,
    fail,
    handle_missing_setting,
    load_settings,
    print_json,
    session,
)
from bot.cli.messages import roster_problem, say
from bot.tables import groups_table, incidents_table, members_table

db_app = typer.Typer(help="The database.", no_args_is_help=True)
roster_app = typer.Typer(help="The roster: grids, groups, households, members and staff (YAML).", no_args_is_help=True)


class IncidentStatusChoice(StrEnum):
    """Mirrors groups.model.IncidentStatus (not imported here: that would load SQLModel for `--help`)."""

    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"
    false_alarm = "false_alarm"
    cancelled = "cancelled"


# --- db ---------------------------------------------------------------------------------------------


@db_app.command("upgrade")
@handle_missing_setting
def db_upgrade() -> None:
    """Apply every database migration (safe to repeat; other commands do this by themselves)."""
    settings = load_settings()
    database(settings)
    typer.echo(say("cli.db_up_to_date"), err=True)


# --- roster -----------------------------------------------------------------------------------------


@roster_app.command("import")
@handle_missing_setting
def roster_import(
    file: Annotated[
        Path,
        typer.Argument(help="The roster YAML file.", exists=True, dir_okay=False, readable=True, show_default=False),
    ],
) -> None:
    """Bring the database in line with a roster file; a file with any error changes nothing."""
    from groups.roster import RosterError, import_roster, parse_roster  # noqa: PLC0415  (lazy: see bot.cli)

    try:
        roster = parse_roster(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        fail(say("cli.not_utf8", file=file))
    except RosterError as exc:
        for problem in exc.problems:
            typer.echo(f"{file}: {roster_problem(problem)}", err=True)
        fail(say("cli.roster_failed", file=file, count=len(exc.problems)))
    settings = load_settings()
    with session(settings) as db_session:
        summary = import_roster(db_session, roster)
    for kind, counts in summary.kinds().items():
        typer.echo(say("cli.roster_counts", kind=say(f"cli.roster_kind.{kind}"), created=counts.created,
                       updated=counts.updated, unchanged=counts.unchanged, deactivated=counts.deactivated))
    for key in summary.erased:
        typer.echo(say("cli.roster_erased_kept", member=key), err=True)
    if not summary.changed:
        typer.echo(say("cli.nothing_changed"))


@roster_app.command("export")
@handle_missing_setting
def roster_export(
    file: Annotated[
        Path | None,
        typer.Argument(help="Write here instead of stdout.", dir_okay=False, show_default=False),
    ] = None,
) -> None:
    """Write the active roster as YAML (the format `roster import` reads)."""
    from groups.roster import export_roster  # noqa: PLC0415  (lazy: see bot.cli)

    with session(load_settings()) as db_session:
        text = export_roster(db_session)
    if file is None:
        typer.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")
        typer.echo(say("cli.roster_written", file=file), err=True)


# --- listings ---------------------------------------------------------------------------------------


@handle_missing_setting
def invites(format: FormatOption = OutputFormat.table) -> None:
    """Invite links of every member (staff included) and bind codes of every group, for the invite cards."""
    from bot.telegram_api import resolve_bot_username  # noqa: PLC0415  (lazy: see bot.cli)
    from groups.invites import list_invites  # noqa: PLC0415  (lazy: see bot.cli)

    settings = load_settings()
    username = resolve_bot_username(settings)
    with session(settings) as db_session:
        data = list_invites(db_session, username)
    if format is OutputFormat.json:
        print_json(data)
        return
    typer.echo(members_table(data))
    typer.echo("")
    typer.echo(groups_table(data))


@handle_missing_setting
def incidents(
    format: FormatOption = OutputFormat.table,
    status: Annotated[
        IncidentStatusChoice | None,
        typer.Option("--status", "-s", help="Only incidents with this status.", show_default=False),
    ] = None,
) -> None:
    """Incidents, oldest first, with responses, timeline and deliveries (in full with --format json)."""
    from groups.views import list_incidents  # noqa: PLC0415  (lazy: see bot.cli)

    with session(load_settings()) as db_session:
        views = list_incidents(db_session, status.value if status else None)
    if format is OutputFormat.json:
        print_json(views)
        return
    if not views:
        typer.echo(say("cli.no_incidents"))
        return
    typer.echo(incidents_table(views, lambda key: say("cli.erased_mark", member=key)))
