"""Escalation timers and referral reminders as the workers run them: real Redis, SQLite, RQ jobs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from rq import Queue
from rq.job import Job
from sqlmodel import select

from bot.bootstrap import configure_workers
from config.settings import Settings
from groups import alerts, referrals
from groups.db import session_scope
from groups.model import Incident, utcnow
from tests.support.village import build_village
from workers import context, timers
from workers.queues import queue_name


@pytest.fixture
def configured(sqlite_url: str, redis_url: str) -> Iterator[redis.Redis]:
    settings = Settings(bot_token="1:test", database_url=sqlite_url, redis_url=redis_url)
    ctx = configure_workers(settings, redis_url=redis_url)
    yield ctx.redis
    context.reset()


def test_arm_is_idempotent_and_rearm_all_restores_lost_timers(sqlite_url: str, configured: redis.Redis) -> None:
    village = build_village(sqlite_url)
    with session_scope(village.engine) as session:
        result = alerts.raise_alert(session, village.actor(session, "m2"), utcnow())
    [timer] = result.effects.timers
    assert timer.kind == "escalation" and timer.subject == result.incident_id
    timers.arm(configured, [timer])
    timers.arm(configured, [timer])
    job_id = timers.timer_job_id(timer)
    assert job_id.startswith(f"esc-{result.incident_id}-")  # the ids jobs scheduled before kinds existed had
    assert Job.exists(job_id, connection=configured)
    assert timers.rearm_all(configured) == 0  # already armed
    configured.flushall()  # Redis lost everything
    assert timers.rearm_all(configured) == 1
    assert Job.exists(job_id, connection=configured)


def test_fire_early_rearms_and_fire_due_escalates_once(sqlite_url: str, configured: redis.Redis) -> None:
    village = build_village(sqlite_url)
    with session_scope(village.engine) as session:
        result = alerts.raise_alert(session, village.actor(session, "m2"), utcnow() - timedelta(seconds=200))
    incident_id = result.incident_id
    timers.fire("escalation", incident_id)  # the head had 120 s: escalates to the grid worker now
    timers.fire(incident_id)  # again (a job armed before timer kinds): the police step (at 420 s) is far off
    with session_scope(village.engine) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.escalation_level == 1
        assert incident.next_escalation_at is not None
    queue = Queue(queue_name("escalation"), connection=configured)
    assert len([j for j in queue.get_job_ids() if j.startswith("b-")]) == 1  # the grid worker's DM, once
    assert any(j.startswith(f"esc-{incident_id}-") for j in queue.scheduled_job_registry.get_job_ids())


def test_referral_reminders_are_queued_once_a_minute(sqlite_url: str, configured: redis.Redis) -> None:
    village = build_village(sqlite_url)
    now = utcnow()
    with session_scope(village.engine) as session:
        raised = alerts.raise_alert(session, village.actor(session, "m2"), now)
        referrals.refer(session, village.actor(session, "w1"), raised.incident_id, "civil", now, days=2)
    assert timers.remind_referrals(configured, now) == 1  # due within 3 days: one reminder to w1
    assert timers.remind_referrals(configured, now) == 0  # checked less than a minute ago
    assert timers.remind_referrals(configured, now, force=True) == 0  # already reminded
    later = now + timedelta(days=2, hours=1)
    assert timers.remind_referrals(configured, later, force=True) == 1  # due date: remind again


def test_the_sweeper_queues_due_referral_reminders(sqlite_url: str, configured: redis.Redis) -> None:
    from workers.sweeper import SweeperThread  # noqa: PLC0415

    village = build_village(sqlite_url)
    now = utcnow()
    with session_scope(village.engine) as session:
        raised = alerts.raise_alert(session, village.actor(session, "m2"), now)
        referrals.refer(session, village.actor(session, "w1"), raised.incident_id, "women", now, days=1)
    sweeper = SweeperThread(village.engine, configured, interval_s=0.5)
    sweeper.sweep_once()
    queued = Queue(queue_name("bulk"), connection=configured).get_job_ids()
    assert queued, "the due reminder was not queued"


def test_the_sweeper_prunes_old_data_once_an_hour(sqlite_url: str, configured: redis.Redis) -> None:
    from groups.model import ProcessedUpdate  # noqa: PLC0415
    from workers.sweeper import SweeperThread  # noqa: PLC0415

    village = build_village(sqlite_url)
    with session_scope(village.engine) as session:
        session.add(ProcessedUpdate(bot_id=1, kind="update", ext_id="old", at=utcnow() - timedelta(days=2)))
    sweeper = SweeperThread(village.engine, configured, interval_s=0.5, retention_days=1)
    sweeper.sweep_once()  # a sweep prunes (the first one in the hour)
    with session_scope(village.engine) as session:
        assert session.exec(select(ProcessedUpdate)).all() == []
        session.add(ProcessedUpdate(bot_id=1, kind="update", ext_id="older", at=utcnow() - timedelta(days=3)))
    assert sweeper.prune() is None  # not again within the hour, across processes
    pruned = sweeper.prune(force=True)
    assert pruned is not None and pruned.updates == 1


def test_the_retention_setting_is_read_from_yihu_retention_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """``YIHU_RETENTION_DAYS`` (default 30; run_worker hands it to the sweeper); 0 is refused."""
    monkeypatch.delenv("YIHU_RETENTION_DAYS", raising=False)
    assert Settings(bot_token="1:x").retention_days == 30
    monkeypatch.setenv("YIHU_RETENTION_DAYS", "7")
    assert Settings(bot_token="1:x").retention_days == 7
    monkeypatch.setenv("YIHU_RETENTION_DAYS", "0")
    with pytest.raises(ValueError):
        Settings(bot_token="1:x")
