"""Times, names, durations and category labels as people read them, in their language."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from bot.render.texts import t
from config.settings import Language, Settings, pick_language
from groups.model import Member


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(at: datetime, settings: Settings, fmt: str = "%m-%d %H:%M") -> str:
    return at.astimezone(_zone(settings.timezone)).strftime(fmt)


def member_language(member: Member | None, settings: Settings) -> Language:
    return pick_language(member.language_code if member else None, settings.language)


def person(language: Language, member: Member | None) -> str:
    """A member's name as shown; "已删除 / erased" once their data was erased (yihu members forget)."""
    if member is None:
        return "?"
    return t(language, "person.erased") if member.erased_at is not None else member.name


def join_names(language: Language, names: Iterable[str]) -> str:
    """A list of names as written in ``language`` (张三、李四 / Zhang, Li)."""
    return ("、" if language == "zh" else ", ").join(names)


def category_label(language: Language, name: str) -> str:
    return t(language, f"category.{name}")


def duration(seconds: int, language: Language) -> str:
    """A span as people say it: seconds under a minute, else whole minutes."""
    if seconds < 60:
        return f"{seconds} 秒" if language == "zh" else f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} 分钟" if language == "zh" else f"{minutes} min"


def waiting(seconds: int, language: Language) -> str:
    minutes, _ = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    if language == "zh":
        return f"{hours}小时{minutes}分" if hours else f"{minutes}分钟"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
