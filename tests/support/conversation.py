"""A conversation in-process: real SQLite, fake ports (the outbox ids and timers it hands on are kept),
only the routers a test names. No Redis, no Telegram face."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.conversation import Conversation, Incoming, Outcome, Ports, Router
from config.settings import Settings
from groups.db import get_engine, session_scope
from groups.model import HouseholdGroup, Member
from groups.roster import import_roster, parse_roster
from tests.support.harness import DATA
from tests.support.village import T0

BOT_USERNAME = "yihu_test_bot"
FIRST_USER_ID = 700_000


@dataclass
class FakePorts:
    """What the conversation handed on after its commits: outbox ids to enqueue, timers to arm."""

    enqueued: list[int] = field(default_factory=list)
    armed: list[Any] = field(default_factory=list)


@dataclass
class Chat:
    """One conversation wired to fakes, and a way to send it updates as a Telegram user."""

    conversation: Conversation
    engine: Engine
    ports: FakePorts
    user_ids: dict[str, int] = field(default_factory=dict)
    update_ids: Iterator[int] = field(default_factory=lambda: count(1))

    def uid(self, who: str | int) -> int:
        """A roster key's Telegram user id (given out on first use), or an id as is."""
        if isinstance(who, int):
            return who
        return self.user_ids.setdefault(who, FIRST_USER_ID + len(self.user_ids))

    def send(self, who: str | int, text: str | None = None, **fields: Any) -> Outcome:
        """An update from ``who``: a private message unless ``chat_id`` / ``chat_type`` say otherwise."""
        uid = self.uid(who)
        fields.setdefault("chat_type", "private")
        fields.setdefault("chat_id", uid)
        fields.setdefault("language_code", "zh")
        return self.conversation.handle(Incoming(update_id=next(self.update_ids), user_id=uid, text=text, **fields))

    def press(self, who: str | int, data: str) -> Outcome:
        return self.send(who, callback_id=f"cb{next(self.update_ids)}", callback_data=data, message_id=1)

    def texts(self, who: str | int, text: str | None = None, **fields: Any) -> list[str]:
        return [reply.text for reply in self.send(who, text, **fields).replies]

    def member(self, key: str) -> Member:
        with Session(self.engine) as session:
            return session.exec(select(Member).where(Member.key == key)).one()

    def group(self, code: str) -> HouseholdGroup:
        with Session(self.engine) as session:
            return session.exec(select(HouseholdGroup).where(HouseholdGroup.code == code)).one()

    def link(self, *keys: str) -> None:
        """Each member sends ``/start <their invite>`` (as a villager with the printed card would)."""
        for key in keys:
            self.send(key, f"/start {self.member(key).invite_token}")

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)


def wire(url: str, routers: Sequence[Router], engine: Engine | None = None) -> Chat:
    """A conversation over the database at ``url`` with these routers (the clock stands at T0)."""
    engine = engine or get_engine(url)
    fakes = FakePorts()
    ports = Ports(
        settings=Settings(database_url=url, language="zh"),
        engine=engine,
        bot_id=1,
        bot_username=BOT_USERNAME,
        enqueue=fakes.enqueued.extend,
        arm=fakes.armed.extend,
        clock=lambda: T0,
    )
    return Chat(Conversation(ports, routers), engine, fakes)


def wire_village(url: str, routers: Sequence[Router], roster: str | None = None) -> Chat:
    """The end-to-end tests' village (tests/data/village.yaml) imported, nobody linked yet."""
    text = roster if roster is not None else (DATA / "village.yaml").read_text(encoding="utf-8")
    engine = get_engine(url)
    with session_scope(engine) as session:
        import_roster(session, parse_roster(text))
    return wire(url, routers, engine)
