"""The end-to-end test village: :class:`bot.sandbox.village.Village` with the test roster by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.sandbox.village import Village as SimulatedVillage

DATA = Path(__file__).resolve().parent.parent / "data"


class Village(SimulatedVillage):
    """``Village(tmp_path, redis_url, roster=None, ...)``: the roster defaults to tests/data/village.yaml."""

    def __init__(self, tmp_path: Path, redis_url: str, *, roster: str | None = None, **options: Any) -> None:
        text = roster if roster is not None else (DATA / "village.yaml").read_text(encoding="utf-8")
        super().__init__(tmp_path, redis_url, text, **options)
