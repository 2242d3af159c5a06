"""The conversation in-process: fake ports, real SQLite, only the routers a test needs. No Redis, no face."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import select

from bot.bootstrap import ROUTERS
from bot.conversation import Conversation, Incoming, Outcome, Router
from bot.features.alerts.payloads import Respond, SendAsSos
from bot.features.alerts.router import router as alerts
from bot.features.cases.router import router as cases
from bot.render.texts import plain, t
from groups.model import Incident, IncidentEvent, Notification, Response
from tests.support.conversation import Chat, FakePorts, wire
from tests.support.village import Village, build_village


@dataclass
class VillageChat:
    """The conversation over the core tests' small village (tests/support/village.py)."""

    chat: Chat
    village: Village

    def send(self, key: str, text: str | None = None, **fields: Any) -> Outcome:
        return self.chat.send(self.village.uid(key), text, **fields)

    def press(self, key: str, data: str) -> Outcome:
        return self.chat.press(self.village.uid(key), data)

    @property
    def ports(self) -> FakePorts:
        return self.chat.ports

    @property
    def conversation(self) -> Conversation:
        return self.chat.conversation


def wire_core(url: str, routers: Sequence[Router]) -> VillageChat:
    village = build_village(url)
    return VillageChat(wire(url, routers, village.engine), village)


@pytest.fixture
def chat(sqlite_url: str) -> VillageChat:
    return wire_core(sqlite_url, ROUTERS)


def texts(outcome: Outcome) -> list[str]:
    return [reply.text for reply in outcome.replies]


def test_6995_raises_and_hands_the_outbox_and_the_timer_on_after_commit(chat: VillageChat) -> None:
    outcome = chat.send("m2", "6995")
    assert outcome.replies == []  # the confirmation comes from the outbox
    with chat.village.session() as session:
        incident = session.exec(select(Incident)).one()
        rows = session.exec(select(Notification).where(Notification.incident_id == incident.id)).all()
    owed = [row.id for row in rows if row.status == "pending"]  # not the unlinked m4's (nothing to send)
    assert sorted(chat.ports.enqueued) == sorted(owed) and len(owed) >= 3
    assert len(chat.ports.armed) == 1


def test_an_update_delivered_twice_is_handled_once(chat: VillageChat) -> None:
    incoming = Incoming(update_id=77, chat_id=chat.village.uid("m2"), chat_type="private",
                        user_id=chat.village.uid("m2"), text="6995")
    first = chat.conversation.handle(incoming)
    enqueued = list(chat.ports.enqueued)
    again = chat.conversation.handle(incoming)
    assert not first.duplicate and again.duplicate
    assert chat.ports.enqueued == enqueued
    with chat.village.session() as session:
        assert len(session.exec(select(Incident)).all()) == 1


def test_a_response_button_is_recorded_and_a_forged_one_refused(chat: VillageChat) -> None:
    chat.send("m2", "6995")
    with chat.village.session() as session:
        number = int(session.exec(select(Incident.id)).one() or 0)
    answered = chat.press("m3", Respond(number, "coming").data())
    assert answered.callback_answer == plain("zh", "answer.recorded", kind=t("zh", "response.coming"))
    with chat.village.session() as session:
        (response,) = session.exec(select(Response)).all()
        assert response.kind == "coming" and response.member_id == chat.village.ids["m3"]
    for forged in ("r:1:z", "r:x:c", "zz:1", "", "r:" + "9" * 80 + ":c"):
        refused = chat.press("m3", forged)
        assert refused.callback_answer == plain("zh", "callback.bad") and refused.callback_alert


def test_a_refused_command_writes_nothing(chat: VillageChat) -> None:
    chat.send("m2", "6995")
    with chat.village.session() as session:
        before = len(session.exec(select(IncidentEvent)).all())
    refused = chat.send("m3", "/ack 1")  # a villager may not take a case
    assert len(refused.replies) == 1 and chat.village.uid("m3")
    with chat.village.session() as session:
        assert len(session.exec(select(IncidentEvent)).all()) == before
        assert session.exec(select(Incident)).one().status == "open"


def test_a_voice_note_is_offered_as_an_sos_and_one_tap_raises_it(chat: VillageChat) -> None:
    offer = chat.send("m6", voice=True, message_id=42)
    (reply,) = offer.replies
    assert reply.text == t("zh", "attachment.offer_voice")
    data = reply.reply_markup["inline_keyboard"][0][0]["callback_data"] if reply.reply_markup else ""
    assert SendAsSos.parse(data) == SendAsSos(voice_message_id=42)
    tapped = chat.press("m6", data)
    assert tapped.callback_answer == plain("zh", "answer.sos_sent")
    with chat.village.session() as session:
        incident = session.exec(select(Incident)).one()
        assert incident.reporter_id == chat.village.ids["m6"]


def test_only_the_routers_given_answer(sqlite_url: str) -> None:
    """A conversation of the alert feature alone: /start is unknown, the help button is just a text."""
    chat = wire_core(sqlite_url, [alerts])
    assert texts(chat.send("m2", "/start")) == [t("zh", "error.unknown_command")]
    assert texts(chat.send("m2", t("zh", "help_button"))) == [t("zh", "hint.no_incident")]
    assert chat.press("w1", "a:1").callback_answer == plain("zh", "callback.bad")  # the case feature's button
    chat.send("m2", "6995")
    assert chat.ports.enqueued


def test_two_routers_claiming_the_same_thing_is_a_wiring_error(sqlite_url: str) -> None:
    ports = wire_core(sqlite_url, [alerts, cases]).conversation.ports
    twin = Router("twin")
    twin.command("ack")(lambda conversation, turn, args: None)
    with pytest.raises(ValueError, match="ack"):
        Conversation(ports, [cases, twin])
    other = Router("other")
    other.otherwise(lambda conversation, turn: None)
    with pytest.raises(ValueError, match="other_text"):
        Conversation(ports, [alerts, other])




def test_refusals_keep_their_order_now_that_the_conversation_finds_the_member(chat: VillageChat) -> None:
    """A forged escalate button from a stranger is refused for its target first (as when the core looked
    the user up itself); a stranger's valid press and a stranger's text command are 'not linked'."""
    stranger = 99_999
    targets = " | ".join(("police", "women", "child"))
    forged = chat.chat.press(stranger, "e:1:mayor")
    assert forged.callback_answer == plain("zh", "bad_target", targets=targets) and forged.callback_alert
    unlinked = chat.chat.press(stranger, "e:1:police")
    assert unlinked.callback_answer == plain("zh", "not_linked")
    assert texts(chat.chat.send(stranger, "/cases")) == [t("zh", "not_linked")]
