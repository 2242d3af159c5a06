"""Inline buttons built from the features' payloads, and the persistent SOS reply keyboard."""

from __future__ import annotations

from typing import Any

from bot.features.alerts.payloads import RESPONSE_LABELS, Category, Respond
from bot.features.cases.payloads import Ack, Escalate
from bot.render.format import category_label
from bot.render.texts import t
from config.policies import PICKABLE
from config.settings import Language
from workers.channels.telegram import Button


def response_buttons(incident_id: int) -> list[list[Button]]:
    """One big button per row: 我来了 first, labels bilingual whatever the language."""
    return [
        [{"text": label, "callback_data": Respond(incident_id, kind).data()}]
        for kind, label in RESPONSE_LABELS.items()
    ]


def category_buttons(language: Language, incident_id: int) -> list[list[Button]]:
    buttons = [
        {"text": category_label(language, name), "callback_data": Category(incident_id, name).data()}
        for name in PICKABLE
    ]
    return [buttons[i : i + 3] for i in range(0, len(buttons), 3)]


def escalation_buttons(language: Language, incident_id: int, level: int) -> list[list[Button]]:
    rows = [[{"text": t(language, "button.ack"), "callback_data": Ack(incident_id).data()}]]
    if level < 2:
        rows.append([{"text": t(language, "button.escalate_police"),
                      "callback_data": Escalate(incident_id, "police").data()}])
    return rows


def sos_keyboard(language: Language) -> dict[str, Any]:
    """The persistent reply keyboard: the SOS button first, always."""
    return {
        "keyboard": [[{"text": t(language, "sos_button")}], [{"text": t(language, "help_button")}]],
        "resize_keyboard": True,
        "is_persistent": True,
    }


def is_sos_button(text: str) -> bool:
    return text.strip() in {t(lang, "sos_button") for lang in ("zh", "en")}


def is_help_button(text: str) -> bool:
    return text.strip() in {t(lang, "help_button") for lang in ("zh", "en")}
