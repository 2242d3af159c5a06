"""A manual escalation, by command or button, in-process: the DM the target receives names who escalated."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from bot.bootstrap import ROUTERS
from bot.features.cases.payloads import Escalate
from bot.render import render_notification
from bot.render.texts import t
from config.settings import Settings
from groups.model import Incident, Notification
from tests.support.conversation import Chat, wire_village

SETTINGS = Settings(bot_token="1:x")


@pytest.fixture
def chat(sqlite_url: str) -> Chat:
    chat = wire_village(sqlite_url, ROUTERS)
    chat.link("g1m1", "g1m2", "w1", "p1", "f1")
    chat.send("g1m2", "/sos 有人闯进院子")
    return chat


def _number(chat: Chat) -> int:
    with chat.session() as session:
        number = session.exec(select(Incident.id).order_by(col(Incident.id).desc())).first()
    assert number is not None
    return number


def _escalation_dm(chat: Chat, key: str, language: str = "zh") -> str:
    """The escalation DM ``key`` was sent, rendered as they would read it in ``language``."""
    member = chat.member(key)
    with chat.session() as session:
        row = session.exec(
            select(Notification).where(Notification.recipient_id == member.id, Notification.purpose == "escalation")
        ).one()
        assert row.id in chat.ports.enqueued
        recipient = session.merge(member)
        recipient.language_code = language
        outgoing = render_notification(session, row, SETTINGS)
    assert outgoing is not None
    return str(outgoing.params["text"])


def test_escalate_command_names_the_grid_worker_in_the_target_dm(chat: Chat) -> None:
    n = _number(chat)
    (reply,) = chat.texts("w1", f"/escalate {n} women 身上有伤")
    assert f"#{n}" in reply
    dm = _escalation_dm(chat, "f1")
    reason = t("zh", "escalation.manual", name="王网格") + " — 身上有伤"
    assert dm.startswith(t("zh", "escalation.title", id=n, reason=reason))
    assert "?" not in dm.splitlines()[0]
    assert "escalated by 王网格 — 身上有伤" in _escalation_dm(chat, "f1", "en").splitlines()[0]


def test_escalate_button_names_the_grid_worker_in_the_target_dm(chat: Chat) -> None:
    n = _number(chat)
    outcome = chat.press("w1", Escalate(n, "police").data())
    assert outcome.callback_answer is not None
    dm = _escalation_dm(chat, "p1")
    assert dm.startswith(t("zh", "escalation.title", id=n, reason=t("zh", "escalation.manual", name="王网格")))
    assert "王网格 手动上报" in dm.splitlines()[0]
