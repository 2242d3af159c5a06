"""One whole scenario — onboarding, binding, an alert, responses, permissions, escalation, case handling —
for both faces, in polling and in webhook mode: behaviour must not depend on the choice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from groups.model import Incident, IncidentEvent, Response
from tests.support.harness import DATA, Village

pytestmark = pytest.mark.timeout(150)

ROSTER = (DATA / "village.yaml").read_text(encoding="utf-8").replace(
    "escalation: {head_ack_s: 120, worker_ack_s: 300}", "escalation: {head_ack_s: 3, worker_ack_s: 60}"
)
GROUP = [f"g1m{i}" for i in range(1, 11)]


@pytest.mark.parametrize(
    ("framework", "webhook"),
    [("aiogram", False), ("ptb", False), ("aiogram", True), ("ptb", True)],
    ids=["aiogram-polling", "ptb-polling", "aiogram-webhook", "ptb-webhook"],
)
async def test_whole_scenario(tmp_path: Path, redis_url: str, framework: str, webhook: bool) -> None:
    async with Village(tmp_path, redis_url, roster=ROSTER, workers=2, framework=framework, webhook=webhook) as v:
        await v.link(*GROUP, "w1", "p1")
        chat = await v.bind_group_chat("g1")
        assert v.group("g1").chat_id == chat

        # One call: the reporter is confirmed, the nine others and the group chat are told once.
        await v.say("g1m5", "/sos fire 厨房着火了")
        assert "#1" in (await v.wait("g1m5", 2))[-1]["text"]
        for key in GROUP:
            if key != "g1m5":
                assert "厨房着火了" in (await v.wait(key, 2))[-1]["text"]
        post = (await v.wait(chat, 2))[-1]

        # Nine responses: a neighbour comes (from the group post); the reporter hears of it.
        data = post["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        answer = await v.press("g1m3", chat, post, data)
        assert answer["text"]
        assert any("王建国" in m["text"] for m in await v.wait("g1m5", 3, timeout=15))

        # A villager may not handle cases.
        await v.say("g1m4", "/resolve 1")
        assert "没有权限" in (await v.wait("g1m4", 3))[-1]["text"]

        # Nobody with standing acknowledged: after 3 s the grid worker is told, with the buttons.
        escalation = (await v.wait("w1", 2, timeout=10))[-1]
        assert "#1" in escalation["text"]
        ack = escalation["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        await v.press("w1", v.user_ids["w1"], escalation, ack)
        await v.say("w1", "/resolve 1 已扑灭")
        await v.wait("w1", 3)
        closing = await v.wait_for_text("g1m5", "已扑灭", timeout=15)
        assert "#1" in closing["text"]
        await asyncio.sleep(0.5)
        with v.session() as session:
            incident = session.exec(select(Incident)).one()
            kinds = [e.kind for e in session.exec(select(IncidentEvent).order_by(IncidentEvent.id)).all()]
            responses = session.exec(select(Response)).all()
        assert incident.status == "resolved" and incident.escalation_level == 1
        assert kinds[0] == "raised" and "escalated" in kinds and kinds[-1] == "resolved"
        assert len(responses) == 1
        assert len(await v.messages("p1")) == 1  # the police step never came
