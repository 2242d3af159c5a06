"""Routing: which urgent queue each notification goes on, read from its row.

**Overload order.** The urgent band is itself four queues, drained in this order:

1. ``yihu-urgent``        reporters' confirmations (and any urgent row we cannot classify);
2. ``yihu-urgent-group``  group posts (``group_id`` set, no recipient): one message tells a whole group;
3. ``yihu-urgent-head``   the group's center household head, and the staff of a private incident
                          (domestic violence, child protection: they are its only recipients);
4. ``yihu-urgent-dm``     every other alert DM (the neighbours).

When many villages call at once and the backlog means a neighbour DM would wait longer than
``settings.overload_threshold_s``, this delivers across *all* open incidents what informs the most
people soonest: confirmations, then every group post, then the heads, then the neighbours.

Why the split is always on rather than switched on past the threshold: with no backlog every queue is
empty and a job is picked up as soon as it is queued, so the split only reorders the ~11 messages of
one fan-out (about 0.4 s at 30 msg/s): the confirmation is still the first message out of its incident,
and the group post comes second instead of last. A switch, by contrast, would leave up to
threshold x 30 jobs (600 at 20 s) already queued first-in-first-out when overload begins, so the last
group post of a flood would still wait about the threshold instead of seconds; and moving queued jobs
between queues is racy. Confirmations stay ahead of the group posts: there is one per incident, like
a group post, and the reporter must learn at once that the call went out. The threshold itself only
decides when to log that the engine is in overload (:func:`workers.backlog.urgent_backlog_s`).

Routing reads the rows once per enqueued batch (one query joining the incident and its group), not
per message. A re-scheduled attempt goes back onto the queue its job came from. When no urgent job is
waiting, the bot may instead send one use case's rows as a single parallel job (:mod:`workers.fanout`);
as soon as any urgent job waits (:func:`workers.backlog.urgent_waiting`), rows are queued one by one and
routed here.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy import select as sa_select
from sqlmodel import col

from groups.model import HouseholdGroup, Incident, Notification, Priority, Purpose
from workers.queues import URGENT, URGENT_DM, URGENT_GROUP, URGENT_HEAD, queue_name


def urgent_queue(purpose: str, *, group_post: bool, to_head: bool) -> str:
    """Which urgent queue a row goes on (see the module docstring for the order and why)."""
    if group_post:
        return URGENT_GROUP
    if purpose == Purpose.confirmation:
        return URGENT
    if to_head:
        return URGENT_HEAD
    if purpose == Purpose.alert:
        return URGENT_DM
    return URGENT


def route(engine: Engine, ids: list[int]) -> dict[int, str]:
    """The queue of each notification, read in one query (rows that do not exist are left out)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa_select(
                col(Notification.id),
                col(Notification.priority),
                col(Notification.purpose),
                col(Notification.group_id),
                col(Notification.recipient_id),
                col(HouseholdGroup.head_id),
                col(Incident.private),
            )
            .outerjoin(Incident, col(Incident.id) == col(Notification.incident_id))
            .outerjoin(HouseholdGroup, col(HouseholdGroup.id) == col(Incident.group_id))
            .where(col(Notification.id).in_(ids))
        ).all()
    found: dict[int, str] = {}
    for nid, priority, purpose, group_id, recipient_id, head_id, private in rows:
        if nid is None:
            continue
        if priority != Priority.urgent:
            found[int(nid)] = queue_name(priority)
            continue
        to_head = recipient_id is not None and (bool(private) or recipient_id == head_id)
        found[int(nid)] = urgent_queue(
            purpose, group_post=group_id is not None and recipient_id is None, to_head=to_head
        )
    return found


def engine_for_routing(engine: Engine | None) -> Engine:
    """``engine``, else this worker process's (:mod:`workers.context`), else the one the settings name."""
    if engine is not None:
        return engine
    from workers.context import configured  # noqa: PLC0415  (context imports the sender)

    ctx = configured()
    if ctx is not None:
        return ctx.engine
    from config.settings import get_settings  # noqa: PLC0415
    from groups.db import get_engine  # noqa: PLC0415

    return get_engine(get_settings().resolved_database_url)
