"""Invite cards (邀请卡): each member's deep link and each group's bind code, for the operator to hand out."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from groups.model import HouseholdGroup, Member


def invite_link(bot_username: str, token: str) -> str:
    """The deep link that opens the bot and links the Telegram user to the member holding ``token``."""
    return f"https://t.me/{bot_username.lstrip('@')}?start={token}"


def list_invites(session: Session, bot_username: str) -> dict[str, list[dict[str, Any]]]:
    """``{"members": [{key, name, token, link}], "groups": [{code, name, bind_code}]}``, active rows only.

    Members include staff; both lists are ordered by key / code.
    """
    members = session.exec(select(Member).where(col(Member.active))).all()
    groups = session.exec(select(HouseholdGroup).where(col(HouseholdGroup.active))).all()
    # Sorted here, not in SQL: PostgreSQL collations and SQLite order text differently.
    return {
        "members": [
            {"key": m.key, "name": m.name, "token": m.invite_token, "link": invite_link(bot_username, m.invite_token)}
            for m in sorted(members, key=lambda m: m.key)
        ],
        "groups": [
            {"code": g.code, "name": g.name, "bind_code": g.bind_code} for g in sorted(groups, key=lambda g: g.code)
        ],
    }
