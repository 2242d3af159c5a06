"""The text catalogue: one set of YAML files per language under ``bot/render/locales/<lang>/``.

Texts are HTML (Telegram parse mode HTML); every parameter is escaped here, so names and texts such as
``<b>&`` arrive literally. Keys are the same in every language (a test checks it).
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Any

import yaml

from config.settings import Language

TELEGRAM_TEXT_LIMIT = 4096
CALLBACK_ANSWER_LIMIT = 200


class Raw(str):
    """A parameter that is already HTML (e.g. a rendered list) and must not be escaped again."""

    __slots__ = ()


@cache
def catalogue(language: Language) -> dict[str, str]:
    """All texts of ``language``, merged from every YAML file of its folder."""
    merged: dict[str, str] = {}
    folder = resources.files("bot.render") / "locales" / language
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        data = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        for key, value in data.items():
            if key in merged:
                raise ValueError(f"text key {key!r} is defined twice in locales/{language}")
            merged[str(key)] = str(value).rstrip("\n")
    return merged


def _escape(value: Any) -> Any:
    if isinstance(value, Raw):
        return value
    if isinstance(value, str):
        return html.escape(value, quote=False)
    return value


def t(language: Language, key: str, /, **params: Any) -> str:
    """The text ``key`` in ``language`` with escaped ``params`` (falls back to zh, then the key)."""
    text = catalogue(language).get(key)
    if text is None:
        text = catalogue("zh").get(key, key)
    return text.format(**{name: _escape(value) for name, value in params.items()})


def plain(language: Language, key: str, /, **params: Any) -> str:
    """Like :func:`t` but without HTML (callback answers and button labels are plain text)."""
    text = catalogue(language).get(key) or catalogue("zh").get(key, key)
    return text.format(**params)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int = TELEGRAM_TEXT_LIMIT, marker: str = "…") -> str:
    """``text`` shortened to ``limit`` UTF-16 units, at a line break when one is near, never inside a tag
    or an entity (our texts use only simple tags, which are closed again)."""
    if utf16_len(text) <= limit:
        return text
    budget = limit - utf16_len(marker) - 16
    out: list[str] = []
    used = 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > budget:
            break
        out.append(char)
        used += size
    head = "".join(out)
    newline = head.rfind("\n")
    if newline > len(head) * 3 // 4:
        head = head[:newline]
    # Do not end inside a tag or an HTML entity.
    lt, gt = head.rfind("<"), head.rfind(">")
    if lt > gt:
        head = head[:lt]
    amp, semi = head.rfind("&"), head.rfind(";")
    if amp > semi:
        head = head[:amp]
    for tag in ("b", "i", "code", "u", "s", "blockquote"):
        opened = head.count(f"<{tag}>") - head.count(f"</{tag}>")
        head += f"</{tag}>" * max(opened, 0)
    return head + marker
