"""Text helpers for the Bot API emulator: UTF-16 lengths, HTML parse mode, automatic entities."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

__all__ = ["HtmlParseError", "auto_entities", "parse_html", "parse_markdown", "parse_markdown_v2", "utf16_len"]


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (the unit Telegram counts offsets and limits in)."""
    return len(text.encode("utf-16-le")) // 2


class HtmlParseError(ValueError):
    """The text is not valid Telegram HTML."""


_SIMPLE_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
    "a": "text_link",
    "span": "spoiler",
    "tg-emoji": "custom_emoji",
}


class _TelegramHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0  # UTF-16 units emitted so far
        self.stack: list[tuple[str, dict[str, Any]]] = []
        self.entities: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kind = _SIMPLE_TAGS.get(tag)
        if kind is None:
            raise HtmlParseError(f'Unsupported start tag "{tag}"')
        attr = {k: (v or "") for k, v in attrs}
        entity: dict[str, Any] = {"type": kind, "offset": self.length}
        if tag == "a":
            href = attr.get("href", "")
            match = re.match(r"tg://user\?id=(\d+)$", href)
            if match:
                entity = {"type": "text_mention", "offset": self.length, "_user_id": int(match.group(1))}
            else:
                entity["url"] = href
        elif tag == "span" and attr.get("class") != "tg-spoiler":
            raise HtmlParseError('Tag "span" must have class "tg-spoiler"')
        elif tag == "blockquote" and "expandable" in attr:
            entity["type"] = "expandable_blockquote"
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = attr.get("emoji-id", "")
        elif tag == "code" and self.stack and self.stack[-1][0] == "pre":
            cls = attr.get("class", "")
            if cls.startswith("language-"):
                self.stack[-1][1]["language"] = cls[len("language-") :]
            self.stack.append((tag, {"type": "_skip", "offset": self.length}))
            return
        self.stack.append((tag, entity))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            raise HtmlParseError(f'Unmatched end tag "{tag}"')
        _, entity = self.stack.pop()
        if entity["type"] == "_skip":
            return
        length = self.length - entity["offset"]
        if length > 0:
            entity["length"] = length
            self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.length += utf16_len(data)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Turn Telegram HTML into (plain text, entities) like the Bot API does.

    Raises :class:`HtmlParseError` with a Telegram-like reason for unsupported or unbalanced tags.
    """
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1][0]}"')
    plain = "".join(parser.parts)
    entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
    return plain, entities


_AUTO_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("bot_command", re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")),
    ("url", re.compile(r"https?://[^\s<>\"]+")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b")),
    ("hashtag", re.compile(r"(?<![\w#])#\w+")),
]


def auto_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram detects by itself in a user's message: commands, URLs, mentions, hashtags."""
    found: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _AUTO_PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < t_end and end > t_start for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append((start, end, kind))
    found.sort()
    return [
        {"type": kind, "offset": utf16_len(text[:start]), "length": utf16_len(text[start:end])}
        for start, end, kind in found
    ]


_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_TOGGLES = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.entities: list[dict[str, Any]] = []

    def emit(self, data: str) -> None:
        self.parts.append(data)
        self.length += utf16_len(data)

    def add(self, kind: str, start: int, **extra: Any) -> None:
        if self.length > start:
            self.entities.append({"type": kind, "offset": start, "length": self.length - start, **extra})

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        return "".join(self.parts), sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))


def _read_until(text: str, i: int, end: str, escapes: bool) -> tuple[str, int] | None:
    """Read from ``i`` up to the unescaped ``end``; returns (content, index after ``end``)."""
    out: list[str] = []
    n = len(text)
    while i < n:
        if escapes and text[i] == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if text.startswith(end, i):
            return "".join(out), i + len(end)
        out.append(text[i])
        i += 1
    return None


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram MarkdownV2 -> (plain text, entities); reserved characters must be escaped."""
    # One scanner loop over the source: its branches share the builder, the stack and the index.
    b = _Builder()
    stack: list[tuple[str, int, int]] = []  # (marker, entity start, source index)
    quote_start: int | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        at_line_start = i == 0 or text[i - 1] == "\n"
        if c == "\\":
            if i + 1 < n and ord(text[i + 1]) <= 126:
                b.emit(text[i + 1])
                i += 2
                continue
            raise HtmlParseError("Character '\\' is reserved and must be escaped with the preceding '\\'")
        if c == "\n" and quote_start is not None and not text.startswith(">", i + 1):
            b.add("blockquote", quote_start)
            quote_start = None
        if c == ">" and at_line_start:
            if quote_start is None:
                quote_start = b.length
            i += 1
            continue
        if c == "`":
            fence = "```" if text.startswith("```", i) else "`"
            found = _read_until(text, i + len(fence), fence, escapes=True)
            if found is None:
                raise HtmlParseError(f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}")
            content, after = found
            if fence == "```":
                language = ""
                first, sep, rest = content.partition("\n")
                if sep and first and " " not in first:
                    language, content = first, rest
                start = b.length
                b.emit(content)
                if language:
                    b.add("pre", start, language=language)
                else:
                    b.add("pre", start)
            else:
                start = b.length
                b.emit(content)
                b.add("code", start)
            i = after
            continue
        marker = None
        if text.startswith("__", i):
            marker = "__"
        elif text.startswith("||", i):
            marker = "||"
        elif c in "*_~":
            marker = c
        if marker is not None:
            if stack and stack[-1][0] == marker:
                _, start, _ = stack.pop()
                b.add(_MDV2_TOGGLES[marker], start)
            elif any(entry[0] == marker for entry in stack):
                raise HtmlParseError(f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}")
            else:
                stack.append((marker, b.length, i))
            i += len(marker)
            continue
        if c == "[":
            stack.append(("[", b.length, i))
            i += 1
            continue
        if c == "]" and stack and stack[-1][0] == "[":
            if not text.startswith("(", i + 1):
                raise HtmlParseError("Character ']' is reserved and must be escaped with the preceding '\\'")
            found = _read_until(text, i + 2, ")", escapes=True)
            if found is None:
                raise HtmlParseError(f"Can't find end of a url at byte offset {_byte_offset(text, i)}")
            url, after = found
            _, start, _ = stack.pop()
            match = re.match(r"tg://user\?id=(\d+)$", url)
            if match:
                b.add("text_mention", start, _user_id=int(match.group(1)))
            else:
                b.add("text_link", start, url=url)
            i = after
            continue
        if c in _MDV2_RESERVED:
            raise HtmlParseError(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        b.emit(c)
        i += 1
    if quote_start is not None:
        b.add("blockquote", quote_start)
    if stack:
        raise HtmlParseError(f"Can't find end of the entity starting at byte offset {_byte_offset(text, stack[-1][2])}")
    return b.result()


def parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Legacy Telegram Markdown -> (plain text, entities): *bold*, _italic_, `code`, ```pre```, [t](url)."""
    b = _Builder()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            b.emit(text[i + 1])
            i += 2
            continue
        if c in "*_`" or c == "[":
            if text.startswith("```", i):
                end, kind, skip = "```", "pre", 3
            elif c == "[":
                end, kind, skip = "]", "text_link", 1
            else:
                end, kind, skip = c, {"*": "bold", "_": "italic", "`": "code"}[c], 1
            close = text.find(end, i + skip)
            if close < 0:
                raise HtmlParseError(f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}")
            content = text[i + skip : close]
            after = close + len(end)
            extra: dict[str, Any] = {}
            if kind == "text_link":
                if not text.startswith("(", after):
                    b.emit(text[i:after])
                    i = after
                    continue
                url_end = text.find(")", after)
                if url_end < 0:
                    raise HtmlParseError(f"Can't find end of a url at byte offset {_byte_offset(text, after)}")
                extra["url"] = text[after + 1 : url_end]
                after = url_end + 1
            elif kind == "pre":
                first, sep, rest = content.partition("\n")
                if sep and first and " " not in first:
                    extra["language"] = first
                    content = rest
            start = b.length
            b.emit(content)
            b.add(kind, start, **extra)
            i = after
            continue
        b.emit(c)
        i += 1
    return b.result()
