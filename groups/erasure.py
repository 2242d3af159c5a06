"""Forgetting a member (隐私删除): ``yihu members forget KEY`` for a privacy request.

What goes: the name, the phone, the Telegram link, and every free text the person wrote — the text and
location of the incidents they raised, what they attached (forwarded words, voice notes, locations, live
locations), the notes and reasons they gave when closing, escalating or answering a referral, and the
outbox payloads that carry any of it. What stays: the member key, as reporter, responder and actor, so that
incidents, responses and the ledger still count; the person is shown as erased (已删除).

A forgotten key stays forgotten: a later roster import naming it keeps it erased (``groups.roster.sync``).
Names are not copied into rows anywhere else: notifications name members by id and are rendered from
the current member at send time, so an alert still queued reads "erased" too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlmodel import Session, col, select

from groups.directory import member_id
from groups.errors import UserError
from groups.model import (
    OPEN_STATUSES,
    DeliveryStatus,
    Incident,
    IncidentEvent,
    LiveLocation,
    Notification,
    Referral,
)
from groups.operator import member_by_key
from groups.roster.sync import new_invite_token

# What an erased member's name column holds: shown as is where no renderer knows of erasure.
ERASED_NAME: Final[str] = "已删除"

# Timeline kinds whose detail is a code the core wrote (a category, a response kind, a level), not the
# person's words: kept. Any other detail written by the person is erased, including kinds added later.
CODE_DETAILS: Final[frozenset[str]] = frozenset(
    {"raised", "category", "response", "acknowledged", "attachment", "referred"}
)
# Payload fields that hold the reporter's own words, voice or whereabouts (forwarded attachments).
REPORTER_FIELDS: Final[frozenset[str]] = frozenset({"text", "latitude", "longitude", "from_chat_id", "live_id"})
# Payload fields that hold what the acting member (payload "by") wrote: a closing note, an escalation reason.
ACTOR_FIELDS: Final[tuple[str, ...]] = ("note", "reason")
_UNSENT: Final[tuple[str, ...]] = (DeliveryStatus.pending.value, DeliveryStatus.sending.value)
WITHHELD: Final[str] = "withheld: personal data erased"


@dataclass
class ErasureResult:
    """What ``forget_member`` changed. ``incidents``: the numbers the key stays on as reporter."""

    key: str
    already: bool = False
    linked: bool = False
    phone: bool = False
    incidents: list[int] = field(default_factory=list)
    forced: list[int] = field(default_factory=list)  # open incidents and referrals erased with --force
    texts: int = 0  # incident texts and locations
    details: int = 0  # timeline details
    notes: int = 0  # referral notes
    payloads: int = 0  # outbox rows neutralised
    withheld: int = 0  # of those, unsent rows that will not be sent


def forget_member(session: Session, key: str, now: datetime, *, force: bool = False) -> ErasureResult:
    """Erase the personal data of the member ``key`` in the caller's transaction.

    Raises UserError("ops.unknown_member") for an unknown key; ("ops.forget_open_incident") or
    ("ops.forget_open_referral") while the member has an open incident or an open referral (evidence
    in a protection case) unless ``force``. An already erased member changes nothing (``already``).
    """
    try:
        member = member_by_key(session, key)
    except UserError as exc:
        if exc.key == "ops.member_erased":
            return ErasureResult(key, already=True)
        raise
    mid = member_id(member)
    reported = session.exec(select(Incident).where(Incident.reporter_id == mid).order_by(col(Incident.id))).all()
    open_numbers = [i.id for i in reported if i.id is not None and i.status in OPEN_STATUSES]
    referrals = _open_referrals(session, mid, [i.id for i in reported if i.id is not None])
    if not force:
        if open_numbers:
            raise UserError("ops.forget_open_incident", member=key, numbers=_numbers(open_numbers))
        if referrals:
            raise UserError("ops.forget_open_referral", member=key, numbers=_numbers(referrals))
    result = ErasureResult(
        key,
        linked=member.telegram_user_id is not None,
        phone=member.phone is not None,
        incidents=[i.id for i in reported if i.id is not None],
        forced=sorted(set(open_numbers) | set(referrals)),
    )
    _erase_incidents(session, reported, result)
    _erase_live_locations(session, mid, result)
    written = _erase_events(session, mid, result)
    _erase_referral_notes(session, written, result)
    _erase_payloads(session, mid, result.incidents, {n for n, _ in written}, result)
    _erase_addresses(session, mid, result)
    member.name = ERASED_NAME
    member.phone = None
    member.telegram_user_id = None
    member.language_code = None
    member.linked_at = None
    member.unreachable_at = None
    member.invite_token = new_invite_token()  # the card is dead: a new secret no one is given
    member.active = False
    member.erased_at = now
    session.add(member)
    session.flush()
    return result


def _numbers(numbers: list[int]) -> str:
    return ", ".join(f"#{n}" for n in sorted(set(numbers)))


def _open_referrals(session: Session, mid: int, reported: list[int]) -> list[int]:
    """Incidents with an open referral that is about the member (their incident) or that they made."""
    query = select(Referral).where(col(Referral.done_at).is_(None))
    return sorted(
        {r.incident_id for r in session.exec(query).all() if r.incident_id in reported or r.referred_by_id == mid}
    )


def _erase_incidents(session: Session, reported: Any, result: ErasureResult) -> None:
    for incident in reported:
        if incident.text is not None or incident.latitude is not None or incident.longitude is not None:
            incident.text = None
            incident.latitude = incident.longitude = None
            session.add(incident)
            result.texts += 1


def _erase_live_locations(session: Session, mid: int, result: ErasureResult) -> None:
    """The live locations they shared (their whereabouts, their chat): gone; the rows that sent or
    followed them are emptied with the other forwards, so nothing follows them any more."""
    for share in session.exec(select(LiveLocation).where(LiveLocation.reporter_id == mid)).all():
        session.delete(share)
        result.texts += 1


def _erase_events(session: Session, mid: int, result: ErasureResult) -> list[tuple[int, datetime]]:
    """Erase the details the member wrote; (incident, time) of each event of theirs that had a detail."""
    written: list[tuple[int, datetime]] = []
    for event in session.exec(select(IncidentEvent).where(IncidentEvent.actor_id == mid)).all():
        if event.detail is None:
            continue
        written.append((event.incident_id, event.at))
        if event.kind in CODE_DETAILS:
            continue
        # A manual escalation's detail is "police: reason": the target is a code, the reason their words.
        kept = event.detail.split(":", 1)[0].strip() if event.kind == "escalated" else None
        if kept != event.detail:
            event.detail = kept or None
            session.add(event)
            result.details += 1
    return written


def _erase_referral_notes(session: Session, written: list[tuple[int, datetime]], result: ErasureResult) -> None:
    """A referral's note is the answer of whoever marked it done: the referral_done event at that time."""
    done = set(written)
    incidents = sorted({incident for incident, _ in done})
    if not incidents:
        return
    query = select(Referral).where(col(Referral.incident_id).in_(incidents), col(Referral.note).is_not(None))
    for referral in session.exec(query).all():
        if (referral.incident_id, referral.done_at) in done:
            referral.note = None
            session.add(referral)
            result.notes += 1


def _erase_addresses(session: Session, mid: int, result: ErasureResult) -> None:
    """Rows addressed to the member keep who was told (the key) but not their Telegram chat; those not yet
    sent are withheld (there is no one left to send them to)."""
    query = select(Notification).where(Notification.recipient_id == mid, col(Notification.chat_id).is_not(None))
    for row in session.exec(query).all():
        row.chat_id = None
        if row.status in _UNSENT:
            row.status = DeliveryStatus.failed.value
            row.last_error = WITHHELD
            result.withheld += 1
        session.add(row)


def _erase_payloads(
    session: Session,
    mid: int,
    reported: list[int],
    acted_on: set[int],
    result: ErasureResult,
) -> None:
    """Rows forwarding the member's words, voice or location are emptied (and withheld if unsent); rows
    quoting a note or reason they gave lose it. Rows that merely name them by id stay: they render
    "erased" from now on."""
    incidents = sorted(set(reported) | acted_on)
    if not incidents:
        return
    rows = session.exec(select(Notification).where(col(Notification.incident_id).in_(incidents))).all()
    for row in rows:
        payload: dict[str, Any] = dict(row.payload or {})
        # Only the reporter attaches to an incident: on theirs, a forwarded text, copy or location is theirs.
        forwarded = row.kind == "copy" or any(name in payload for name in REPORTER_FIELDS)
        theirs = row.incident_id in reported and forwarded
        if theirs:
            if row.status in _UNSENT:
                row.status = DeliveryStatus.failed.value
                row.last_error = WITHHELD
                result.withheld += 1
            row.payload = {}
        elif payload.get("by") == mid and any(payload.get(name) for name in ACTOR_FIELDS):
            row.payload = {**payload, **{name: None for name in ACTOR_FIELDS if name in payload}}
        else:
            continue
        session.add(row)
        result.payloads += 1
