"""The case feature's buttons under an escalation: take ownership, or call the police."""

from __future__ import annotations

from dataclasses import dataclass

from bot.callback_data import as_int, pack, unpack

ACK, ESCALATE = "a", "e"


@dataclass(frozen=True)
class Ack:
    incident_id: int

    def data(self) -> str:
        return pack(ACK, self.incident_id)

    @classmethod
    def parse(cls, data: str) -> Ack | None:
        parts = unpack(data, ACK, 1)
        number = as_int(parts[0]) if parts is not None else None
        return cls(number) if number is not None else None


@dataclass(frozen=True)
class Escalate:
    incident_id: int
    target: str

    def data(self) -> str:
        return pack(ESCALATE, self.incident_id, self.target)

    @classmethod
    def parse(cls, data: str) -> Escalate | None:
        parts = unpack(data, ESCALATE, 2)
        number = as_int(parts[0]) if parts is not None else None
        return cls(number, parts[1]) if parts is not None and number is not None else None
