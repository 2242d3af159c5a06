"""What a use case leaves for the caller to do after its commit: enqueue outbox rows, arm timers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Timer:
    """Run the core's ``kind`` handler (:data:`groups.timers.KINDS`) for ``subject`` (an id) at ``at``."""

    kind: str
    subject: int
    at: datetime


@dataclass
class Effects:
    """``notifications``: outbox ids to enqueue; ``timers``: what must run later, durable in the database."""

    notifications: list[int] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)

    def extend(self, other: Effects) -> Effects:
        """Add ``other``'s work to this one (returns self)."""
        self.notifications.extend(other.notifications)
        self.timers.extend(other.timers)
        return self
