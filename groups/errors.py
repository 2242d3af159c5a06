"""Errors a user can cause: a catalogue key and its parameters, raised before anything is written."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """A refusal the face renders in the user's language (``key`` is a catalogue key in ``core.yaml``)."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params: dict[str, Any] = params

    def __repr__(self) -> str:
        return f"UserError({self.key!r}, **{self.params!r})"
