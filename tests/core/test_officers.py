"""The women's federation officer and the children's director serve the private incidents of their
category in their grid (issue 12, item 3): /cases, /case, /ack, /resolve, /refer, /referral_done."""

from __future__ import annotations

from datetime import timedelta

import pytest

from groups import alerts, cases, referrals
from groups.errors import UserError
from tests.support.village import T0, Village, build_village

LATER = T0 + timedelta(minutes=1)


@pytest.fixture
def village(database_url: str) -> Village:
    return build_village(database_url)


def _raise(v: Village, category: str | None) -> int:
    with v.session() as s:
        number = alerts.raise_alert(s, v.actor(s, "m2"), T0, category).incident_id
        s.commit()
    return number


def test_an_officer_works_the_private_incidents_of_their_category(village: Village) -> None:
    v = village
    violence = _raise(v, "violence")
    with v.session() as s:
        f1 = v.actor(s, "f1")
        assert [c.incident_id for c in cases.list_cases(s, f1, LATER)] == [violence]
        assert cases.case_detail(s, f1, violence, LATER).summary.incident_id == violence
        assert cases.acknowledge(s, f1, violence, LATER).reply_key == "acknowledged"
        referred = referrals.refer(s, f1, violence, "women", LATER, days="10")
        assert referred.reply_key == "referral_sent"
        assert referrals.referral_done(s, f1, violence, "已答复", LATER).reply_key == "referral_done"
        assert cases.resolve(s, f1, violence, "已安置", LATER).reply_key == "resolved"
        s.commit()


def test_an_officer_sees_nothing_else(village: Village) -> None:
    v = village
    public = _raise(v, "fire")
    with v.session() as s:
        f1, c1 = v.actor(s, "f1"), v.actor(s, "c1")
        assert cases.list_cases(s, f1, LATER) == []  # a public incident is the grid worker's
        for officer in (f1, c1):
            with pytest.raises(UserError) as refused:
                cases.acknowledge(s, officer, public, LATER)
            assert refused.value.key == "not_allowed"
        with pytest.raises(UserError) as refused:
            cases.mark_false(s, f1, public, None, LATER)  # not among an officer's commands
        assert refused.value.key == "not_allowed"
    child = _raise(v, "child")
    with v.session() as s:
        f1, c1 = v.actor(s, "f1"), v.actor(s, "c1")
        assert cases.list_cases(s, f1, LATER) == []  # a child's case is the children's director's
        assert [c.incident_id for c in cases.list_cases(s, c1, LATER)] == [child]
        with pytest.raises(UserError) as refused:
            cases.case_detail(s, f1, child, LATER)
        assert refused.value.key == "not_allowed"
