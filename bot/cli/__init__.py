"""The ``yihu`` command line: database, roster, invite cards and incident listings, and the services.

Importing this package imports no Telegram library and no database driver: each command loads what it
needs, so ``yihu --help`` is instant and the process serving one role carries only that role's weight.

``common`` holds what the commands share, ``messages`` what they say (in ``YIHU_LANGUAGE``), ``data``
the commands on the data (db, roster, invites, incidents), ``operator`` the operator's day two (members,
groups, backup), ``services`` the long-running ones (run, bot, worker, web, demo); this module puts them
together in the order ``yihu --help`` lists them.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from bot.cli import data, operator, services

app = typer.Typer(
    name="yihu",
    help="yihu (一呼): the village ten-household joint-defence alert group as a Telegram bot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.db_app, name="db")
app.add_typer(data.roster_app, name="roster")
app.command("invites")(data.invites)
app.command("incidents")(data.incidents)
app.add_typer(operator.members_app, name="members")
app.add_typer(operator.groups_app, name="groups")
app.command("backup")(operator.backup)
app.command("run")(services.run)
app.command("bot")(services.bot_command)
app.command("worker")(services.worker_command)
app.command("web")(services.web_command)
app.command("demo")(services.demo)


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


def main() -> None:
    """The ``yihu`` console entry point."""
    app()
