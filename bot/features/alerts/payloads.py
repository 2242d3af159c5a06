"""The alert feature's buttons: what their callback data says (short ASCII, Telegram allows 64 bytes)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.callback_data import as_int, pack, unpack

RESPOND, CATEGORY, SOS = "r", "k", "s"
RESPONSE_CODES = {"c": "coming", "p": "called", "x": "cant"}
RESPONSE_LETTERS = {kind: code for code, kind in RESPONSE_CODES.items()}
# Labels are bilingual whatever the user's language (the users' interface promises it), in this order.
RESPONSE_LABELS = {"coming": "我来了 I'm coming", "called": "已报警 Called 110", "cant": "无法前往 Can't come"}


@dataclass(frozen=True)
class Respond:
    """我来了 / 已报警 / 无法前往 under an alert."""

    incident_id: int
    kind: str

    def data(self) -> str:
        return pack(RESPOND, self.incident_id, RESPONSE_LETTERS[self.kind])

    @classmethod
    def parse(cls, data: str) -> Respond | None:
        parts = unpack(data, RESPOND, 2)
        number = as_int(parts[0]) if parts is not None else None
        if parts is None or number is None or parts[1] not in RESPONSE_CODES:
            return None
        return cls(number, RESPONSE_CODES[parts[1]])


@dataclass(frozen=True)
class Category:
    """The reporter picks what happened."""

    incident_id: int
    name: str

    def data(self) -> str:
        return pack(CATEGORY, self.incident_id, self.name)

    @classmethod
    def parse(cls, data: str) -> Category | None:
        parts = unpack(data, CATEGORY, 2)
        number = as_int(parts[0]) if parts is not None else None
        return cls(number, parts[1]) if parts is not None and number is not None else None


@dataclass(frozen=True)
class SendAsSos:
    """The one tap offered under a voice note (its message id) or a location (its coordinates)."""

    voice_message_id: int | None = None
    location: tuple[float, float] | None = None

    def data(self) -> str:
        if self.location is not None:
            latitude, longitude = self.location
            return pack(SOS, "l", f"{latitude:.6f},{longitude:.6f}")
        return pack(SOS, "v", self.voice_message_id)

    @classmethod
    def parse(cls, data: str) -> SendAsSos | None:
        parts = unpack(data, SOS, 2)
        if parts is None:
            return None
        try:
            if parts[0] == "v":
                return cls(voice_message_id=int(parts[1]))
            if parts[0] == "l":
                latitude, longitude = (float(x) for x in parts[1].split(","))
                return cls(location=(latitude, longitude))
        except ValueError:
            return None
        return None
