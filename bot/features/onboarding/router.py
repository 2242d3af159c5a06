"""Joining (/start <token>), binding a group chat (/bind <code>), the bot removed from a bound chat, and
role-aware /help."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.conversation import Reply, Router, Turn
from bot.render.format import join_names
from bot.render.keyboards import is_help_button, sos_keyboard
from bot.render.texts import t
from config.policies import STAFF_ROLES
from groups import onboarding
from groups.directory import MemberInfo

if TYPE_CHECKING:
    from bot.conversation import Conversation

router = Router("onboarding")


@router.command("start")
def start(conversation: Conversation, turn: Turn, args: str) -> None:
    incoming = turn.incoming
    assert incoming.user_id is not None
    token = args.split()[0] if args else None
    result = onboarding.link_member(turn.session, incoming.user_id, token, incoming.language_code, turn.now)
    info = conversation.user_info(turn)  # the turn's first look at its member: after linking, so it sees the link
    keyboard = sos_keyboard(turn.language)
    if result.again:
        turn.reply("start.again", keyboard, name=result.name)
        return
    staff = [r for r in (info.roles if info else ()) if r in STAFF_ROLES]
    where = _where(turn, info)
    if staff and "villager" not in (info.roles if info else ()):
        turn.reply("start.welcome_staff", keyboard, name=result.name,
                   role=_role_names(turn, staff), where=where)
    else:
        turn.reply("start.welcome", keyboard, name=result.name, where=where)


def _where(turn: Turn, info: MemberInfo | None) -> str:
    """The group (villagers, heads) or the grids (staff) a member belongs to, by name."""
    if info is None:
        return ""
    return info.group_name or join_names(turn.language, info.grid_names)


def _role_names(turn: Turn, roles: list[str]) -> str:
    return join_names(turn.language, (t(turn.language, f"role.{r}") for r in roles))


@router.command("help")
def help_(conversation: Conversation, turn: Turn, args: str) -> None:
    info = conversation.user_info(turn)
    if info is None:
        turn.reply("help.not_linked")
        return
    parts = [t(turn.language, "help.header")]
    roles = set(info.roles)
    if "villager" in roles:
        parts.append(t(turn.language, "help.villager"))
    if "head" in roles:
        parts.append(t(turn.language, "help.head"))
    if "grid_worker" in roles:
        parts.append(t(turn.language, "help.grid_worker"))
    if "police" in roles:
        parts.append(t(turn.language, "help.police"))
    if roles & {"women_fed", "child_director"}:
        parts.append(t(turn.language, "help.officer"))
    if roles & {"civil_affairs", "procuratorate"}:
        parts.append(t(turn.language, "help.department"))
    if info.is_staff or "head" in roles:
        parts.append(t(turn.language, "help.desk"))
    turn.outcome.replies.append(Reply("\n\n".join(parts), sos_keyboard(turn.language)))


@router.command("bind", private=False, group=True)
def bind(conversation: Conversation, turn: Turn, args: str) -> None:
    code = args.split()[0] if args else None
    if not code:
        turn.reply("bind.usage")
        return
    result = onboarding.bind_group(turn.session, turn.member(), turn.incoming.chat_id, code, turn.now)
    turn.reply(result.reply_key, group=result.group_name)


@router.command("bind")
def bind_in_private(conversation: Conversation, turn: Turn, args: str) -> None:
    turn.reply("bind.private_only_group")


@router.text(lambda turn: is_help_button(turn.incoming.text or ""))
def help_button(conversation: Conversation, turn: Turn) -> None:
    help_(conversation, turn, "")


@router.on_membership
def bot_membership(conversation: Conversation, turn: Turn) -> None:
    """The bot left or was removed from a group chat: a group bound to it loses the binding (its head and
    grid workers are told by DM). Being added needs no answer: ``/bind`` says which group the chat is."""
    incoming = turn.incoming
    if incoming.private or incoming.bot_status not in ("left", "kicked"):
        return
    turn.effects.extend(onboarding.chat_lost(turn.session, incoming.chat_id, incoming.bot_status, turn.now))
