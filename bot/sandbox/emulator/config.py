"""What an emulator starts with: :class:`EmulatorConfig`, its rate limits and its injected faults."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bot.sandbox.emulator.errors import JSON

DEFAULT_TOKEN = "123456789:TEST-yihu-emulator-token"

DEFAULT_USERNAME = "yihu_test_bot"


@dataclass
class RateLimits:
    """Token buckets per bot token; a call is accepted while a bucket holds ``>= 1 - tolerance``."""

    enabled: bool = True
    global_rate: float = 30.0  # tokens per second, all chats of one bot
    global_capacity: float = 30.0
    private_rate: float = 1.0  # per private chat
    private_capacity: float = 1.0
    group_rate: float = 20.0 / 60.0  # per group or supergroup chat
    group_capacity: float = 20.0
    tolerance: float = 0.05


@dataclass
class FailRule:
    method: str  # lower-case method name or "*"
    code: int
    remaining: int
    description: str | None = None
    retry_after: int | None = None


@dataclass
class Faults:
    """Injected failures. Probabilities apply to each call of a send-like method (or ``methods``)."""

    p500: float = 0.0
    p502: float = 0.0
    p429: float = 0.0
    retry_after: int = 1  # retry_after of spurious 429s
    methods: list[str] | None = None  # lower-case method names the probabilities apply to
    delay: float = 0.0  # seconds added before answering every Bot API call
    delay_methods: list[str] | None = None  # restrict the delay to these methods
    duplicate_update_probability: float = 0.0
    fail_next: list[FailRule] = field(default_factory=list)

    def to_json(self) -> JSON:
        return asdict(self)


@dataclass
class EmulatorConfig:
    default_token: str = DEFAULT_TOKEN
    default_username: str = DEFAULT_USERNAME
    tokens: list[str] | None = None  # allow-list; None accepts any well-formed token
    bot_usernames: dict[str, str] = field(default_factory=dict)  # token -> username
    bot_first_name: str = "Yihu Test Bot"
    privacy_mode: bool = True  # bots that are not admins see only commands/replies/mentions in groups
    seed: int = 0
    getupdates_conflict: bool = True  # a newer getUpdates ends a waiting older one with 409
    webhook_timeout: float = 10.0
    callback_answer_timeout: float | None = None  # seconds after which a callback query is too old to answer
    webhook_retry_initial: float = 0.1
    webhook_retry_max: float = 2.0
    max_calls_logged: int = 100_000
    limits: RateLimits = field(default_factory=RateLimits)
    faults: Faults = field(default_factory=Faults)


def make_config(**config: Any) -> EmulatorConfig:
    limits = config.pop("limits", None)
    faults = config.pop("faults", None)
    names = {f.name for f in fields(EmulatorConfig)}
    unknown = set(config) - names
    if unknown:
        raise TypeError(f"unknown emulator config: {sorted(unknown)}")
    tokens = config.get("tokens")
    if tokens is not None and len(tokens) == 1 and "default_token" not in config:
        config["default_token"] = tokens[0]
    cfg = EmulatorConfig(**config)
    if isinstance(limits, RateLimits):
        cfg.limits = limits
    elif isinstance(limits, dict):
        cfg.limits = RateLimits(**limits)
    elif limits is False:
        cfg.limits = RateLimits(enabled=False)
    if isinstance(faults, Faults):
        cfg.faults = faults
    elif isinstance(faults, dict):
        cfg.faults = faults_from_json(faults, Faults())
    return cfg


def faults_from_json(data: JSON, base: Faults) -> Faults:
    faults = copy.deepcopy(base)
    for key, value in data.items():
        if key == "fail_next":
            for rule in value or []:
                faults.fail_next.append(
                    FailRule(
                        method=str(rule.get("method", "*")).lower(),
                        code=int(rule.get("code", 500)),
                        remaining=int(rule.get("count", rule.get("remaining", 1))),
                        description=rule.get("description"),
                        retry_after=rule.get("retry_after"),
                    )
                )
        elif key in ("methods", "delay_methods"):
            setattr(faults, key, [str(m).lower() for m in value] if value is not None else None)
        elif key in {f.name for f in fields(Faults)}:
            setattr(faults, key, value)
        else:
            raise ValueError(f"unknown fault setting {key!r}")
    return faults
