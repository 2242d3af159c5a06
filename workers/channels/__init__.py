"""The channel seam: delivery is channel-neutral and asks a :class:`Channel` for the rest.

Delivery (:mod:`workers.delivery`) claims an outbox row, leases it, retries and records the outcome. A
channel renders the row into what it sends, paces it (its own rate limits), sends it, and sorts what went
wrong into the few outcomes delivery knows: :class:`Unreachable`, :class:`RetryLater`, :class:`Refused`
(a :class:`Receipt` when it went out). The row's ``channel`` column names its channel; the app wires the
channels into the worker context (:func:`workers.context.configure`). Telegram is
:mod:`workers.channels.telegram`; SMS is a new module beside it, a template set and a wiring line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlmodel import Session

    from groups.model import Notification

__all__ = ["Channel", "NotReady", "Receipt", "Refused", "RetryLater", "Undelivered", "Unreachable"]


class NotReady(Exception):
    """The message cannot be rendered yet (an edit whose original has not been sent): try again shortly."""


class Undelivered(Exception):
    """A channel did not deliver the message; the subclass says what delivery does next."""


class Unreachable(Undelivered):
    """The person cannot be reached on this channel (Telegram: 403, never started or blocked the bot)."""


class RetryLater(Undelivered):
    """Try again in ``seconds``. ``counted`` false: the channel asked us to wait (a rate limit, a moved
    chat) rather than failed, so it is not an attempt; ``outcome`` is the job's result label then."""

    def __init__(self, seconds: float, description: str = "", *, counted: bool = True, outcome: str = "retry") -> None:
        super().__init__(description or f"retry in {seconds:g} s")
        self.seconds = seconds
        self.counted = counted
        self.outcome = outcome
        self.description = description


class Refused(Undelivered):
    """A permanent refusal (Telegram: chat not found, bad request): retrying will not help."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class Receipt:
    """It went out; ``message_id`` is the channel's id for it when it has one (later edits need it)."""

    message_id: int | None = None


class Channel(Protocol):
    """One way of reaching people; every method may be called from several threads at once."""

    name: str

    def render(self, session: Session, row: Notification) -> Any | None:
        """What to send for ``row`` from the current state; None when nothing is owed any more.

        Raises :class:`NotReady` when the row must wait (e.g. the message it edits is not sent yet)."""

    def pace(self, outgoing: Any, max_wait: float) -> float:
        """Book a slot in the channel's limits; the seconds to wait for it (more than ``max_wait``: come
        back later, the slot stays booked)."""

    def send(self, outgoing: Any) -> Receipt:
        """Send it, or raise an :class:`Undelivered`."""

    def describe(self, outgoing: Any) -> str:
        """A short label for logs (what was sent to whom)."""

    def close(self) -> None:
        """Release connections."""
