"""The alert loop end to end on each face (python-telegram-bot, aiogram): real Redis and RQ worker
processes, the emulator, SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from groups.model import Incident, Notification, Response
from groups.views import list_incidents
from tests.support.harness import Village

pytestmark = pytest.mark.timeout(120)

GROUP = [f"g1m{i}" for i in range(1, 11)]
LABELS = ["我来了 I'm coming", "已报警 Called 110", "无法前往 Can't come"]


@pytest.fixture
async def village(tmp_path: Path, redis_url: str, framework: str) -> AsyncIterator[Village]:
    async with Village(tmp_path, redis_url, framework=framework, workers=2) as v:
        await v.link(*GROUP, "w1", "p1", "f1", "c1")
        await v.bind_group_chat("g1")
        yield v


def buttons(message: dict[str, Any]) -> list[str]:
    return [row[0]["callback_data"] for row in message["reply_markup"]["inline_keyboard"]]


async def settle(village: Village, seconds: float = 1.5) -> None:
    """Give the workers time to deliver whatever they still owe (used before asserting "nothing more")."""
    await asyncio.sleep(seconds)


async def test_one_sos_reaches_the_nine_others_and_the_group_exactly_once(village: Village) -> None:
    chat = village.group_chats["g1"]
    await village.say("g1m5", "6995")
    confirmation = (await village.wait("g1m5", 2))[-1]
    assert "#1" in confirmation["text"] and "9" in confirmation["text"]
    for key in GROUP:
        if key != "g1m5":
            alert = (await village.wait(key, 2))[-1]
            assert "#1" in alert["text"] and "刘志强" in alert["text"] and "5号户" in alert["text"]
            assert [b[0]["text"] for b in alert["reply_markup"]["inline_keyboard"]] == LABELS
    post = (await village.wait(chat, 2))[-1]
    assert [b[0]["text"] for b in post["reply_markup"]["inline_keyboard"]] == LABELS
    await settle(village)
    for key in GROUP:
        assert len(await village.messages(key)) == 2  # the greeting, then exactly one alert / confirmation
    assert len(await village.messages(chat)) == 2  # the bind answer, then exactly one post
    for staff in ("w1", "p1", "f1", "c1"):
        assert len(await village.messages(staff)) == 1  # nothing but the greeting yet
    [view] = list_incidents(village.session())
    assert view["status"] == "open" and view["category"] == "general" and view["reporter"] == "g1m5"
    assert {n["status"] for n in view["notifications"]} == {"sent"}
    assert sorted(n["recipient"] for n in view["notifications"] if n["purpose"] == "alert") == sorted(
        [k for k in GROUP if k != "g1m5"] + ["group:g1"]
    )
    assert view["timeline"][0]["kind"] == "raised"


@pytest.mark.parametrize("text", ["/sos", "/sos fire 厨房着火了", "/sos 火灾 厨房着火了", "🆘 紧急求助"])
async def test_every_form_raises_at_once(village: Village, text: str) -> None:
    await village.say("g1m3", text)
    confirmation = (await village.wait("g1m3", 2))[-1]
    assert "#1" in confirmation["text"]
    with village.session() as session:
        incident = session.exec(select(Incident)).one()
    if "fire" in text or "火灾" in text:
        assert incident.category == "fire" and incident.text == "厨房着火了"
    else:
        assert incident.category == "general"


async def test_responses_tally_and_reporter_updates(village: Village) -> None:
    chat = village.group_chats["g1"]
    await village.say("g1m5", "6995")
    await village.wait("g1m5", 2)
    post = (await village.wait(chat, 2))[-1]
    dm = (await village.wait("g1m2", 2))[-1]
    answer = await village.press("g1m2", village.user_ids["g1m2"], dm, buttons(dm)[0])
    assert answer["text"] and "我来了" in answer["text"]
    answer = await village.press("g1m3", chat, post, buttons(post)[1])  # from the group post
    updates = await village.wait("g1m5", 4, timeout=15)
    texts = " ".join(m["text"] for m in updates[2:])
    assert "李桂兰" in texts and "王建国" in texts
    # A changed choice updates the one response; an identical repeat sends nothing.
    await village.press("g1m2", village.user_ids["g1m2"], dm, buttons(dm)[2])
    await village.wait("g1m5", 5, timeout=15)
    await settle(village, 2.5)
    before = len(await village.messages("g1m5"))
    repeat = await village.press("g1m2", village.user_ids["g1m2"], dm, buttons(dm)[2])
    assert repeat["text"]
    await settle(village, 2.0)
    assert len(await village.messages("g1m5")) == before
    with village.session() as session:
        responses = {r.member_id: r.kind for r in session.exec(select(Response)).all()}
    assert sorted(responses.values()) == ["called", "cant"]
    post_now = next(m for m in await village.messages(chat) if m["message_id"] == post["message_id"])
    assert post_now.get("edits"), "the group post was never edited"
    assert "李桂兰" in post_now["text"] and "王建国" in post_now["text"]


async def test_repeat_sos_joins_the_open_incident(village: Village) -> None:
    await village.say("g1m4", "6995")
    await village.wait("g1m4", 2)
    await village.say("g1m4", "/sos")
    second = (await village.wait("g1m4", 3))[-1]
    assert "#1" in second["text"]
    await settle(village)
    with village.session() as session:
        assert len(session.exec(select(Incident)).all()) == 1
    assert len(await village.messages("g1m2")) == 2  # neighbours were not told twice


async def test_cancel_tells_everyone_notified(village: Village) -> None:
    await village.say("g1m4", "6995")
    await village.wait("g1m2", 2)
    await village.say("g1m4", "/cancel")
    await village.wait("g1m2", 3, timeout=15)
    with village.session() as session:
        assert session.exec(select(Incident)).one().status == "cancelled"


async def test_private_category_goes_to_staff_only(village: Village) -> None:
    chat = village.group_chats["g1"]
    await village.say("g1m6", "/sos 家暴 他又打人了")
    confirmation = (await village.wait("g1m6", 2))[-1]
    assert "保密" in confirmation["text"]
    for staff in ("w1", "p1", "f1"):
        alert = (await village.wait(staff, 2))[-1]
        assert "🔒" in alert["text"] and "他又打人了" in alert["text"]
    await settle(village)
    assert len(await village.messages("c1")) == 1  # the children's director is not told of violence
    assert len(await village.messages(chat)) == 1
    for key in GROUP:
        if key != "g1m6":
            assert len(await village.messages(key)) == 1


async def test_unlinked_and_blocked_members_are_listed_to_the_head(
    tmp_path: Path, redis_url: str, framework: str
) -> None:
    async with Village(tmp_path, redis_url, framework=framework, workers=1) as village:
        await village.link(*[k for k in GROUP if k != "g1m9"])  # g1m9 never opened the invite
        await village.client.block(village.user_ids["g1m8"])  # g1m8 blocked the bot
        await village.say("g1m5", "6995")
        await village.wait("g1m5", 2)
        head = await village.wait("g1m1", 4, timeout=15)
        notes = " ".join(m["text"] for m in head[1:])
        assert "周德明" in notes  # g1m9, never linked
        assert "黄美华" in notes  # g1m8, 403
        await settle(village)
        with village.session() as session:
            rows = session.exec(select(Notification).where(Notification.purpose == "alert")).all()
            by_status = {village.member(k).id: n.status for n in rows for k in ("g1m8", "g1m9")
                         if n.recipient_id == village.member(k).id}
        assert set(by_status.values()) == {"unreachable"}


async def test_forged_and_late_callbacks_are_refused(village: Village) -> None:
    await village.say("g1m5", "6995")
    dm = (await village.wait("g1m2", 2))[-1]
    # w1 was not notified of #1 (and is not in the group): refused, nothing recorded.
    greeting = (await village.messages("w1"))[0]
    forged = await village.press("w1", village.user_ids["w1"], greeting, buttons(dm)[0], force=True)
    assert forged["show_alert"]
    garbage = await village.press("g1m2", village.user_ids["g1m2"], dm, "r:999:c", force=True)
    assert garbage["show_alert"]
    nonsense = await village.press("g1m2", village.user_ids["g1m2"], dm, "zz:1", force=True)
    assert nonsense["show_alert"]
    await village.say("g1m5", "/cancel")
    await village.wait("g1m2", 3, timeout=15)
    late = await village.press("g1m3", village.user_ids["g1m3"], (await village.messages("g1m3"))[1], buttons(dm)[0])
    assert late["show_alert"]
    with village.session() as session:
        assert session.exec(select(Response)).all() == []


async def test_names_and_texts_are_escaped(village: Village) -> None:
    await village.say("g1m7", "/sos <b>&救命</b>")
    alert = (await village.wait("g1m2", 2))[-1]
    assert "<b>&救命</b>" in alert["text"]  # arrives literally, not as markup


async def test_long_text_is_cut_to_telegram_limits(village: Village) -> None:
    await village.say("g1m7", "/sos " + "火" * 5000)
    alert = (await village.wait("g1m2", 2))[-1]
    assert len(alert["text"].encode("utf-16-le")) // 2 <= 4096


async def test_attachments_reach_everyone_already_told(village: Village) -> None:
    chat = village.group_chats["g1"]
    await village.say("g1m5", "6995")
    await village.wait("g1m2", 2)
    await village.say("g1m5", "在后院，快来")
    await village.client.send_location(village.user_ids["g1m5"], 39.9, 116.4)
    await village.client.send_voice(village.user_ids["g1m5"], duration=3)
    messages = await village.wait("g1m2", 5, timeout=15)
    kinds = {m["kind"] for m in messages[2:]}
    assert kinds == {"text", "location", "voice"}
    assert any("在后院" in (m.get("text") or "") for m in messages)
    await village.wait(chat, 5, timeout=15)


async def test_voice_without_incident_offers_one_tap_sos(village: Village) -> None:
    await village.client.send_voice(village.user_ids["g1m5"], duration=2)
    offer = (await village.wait("g1m5", 2))[-1]
    answer = await village.press("g1m5", village.user_ids["g1m5"], offer, buttons(offer)[0])
    assert answer["answered"]
    confirmation = (await village.wait("g1m5", 3))[-1]
    assert "#1" in confirmation["text"]
    neighbour = await village.wait("g1m2", 3, timeout=15)
    assert any(m["kind"] == "voice" for m in neighbour)
