"""Callback data of inline buttons: short ASCII (Telegram allows 64 bytes), parsed in one place."""

from __future__ import annotations

from dataclasses import dataclass

RESPONSE_CODES = {"c": "coming", "p": "called", "x": "cant"}
RESPONSE_LETTERS = {kind: code for code, kind in RESPONSE_CODES.items()}
# Labels are bilingual whatever the user's language (CONTRACT.md), in this order.
RESPONSE_LABELS = {"coming": "我来了 I'm coming", "called": "已报警 Called 110", "cant": "无法前往 Can't come"}


@dataclass(frozen=True)
class Callback:
    """A parsed button press: ``action`` is respond | category | ack | escalate | sos."""

    action: str
    incident_id: int | None = None
    value: str | None = None


def respond(incident_id: int, kind: str) -> str:
    return f"r:{incident_id}:{RESPONSE_LETTERS[kind]}"


def category(incident_id: int, name: str) -> str:
    return f"k:{incident_id}:{name}"


def ack(incident_id: int) -> str:
    return f"a:{incident_id}"


def escalate(incident_id: int, target: str) -> str:
    return f"e:{incident_id}:{target}"


def sos_voice(message_id: int) -> str:
    return f"s:v:{message_id}"


def sos_location(latitude: float, longitude: float) -> str:
    return f"s:l:{latitude:.6f},{longitude:.6f}"


def parse(data: str | None) -> Callback | None:
    """The press behind ``data``, or None for anything malformed or forged."""
    if not data or len(data) > 64:
        return None
    parts = data.split(":")
    try:
        match parts:
            case ["r", number, code] if code in RESPONSE_CODES:
                return Callback("respond", int(number), RESPONSE_CODES[code])
            case ["k", number, name]:
                return Callback("category", int(number), name)
            case ["a", number]:
                return Callback("ack", int(number))
            case ["e", number, target]:
                return Callback("escalate", int(number), target)
            case ["s", "v", message_id]:
                return Callback("sos", None, f"voice:{int(message_id)}")
            case ["s", "l", coordinates]:
                latitude, longitude = (float(x) for x in coordinates.split(","))
                return Callback("sos", None, f"location:{latitude},{longitude}")
    except ValueError:
        return None
    return None
