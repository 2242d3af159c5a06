"""Waiting for a process under test (a real `yihu run`, the emulator) to reach a state over HTTP."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """``check()``'s first truthy answer (HTTP errors count as not yet); TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            result = check()
            if result:
                return result
        time.sleep(0.1)
    raise TimeoutError(what)
