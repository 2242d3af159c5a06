"""The operator's day two: a member's new invite token (lost phone, leaked card), a group chat unbound.

Each use case finds its row by the roster's key or code, changes it in the caller's transaction and
returns what it changed; an unknown key or code raises :class:`~groups.errors.UserError` before
anything is written. The keys are catalogue keys (``bot/render/locales/*/ops.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from groups.errors import UserError
from groups.model import HouseholdGroup, Member
from groups.roster.sync import new_invite_token


@dataclass(frozen=True)
class TokenResult:
    """A member's new invite token; ``unlinked_user`` is the Telegram user id the member was linked to."""

    key: str
    token: str
    unlinked_user: int | None


@dataclass(frozen=True)
class UnbindResult:
    """``chat_id`` is the chat the group was bound to, None when it was not bound (nothing changed)."""

    code: str
    name: str
    chat_id: int | None


def member_by_key(session: Session, key: str) -> Member:
    """The member with roster key ``key``; UserError("ops.unknown_member") when there is none, and
    ("ops.member_erased") for a forgotten one (it has nothing left to give)."""
    member = session.exec(select(Member).where(Member.key == key).with_for_update()).first()
    if member is None:
        raise UserError("ops.unknown_member", member=key)
    if member.erased_at is not None:
        raise UserError("ops.member_erased", member=key)
    return member


def _active_member(session: Session, key: str) -> Member:
    member = member_by_key(session, key)
    if not member.active:
        # An inactive member's token is refused by /start anyway: a new one would be a dead card.
        raise UserError("ops.member_inactive", member=key)
    return member


def _fresh_token(session: Session) -> str:
    while True:
        token = new_invite_token()
        if session.exec(select(Member.id).where(Member.invite_token == token)).first() is None:
            return token


def relink_member(session: Session, key: str) -> TokenResult:
    """``yihu members relink KEY``: forget the member's Telegram link (a lost phone, a new account) and
    issue a new invite token; the old token and the old account no longer reach the member."""
    member = _active_member(session, key)
    unlinked = member.telegram_user_id
    member.telegram_user_id = None
    member.linked_at = None
    member.unreachable_at = None
    member.invite_token = _fresh_token(session)
    session.add(member)
    session.flush()
    return TokenResult(member.key, member.invite_token, unlinked)


def rotate_token(session: Session, key: str) -> TokenResult:
    """``yihu members rotate-token KEY``: a new invite token for an unlinked member (a leaked card).

    A linked member is refused (UserError("ops.linked_use_relink")): their token is spent already (no one
    else can link with it), and a new one would not end the link; ``relink`` does that."""
    member = _active_member(session, key)
    if member.telegram_user_id is not None:
        raise UserError("ops.linked_use_relink", member=key)
    member.invite_token = _fresh_token(session)
    session.add(member)
    session.flush()
    return TokenResult(member.key, member.invite_token, None)


def unbind_group(session: Session, code: str) -> UnbindResult:
    """``yihu groups unbind CODE``: drop the group's chat binding (alerts go by DM only until ``/bind``).

    UserError("ops.unknown_group") for an unknown code."""
    group = session.exec(select(HouseholdGroup).where(HouseholdGroup.code == code).with_for_update()).first()
    if group is None:
        raise UserError("ops.unknown_group", code=code)
    chat_id = group.chat_id
    if chat_id is not None:
        group.chat_id = None
        session.add(group)
        session.flush()
    return UnbindResult(group.code, group.name, chat_id)
