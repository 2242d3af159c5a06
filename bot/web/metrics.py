"""``GET /metrics``: Prometheus text (prometheus-client), read from the database and Redis at scrape time.

Every figure lives in the database or Redis, never in one process, so whichever process serves the scrape
(``yihu run``, ``yihu web`` behind a balancer, ``yihu demo``) answers the same. Each scrape is a handful of
aggregate queries (GROUP BY counts, the delivery histogram as one SUM(CASE ...) row), never rows:

- ``yihu_alerts_raised_total{category}``: incidents raised, by category (a reopened incident counts once)
- ``yihu_messages_total{channel,purpose,status}``: outbox rows by channel, purpose and delivery status
- ``yihu_telegram_429_total``: 429 answers delivery got from Telegram (a Redis counter the channel bumps)
- ``yihu_queue_depth{queue}``: jobs waiting on each delivery queue (RQ)
- ``yihu_outbox_oldest_pending_seconds``: age of the oldest outbox row not yet sent (0 when none)
- ``yihu_delivery_seconds``: histogram of created -> sent of the sent rows
- ``yihu_escalations_total{level}``: ladder steps and manual escalations by level (1 grid worker, 2 police;
  ``women`` / ``child`` for manual escalations to those staff)
- ``yihu_paid_messages_total``: messages sent on a paid channel (SMS; 0 until SMS exists)

A scrape that cannot read the database or Redis answers 503 (Prometheus then records the target as down)
rather than a partial page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Queue
from sqlalchemy import Engine, case, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from bot.web.app import CONTEXT
from groups.model import DeliveryStatus, Incident, IncidentEvent, Notification
from workers.channels.telegram import TELEGRAM_429_KEY
from workers.queues import QUEUE_NAMES

log = logging.getLogger(__name__)

PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds (seconds) of the delivery histogram's buckets, created -> sent.
DELIVERY_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
PAID_CHANNELS: tuple[str, ...] = ("sms",)
NOT_SENT: tuple[str, ...] = (DeliveryStatus.pending.value, DeliveryStatus.sending.value)
_REGISTRY = "metrics.registry"


def _delivery_seconds(engine: Engine) -> ColumnElement[Any]:
    """A message's ``sent_at - created_at`` in seconds, in the database's own arithmetic."""
    start, end = col(Notification.created_at), col(Notification.sent_at)
    if engine.dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    # SQLite keeps times to the millisecond in its date arithmetic: whole milliseconds, so that a bound such
    # as 0.25 s compares exactly.
    return func.round((func.julianday(end) - func.julianday(start)) * literal_column("86400000.0")) / 1000.0


def _escalation_level() -> ColumnElement[str]:
    """The level an ``escalated`` event reached: the ladder writes the level, ``/escalate`` the target word."""
    detail = col(IncidentEvent.detail)
    return case(
        (detail.in_(["0", "1", "2"]), detail),
        (detail.like("police%"), literal_column("'2'")),
        (detail.like("women%"), literal_column("'women'")),
        (detail.like("child%"), literal_column("'child'")),
        else_=literal_column("'other'"),
    )


def database_metrics(engine: Engine, now: datetime) -> list[Metric]:
    """The figures kept in the database."""
    alerts = CounterMetricFamily("yihu_alerts_raised", "Incidents raised, by category.", labels=["category"])
    messages = CounterMetricFamily(
        "yihu_messages", "Outbox messages by channel, purpose and delivery status.",
        labels=["channel", "purpose", "status"],
    )
    escalations = CounterMetricFamily("yihu_escalations", "Escalations by level reached.", labels=["level"])
    paid = CounterMetricFamily("yihu_paid_messages", "Messages sent on a paid channel (SMS).")
    oldest = GaugeMetricFamily("yihu_outbox_oldest_pending_seconds", "Age of the oldest outbox message not yet sent.")
    seconds = _delivery_seconds(engine)
    level = _escalation_level()
    with engine.connect() as connection:
        for category, n in connection.execute(
            select(col(Incident.category), func.count()).group_by(col(Incident.category))
        ):
            alerts.add_metric([str(category)], n)
        paid_total = 0
        for channel, purpose, status, n in connection.execute(
            select(col(Notification.channel), col(Notification.purpose), col(Notification.status), func.count())
            .group_by(col(Notification.channel), col(Notification.purpose), col(Notification.status))
        ):
            messages.add_metric([str(channel), str(purpose), str(status)], n)
            if channel in PAID_CHANNELS and status == DeliveryStatus.sent.value:
                paid_total += n
        paid.add_metric([], paid_total)
        for name, n in connection.execute(
            select(level, func.count()).where(col(IncidentEvent.kind) == "escalated").group_by(level)
        ):
            escalations.add_metric([str(name)], n)
        first = connection.execute(
            select(func.min(col(Notification.created_at))).where(col(Notification.status).in_(NOT_SENT))
        ).scalar()
        buckets = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DELIVERY_BUCKETS]
        row = connection.execute(
            select(func.count(), func.coalesce(func.sum(seconds), 0.0), *buckets).where(
                col(Notification.status) == DeliveryStatus.sent.value, col(Notification.sent_at).is_not(None)
            )
        ).one()
    oldest.add_metric([], max(0.0, (now - _aware(first)).total_seconds()) if first is not None else 0.0)
    count, total, *cumulative = row
    delivery = HistogramMetricFamily(
        "yihu_delivery_seconds",
        "Seconds from a message's creation to its sending (sent messages).",
        buckets=[
            *((_bound(bound), int(n or 0)) for bound, n in zip(DELIVERY_BUCKETS, cumulative, strict=True)),
            ("+Inf", int(count)),
        ],
        sum_value=float(total or 0.0),
    )
    return [alerts, messages, escalations, paid, oldest, delivery]


def _bound(value: float) -> str:
    return repr(float(value))


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite's MIN() of a datetime column comes back as its text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def redis_metrics(url: str, timeout: float) -> list[Metric]:
    """The figures kept in Redis: the 429 counter and the queue lengths."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.get(TELEGRAM_429_KEY)
            for name in QUEUE_NAMES:
                pipe.llen(Queue.redis_queue_namespace_prefix + name)
            raw_429, *depths = pipe.execute()
    finally:
        client.close()
    too_many = CounterMetricFamily("yihu_telegram_429", "429 (too many requests) answers delivery got from Telegram.")
    too_many.add_metric([], int(raw_429 or 0))
    queues = GaugeMetricFamily("yihu_queue_depth", "Jobs waiting on each delivery queue.", labels=["queue"])
    for name, depth in zip(QUEUE_NAMES, depths, strict=True):
        queues.add_metric([name], int(depth))
    return [too_many, queues]


class YihuCollector(Collector):
    """Reads the database and Redis at each scrape (see the module docstring)."""

    def __init__(self, engine: Engine, redis_url: str | None, timeout: float) -> None:
        self.engine = engine
        self.redis_url = redis_url
        self.timeout = timeout

    def collect(self) -> Iterator[Metric]:
        metrics: Iterable[Metric] = database_metrics(self.engine, datetime.now(UTC))
        if self.redis_url is None:
            raise RuntimeError("no Redis configured (YIHU_REDIS_URL)")
        metrics = [*metrics, *redis_metrics(self.redis_url, self.timeout)]
        yield from sorted(metrics, key=lambda metric: metric.name)


def registry_for(engine: Engine, redis_url: str | None, timeout: float) -> CollectorRegistry:
    """A private registry holding only yihu's collector (no per-process figures: they would differ)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(YihuCollector(engine, redis_url, timeout))
    return registry


async def on_metrics(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    registry: CollectorRegistry = context.extra[_REGISTRY]
    timeout = context.settings.health_timeout_s
    try:
        body = await asyncio.wait_for(asyncio.to_thread(generate_latest, registry), timeout * 2)
    except Exception as exc:
        log.warning("metrics scrape failed: %s: %s", type(exc).__name__, exc)
        return web.Response(status=503, text=f"metrics unavailable: {type(exc).__name__}\n")
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def setup(app: web.Application) -> None:
    """The ``/metrics`` part."""
    context = app[CONTEXT]
    context.extra[_REGISTRY] = registry_for(context.engine, context.redis_url, context.settings.health_timeout_s)
    app.router.add_get(PATH, on_metrics)
