"""The operator's day two, in the core: a member forgotten everywhere (and kept forgotten by a roster
import), refused while their case is open, a new invite token (relink, rotate), a group chat unbound."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import Session, select

from bot.render import render_notification
from bot.render.format import person
from config.settings import Settings
from groups import alerts, cases, escalation, referrals
from groups.db import get_engine, session_scope
from groups.erasure import ERASED_NAME, forget_member
from groups.errors import UserError
from groups.live import LiveSource
from groups.model import DeliveryStatus, HouseholdGroup, Incident, IncidentEvent, Member, Notification, Referral
from groups.onboarding import link_member
from groups.operator import relink_member, rotate_token, unbind_group
from groups.roster import import_roster, parse_roster
from groups.views import list_incidents
from tests.support.village import GROUP_CHAT, T0, Village, build_village, token

DATA = Path(__file__).resolve().parent.parent / "data"
SETTINGS = Settings(bot_token="1:x", language="zh")
# What m2 said and where they were: none of it may be left anywhere once m2 is forgotten.
WORDS = ("灶台起火了", "在二楼东屋", "他又喝醉了")
PHONE = "13912345678"


@pytest.fixture
def village(database_url: str) -> Village:
    v = build_village(database_url)
    with v.session() as s:
        m2 = v.member(s, "m2")
        m2.phone = PHONE
        s.add(m2)
        s.commit()
    return v


def _dump(v: Village) -> str:
    """Every row of every table, as text."""
    with v.engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        rows = {t: [list(r) for r in connection.execute(text(f'SELECT * FROM "{t}"'))] for t in tables}
    return json.dumps(rows, ensure_ascii=False, default=str)


def _holds(dump: str, trace: str) -> bool:
    """Whether the dump holds ``trace`` as written, or as JSON columns store it (``\\u706b...``)."""
    stored = json.dumps(trace)[1:-1]  # in the JSON column
    return trace in dump or json.dumps(stored)[1:-1] in dump


def _rows(s: Session, number: int) -> list[Notification]:
    return list(s.exec(select(Notification).where(Notification.incident_id == number)).all())


def _m2_raises_attaches_and_is_answered(v: Village) -> int:
    """m2 raises a fire alert with words and a location, repeats it, attaches words, a voice note, a
    location and a live location; m3 answers; w1 resolves it. Half of the forwarded rows were delivered,
    half are pending."""
    with v.session() as s:
        m2 = v.actor(s, "m2")
        number = alerts.raise_alert(s, m2, T0, "fire", WORDS[0], (30.12345, 120.54321)).incident_id
        alerts.raise_alert(s, m2, T0 + timedelta(seconds=10), None, WORDS[2])  # a repeat: timeline "repeat"
        alerts.respond(s, v.actor(s, "m3"), number, "coming", T0 + timedelta(seconds=20))
        for row in _rows(s, number):
            row.status = DeliveryStatus.sent.value
            s.add(row)
        alerts.attach(s, m2, T0 + timedelta(seconds=30), text=WORDS[1])
        alerts.attach(s, m2, T0 + timedelta(seconds=40), voice=(v.uid("m2"), 77))
        alerts.attach(s, m2, T0 + timedelta(seconds=50), location=(31.98765, 121.4321))
        alerts.attach(s, m2, T0 + timedelta(seconds=55), location=(32.24680, 122.1357),
                      live=LiveSource(v.uid("m2"), 78, 900))
        forwarded = [r for r in _rows(s, number) if r.kind in ("copy", "location") or "text" in r.payload]
        assert forwarded and any(r.kind == "copy" for r in forwarded)
        for row in forwarded[::2]:
            row.status = DeliveryStatus.sent.value
            s.add(row)
        cases.resolve(s, v.actor(s, "w1"), number, "已扑灭", T0 + timedelta(minutes=5))
        s.commit()
    return number


def test_forget_erases_the_person_everywhere_and_the_incident_stays_countable(village: Village) -> None:
    v = village
    number = _m2_raises_attaches_and_is_answered(v)
    before = _dump(v)
    for trace in (*WORDS, PHONE, "N-m2", "31.98765", "32.2468", str(v.uid("m2"))):
        assert _holds(before, trace), trace  # the test would prove nothing otherwise

    with v.session() as s:
        result = forget_member(s, "m2", T0 + timedelta(days=1))
        s.commit()

    after = _dump(v)
    for trace in (*WORDS, PHONE, "N-m2", "30.12345", "31.98765", "32.2468", str(v.uid("m2"))):
        assert not _holds(after, trace), trace
    assert result.linked and result.phone and result.incidents == [number] and result.forced == []
    assert result.texts == 2 and result.details >= 1 and result.payloads >= 3 and result.withheld >= 1  # text, live
    with Session(v.engine) as s:
        m2 = v.member(s, "m2")
        assert (m2.name, m2.phone, m2.telegram_user_id, m2.active) == (ERASED_NAME, None, None, False)
        assert m2.erased_at is not None and m2.invite_token != token("m2")
        assert person("zh", m2) == "已删除" and person("en", m2) == "erased"
        incident = s.get(Incident, number)
        assert incident is not None and incident.reporter_id == m2.id and incident.category == "fire"
        assert (incident.text, incident.latitude, incident.longitude) == (None, None, None)
        all_events = s.exec(select(IncidentEvent)).all()
        events = {e.kind: e.detail for e in all_events}
        attached = [e.detail for e in all_events if e.kind == "attachment"]
        assert events["raised"] == "fire" and attached == ["text", "voice", "location", "live"]  # codes stay
        assert events["repeat"] is None and events["resolved"] == "已扑灭"  # w1's note is not m2's
        withheld = [r for r in _rows(s, number) if r.status == DeliveryStatus.failed.value]
        # Unsent forwards of m2's words are emptied; unsent rows to m2 have no one left to reach.
        assert withheld and all(r.payload == {} or r.recipient_id == m2.id for r in withheld)
        assert all(r.chat_id is None for r in _rows(s, number) if r.recipient_id == m2.id)
    # Countable: listed with the key as reporter, the key marked erased; the responder stays.
    with Session(v.engine) as s:  # closed at once: an open transaction would block the next test's reset
        (view,) = list_incidents(s)
    assert view["reporter"] == "m2" and view["erased"] == ["m2"] and view["status"] == "resolved"
    assert [r["member"] for r in view["responses"]] == ["m3"]

    # A row still to be rendered names the person as erased, in the recipient's language.
    with v.session() as s:
        m3 = v.member(s, "m3")
        m3.language_code = "en"
        alert = next(r for r in _rows(s, number) if r.recipient_id == m3.id and r.purpose == "alert")
        outgoing = render_notification(s, alert, SETTINGS)
        assert outgoing is not None and "erased" in json.dumps(outgoing.params, ensure_ascii=False)

    with v.session() as s:
        again = forget_member(s, "m2", T0 + timedelta(days=2))
        s.commit()
    assert again.already


def test_forget_erases_what_staff_wrote_and_keeps_the_codes(village: Village) -> None:
    """A staff member forgotten: the reasons, notes and referral answers they wrote go; the targets stay."""
    v = village
    with v.session() as s:
        number = alerts.raise_alert(s, v.actor(s, "m2"), T0, "violence").incident_id
        w1 = v.actor(s, "w1")
        escalation.escalate_manual(s, w1, number, "police", "邻居说经常打人", T0 + timedelta(seconds=5))
        referrals.refer(s, w1, number, "women", T0 + timedelta(seconds=6))
        referrals.referral_done(s, w1, number, "已联系妇联刘主任", T0 + timedelta(seconds=7))
        cases.resolve(s, w1, number, "双方已调解", T0 + timedelta(seconds=8))
        s.commit()
    with v.session() as s:
        forget_member(s, "w1", T0 + timedelta(days=1))
        s.commit()

    dump = _dump(v)
    for words in ("邻居说经常打人", "已联系妇联刘主任", "双方已调解", "N-w1"):
        assert not _holds(dump, words), words
    with Session(v.engine) as s:
        events = {e.kind: e.detail for e in s.exec(select(IncidentEvent)).all()}
        assert events["escalated"] == "police" and events["referred"].startswith("women ")
        assert events["referral_done"] is None and events["resolved"] is None
        (referral,) = s.exec(select(Referral)).all()
        assert referral.note is None and referral.done_at is not None


def test_forget_is_refused_while_a_case_is_open_unless_forced(village: Village) -> None:
    v = village
    with v.session() as s:
        number = alerts.raise_alert(s, v.actor(s, "m2"), T0, "violence", WORDS[2]).incident_id
        referrals.refer(s, v.actor(s, "w1"), number, "women", T0 + timedelta(seconds=5))
        s.commit()
    before = _dump(v)

    with v.session() as s, pytest.raises(UserError) as refused:
        forget_member(s, "m2", T0 + timedelta(minutes=1))
    assert refused.value.key == "ops.forget_open_incident" and refused.value.params["numbers"] == f"#{number}"

    with v.session() as s:
        cases.resolve(s, v.actor(s, "w1"), number, None, T0 + timedelta(minutes=2))
        s.commit()
    before = _dump(v)
    for key in ("m2", "w1"):  # the person the case is about, and the worker who referred it
        with v.session() as s, pytest.raises(UserError) as refused:
            forget_member(s, key, T0 + timedelta(minutes=3))
        assert refused.value.key == "ops.forget_open_referral"
    with v.session() as s, pytest.raises(UserError) as unknown:
        forget_member(s, "nobody", T0 + timedelta(minutes=3))
    assert unknown.value.key == "ops.unknown_member"
    assert _dump(v) == before

    with v.session() as s:
        forced = forget_member(s, "m2", T0 + timedelta(minutes=4), force=True)
        s.commit()
    assert forced.forced == [number] and not _holds(_dump(v), WORDS[2])


def test_a_roster_import_keeps_a_forgotten_key_erased(database_url: str) -> None:
    engine_url = database_url
    roster_text = (DATA / "roster.yaml").read_text(encoding="utf-8")
    with session_scope(get_engine(engine_url)) as s:
        import_roster(s, parse_roster(roster_text))
    with session_scope(get_engine(engine_url)) as s:
        forget_member(s, "m2", T0)

    renamed = roster_text.replace("李四", "李四四").replace("王五", "王五五")
    assert renamed != roster_text
    with session_scope(get_engine(engine_url)) as s:
        summary = import_roster(s, parse_roster(renamed))
    assert summary.erased == ["m2"]
    with Session(get_engine(engine_url)) as s:
        members = {m.key: m for m in s.exec(select(Member)).all()}
    m2 = members["m2"]
    assert (m2.name, m2.phone, m2.active) == (ERASED_NAME, None, False) and m2.erased_at is not None
    # Nothing else in the file was held back.
    assert summary.members.updated >= 1 and any(m.name == "王五五" for m in members.values())


def test_relink_forgets_the_account_and_the_old_token(village: Village) -> None:
    v = village
    with v.session() as s:
        result = relink_member(s, "m2")
        s.commit()
    assert result.unlinked_user == v.uid("m2") and result.token != token("m2")
    with v.session() as s:
        assert v.member(s, "m2").telegram_user_id is None
        for old in (token("m2"),):
            with pytest.raises(UserError) as refused:
                link_member(s, 777, old, "zh", T0)
            assert refused.value.key == "bad_token"
        linked = link_member(s, 777, result.token, "zh", T0)  # the new phone
        s.commit()
    assert linked.key == "m2" and not linked.again
    with v.session() as s:
        with pytest.raises(UserError) as gone:
            v.actor(s, "m2")  # the old account is no longer m2
        assert gone.value.key == "not_linked"


def test_rotate_token_for_an_unlinked_member_only(village: Village) -> None:
    v = village
    with v.session() as s:
        with pytest.raises(UserError) as linked:
            rotate_token(s, "m2")
        assert linked.value.key == "ops.linked_use_relink"
        with pytest.raises(UserError) as unknown:
            rotate_token(s, "zz")
        assert unknown.value.key == "ops.unknown_member"
        result = rotate_token(s, "m4")
        s.commit()
    assert result.token != token("m4")
    with v.session() as s:
        assert v.member(s, "m2").invite_token == token("m2")  # the refusal changed nothing
        with pytest.raises(UserError):
            link_member(s, 778, token("m4"), "zh", T0)
        assert link_member(s, 778, result.token, "zh", T0).key == "m4"


def test_unbind_drops_the_chat(village: Village) -> None:
    v = village
    with v.session() as s:
        bound = unbind_group(s, "g1")
        not_bound = unbind_group(s, "g2")
        with pytest.raises(UserError) as unknown:
            unbind_group(s, "g9")
        s.commit()
    assert (bound.chat_id, not_bound.chat_id) == (GROUP_CHAT, None) and unknown.value.key == "ops.unknown_group"
    with Session(v.engine) as s:
        assert s.exec(select(HouseholdGroup.chat_id).where(HouseholdGroup.code == "g1")).one() is None
