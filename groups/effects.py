"""What a use case leaves for the caller to do after its commit: enqueue outbox rows, arm timers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Effects:
    """``notifications``: outbox ids to enqueue; ``timers``: (incident id, when the escalation check runs)."""

    notifications: list[int] = field(default_factory=list)
    timers: list[tuple[int, datetime]] = field(default_factory=list)

    def extend(self, other: Effects) -> Effects:
        """Add ``other``'s work to this one (returns self)."""
        self.notifications.extend(other.notifications)
        self.timers.extend(other.timers)
        return self
