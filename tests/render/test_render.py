"""The renderer on real rows: what a recipient sees, in their language."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from bot.render import render_notification
from bot.render.texts import t
from config.settings import Settings
from groups import alerts, escalation
from groups.db import session_scope
from groups.model import DeliveryStatus, Member, Notification, utcnow
from tests.support.village import GROUP_CHAT, T0, Village, build_village

SETTINGS = Settings(bot_token="1:x")


def test_an_alert_made_private_is_withdrawn_from_the_group_the_head_and_the_neighbours(sqlite_url: str) -> None:
    village = build_village(sqlite_url)
    now = utcnow()
    with session_scope(village.engine) as session:
        raised = alerts.raise_alert(session, village.actor(session, "m2"), now, text="他又打人了")
        # Everything of the raise was sent: the messages have Telegram ids.
        for n, row in enumerate(session.exec(select(Notification)).all(), start=1):
            row.status, row.telegram_message_id = DeliveryStatus.sent, n
            session.add(row)
    with session_scope(village.engine) as session:
        changed = alerts.set_category(session, village.actor(session, "m2"), raised.incident_id, "violence", now)
    with Session(village.engine) as session:
        owed = col(Notification.id).in_(changed.effects.notifications)
        edits = session.exec(select(Notification).where(owed, Notification.kind == "edit")).all()
        rendered = [render_notification(session, row, SETTINGS) for row in edits]
    # The group post, the head's DM and the neighbour's DM (m4 has no Telegram: nothing to edit there).
    sent = [o for o in rendered if o is not None]
    assert sorted(o.chat_id for o in sent) == sorted([GROUP_CHAT, village.uid("m1"), village.uid("m3")])
    for outgoing in sent:
        assert outgoing.params["text"] == t("zh", "alert.withdrawn", id=raised.incident_id)
        assert "reply_markup" not in outgoing.params  # no buttons left to press
        assert "打人" not in outgoing.params["text"]


def test_manual_escalation_names_the_role_told(sqlite_url: str) -> None:
    village = build_village(sqlite_url)
    with session_scope(village.engine) as session:
        raised = alerts.raise_alert(session, village.actor(session, "m2"), utcnow())
        w1 = village.actor(session, "w1")
        result = escalation.escalate_manual(session, w1, raised.incident_id, "Women", None, utcnow())
    assert result.target == "women_fed" and result.told == 1
    assert t("zh", f"role.{result.target}") == "妇联执委"


def _confirmations(village: Village, number: int, language: str = "zh") -> list[str]:
    """The reporter's confirmations of incident ``number`` as rendered, the reporter speaking ``language``."""
    with Session(village.engine) as session:
        found = session.exec(
            select(Notification).where(Notification.incident_id == number, Notification.purpose == "confirmation")
            .order_by(col(Notification.id))
        ).all()
        for row in found:
            reporter = session.get(Member, row.recipient_id)
            assert reporter is not None
            reporter.language_code = language
        texts = []
        for row in found:
            outgoing = render_notification(session, row, SETTINGS)
            assert outgoing is not None
            texts.append(str(outgoing.params["text"]))
        return texts


def test_a_private_confirmation_counts_the_staff_told(sqlite_url: str) -> None:
    village = build_village(sqlite_url)
    with session_scope(village.engine) as session:
        raised = alerts.raise_alert(session, village.actor(session, "m2"), T0, category="家暴")
    assert raised.told == 3  # w1, p1, f1 of the grid
    n = raised.incident_id
    (zh,) = _confirmations(village, n)
    assert zh == t("zh", "confirm.raised_private", id=n, category="家暴", told=3)
    assert "正在通知 3 位工作人员" in zh and "不会告诉邻居" in zh
    (en,) = _confirmations(village, n, "en")
    assert "Telling 3 staff" in en


def test_a_repeat_sos_confirmation_counts_those_told(sqlite_url: str) -> None:
    village = build_village(sqlite_url)
    with session_scope(village.engine) as session:
        raised = alerts.raise_alert(session, village.actor(session, "m2"), T0)
    with session_scope(village.engine) as session:
        again = alerts.raise_alert(session, village.actor(session, "m2"), T0 + timedelta(seconds=30))
    n = raised.incident_id
    assert again.joined and again.told == raised.told == 2  # m1 and m3 (m4 has not joined)
    first, repeat = _confirmations(village, n)
    assert "正在通知 2 人" in first
    assert repeat == t("zh", "confirm.joined", id=n, told=2) and "已通知 2 人" in repeat
    assert "2 people have been told" in _confirmations(village, n, "en")[1]


def test_a_repeat_sos_that_makes_it_private_counts_the_staff_not_the_neighbours(sqlite_url: str) -> None:
    village = build_village(sqlite_url)
    with session_scope(village.engine) as session:
        raised = alerts.raise_alert(session, village.actor(session, "m2"), T0)
    with session_scope(village.engine) as session:
        m2 = village.actor(session, "m2")
        again = alerts.raise_alert(session, m2, T0 + timedelta(seconds=30), "家暴", "又打人了")
    n = raised.incident_id
    assert again.joined and again.private and again.told == 3  # the staff now told, not m1 and m3
    with session_scope(village.engine) as session:
        third = alerts.raise_alert(session, village.actor(session, "m2"), T0 + timedelta(seconds=60))
    assert third.joined and third.told == 3
    _, second, last = _confirmations(village, n)
    assert second == last == t("zh", "confirm.joined_private", id=n, told=3)
    assert "已通知 3 位工作人员" in last and "不会告诉邻居" in last
    assert "3 staff have been told" in _confirmations(village, n, "en")[2]


def test_a_repeat_sos_reaching_nobody_says_so(sqlite_url: str) -> None:
    village = build_village(sqlite_url)
    with session_scope(village.engine) as session:
        # In g3, m8's only neighbour is the head m7: once m7 has no Telegram link, nobody can be told.
        m7 = village.member(session, "m7")
        m7.telegram_user_id = None
        session.add(m7)
    with session_scope(village.engine) as session:
        raised = alerts.raise_alert(session, village.actor(session, "m8"), T0)
    with session_scope(village.engine) as session:
        alerts.raise_alert(session, village.actor(session, "m8"), T0 + timedelta(seconds=30))
    n = raised.incident_id
    assert _confirmations(village, n) == [t("zh", "confirm.nobody", id=n)] * 2
