"""The operator's day two: ``yihu members relink|rotate-token|forget``, ``yihu groups unbind``, ``yihu backup``.

Each command that changes data prints what it changed (stdout); a refusal or an unknown key or code is
one sentence on stderr, exit status 1, and nothing changed. Texts follow ``YIHU_LANGUAGE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import fail, handle_missing_setting, load_settings, session
from bot.cli.messages import refusal, say

if TYPE_CHECKING:
    from groups.operator import TokenResult

members_app = typer.Typer(help="One member: a new invite link, or their personal data erased.", no_args_is_help=True)
groups_app = typer.Typer(help="One household group's chat binding.", no_args_is_help=True)

KeyArgument = Annotated[str, typer.Argument(help="The member's roster key.", show_default=False)]


def _print_token(result: TokenResult, username: str, changed_key: str) -> None:
    from groups.invites import invite_link  # noqa: PLC0415  (lazy: see bot.cli)

    typer.echo(say(changed_key, member=result.key, user=result.unlinked_user))
    typer.echo(say("ops.new_link", link=invite_link(username, result.token)))


@members_app.command("relink")
@handle_missing_setting
def relink(key: KeyArgument) -> None:
    """Forget the member's Telegram link (lost phone, new account) and issue a new invite link."""
    from bot.telegram_api import resolve_bot_username  # noqa: PLC0415  (lazy: see bot.cli)
    from groups.errors import UserError  # noqa: PLC0415
    from groups.operator import relink_member  # noqa: PLC0415

    settings = load_settings()
    username = resolve_bot_username(settings)  # first: without it the new link could not be printed
    try:
        with session(settings) as db_session:
            result = relink_member(db_session, key)
    except UserError as exc:
        fail(refusal(exc))
    _print_token(result, username, "ops.relinked" if result.unlinked_user is not None else "ops.relinked_unlinked")


@members_app.command("rotate-token")
@handle_missing_setting
def rotate(key: KeyArgument) -> None:
    """A new invite link for a member not yet linked (a leaked card); the old one stops working."""
    from bot.telegram_api import resolve_bot_username  # noqa: PLC0415  (lazy: see bot.cli)
    from groups.errors import UserError  # noqa: PLC0415
    from groups.operator import rotate_token  # noqa: PLC0415

    settings = load_settings()
    username = resolve_bot_username(settings)
    try:
        with session(settings) as db_session:
            result = rotate_token(db_session, key)
    except UserError as exc:
        fail(refusal(exc))
    _print_token(result, username, "ops.rotated")


@members_app.command("forget")
@handle_missing_setting
def forget(
    key: KeyArgument,
    force: Annotated[
        bool, typer.Option("--force", help="Erase even while the member has an open incident or referral.")
    ] = False,
) -> None:
    """Erase a member's personal data (privacy request); their incidents stay, shown as erased."""
    from groups.erasure import forget_member  # noqa: PLC0415  (lazy: see bot.cli)
    from groups.errors import UserError  # noqa: PLC0415
    from groups.model import utcnow  # noqa: PLC0415

    try:
        with session(load_settings()) as db_session:
            result = forget_member(db_session, key, utcnow(), force=force)
    except UserError as exc:
        fail(refusal(exc))
    if result.already:
        typer.echo(say("ops.already_erased", member=key))
        return
    typer.echo(say("ops.forgotten", member=key))
    typer.echo(say("ops.forgotten_data", texts=result.texts, details=result.details, notes=result.notes,
                   payloads=result.payloads, withheld=result.withheld))
    if result.incidents:
        typer.echo(say("ops.forgotten_kept", member=key, numbers=_numbers(result.incidents)))
    if result.forced:
        typer.echo(say("ops.forgotten_forced", numbers=_numbers(result.forced)))


def _numbers(numbers: list[int]) -> str:
    return ", ".join(f"#{n}" for n in numbers)


@groups_app.command("unbind")
@handle_missing_setting
def unbind(code: Annotated[str, typer.Argument(help="The group's roster code.", show_default=False)]) -> None:
    """Drop the group's chat binding; alerts go by DM until /bind is used again."""
    from groups.errors import UserError  # noqa: PLC0415  (lazy: see bot.cli)
    from groups.operator import unbind_group  # noqa: PLC0415

    try:
        with session(load_settings()) as db_session:
            result = unbind_group(db_session, code)
    except UserError as exc:
        fail(refusal(exc))
    if result.chat_id is None:
        typer.echo(say("ops.not_bound", code=result.code, name=result.name))
    else:
        typer.echo(say("ops.unbound", code=result.code, name=result.name, chat=result.chat_id))


@handle_missing_setting
def backup(
    file: Annotated[Path, typer.Argument(help="Where to write the copy (replaced if it exists).", dir_okay=False,
                                         show_default=False)],
) -> None:
    """A consistent copy of the SQLite database, safe while yihu runs (PostgreSQL: use pg_dump)."""
    from groups.backup import BackupRefused, backup_database  # noqa: PLC0415  (lazy: see bot.cli)

    try:
        result = backup_database(load_settings().resolved_database_url, file)
    except BackupRefused as exc:
        fail(say(exc.key, **exc.params))
    typer.echo(say("ops.backup_done", source=result.source, file=result.file, size=result.size,
                   incidents=result.incidents, members=result.members))
