"""Timeline lines: the core records codes (categories, kinds, levels), shown here in words."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.render.format import join_names, local_time, person
from bot.render.texts import plain, t
from config.policies import CATEGORIES, ESCALATION_TARGETS, REFERRAL_ROLES, TOP_LEVEL, ladder_role
from config.settings import Language, Settings
from groups.model import IncidentEvent, Member, ResponseKind

RESPONSE_KINDS = frozenset(kind.value for kind in ResponseKind)


def timeline_line(session: Session, event: IncidentEvent, language: Language, settings: Settings) -> str:
    actor = session.get(Member, event.actor_id) if event.actor_id else None
    name = person(language, actor) if actor else None
    return event_line(language, settings, event.at, event.kind, name, event.detail)


def event_line(
    language: Language, settings: Settings, at: datetime, kind: str, actor: str | None, detail: str | None
) -> str:
    """One timeline line; the core records codes (categories, kinds, levels), shown here in words."""
    return t(language, "case.event", time=local_time(at, settings, "%m-%d %H:%M:%S"),
             kind=t(language, f"event.{kind}"), actor=actor or "",
             detail=event_detail(language, kind, detail)).rstrip()


def event_detail(language: Language, kind: str, detail: str | None) -> str:
    """A timeline detail in words, as plain text (the caller escapes it: a Telegram text parameter, a
    page's template); the core's codes in words, anything else (a reason, a note) as written."""
    if not detail:
        return ""
    match kind:
        case "raised" | "category":
            return plain(language, f"category.{detail}") if detail in CATEGORIES else detail
        case "response":
            return plain(language, f"response.{detail}") if detail in RESPONSE_KINDS else detail
        case "escalated":
            target, _, reason = detail.partition(": ")
            on_ladder = target.isdigit() and 1 <= int(target) <= TOP_LEVEL
            role = ladder_role(int(target)) if on_ladder else ESCALATION_TARGETS.get(target, target)
            label = plain(language, f"role.{role}")
            return f"→ {label}" + (f" ({reason})" if reason else "")
        case "attachment":
            return join_names(language, (plain(language, f"attachment.kind.{k}") for k in detail.split()))
        case "acknowledged" | "viewed":
            return ""
        case "referred":
            department, _, days = detail.partition(" ")  # "civil 10d"
            if department in REFERRAL_ROLES and days.removesuffix("d").isdigit():
                return plain(language, "event.referred_detail", department=plain(language, f"department.{department}"),
                             days=days.removesuffix("d"))
    return detail
