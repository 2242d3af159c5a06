"""Conversation features, one module each (like aiogram's feature routers), registered on a Conversation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.conversation import Conversation


def register(conversation: Conversation) -> None:
    from bot.features import alerts, cases, onboarding  # noqa: PLC0415

    for feature in (onboarding, alerts, cases):
        feature.register(conversation)
