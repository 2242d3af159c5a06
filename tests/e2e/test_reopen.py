"""An SOS soon after /cancel reopens the same incident over the wire, on each face: real Redis and RQ
workers, the emulator. The neighbours get one short notice with the response buttons, not a second alert."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from groups.model import Incident, Response
from tests.support.harness import Village

pytestmark = pytest.mark.timeout(120)

GROUP = [f"g1m{i}" for i in range(1, 11)]


@pytest.fixture
async def village(tmp_path: Path, redis_url: str, framework: str) -> AsyncIterator[Village]:
    async with Village(tmp_path, redis_url, framework=framework, workers=2) as v:
        await v.link(*GROUP)
        await v.bind_group_chat("g1")
        yield v


async def test_sos_after_cancel_reopens_with_one_notice_each(village: Village) -> None:
    chat = village.group_chats["g1"]
    await village.say("g1m4", "6995")
    await village.wait("g1m2", 2)  # greeting, alert
    await village.say("g1m4", "/cancel")
    await village.wait_for_text("g1m2", "撤销", timeout=15)  # the closing message
    await village.say("g1m4", "/sos 又着火了")
    confirmation = await village.wait_for_text("g1m4", "已重新发出", timeout=15)
    assert "#1" in confirmation["text"] and "9" in confirmation["text"]
    notice = await village.wait_for_text("g1m2", "再次求助", timeout=15)
    assert "#1" in notice["text"] and "赵秀英" in notice["text"]
    coming = notice["reply_markup"]["inline_keyboard"][0][0]
    answer = await village.press("g1m2", village.user_ids["g1m2"], notice, coming["callback_data"])
    assert not answer.get("show_alert")  # open again: the press is recorded
    await village.wait_for_text("g1m4", "李桂兰", timeout=15)  # the reporter hears who is coming
    await asyncio.sleep(1.5)  # let the workers deliver anything else they owe before counting
    # greeting, alert, closing, notice: no second alert; the chat has its post (edited), no second one.
    assert len(await village.messages("g1m2")) == 4
    assert len(await village.messages(chat)) == 2
    with village.session() as session:
        (incident,) = session.exec(select(Incident)).all()
        assert incident.status == "open"
        assert len(session.exec(select(Response)).all()) == 1
