"""A failing update (the database locked or down) is tried again before it is given up."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot import face
from bot.conversation import Incoming, Outcome


class Flaky:
    """Fails ``failures`` times like a locked SQLite database, then handles the update."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def handle(self, incoming: Incoming) -> Outcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise OperationalError("INSERT …", {}, Exception("database is locked"))
        return Outcome(callback_answer=f"handled {incoming.update_id}")


INCOMING = Incoming(update_id=7, chat_id=1, chat_type="private", user_id=1, text="6995")


async def test_a_transient_failure_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(face.asyncio, "sleep", _no_sleep)
    flaky = Flaky(failures=2)
    outcome = await face.handle_with_retries(flaky, INCOMING)  # type: ignore[arg-type]
    assert outcome.callback_answer == "handled 7" and flaky.calls == 3


async def test_a_lasting_failure_is_raised_after_every_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(face.asyncio, "sleep", _no_sleep)
    flaky = Flaky(failures=99)
    with pytest.raises(OperationalError):
        await face.handle_with_retries(flaky, INCOMING)  # type: ignore[arg-type]
    assert flaky.calls == face.HANDLE_ATTEMPTS


async def _no_sleep(*_: Any) -> None:
    return None
