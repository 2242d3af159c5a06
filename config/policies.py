"""The rules, each defined once: roles, the ladder, incident categories, windows, referral departments.

These are data, not code paths: the core (``groups``) reads them, handlers never test categories.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Role(StrEnum):
    """Who a member is (the roster's ``role``; staff roles are per grid)."""

    villager = "villager"
    grid_worker = "grid_worker"  # 网格员
    police = "police"  # 警务人员
    women_fed = "women_fed"  # 妇联执委
    child_director = "child_director"  # 儿童主任
    civil_affairs = "civil_affairs"  # 民政
    procuratorate = "procuratorate"  # 检察院


# Staff roles, per grid.
STAFF_ROLES: Final[tuple[Role, ...]] = (
    Role.grid_worker,
    Role.police,
    Role.women_fed,
    Role.child_director,
    Role.civil_affairs,
    Role.procuratorate,
)

# The escalation ladder: level 0 is the group and its head; then who is told at level 1, 2.
LADDER: Final[tuple[Role, ...]] = (Role.grid_worker, Role.police)
TOP_LEVEL: Final[int] = len(LADDER)


def ladder_role(level: int) -> Role:
    """Who the ladder tells at ``level`` (1 .. :data:`TOP_LEVEL`)."""
    return LADDER[level - 1]


@dataclass(frozen=True)
class Category:
    """An incident category (English name is the identity; aliases are what villagers type)."""

    name: str
    aliases: tuple[str, ...]
    private: bool = False  # 家暴 / 儿童: never to neighbours, the head or the group chat
    ladder: bool = True  # climbs head -> grid worker -> police when not acknowledged
    private_roles: tuple[Role, ...] = ()  # extra staff roles told of a private incident
    start_level: int = 0  # 0 group/head, 1 grid worker, 2 police


CATEGORIES: Final[dict[str, Category]] = {
    c.name: c
    for c in (
        Category("general", ("一般", "其他")),
        Category("fire", ("火灾", "火", "着火")),
        Category("medical", ("急病", "医疗", "病")),
        Category("security", ("治安", "小偷", "盗窃")),
        Category("disaster", ("灾情", "灾害", "洪水")),
        Category("missing", ("走失", "失踪")),
        Category("violence", ("家暴",), private=True, private_roles=(Role.women_fed,), start_level=2),
        Category("child", ("儿童",), private=True, private_roles=(Role.child_director,), start_level=2),
        Category("help", ("求助", "帮忙"), ladder=False),
    )
}

# Category names offered as inline buttons after raising (the reporter may pick or change).
PICKABLE: Final[tuple[str, ...]] = ("fire", "medical", "security", "disaster", "missing", "violence", "child", "help")

# Escalation defaults (seconds), overridable per grid in the roster.
DEFAULT_HEAD_ACK_S: Final[int] = 120
DEFAULT_WORKER_ACK_S: Final[int] = 300

# Optional policy: categories that start one step higher on the ladder (off by default).
START_HIGHER: Final[frozenset[str]] = frozenset()

# A second SOS by the same reporter within this window joins their open incident.
REPEAT_SOS_WINDOW_S: Final[int] = 120
# Text / voice / location sent by the reporter within this window attaches to the open incident.
ATTACH_WINDOW_S: Final[int] = 600

# Referral departments (转介) and the manual escalation targets.
REFERRAL_DEPARTMENTS: Final[tuple[str, ...]] = ("women", "civil", "procuratorate", "child")
REFERRAL_DEFAULT_DAYS: Final[int] = 30
REFERRAL_REMIND_BEFORE_DAYS: Final[int] = 3
# The staff role that receives a referral to each department (the roster's grid fields of the same role).
REFERRAL_ROLES: Final[dict[str, Role]] = {
    "women": Role.women_fed,
    "civil": Role.civil_affairs,
    "procuratorate": Role.procuratorate,
    "child": Role.child_director,
}
ESCALATION_TARGETS: Final[dict[str, Role]] = {
    "police": Role.police, "women": Role.women_fed, "child": Role.child_director
}


def private_staff_roles(category: Category) -> tuple[Role, ...]:
    """Who is told of a private incident: the whole ladder at once, and the category's own officers."""
    return (*LADDER, *category.private_roles)


def find_category(word: str) -> Category | None:
    """The category a villager meant by ``word`` (English name, any case, or a Chinese alias)."""
    key = word.strip().lower()
    for category in CATEGORIES.values():
        if key == category.name or key in category.aliases:
            return category
    return None
