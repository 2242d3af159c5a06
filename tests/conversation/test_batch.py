"""A polled batch of updates, handled a few per transaction: order per chat, duplicates, a user's refusal
and a failing update in the middle (real SQLite, and PostgreSQL with concurrent lanes when configured)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

from sqlmodel import col, select

from bot.bootstrap import ROUTERS
from bot.conversation import Incoming, Outcome, Router, Turn
from bot.face import ReplySender, ingest_run, lanes
from groups.model import Incident, ProcessedUpdate
from tests.support.conversation import Chat, wire_village

boom = Router("boom")


@boom.command("boom")
def _boom(conversation: Any, turn: Turn, args: str) -> None:
    raise RuntimeError("a bug in one handler")


def _update(chat: Chat, update_id: int, who: str, text: str) -> Incoming:
    uid = chat.uid(who)
    return Incoming(update_id=update_id, chat_id=uid, chat_type="private", user_id=uid, language_code="zh",
                    text=text)


def _handled(chat: Chat) -> list[str]:
    with chat.session() as session:
        return sorted(session.exec(select(ProcessedUpdate.ext_id).where(ProcessedUpdate.kind == "update")).all())


def _reporters(chat: Chat) -> set[int]:
    with chat.session() as session:
        return set(session.exec(select(Incident.reporter_id)).all())


def test_a_batch_keeps_each_chats_order_drops_duplicates_and_undoes_only_a_refusal(sqlite_url: str) -> None:
    chat = wire_village(sqlite_url, ROUTERS)
    chat.link("g1m1")
    before = len(chat.ports.enqueued)
    token = chat.member("g1m5").invite_token
    batch = [
        _update(chat, 101, "g1m5", f"/start {token}"),  # links g1m5 ...
        _update(chat, 102, "g1m5", "6995"),  # ... so that this SOS, after it in the same chat, is theirs
        _update(chat, 102, "g1m5", "6995"),  # Telegram delivered it twice
        _update(chat, 103, "g1m1", "/resolve 999"),  # refused: undoes only its own writes
        _update(chat, 104, "g1m1", "6995"),
    ]
    outcomes = chat.conversation.handle_batch(batch)
    assert [o.duplicate for o in outcomes] == [False, False, True, False, False]
    assert outcomes[3].replies and not outcomes[2].replies
    assert {chat.member("g1m5").id, chat.member("g1m1").id} == _reporters(chat)
    assert [u for u in _handled(chat) if u.startswith("10")] == ["101", "102", "103", "104"]
    assert len(chat.ports.enqueued) > before  # both alerts' rows handed on after the one commit
    # The same batch again (a restart before the offset was confirmed): nothing happens twice.
    again = chat.conversation.handle_batch(batch)
    assert all(o.duplicate for o in again) and len(_reporters(chat)) == 2


class Sent(ReplySender):
    """A face without Telegram: records what would be sent, handles a single update as the faces do."""

    def __init__(self, chat: Chat) -> None:
        super().__init__()
        self.conversation = chat.conversation
        self.sent: list[tuple[int, Outcome]] = []
        self.one_by_one: list[int] = []

    def send_later(self, chat_id: int, outcome: Outcome, callback_id: str | None) -> None:
        self.sent.append((chat_id, outcome))


def test_a_failing_update_in_the_middle_loses_no_other(database_url: str) -> None:
    chat = wire_village(database_url, [*ROUTERS, boom])
    chat.link("g1m1", "g1m2", "g1m3")
    face = Sent(chat)
    run = [
        _update(chat, 201, "g1m1", "6995"),
        _update(chat, 202, "g1m2", "/boom"),
        _update(chat, 203, "g1m3", "6995"),
        _update(chat, 204, "g1m3", "/help"),
    ]

    async def one_by_one(k: int) -> bool:
        face.one_by_one.append(k)
        with contextlib.suppress(RuntimeError):  # the faces log it and move on after their retries
            face.send_later(run[k].chat_id, chat.conversation.handle(run[k]), None)
        return True

    done = asyncio.run(ingest_run(face, run, one_by_one))
    assert done == {0, 1, 2, 3}
    assert 1 in face.one_by_one  # the failing batch was handled again one update at a time
    assert {chat.member("g1m1").id, chat.member("g1m3").id} == _reporters(chat)
    assert [u for u in _handled(chat) if u.startswith("20")] == ["201", "203", "204"]  # the bad one: not marked
    assert sorted(chat_id for chat_id, _ in face.sent) == sorted(run[k].chat_id for k in (0, 2, 3))
    with chat.session() as session:
        assert session.exec(select(Incident).where(col(Incident.reporter_id) == chat.member("g1m2").id)).all() == []


def test_updates_of_one_chat_or_one_person_stay_in_one_lane_in_order() -> None:
    def update(update_id: int, chat_id: int, user_id: int) -> Incoming:
        return Incoming(update_id=update_id, chat_id=chat_id, chat_type="private", user_id=user_id)

    batch = [
        update(1, 10, 10),
        update(2, 20, 20),
        update(3, -5, 10),  # user 10 in a group chat: with their private chat
        update(4, -5, 30),  # the same group chat: with them too
        update(5, 40, 40),
        update(6, 10, 10),
        update(7, 20, 20),
    ]
    found = lanes(batch, 4)
    assert sorted(k for lane in found for k in lane) == list(range(len(batch)))
    assert all(lane == sorted(lane) for lane in found)
    assert [0, 2, 3, 5] in found and [1, 6] in found and [4] in found
    assert lanes(batch, 1) == [list(range(len(batch)))]


def test_each_lanes_first_transaction_is_the_small_first_batch(sqlite_url: str) -> None:
    """Under a flood the first confirmations are committed sooner: a lane's first transaction holds
    ``ingest_first_batch`` updates, the next ones ``ingest_batch``; every update is handled once."""
    chat = wire_village(sqlite_url, ROUTERS)
    chat.link("g1m1")
    ports = chat.conversation.ports
    settings = ports.settings.model_copy(update={"ingest_batch": 4, "ingest_first_batch": 2, "ingest_lanes": 1})
    chat.conversation.ports = dataclasses.replace(ports, settings=settings)
    sizes: list[int] = []
    handle_batch = chat.conversation.handle_batch

    def recording(batch: list[Incoming]) -> list[Outcome]:
        sizes.append(len(batch))
        return handle_batch(batch)

    chat.conversation.handle_batch = recording  # type: ignore[method-assign]
    face = Sent(chat)
    run = [_update(chat, 300 + k, "g1m1", "/help") for k in range(9)]

    async def one_by_one(k: int) -> bool:
        raise AssertionError("no batch fails here")

    assert asyncio.run(ingest_run(face, run, one_by_one)) == set(range(9))
    assert sizes == [2, 4, 3]
    assert len(face.sent) == 9
