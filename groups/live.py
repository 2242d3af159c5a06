"""Live location (实时位置): the reporter's live location shared with those told, following every move.

A location the reporter shares with a ``live_period`` within the attach window starts a
:class:`~groups.model.LiveLocation`; each of those told (the private staff alone once the incident is
private) is owed one ``live_location`` row (sent with a live period), and so is anyone told later (an
escalation, the staff of an incident made private) at the next move. Each move of the reporter's message
owes, per message sent, at most ONE pending ``live_edit`` row: the renderer reads the latest position when
it sends, so moves that come faster than the messages can be edited coalesce, and superseded edits that
went out are deleted (a long share does not pile up rows). The share ends when its period does (moves are
then ignored) or when the incident closes (each message sent is owed a ``live_stop``); once the incident
is private the messages of anyone but its staff are stopped and hear of no more moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from groups.directory import incident_group, is_open, load_incident, member_id
from groups.effects import Effects
from groups.model import DeliveryStatus, Incident, LiveLocation, Member, Notification, Priority, Purpose
from groups.outbox import audience_rows, incident_id, notify_chat, notify_member, owe_like, pending_ids, to_staff

LIVE_LOCATION = "live_location"
LIVE_EDIT = "live_edit"
LIVE_STOP = "live_stop"
# Telegram's "until I stop it" live period; any other is 60 .. 86400 seconds.
FOREVER_S = 0x7FFFFFFF

_DONE = (DeliveryStatus.failed.value, DeliveryStatus.unreachable.value)


@dataclass(frozen=True)
class LiveSource:
    """The reporter's live location message: their chat, the message id, and its live period (seconds)."""

    chat_id: int
    message_id: int
    live_period: int


def start_share(
    session: Session, incident: Incident, reporter: Member, source: LiveSource, position: tuple[float, float],
    now: datetime,
) -> LiveLocation:
    """The reporter's live location attached to ``incident`` (the caller owes it to each of the
    attachment's audience with :func:`owe_live`)."""
    share = LiveLocation(
        incident_id=incident_id(incident),
        reporter_id=member_id(reporter),
        chat_id=source.chat_id,
        message_id=source.message_id,
        latitude=position[0],
        longitude=position[1],
        live_period=source.live_period,
        started_at=now,
        live_until=now + timedelta(seconds=source.live_period),
        moved_at=now,
    )
    session.add(share)
    session.flush()
    return share


def owe_live(
    session: Session, incident: Incident, share: LiveLocation, target: Notification, now: datetime
) -> Notification | None:
    """The live location owed to the recipient of told row ``target`` (once per share and recipient)."""
    payload = {"live_id": share.id, "staff": to_staff(target)}  # staff keep following a private incident
    key = f"live:{share.id}:{target.id}"
    if target.recipient_id is not None:
        recipient = session.get(Member, target.recipient_id)
        if recipient is None:
            return None
        return notify_member(session, incident, recipient, Purpose.update, Priority.updates, payload, key, now,
                             LIVE_LOCATION)
    assert target.chat_id is not None
    group = incident_group(session, incident)
    return notify_chat(session, incident, group, target.chat_id, Purpose.update, Priority.updates, payload, key,
                       now, LIVE_LOCATION)


def move_share(
    session: Session, actor: Member | None, chat_id: int, message_id: int, position: tuple[float, float],
    now: datetime,
) -> Effects:
    """The reporter's live location moved (an edited message): the messages sent follow it, and whoever was
    told since it started (an escalation, the staff of an incident made private) gets it too. Anything
    else (an edit of another message, someone else's, a share that ended or whose incident closed) is
    ignored."""
    if actor is None or not actor.active:
        return Effects()
    query = select(LiveLocation).where(
        LiveLocation.chat_id == chat_id,
        LiveLocation.message_id == message_id,
        LiveLocation.reporter_id == member_id(actor),
    )
    share = session.exec(query).first()
    if share is None:
        return Effects()
    incident = load_incident(session, share.incident_id, for_update=True)  # serializes moves and the close
    session.refresh(share)
    if share.stopped_at is not None or now >= share.live_until or not is_open(incident):
        return Effects()
    share.latitude, share.longitude = position
    share.moved_at = now
    share.version += 1
    session.add(share)
    incident.latitude, incident.longitude = position
    session.add(incident)
    sent_by_key = {row.dedupe_key: row for row in _live_rows(session, share)}
    followed: set[int | None] = set()
    rows: list[Notification | None] = []
    for target in audience_rows(session, incident):
        if target.status == DeliveryStatus.unreachable or target.chat_id is None:
            continue
        sent = sent_by_key.get(f"live:{share.id}:{target.id}")
        if sent is None:
            rows.append(owe_live(session, incident, share, target, now))
            continue
        followed.add(sent.id)
        if sent.status not in _DONE:
            rows.append(_edit(session, share, sent, now))
    for sent in sent_by_key.values():
        if sent.id not in followed and sent.status not in _DONE:
            rows.append(_stop(session, sent, now))  # no longer told (made private): their copy stops here
    session.flush()
    return Effects(notifications=pending_ids(rows))


def stop_shares(session: Session, incident: Incident, now: datetime, *, public_only: bool = False) -> list[int]:
    """Stop the live locations of ``incident`` (it closed: all of them; it became private: those sent to
    anyone but its staff). Returns the ``live_stop`` rows to enqueue."""
    rows: list[Notification | None] = []
    for share in session.exec(select(LiveLocation).where(LiveLocation.incident_id == incident_id(incident))):
        if share.stopped_at is not None:
            continue
        if not public_only:
            share.stopped_at = now
            session.add(share)
        for sent in _live_rows(session, share):
            if sent.status not in _DONE and (not public_only or not sent.payload.get("staff")):
                rows.append(_stop(session, sent, now))
    session.flush()
    return pending_ids(rows)


def _live_rows(session: Session, share: LiveLocation) -> list[Notification]:
    """The live locations owed for ``share``, whatever became of them."""
    query = select(Notification).where(
        Notification.incident_id == share.incident_id,
        Notification.kind == LIVE_LOCATION,
        col(Notification.dedupe_key).startswith(f"live:{share.id}:"),
    ).order_by(col(Notification.id))
    return list(session.exec(query).all())


def _edit(session: Session, share: LiveLocation, sent: Notification, now: datetime) -> Notification | None:
    """At most one pending edit per live message: a pending one will send the latest position anyway."""
    if sent.status == DeliveryStatus.pending:
        return None  # not sent yet: it goes out with the latest position
    prefix = f"liveedit:{sent.id}:"
    earlier = session.exec(select(Notification).where(col(Notification.dedupe_key).startswith(prefix))).all()
    if any(row.status == DeliveryStatus.pending for row in earlier):
        return None
    superseded = [row.id for row in earlier if row.status in (DeliveryStatus.sent, *_DONE)]
    if superseded:
        session.exec(delete(Notification).where(col(Notification.id).in_(superseded)))
    return owe_like(session, sent, LIVE_EDIT, {"edit_of": sent.id, "live_id": share.id},
                     f"{prefix}{share.version}", now)


def _stop(session: Session, sent: Notification, now: datetime) -> Notification | None:
    key = f"livestop:{sent.id}"
    if session.exec(select(Notification.id).where(Notification.dedupe_key == key)).first() is not None:
        return None
    payload = {"edit_of": sent.id, "live_id": sent.payload.get("live_id")}
    return owe_like(session, sent, LIVE_STOP, payload, key, now)
