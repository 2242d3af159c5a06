"""The roster's shape once checked: one frozen spec per grid, group, household, member and staff entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from config.policies import DEFAULT_HEAD_ACK_S, DEFAULT_WORKER_ACK_S
from groups.model import Role

# Grid fields naming staff, and the role each must have.
STAFF_FIELDS: Final[dict[str, str]] = {
    "workers": Role.grid_worker,
    "police": Role.police,
    "women_fed": Role.women_fed,
    "child_director": Role.child_director,
    "civil_affairs": Role.civil_affairs,
    "procuratorate": Role.procuratorate,
}
OPTIONAL_STAFF_FIELDS: Final[frozenset[str]] = frozenset(
    {"women_fed", "child_director", "civil_affairs", "procuratorate"}
)

# Column limits of groups.model, checked here so a long name is a roster error, not a database error.
MAX_KEY: Final[int] = 64
MAX_NAME: Final[int] = 200
MAX_LABEL: Final[int] = 100
MAX_PHONE: Final[int] = 32


@dataclass(frozen=True)
class RosterProblem:
    """One problem of a roster file: where (``grids[0].groups[1].head``; "" for the file as a whole, None
    for a YAML syntax error, whose text names line and column), what (a catalogue key, ``roster.*`` in
    ``bot/render/locales/*/ops.yaml``) and its parameters. A parameter named ``kind`` is a kind of value
    (``mapping``, ``list``, ``text``, ...), itself a catalogue key ``roster.kind.<kind>``.

    The core names the problem; the CLI says it in the operator's language (``YIHU_LANGUAGE``)."""

    path: str | None
    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        """For logs and tracebacks only: the key and its parameters, untranslated."""
        where = "" if self.path is None else f"{self.path or '(top level)'}: "
        return f"{where}{self.key} {self.params}"


class RosterError(ValueError):
    """A roster file that cannot be imported; ``problems`` holds every problem found, in file order."""

    def __init__(self, problems: list[RosterProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class MemberSpec:
    key: str
    name: str
    phone: str | None = None


@dataclass(frozen=True)
class HouseholdSpec:
    label: str
    members: tuple[MemberSpec, ...]


@dataclass(frozen=True)
class GroupSpec:
    code: str
    name: str
    head: str
    households: tuple[HouseholdSpec, ...]


@dataclass(frozen=True)
class GridSpec:
    code: str
    name: str
    workers: tuple[str, ...]
    police: tuple[str, ...]
    women_fed: tuple[str, ...] = ()
    child_director: tuple[str, ...] = ()
    civil_affairs: tuple[str, ...] = ()
    procuratorate: tuple[str, ...] = ()
    head_ack_s: int = DEFAULT_HEAD_ACK_S
    worker_ack_s: int = DEFAULT_WORKER_ACK_S
    groups: tuple[GroupSpec, ...] = ()

    def staff(self, field_name: str) -> tuple[str, ...]:
        """The member keys named by one of :data:`STAFF_FIELDS`."""
        value: tuple[str, ...] = getattr(self, field_name)
        return value


@dataclass(frozen=True)
class StaffSpec:
    key: str
    name: str
    role: str
    phone: str | None = None


@dataclass(frozen=True)
class Roster:
    """A checked roster file."""

    grids: tuple[GridSpec, ...]
    staff: tuple[StaffSpec, ...]
