"""The building blocks of config.yaml's sections, and the sections storage owns.

Every package defines the models of its own parts (routing/config.py,
connectors/channels.py, connectors/config.py, storage/shop/config.py);
aggregator/config.py composes them into `Settings` and loads the file.  The
types here (strict sections, zh/en texts, rates; durations: storage/durations.py)
are shared by all of them, so they live in the lowest package.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from storage.durations import Duration, Milliseconds, PositiveDuration, WholeSeconds


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Localized(Section):
    zh: str
    en: str


ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # agent, role and channel names


class RedisConfig(Section):
    # null: kefu starts its own private redis-server under state_dir (unix
    # socket, append-only file on) and stops it on exit.  Otherwise a
    # redis://, rediss:// or unix:// URL of a Redis shared by every kefu process.
    url: str | None = None
    prefix: str = "kefu:"  # every key kefu writes starts with this
    # Embedded server only: how often the append-only file is fsynced.
    appendfsync: Literal["always", "everysec", "no"] = "everysec"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v


class BusConfig(Section):
    batch: int = Field(100, ge=1, le=10000)  # entries read per XREADGROUP
    block_ms: Milliseconds = Field(1000, ge=10, le=10000)  # how long a reader blocks waiting (ms, or 1s)
    claim_idle: PositiveDuration = 30.0  # before a live consumer's pending entry is taken over
    heartbeat_ttl: PositiveDuration = 15.0  # without heartbeat a process counts as dead
    dedupe_ttl: WholeSeconds = Field(3 * 86400, ge=60)  # how long a platform message id is remembered
    trim_interval: PositiveDuration = 10.0  # between stream trims


def _rate(v: Any) -> Any:
    """'30/1m' (30 per minute) or {count: 30, per: 1m}."""
    if isinstance(v, str):
        count, sep, per = v.partition("/")
        if not sep or not count.strip().isdigit():
            raise ValueError("must be count/duration like 30/1m, or {count: 30, per: 1m}")
        return {"count": int(count), "per": per}
    return v


class Rate(Section):
    """At most `count` in any `per` (a sliding window); null = no limit."""
    count: int = Field(ge=1)
    per: Annotated[Duration, Field(gt=0)]


LimitRate = Annotated[Rate | None, BeforeValidator(_rate)]


class WebchatLimits(Section):
    """Each web chat channel separately; a refused message gets an error frame with
    `retry_after` (the connection stays open) and is not stored."""
    messages_per_visitor: LimitRate = Rate(count=30, per=60)
    messages_per_ip: LimitRate = Rate(count=120, per=60)
    new_visitors_per_ip: LimitRate = Rate(count=30, per=600)  # visitor tokens kefu did not know
    uploads_per_visitor: LimitRate = Rate(count=30, per=3600)
    uploads_per_ip: LimitRate = Rate(count=60, per=3600)


class ApiLimits(Section):
    """Each API channel separately, per customer_id (the shop's server is one address
    for all its customers); over it: 429 with Retry-After, nothing stored."""
    messages_per_customer: LimitRate = Rate(count=60, per=60)


class LoginLimits(Section):
    """Agent logins: after this many attempts within `window` for one agent name
    (existing or not), or from one address, the name or address is locked out
    (429 with Retry-After) for `lockout`, twice as long each further time."""
    attempts_per_agent: int = Field(5, ge=1)  # a successful login starts the count again
    attempts_per_ip: int = Field(20, ge=1)  # successful logins do not count
    window: Annotated[Duration, Field(gt=0)] = 900.0
    lockout: Annotated[Duration, Field(gt=0)] = 60.0
    max_lockout: Annotated[Duration, Field(gt=0)] = 3600.0
    forget_after: Duration = 86400.0  # lock-outs so far are forgotten after this long without attempts


class LimitsConfig(Section):
    """Abuse limits, shared by every kefu process on the Redis."""
    webchat: WebchatLimits = WebchatLimits()
    api: ApiLimits = ApiLimits()
    login: LoginLimits = LoginLimits()
