"""The live location calls (:mod:`groups.live`): sendLocation with a live period to each of those told,
editMessageLiveLocation to follow each move, stopMessageLiveLocation when the incident closes.

The position is read from the share when the call is made, so an edit sends the latest move however many
came while it waited for its slot in the limiter.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlmodel import Session

from groups.live import FOREVER_S, LIVE_EDIT, LIVE_LOCATION, LIVE_STOP
from groups.model import DeliveryStatus, LiveLocation, Notification, utcnow
from workers.channels import NotReady
from workers.channels.telegram import Outgoing

LIVE_KINDS = (LIVE_LOCATION, LIVE_EDIT, LIVE_STOP)
MIN_PERIOD_S = 60  # Telegram's live periods: 60 .. 86400 seconds, or FOREVER_S
MAX_PERIOD_S = 86400


def render_live(session: Session, row: Notification, chat_id: int, now: datetime | None = None) -> Outgoing | None:
    """The Bot API call for a live location row, or None when nothing is to be sent any more.

    Raises :class:`NotReady` for an edit or a stop whose live location has not gone out yet."""
    payload = row.payload or {}
    share = session.get(LiveLocation, payload.get("live_id"))
    if share is None:
        return None
    now = now or utcnow()
    position = {"latitude": share.latitude, "longitude": share.longitude}
    if row.kind == LIVE_LOCATION:
        if share.stopped_at is not None:
            return None  # the incident closed before it went out
        params: dict[str, object] = {"chat_id": chat_id, **position}
        remaining = (share.live_until - now).total_seconds()
        if share.live_period >= FOREVER_S:
            params["live_period"] = FOREVER_S
        elif remaining > 0:
            # Rounded up and one second more: the copy lives at least as long as the reporter's share, so
            # no edit the share allows comes after the copy's end.
            params["live_period"] = min(MAX_PERIOD_S, max(MIN_PERIOD_S, math.ceil(remaining) + 1))
        return Outgoing("sendLocation", chat_id, params)  # an ended share: its last position, not live
    sent = session.get(Notification, payload.get("edit_of"))
    if sent is None:
        return None
    if sent.telegram_message_id is None:
        if sent.status in (DeliveryStatus.pending, DeliveryStatus.sending):
            raise NotReady(f"live location {sent.id} not sent yet")
        return None  # it never went out (or went out as a plain location): nothing follows it
    if now >= share.live_until:
        return None  # Telegram ended it: it can be neither moved nor stopped
    target = {"chat_id": chat_id, "message_id": sent.telegram_message_id}
    if row.kind == LIVE_STOP:
        return Outgoing("stopMessageLiveLocation", chat_id, target)
    if share.stopped_at is not None:
        return None
    return Outgoing("editMessageLiveLocation", chat_id, {**target, **position})
