"""The bot removed from a bound group chat (issue 12, item 7): the binding drops, the head and the grid
workers are told by DM, later alerts go by DM only, and ``/bind`` restores it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from bot.render import render_notification
from config.settings import Settings
from groups import alerts, onboarding
from groups.model import HouseholdGroup, Notification
from tests.support.village import GROUP_CHAT, T0, Village, build_village, rows


@pytest.fixture
def village(database_url: str) -> Village:
    return build_village(database_url)


def g1(v: Village) -> HouseholdGroup:
    with Session(v.engine) as s:
        return s.exec(select(HouseholdGroup).where(HouseholdGroup.code == "g1")).one()


def notes(v: Village, ids: list[int]) -> list[Notification]:
    with Session(v.engine) as s:
        return list(s.exec(select(Notification).where(col(Notification.id).in_(ids))).all())


@pytest.mark.parametrize("reason", ["left", "kicked"])
def test_removed_from_the_chat_drops_the_binding_and_tells_head_and_workers(village: Village, reason: str) -> None:
    v = village
    with v.session() as s:
        effects = onboarding.chat_lost(s, GROUP_CHAT, reason, T0)
        s.commit()
    assert g1(v).chat_id is None
    told = notes(v, effects.notifications)
    assert sorted(r.recipient_id or 0 for r in told) == sorted([v.ids["m1"], v.ids["w1"]])  # not w2 (lc4)
    assert {r.purpose for r in told} == {"update"} and all(r.incident_id is None for r in told)
    with Session(v.engine) as s:
        for language in ("zh", "en"):
            call = render_notification(s, told[0], Settings(language=language))
            assert call is not None and "Group g1" in call.params["text"] and "bind-g1" in call.params["text"]
    with v.session() as s:  # told once: the chat is no longer bound to any group
        assert onboarding.chat_lost(s, GROUP_CHAT, reason, T0).notifications == []
    with v.session() as s:  # later alerts go by DM only
        number = alerts.raise_alert(s, v.actor(s, "m2"), T0 + timedelta(seconds=5)).incident_id
        s.commit()
        assert all(r.chat_id != GROUP_CHAT for r in rows(s, number))
        alerted = {r.recipient_id for r in rows(s, number) if r.purpose == "alert"}
        assert alerted == {v.ids["m1"], v.ids["m3"], v.ids["m4"]}


def test_bind_restores_and_a_second_removal_tells_them_again(village: Village) -> None:
    v = village
    with v.session() as s:
        onboarding.chat_lost(s, GROUP_CHAT, "kicked", T0)
        onboarding.bind_group(s, v.actor(s, "m1"), GROUP_CHAT, "bind-g1", T0 + timedelta(seconds=10))
        s.commit()
    assert g1(v).chat_id == GROUP_CHAT
    with v.session() as s:
        number = alerts.raise_alert(s, v.actor(s, "m2"), T0 + timedelta(seconds=20)).incident_id
        s.commit()
        assert any(r.chat_id == GROUP_CHAT and r.purpose == "alert" for r in rows(s, number))
        again = onboarding.chat_lost(s, GROUP_CHAT, "left", T0 + timedelta(seconds=30))
        s.commit()
    assert len(again.notifications) == 2


def test_a_403_posting_to_the_group_drops_the_binding(village: Village) -> None:
    v = village
    with v.session() as s:
        number = alerts.raise_alert(s, v.actor(s, "m2"), T0).incident_id
        s.commit()
        post = next(r for r in rows(s, number) if r.chat_id == GROUP_CHAT)
        assert post.id is not None
        told = alerts.note_unreachable(s, post.id, T0 + timedelta(seconds=1))
        s.commit()
    assert g1(v).chat_id is None
    assert sorted(r.recipient_id or 0 for r in notes(v, told)) == sorted([v.ids["m1"], v.ids["w1"]])
    with v.session() as s:
        assert v.member(s, "m1").unreachable_at is None  # nobody is marked unreachable for a group's 403
        # A tally edit of the old post owes nothing to the chat any more.
        alerts.respond(s, v.actor(s, "m3"), number, "coming", T0 + timedelta(seconds=2))
        s.commit()
        edit = next(r for r in rows(s, number) if r.kind == "edit" and r.group_id is not None)
        assert render_notification(s, edit, Settings()) is None
