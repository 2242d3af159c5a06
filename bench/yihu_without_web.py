"""``yihu`` with no web listener, for bench/cost.py's comparison only: ``python bench/yihu_without_web.py run``.

Replaces :func:`bot.runtime.serving_web` with a block that serves nothing, then runs the ordinary command
line, so the difference in resident memory is what the listener (health, metrics) adds to `yihu run`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import bot.runtime
from bot.cli import main


@contextlib.asynccontextmanager
async def _no_web(*_args: Any, **_kwargs: Any) -> AsyncIterator[None]:
    yield None


bot.runtime.serving_web = _no_web  # type: ignore[assignment]

if __name__ == "__main__":
    sys.argv[0] = "yihu"
    main()
