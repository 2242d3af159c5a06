"""Incidents as plain data (the shape of ``yihu incidents --format json``), loaded in a few batched queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from sqlmodel import Session, SQLModel, col, select

from groups.model import (
    Grid,
    HouseholdGroup,
    Incident,
    IncidentEvent,
    IncidentStatus,
    Member,
    Notification,
    Response,
)

# Bound parameters per IN (...) list: well below SQLite's and PostgreSQL's limits.
_CHUNK: Final[int] = 500

STATUSES: Final[tuple[str, ...]] = tuple(s.value for s in IncidentStatus)

_Row = TypeVar("_Row", bound=SQLModel)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z`` (a naive value is taken as UTC, as the database stores UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), _CHUNK):
        yield unique[start : start + _CHUNK]


def _load(session: Session, model: type[_Row], column: Any, ids: Iterable[int]) -> list[_Row]:
    rows: list[_Row] = []
    for chunk in _chunks(ids):
        rows.extend(session.exec(select(model).where(col(column).in_(chunk))).all())
    return rows


@dataclass(frozen=True)
class _Names:
    """Member keys, groups and grid codes the views name, loaded once for all incidents."""

    keys: dict[int | None, str]
    groups: dict[int | None, HouseholdGroup]
    grids: dict[int | None, str]
    erased: frozenset[int | None] = frozenset()  # members forgotten (yihu members forget)

    def recipient(self, n: Notification) -> str | None:
        if n.recipient_id is not None:
            return self.keys.get(n.recipient_id)
        if n.group_id is not None and n.group_id in self.groups:
            return f"group:{self.groups[n.group_id].code}"
        return f"chat:{n.chat_id}" if n.chat_id is not None else None


def _names(
    session: Session,
    incidents: Sequence[Incident],
    events: list[IncidentEvent],
    responses: list[Response],
    notifications: list[Notification],
) -> _Names:
    member_ids: set[int] = set()
    group_ids: set[int] = set()
    for incident in incidents:
        group_ids.add(incident.group_id)
        member_ids.update(
            x for x in (incident.reporter_id, incident.acknowledged_by_id, incident.closed_by_id) if x is not None
        )
    member_ids.update(e.actor_id for e in events if e.actor_id is not None)
    member_ids.update(r.member_id for r in responses)
    member_ids.update(n.recipient_id for n in notifications if n.recipient_id is not None)
    group_ids.update(n.group_id for n in notifications if n.group_id is not None)
    members = _load(session, Member, Member.id, member_ids)
    keys = {m.id: m.key for m in members}
    erased = frozenset(m.id for m in members if m.erased_at is not None)
    groups = {g.id: g for g in _load(session, HouseholdGroup, HouseholdGroup.id, group_ids)}
    grids = {g.id: g.code for g in _load(session, Grid, Grid.id, {g.grid_id for g in groups.values()})}
    return _Names(keys, groups, grids, erased)


def _by_incident(
    ids: list[int], events: list[IncidentEvent], responses: list[Response], notifications: list[Notification]
) -> dict[int, dict[str, list[Any]]]:
    """Each incident's events and responses in time order, its notifications in id order."""
    related: dict[int, dict[str, list[Any]]] = {i: {"events": [], "responses": [], "notifications": []} for i in ids}
    for event in sorted(events, key=lambda e: (_sort_time(e.at), e.id or 0)):
        related[event.incident_id]["events"].append(event)
    for response in sorted(responses, key=lambda r: (_sort_time(r.at), r.id or 0)):
        related[response.incident_id]["responses"].append(response)
    for notification in sorted(notifications, key=lambda n: n.id or 0):
        if notification.incident_id is not None:
            related[notification.incident_id]["notifications"].append(notification)
    return related


def _view(incident: Incident, related: dict[str, list[Any]], names: _Names) -> dict[str, Any]:
    keys = names.keys
    group = names.groups.get(incident.group_id)
    return {
        "id": incident.id,
        "status": str(incident.status),
        "category": incident.category,
        "group": group.code if group else None,
        "grid": names.grids.get(group.grid_id) if group else None,
        "reporter": keys.get(incident.reporter_id),
        "created_at": iso(incident.created_at),
        "escalation_level": incident.escalation_level,
        "acknowledged_by": keys.get(incident.acknowledged_by_id) if incident.acknowledged_by_id else None,
        "acknowledged_at": iso(incident.acknowledged_at),
        "private": incident.private,
        "text": incident.text,
        "latitude": incident.latitude,
        "longitude": incident.longitude,
        "closed_at": iso(incident.closed_at),
        "closed_by": keys.get(incident.closed_by_id) if incident.closed_by_id else None,
        # Keys of the people named here whose personal data was erased: shown as "erased" (已删除).
        "erased": sorted(keys[i] for i in names.erased & _named(incident, related) if i in keys),
        "responses": [
            {"member": keys.get(r.member_id), "kind": str(r.kind), "at": iso(r.at)} for r in related["responses"]
        ],
        "timeline": [
            {
                "at": iso(e.at),
                "kind": e.kind,
                "actor": keys.get(e.actor_id) if e.actor_id is not None else None,
                "detail": e.detail,
            }
            for e in related["events"]
        ],
        "notifications": [
            {
                "recipient": names.recipient(n),
                "purpose": str(n.purpose),
                "status": str(n.status),
                "kind": n.kind,
                "attempts": n.attempts,
                "last_error": n.last_error,
                "sent_at": iso(n.sent_at),
            }
            for n in related["notifications"]
        ],
    }


def _named(incident: Incident, related: dict[str, list[Any]]) -> set[int | None]:
    named: set[int | None] = {incident.reporter_id, incident.acknowledged_by_id, incident.closed_by_id}
    named.update(e.actor_id for e in related["events"])
    named.update(r.member_id for r in related["responses"])
    named.update(n.recipient_id for n in related["notifications"])
    return named


def incident_views(session: Session, incidents: Sequence[Incident]) -> list[dict[str, Any]]:
    """The views of ``incidents`` (in the given order), with a fixed number of queries for any count."""
    ids = [i.id for i in incidents if i.id is not None]
    events = _load(session, IncidentEvent, IncidentEvent.incident_id, ids)
    responses = _load(session, Response, Response.incident_id, ids)
    notifications = _load(session, Notification, Notification.incident_id, ids)
    names = _names(session, incidents, events, responses, notifications)
    related = _by_incident(ids, events, responses, notifications)
    empty: dict[str, list[Any]] = {"events": [], "responses": [], "notifications": []}
    return [_view(incident, related.get(incident.id or 0, empty), names) for incident in incidents]


def _sort_time(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def incident_view(session: Session, incident: Incident) -> dict[str, Any]:
    """One incident as plain data: status, people (by member key), responses, timeline and deliveries."""
    return incident_views(session, [incident])[0]


def list_incidents(session: Session, status: str | None = None) -> list[dict[str, Any]]:
    """Every incident (optionally only those with ``status``), oldest first.

    Raises :class:`ValueError` for a status that is not one of :data:`STATUSES`.
    """
    query = select(Incident).order_by(col(Incident.id))
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        query = query.where(Incident.status == status)
    return incident_views(session, session.exec(query).all())
