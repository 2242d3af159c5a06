from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.browser import launch


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async for opened in launch():
        yield opened
