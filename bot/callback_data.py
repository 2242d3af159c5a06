"""Callback data of inline buttons: short ASCII ``prefix:part:part`` (Telegram allows 64 bytes).

Each feature defines its own payloads with these (``bot/features/*/payloads.py``) and registers their
prefix on its router.
"""

from __future__ import annotations

CALLBACK_MAX_BYTES = 64  # Telegram's limit for callback data


def pack(prefix: str, *parts: object) -> str:
    """Callback data ``prefix:part:part`` (short ASCII; at most 64 bytes, Telegram's limit)."""
    data = ":".join([prefix, *(str(part) for part in parts)])
    if len(data.encode()) > CALLBACK_MAX_BYTES:
        raise ValueError(f"callback data over {CALLBACK_MAX_BYTES} bytes: {data!r}")
    return data


def unpack(data: str, prefix: str, count: int) -> list[str] | None:
    """The ``count`` parts after ``prefix``, or None when the data is not of that shape."""
    parts = data.split(":")
    if len(data) > CALLBACK_MAX_BYTES or len(parts) != count + 1 or parts[0] != prefix:
        return None
    return parts[1:]


def as_int(text: str) -> int | None:
    """A number in callback data (as ``int()`` reads it), or None."""
    try:
        return int(text)
    except ValueError:
        return None
