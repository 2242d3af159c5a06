"""What a Bot API call carries: its parameters read as Telegram reads them, and uploaded files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Form fields that are plain strings even when they look like JSON.
STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "data",
        "callback_query_id",
        "url",
        "secret_token",
        "parse_mode",
        "title",
        "description",
        "short_description",
        "name",
        "file_id",
        "language_code",
        "action",
        "ip_address",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "performer",
        "first_name",
        "last_name",
        "username",
        "emoji",
        "address",
        "voice",
        "audio",
        "photo",
        "document",
        "video",
        "animation",
        "sticker",
        "video_note",
        "thumbnail",
        "certificate",
        "method",
    }
)


@dataclass
class Upload:
    filename: str | None
    content_type: str | None
    data: bytes


def coerce(name: str, value: str) -> Any:
    if name in STRING_FIELDS:
        return value
    if name in ("chat_id", "from_chat_id"):
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    try:
        return json.loads(value)
    except ValueError:
        return value
