"""The renderer on real rows: what a recipient sees, in their language."""

from __future__ import annotations

from sqlmodel import Session, col, select

from bot.render import render_notification
from bot.render.texts import t
from config.settings import Settings
from groups import alerts, escalation
from groups.db import session_scope
from groups.model import DeliveryStatus, Notification, utcnow
from tests.support.village import GROUP_CHAT, build_village

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
