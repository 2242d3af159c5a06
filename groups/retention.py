"""Retention: what yihu keeps only for a while (``YIHU_RETENTION_DAYS``, default 30).

Handled-update ids are needed only while Telegram may deliver an update again (hours at most); the
payload of a delivered message (the words it forwarded, who it named) is needed only while its incident
is open. Both are pruned once older than the retention; incidents, their timelines, responses and the
outbox rows themselves (who was told, when) are kept for the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, cast, delete, update
from sqlmodel import Session, col, select

from groups.model import OPEN_STATUSES, DeliveryStatus, Incident, Notification, ProcessedUpdate

FINAL_STATUSES = (DeliveryStatus.sent, DeliveryStatus.failed, DeliveryStatus.unreachable)


@dataclass(frozen=True)
class Pruned:
    updates: int
    payloads: int


def prune(session: Session, now: datetime, retention_days: float) -> Pruned:
    """Delete handled-update ids and empty the payloads of finished rows, older than the retention."""
    cutoff = now - timedelta(days=retention_days)
    updates = session.exec(delete(ProcessedUpdate).where(col(ProcessedUpdate.at) < cutoff))
    open_incidents = select(Incident.id).where(col(Incident.status).in_([s.value for s in OPEN_STATUSES]))
    payloads = session.exec(
        update(Notification)
        .where(
            col(Notification.created_at) < cutoff,
            col(Notification.status).in_([s.value for s in FINAL_STATUSES]),
            cast(col(Notification.payload), String) != "{}",  # json has no equality on PostgreSQL
            (col(Notification.incident_id).is_(None)) | col(Notification.incident_id).not_in(open_incidents),
        )
        .values(payload={})
    )
    return Pruned(int(updates.rowcount or 0), int(payloads.rowcount or 0))
