"""The one place that wires real parts together: database, Redis queues and timers, the conversation."""

from __future__ import annotations

import redis

from bot.conversation import Conversation, Ports
from config.settings import Settings
from groups.db import get_engine
from workers import timers
from workers.fanout import enqueue_batches
from workers.limiter import Limiter, bot_id_from_token


def build_conversation(settings: Settings, redis_url: str, bot_username: str) -> tuple[Conversation, Limiter]:
    """The conversation wired to the database and Redis, and the shared limiter for the face's replies."""
    token = settings.require_token()
    engine = get_engine(settings.resolved_database_url)
    connection = redis.Redis.from_url(redis_url)

    def enqueue(ids: list[int]) -> None:
        enqueue_batches(connection, ids, engine)

    ports = Ports(
        settings=settings,
        engine=engine,
        bot_id=int(bot_id_from_token(token)),
        bot_username=bot_username,
        enqueue=enqueue,
        arm=lambda due: timers.arm(connection, due),
    )
    return Conversation(ports), Limiter(connection, bot_id_from_token(token))
