"""Settings from ``YIHU_*`` environment variables and a ``.env`` file (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")


class MissingSetting(RuntimeError):
    """A setting the chosen command needs is missing or wrong: one sentence for the operator.

    ``key`` names the text (``setting.<key>`` in the catalogue) the CLI shows in ``YIHU_LANGUAGE``; the
    English ``message`` is what logs and ``str()`` show.
    """

    def __init__(self, key: str, message: str, **params: object) -> None:
        super().__init__(message)
        self.key = key
        self.params = params


class Settings(BaseSettings):
    """Everything an operator may set; defaults run a whole township on one laptop."""

    model_config = SettingsConfigDict(env_prefix="YIHU_", env_file=".env", extra="ignore")

    bot_token: str | None = None
    bot_username: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str | None = None
    data_dir: Path = Path("./yihu-data")
    redis_url: str | None = None
    framework: Literal["ptb", "aiogram"] = "ptb"  # python-telegram-bot: ~110 MB lighter, starts in ~1 s
    language: Language = "zh"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_listen: str = "0.0.0.0:8080"
    timezone: str = "Asia/Shanghai"  # how times are shown to people
    # The web listener (health, metrics, the desk; the simulator in `yihu demo`) and its public base URL for
    # links (default ``http://`` + the listen address). Equal to ``webhook_listen``: one server serves both.
    web_listen: str = "127.0.0.1:8088"
    web_url: str = ""
    # /healthz: how long Telegram's answer to getMe is reused (a scrape every few seconds must not hammer the
    # API), and how long each check (database, Redis, Telegram) and a /metrics scrape may take.
    health_telegram_cache_s: float = Field(default=60.0, ge=0)
    health_timeout_s: float = Field(default=5.0, gt=0)
    # Delivery tuning (not in the public contract; safe defaults).
    workers: int = Field(default=2, ge=1, le=32)
    sweep_interval_s: float = 2.0
    sweep_pending_after_s: float = 3.0
    overload_threshold_s: float = 20.0
    # Polled updates handled in one transaction (fewer commits and Redis round trips under a flood), and
    # how many such transactions run at once on PostgreSQL (updates of one chat or user stay in one).
    ingest_batch: int = Field(default=10, ge=1, le=100)
    # ... except each lane's first transaction of a polled batch, smaller so that under a flood the first
    # confirmations are committed sooner (they bound when the last one can leave at 30 msg/s).
    ingest_first_batch: int = Field(default=2, ge=1, le=100)
    # One lane by default: on a small server sharing its cores with PostgreSQL, parallel writers were slower
    # (confirmation p99 3.5 s with 1 lane, 3.6-3.8 s with 2, 4.1-4.7 s with 4: docs/architecture.md); raise it
    # where PostgreSQL has cores of its own.
    ingest_lanes: int = Field(default=1, ge=1, le=16)
    # The bot process sends its batches' reporters' confirmations itself, right after the commit, with this
    # many threads (0: the workers send them like every other row); docs/architecture.md, "The reporters'
    # confirmations under a flood". A confirmation whose limiter slot is further away than
    # ``ingest_confirm_max_wait_s`` is re-scheduled on the workers' queue instead; what the same updates owe
    # besides is held until the confirmations booked their slots, at most ``ingest_confirm_hold_s``.
    ingest_confirm_threads: int = Field(default=16, ge=0, le=64)
    ingest_confirm_max_wait_s: float = Field(default=5.0, ge=0)
    ingest_confirm_hold_s: float = Field(default=5.0, ge=0)
    # Handled-update ids and the payloads of delivered messages of closed incidents older than this are
    # pruned by the sweeper (incidents and their timelines are kept).
    retention_days: float = Field(default=30, gt=0)
    # A reporter's new SOS within this many seconds of cancelling their last incident reopens it (same #N).
    reopen_window_s: float = Field(default=600, ge=0)
    # More than ``misuse_threshold`` SOS (new or reopened) by one member within ``misuse_window_s``: the head
    # (private incidents: the grid workers) is told once per window; every SOS is still delivered.
    misuse_threshold: int = Field(default=3, ge=1)
    misuse_window_s: float = Field(default=3600, gt=0)
    # The staff desk: a /desk login link is valid this long and once; its session cookie lasts this long.
    desk_link_s: float = Field(default=600, gt=0)
    desk_session_s: float = Field(default=12 * 3600, gt=0)
    # Bad, used or expired login links per client address within the window before answering 429.
    desk_login_failures: int = Field(default=10, ge=1)
    desk_login_window_s: float = Field(default=600, gt=0)
    # How often a desk page's live connection looks for changed open incidents.
    desk_live_poll_s: float = Field(default=2.0, gt=0)

    @field_validator("telegram_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("bot_token", "bot_username", "database_url", "redis_url", "webhook_url", "webhook_secret")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _default_web_url(self) -> Settings:
        self.web_url = (self.web_url or f"http://{self.web_listen.strip()}").rstrip("/")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'yihu.db').resolve()}"

    @property
    def public_web_url(self) -> str:
        """Where people reach the web listener (``web_url``, already defaulted and without a trailing slash)."""
        return self.web_url

    def require_token(self) -> str:
        """The bot token, or :class:`MissingSetting` naming the variable to set."""
        if not self.bot_token:
            raise MissingSetting(
                "no_token",
                "YIHU_BOT_TOKEN is not set: put the token BotFather gave you in the environment or in .env "
                "(or run `yihu demo`, which needs none)."
            )
        return self.bot_token


def pick_language(language_code: str | None, fallback: Language) -> Language:
    """The user's language when Telegram says zh or en (``zh-hans``, ``en-US`` count), else the fallback."""
    if language_code:
        base = language_code.lower().replace("_", "-").split("-", 1)[0]
        if base == "zh":
            return "zh"
        if base == "en":
            return "en"
    return fallback


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
