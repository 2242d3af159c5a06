"""Issue 12 items 10 and 4 in the conversation: /sos after /cancel reopens the same #N without a second
flood; /refer tells the department and answers, like /case, with dates in YIHU_TIMEZONE (zh and en)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from sqlmodel import col, select

from bot.bootstrap import ROUTERS
from bot.render import render_notification
from bot.render.texts import t
from config.settings import Settings
from groups.model import Incident, Member, Notification
from tests.support.conversation import Chat, wire_village
from tests.support.harness import DATA

SETTINGS = Settings(bot_token="1:x")  # timezone Asia/Shanghai, the default
# 20:00 UTC is 04:00 the next day in Shanghai: a date shown in UTC would be a day early.
EVENING = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
VILLAGERS = [f"g1m{i}" for i in range(1, 11)]


def _roster() -> str:
    """The e2e village with a civil affairs officer (a1) in its grid, and no procuratorate."""
    data: dict[str, Any] = yaml.safe_load((DATA / "village.yaml").read_text(encoding="utf-8"))
    data["grids"][0]["civil_affairs"] = ["a1"]
    data["staff"].append({"key": "a1", "name": "孙民政", "role": "civil_affairs"})
    return yaml.safe_dump(data, allow_unicode=True)


@pytest.fixture
def chat(sqlite_url: str) -> Chat:
    chat = wire_village(sqlite_url, ROUTERS, _roster())
    chat.link(*VILLAGERS, "w1", "p1", "f1", "a1")
    return chat


def _clock(chat: Chat, start: datetime, step_s: float = 1.0) -> None:
    """Every update one ``step_s`` later than the one before."""
    ticks: Iterator[datetime] = (start + timedelta(seconds=step_s * i) for i in range(10_000))
    chat.conversation.ports.clock = lambda: next(ticks)


def _last_number(chat: Chat) -> int:
    with chat.session() as session:
        number = session.exec(select(Incident.id).order_by(col(Incident.id).desc())).first()
    assert number is not None
    return number


def _rendered(chat: Chat, row: Notification, language: str) -> str:
    with chat.session() as session:
        assert row.recipient_id is not None
        member = session.get(Member, row.recipient_id)
        assert member is not None
        member.language_code = language
        outgoing = render_notification(session, row, SETTINGS)
        session.rollback()
    assert outgoing is not None
    return str(outgoing.params["text"])


def _rows(chat: Chat, **where: Any) -> list[Notification]:
    with chat.session() as session:
        found = session.exec(select(Notification).order_by(col(Notification.id))).all()
    return [r for r in found if all(getattr(r, k) == v for k, v in where.items())]


def _of(chat: Chat, key: str, rows: list[Notification]) -> list[Notification]:
    member_id = chat.member(key).id
    return [r for r in rows if r.recipient_id == member_id]


def test_sos_after_cancel_confirms_the_same_number_and_the_count_told(chat: Chat) -> None:
    _clock(chat, EVENING)
    chat.send("g1m2", "/sos 厨房着火")
    n = _last_number(chat)
    (cancelled,) = chat.texts("g1m2", "/cancel")
    assert f"#{n}" in cancelled
    chat.send("g1m2", "6995")
    assert _last_number(chat) == n
    confirmations = _of(chat, "g1m2", _rows(chat, purpose="confirmation"))
    assert len(confirmations) == 2
    zh, en = (_rendered(chat, confirmations[-1], language) for language in ("zh", "en"))
    assert zh == t("zh", "confirm.reopened", id=n, category=t("zh", "category.general"), told=9)
    assert en == t("en", "confirm.reopened", id=n, category=t("en", "category.general"), told=9)
    assert f"#{n}" in en and "raised again" in en and "9 people" in en
    (notice,) = _of(chat, "g1m1", _rows(chat, kind="notice"))
    assert "李桂兰" in _rendered(chat, notice, "zh") and "raised again" in _rendered(chat, notice, "en")
    (case,) = chat.texts("w1", f"/case {n}")
    assert t("zh", "event.reopened") in case and t("zh", "event.cancelled") in case
    # Times shown in the timeline are local: 20:00:00 UTC is 04:00:00 in Shanghai.
    assert "11-23 04:00:00" in case


def test_ten_sos_and_cancel_cycles_in_twenty_seconds(chat: Chat) -> None:
    _clock(chat, EVENING)
    for _ in range(10):
        chat.send("g1m2", "/sos")
        chat.send("g1m2", "/cancel")
    assert _last_number(chat) == 1
    urgent = _rows(chat, priority="urgent")
    alerts = [r for r in urgent if r.purpose == "alert" and r.kind == "message"]
    notices = [r for r in urgent if r.kind == "notice"]
    confirmations = [r for r in urgent if r.purpose == "confirmation"]
    # One fan-out to the nine neighbours (head included), one short notice each, ten confirmations:
    # 28 urgent rows where ten incidents made ten floods before.
    assert (len(alerts), len(notices), len(confirmations), len(urgent)) == (9, 9, 10, 28)
    assert {r.recipient_id for r in notices} == {r.recipient_id for r in alerts}
    (misuse,) = [r for r in _rows(chat, purpose="update") if r.payload.get("template") == "misuse"]
    assert misuse.recipient_id == chat.member("g1m1").id  # the head, once
    zh = _rendered(chat, misuse, "zh")
    assert "李桂兰" in zh and "4 次" in zh and "60 分钟" in zh
    assert "4 alerts within 60 min" in _rendered(chat, misuse, "en")


def test_refer_tells_the_department_and_dates_are_local(chat: Chat) -> None:
    _clock(chat, EVENING, step_s=0)
    chat.send("g1m3", "/sos violence")
    n = _last_number(chat)
    (reply,) = chat.texts("f1", f"/refer {n} civil 10")
    assert reply == t("zh", "referral_sent", number=n, department=t("zh", "department.civil"), told=1,
                      due="2026-12-03")
    (reply_en,) = chat.texts("f1", f"/refer {n} civil 10", language_code="en")
    assert "answer due 2026-12-03" in reply_en and "civil affairs" in reply_en
    referral = _rows(chat, purpose="referral")
    assert {r.recipient_id for r in referral} == {chat.member("a1").id}
    dm = _rendered(chat, referral[0], "zh")
    assert "2026-12-03" in dm and "刘执委" in dm and t("zh", "category.violence") in dm
    assert "2026-12-03" in _rendered(chat, referral[0], "en")
    (nobody,) = chat.texts("w1", f"/refer {n} procuratorate 5")
    assert nobody == t("zh", "referral_nobody", number=n, department=t("zh", "department.procuratorate"),
                       due="2026-11-28")
    (case,) = chat.texts("w1", f"/case {n}")
    assert t("zh", "case.referral", department="民政", status="待答复", due="2026-12-03") in case
    assert t("zh", "case.referral", department="检察院", status="待答复", due="2026-11-28") in case
    assert t("zh", "event.referred_detail", department="民政", days=10) in case
    (case_en,) = chat.texts("w1", f"/case {n}", language_code="en")
    assert "· civil affairs · open · due 2026-12-03" in case_en
    chat.texts("w1", f"/referral_done {n} 已安置")
    (done,) = chat.texts("w1", f"/case {n}")
    assert t("zh", "case.referral_answered", department="民政", done="2026-11-23") in done
