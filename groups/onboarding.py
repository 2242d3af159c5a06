"""Joining: a villager links their Telegram account with an invite token; a head binds the group chat."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlmodel import Session, col, func, select

from groups.directory import grid_of_group, grid_staff, has_grid_role, head_of, member_by_user, member_id
from groups.effects import Effects
from groups.errors import UserError
from groups.model import HouseholdGroup, Member, Notification, Priority, Purpose, Role
from groups.outbox import notify_member, pending_ids

# Telegram deep-link payloads: at most 64 characters of A-Z a-z 0-9 _ -.
TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True)
class LinkResult:
    """``again``: the user was already linked and is just greeted."""

    member_id: int
    key: str
    name: str
    again: bool
    reply_key: str

    @property
    def params(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True)
class BindResult:
    group_id: int
    group_code: str
    group_name: str
    moved_from: int | None  # the chat the group was bound to before, if another
    reply_key: str = "bound"

    @property
    def params(self) -> dict[str, Any]:
        return {"group": self.group_name, "code": self.group_code}


def link_member(
    session: Session, telegram_user_id: int, token: str | None, language_code: str | None, now: datetime
) -> LinkResult:
    """``/start <token>``: link this Telegram user to the member holding ``token``.

    Raises UserError("no_token") without a token, ("bad_token") for an unknown one and ("token_taken")
    for a token linked to someone else (each answer says how to join; nothing is written); an
    already-linked user is greeted again whatever the token.

    Telegram by nature: linking writes the Telegram user id on the member, so this use case takes the id
    itself; the others take the acting member, which the conversation resolves from that id once.
    """
    language = language_code[:16] if language_code else None
    current = member_by_user(session, telegram_user_id)
    if current is not None and current.active:
        if language:
            current.language_code = language
            session.add(current)
        return LinkResult(member_id(current), current.key, current.name, True, "welcome_back")
    member = _member_by_token(session, token)
    if member.telegram_user_id is not None and member.telegram_user_id != telegram_user_id:
        raise UserError("token_taken")
    if current is not None:
        # A deactivated member still holds this Telegram user; release it for the new link.
        current.telegram_user_id = None
        session.add(current)
        session.flush()
    member.telegram_user_id = telegram_user_id
    member.linked_at = now
    member.unreachable_at = None
    member.language_code = language
    session.add(member)
    session.flush()
    return LinkResult(member_id(member), member.key, member.name, False, "linked")


def _member_by_token(session: Session, token: str | None) -> Member:
    if not token:
        raise UserError("no_token")
    if not TOKEN_RE.fullmatch(token):
        raise UserError("bad_token")
    # FOR UPDATE: two Telegram users opening the same invite at once must not both get it (PostgreSQL;
    # SQLite serializes writers anyway).
    member = session.exec(select(Member).where(Member.invite_token == token).with_for_update()).first()
    if member is None or not member.active:
        raise UserError("bad_token")
    return member


def bind_group(session: Session, actor: Member, chat_id: int, bind_code: str | None, now: datetime) -> BindResult:
    """``/bind <code>`` in a group chat, by that group's head or a grid worker of its grid.

    ``chat_id`` is the Telegram group chat being bound: Telegram by nature (the group's alerts are posted
    there). Raises UserError("bad_bind_code") or ("bind_not_allowed"); nothing changes then.
    """
    code = (bind_code or "").strip()
    group = session.exec(select(HouseholdGroup).where(HouseholdGroup.bind_code == code)).first() if code else None
    if group is None or not group.active:
        raise UserError("bad_bind_code")
    grid = grid_of_group(session, group)
    assert grid.id is not None
    is_head = group.head_id == member_id(actor)
    if not is_head and not has_grid_role(session, actor, grid.id, Role.grid_worker.value):
        raise UserError("bind_not_allowed", group=group.name)
    previous = group.chat_id if group.chat_id != chat_id else None
    _release_chat(session, chat_id, keep=group)
    group.chat_id = chat_id
    session.add(group)
    session.flush()
    assert group.id is not None
    return BindResult(group.id, group.code, group.name, previous)


def _release_chat(session: Session, chat_id: int, keep: HouseholdGroup) -> None:
    """A chat serves one group: whichever other group held it loses the binding."""
    others = session.exec(select(HouseholdGroup).where(HouseholdGroup.chat_id == chat_id)).all()
    for other in others:
        if other.id != keep.id:
            other.chat_id = None
            session.add(other)
    session.flush()


def migrate_group_chat(session: Session, old_chat_id: int, new_chat_id: int) -> bool:
    """A group upgraded to a supergroup gets a new chat id: follow it. True if a binding moved."""
    group = session.exec(select(HouseholdGroup).where(HouseholdGroup.chat_id == old_chat_id)).first()
    if group is None:
        return False
    _release_chat(session, new_chat_id, keep=group)
    group.chat_id = new_chat_id
    session.add(group)
    session.flush()
    return True


# Why a bound chat was lost: the bot left or was removed (my_chat_member), or posting there was forbidden.
CHAT_LOST_REASONS = ("left", "kicked", "forbidden")


def chat_lost(session: Session, chat_id: int, reason: str, now: datetime) -> Effects:
    """The bot is no longer in the group chat ``chat_id`` (removed, kicked, or a 403 when posting there):
    the group bound to it loses the binding, so later alerts go by DM only, and its head and the grid
    workers of its grid are told in a DM (``/bind`` again restores it). Nothing when no group is bound
    to that chat (already dropped, or moved to another chat)."""
    group = session.exec(select(HouseholdGroup).where(HouseholdGroup.chat_id == chat_id)).first()
    if group is None:
        return Effects()
    assert group.id is not None
    group.chat_id = None
    session.add(group)
    session.flush()
    told: dict[int, Member] = {}
    head = head_of(session, group)
    if head is not None:
        told[member_id(head)] = head
    for worker in grid_staff(session, group.grid_id, Role.grid_worker.value):
        told.setdefault(member_id(worker), worker)
    prefix = f"chatlost:{group.id}:"
    times = session.exec(select(func.count()).where(col(Notification.dedupe_key).startswith(prefix))).one()
    payload = {"template": "chat_lost", "group_id": group.id, "chat_id": chat_id,
               "reason": reason if reason in CHAT_LOST_REASONS else "forbidden"}
    rows = [
        notify_member(session, None, member, Purpose.update, Priority.updates, payload,
                      f"{prefix}{times}:{mid}", now)
        for mid, member in told.items()
    ]
    return Effects(notifications=pending_ids(rows))
