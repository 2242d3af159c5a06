"""The nouns of the village and their tables (SQLModel).

Times are aware UTC ``datetime`` values (SQLModel's ``UTCDateTime`` stores and returns them so on
SQLite and PostgreSQL alike); :func:`utcnow` makes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from config.policies import Role as Role  # the roles are rules (config.policies); the tables store them


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


class IncidentStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"
    false_alarm = "false_alarm"
    cancelled = "cancelled"


OPEN_STATUSES: tuple[IncidentStatus, ...] = (IncidentStatus.open, IncidentStatus.acknowledged)


class ResponseKind(StrEnum):
    coming = "coming"
    called = "called"
    cant = "cant"


class Purpose(StrEnum):
    confirmation = "confirmation"
    alert = "alert"
    update = "update"
    escalation = "escalation"
    closing = "closing"
    reminder = "reminder"
    referral = "referral"  # a case handed to a department's staff (转介)


class DeliveryStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    unreachable = "unreachable"


class ChannelName(StrEnum):
    """How an outbox row reaches its recipient (``Notification.channel``)."""

    telegram = "telegram"


class Priority(StrEnum):
    """Delivery queues, drained in this order."""

    urgent = "urgent"  # confirmations and alert DMs
    escalation = "escalation"
    updates = "updates"  # responses, tallies, edits
    bulk = "bulk"  # reminders, reports


class Grid(SQLModel, table=True):
    """网格: several household groups under one grid worker."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=200)
    head_ack_s: int = 120
    worker_ack_s: int = 300
    active: bool = True


class HouseholdGroup(SQLModel, table=True):
    """十户联防组: about ten households around one center household head (中心户长)."""

    __tablename__ = "household_group"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=200)
    grid_id: int = Field(foreign_key="grid.id", index=True)
    # use_alter: member -> household -> household_group -> member is a cycle.
    head_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("member.id", use_alter=True, name="fk_household_group_head_id")),
    )
    bind_code: str = Field(unique=True, max_length=64)
    chat_id: int | None = Field(default=None, sa_type=BigInteger, unique=True)
    active: bool = True


class Household(SQLModel, table=True):
    """户: one household of a group, identified by its label within the group."""

    __table_args__ = (UniqueConstraint("group_id", "label"),)
    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="household_group.id", index=True)
    label: str = Field(max_length=100)
    active: bool = True


class Member(SQLModel, table=True):
    """A person of the roster (villager or staff), identified by a stable key."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    role: str = Field(default=Role.villager, max_length=32)
    household_id: int | None = Field(default=None, foreign_key="household.id", index=True)
    invite_token: str = Field(unique=True, max_length=64)
    telegram_user_id: int | None = Field(default=None, sa_type=BigInteger, unique=True)
    language_code: str | None = Field(default=None, max_length=16)
    linked_at: datetime | None = None
    unreachable_at: datetime | None = None  # 403 from Telegram: never started / blocked
    active: bool = True
    # ``yihu members forget``: personal data erased; the key stays for history and stays erased.
    erased_at: datetime | None = None


class GridStaff(SQLModel, table=True):
    """A staff member's role in one grid (grid worker, police, women's federation, children's director)."""

    __tablename__ = "grid_staff"
    __table_args__ = (UniqueConstraint("grid_id", "member_id", "role"),)
    id: int | None = Field(default=None, primary_key=True)
    grid_id: int = Field(foreign_key="grid.id", index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    role: str = Field(max_length=32)


class Incident(SQLModel, table=True):
    """An alert raised by a villager, ``#id`` to everyone."""

    __table_args__ = (Index("ix_incident_reporter_status", "reporter_id", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="household_group.id", index=True)
    reporter_id: int = Field(foreign_key="member.id")
    category: str = Field(default="general", max_length=32)
    text: str | None = None
    status: str = Field(default=IncidentStatus.open, max_length=16, index=True)
    private: bool = False
    escalation_level: int = 0
    acknowledged_by_id: int | None = Field(default=None, foreign_key="member.id")
    acknowledged_at: datetime | None = None
    next_escalation_at: datetime | None = Field(default=None, index=True)
    latitude: float | None = None
    longitude: float | None = None
    created_at: datetime = Field(default_factory=utcnow)
    last_raised_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None
    closed_by_id: int | None = Field(default=None, foreign_key="member.id")


class IncidentEvent(SQLModel, table=True):
    """One line of an incident's append-only timeline."""

    __tablename__ = "incident_event"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    kind: str = Field(max_length=32)
    actor_id: int | None = Field(default=None, foreign_key="member.id")
    detail: str | None = None


class Response(SQLModel, table=True):
    """A member's answer to an incident: one per member, a changed choice updates it."""

    __table_args__ = (UniqueConstraint("incident_id", "member_id"),)
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    member_id: int = Field(foreign_key="member.id")
    kind: str = Field(max_length=16)
    at: datetime = Field(default_factory=utcnow)


class Notification(SQLModel, table=True):
    """The outbox: one row per recipient per message owed. The database is the truth; Redis carries work.

    ``dedupe_key`` makes "those already told are not told twice" a unique constraint.
    ``payload`` says what to render; the text is rendered at send time from the current state.
    """

    __table_args__ = (Index("ix_notification_status_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    recipient_id: int | None = Field(default=None, foreign_key="member.id")
    group_id: int | None = Field(default=None, foreign_key="household_group.id")
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    purpose: str = Field(max_length=16)
    priority: str = Field(default=Priority.urgent, max_length=16)
    channel: str = Field(
        default=ChannelName.telegram, max_length=16, sa_column_kwargs={"server_default": ChannelName.telegram.value}
    )
    # message | edit | copy | location | live_location | live_edit | live_stop (groups.alerts.live)
    kind: str = Field(default="message", max_length=16)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dedupe_key: str | None = Field(default=None, unique=True, max_length=200)
    status: str = Field(default=DeliveryStatus.pending, max_length=16)
    attempts: int = 0
    last_error: str | None = None
    telegram_message_id: int | None = Field(default=None, sa_type=BigInteger)
    duplicates: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_at: datetime | None = None
    sent_at: datetime | None = None


class Referral(SQLModel, table=True):
    """转介: a case handed to a department, to be answered by a due date."""

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    department: str = Field(max_length=32)
    referred_by_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = Field(default_factory=utcnow)
    due_at: datetime
    done_at: datetime | None = None
    note: str | None = None


class LiveLocation(SQLModel, table=True):
    """实时位置: a live location the reporter shares with their incident (the message ``message_id`` of
    their chat ``chat_id``); the live locations sent to those told follow its moves until ``live_until``
    or until it is stopped (the incident closed)."""

    __tablename__ = "live_location"
    __table_args__ = (UniqueConstraint("chat_id", "message_id"),)
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    reporter_id: int = Field(foreign_key="member.id")
    chat_id: int = Field(sa_type=BigInteger)
    message_id: int = Field(sa_type=BigInteger)
    latitude: float
    longitude: float
    live_period: int  # seconds, as Telegram gave it (0x7FFFFFFF: until the reporter stops it)
    started_at: datetime
    live_until: datetime
    moved_at: datetime
    version: int = 0  # one more per move
    stopped_at: datetime | None = None


class ProcessedUpdate(SQLModel, table=True):
    """Telegram delivers updates at least once: each (bot, update or callback id) is handled once."""

    __tablename__ = "processed_update"
    __table_args__ = (UniqueConstraint("bot_id", "kind", "ext_id"),)
    id: int | None = Field(default=None, primary_key=True)
    bot_id: int = Field(sa_type=BigInteger)
    kind: str = Field(max_length=16)  # update | callback
    ext_id: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow)


class DeskLogin(SQLModel, table=True):
    """A single-use login link for the staff desk (``/desk`` in the bot): only its SHA-256 is stored."""

    __tablename__ = "desk_login"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    member_id: int = Field(foreign_key="member.id", index=True)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class DeskSession(SQLModel, table=True):
    """A desk session: the browser holds a random id in an HttpOnly cookie; only its SHA-256 is stored."""

    __tablename__ = "desk_session"
    id: int | None = Field(default=None, primary_key=True)
    session_hash: str = Field(unique=True, max_length=64)
    member_id: int = Field(foreign_key="member.id", index=True)
    created_at: datetime
    expires_at: datetime = Field(index=True)


class DeskLoginFailure(SQLModel, table=True):
    """A login with a bad, used or expired link, by client address (the rate limit counts them)."""

    __tablename__ = "desk_login_failure"
    __table_args__ = (Index("ix_desk_login_failure_address_at", "address", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=64)
    at: datetime
