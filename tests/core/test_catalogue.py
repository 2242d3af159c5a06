"""The core's text catalogue: both languages with the same keys, and every key the core uses present."""

from __future__ import annotations

import re
import string
from pathlib import Path

import yaml

from tests.support.village import LOCALES

GROUPS = Path(__file__).resolve().parent.parent.parent / "groups"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_core_catalogues_have_the_same_keys_and_placeholders() -> None:
    zh = yaml.safe_load((LOCALES / "zh" / "core.yaml").read_text(encoding="utf-8"))
    en = yaml.safe_load((LOCALES / "en" / "core.yaml").read_text(encoding="utf-8"))
    assert set(zh) == set(en)
    for key in zh:
        assert isinstance(zh[key], str) and zh[key] and isinstance(en[key], str) and en[key], key
        assert _fields(zh[key]) == _fields(en[key]), key


def test_every_core_user_error_key_is_in_the_catalogue() -> None:
    zh = yaml.safe_load((LOCALES / "zh" / "core.yaml").read_text(encoding="utf-8"))
    groups_dir = GROUPS
    used: set[str] = set()
    for path in groups_dir.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'UserError\(\s*"([a-z_]+)"', source))
        used |= set(re.findall(r'reply_key[=:]?\s*"([a-z_]+)"', source))
    assert used, "no keys found"
    assert used <= set(zh), used - set(zh)
