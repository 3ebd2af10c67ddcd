"""Abuse limits, shared by every kefu process on the Redis (config `limits:`).

- `RateLimiter.hit`: at most `count` events per `per` seconds per subject (a
  visitor, an address, a customer), as a sliding window in Redis
  (storage/lua/rate_limit.lua).  The subjects of one event — a visitor and
  their address — are checked and counted together, all or nothing.
- `LoginGuard`: attempts per agent name and per address, with a lock-out that
  doubles each time (storage/lua/login_guard.lua).  A name is only a string
  here, whether or not such an agent exists, so the answers cannot tell.

Subjects are stored as digests: the keys reveal no address, customer id or
whatever was typed into a login form.  Both answer how long to wait, in
seconds (0: go on), and count refusals in `kefu_rate_limited_total{kind}`,
`kind` being the limit's config key.
"""
from __future__ import annotations

import hashlib
import math
import secrets
from importlib import resources
from typing import Protocol

import redis.asyncio as aioredis

from storage import metrics
from storage.keys import Keys


class Rate(Protocol):
    """A configured limit (storage/config.py Rate)."""
    count: int
    per: float  # seconds


class LoginPolicy(Protocol):
    """The login limits (storage/config.py LoginLimits); durations in seconds."""
    attempts_per_agent: int
    attempts_per_ip: int
    window: float
    lockout: float
    max_lockout: float
    forget_after: float


def _script(name: str) -> str:
    return (resources.files("storage") / "lua" / f"{name}.lua").read_text()


def digest(subject: str) -> str:
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header or an error frame (never 0 while refused)."""
    return max(1, math.ceil(seconds))


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self.keys = keys
        self._hit = redis.register_script(_script("rate_limit"))

    async def hit(self, *checks: tuple[str, str, Rate | None]) -> float:
        """Count one event against each (kind, subject, rate) — a None rate is no
        limit — if every one allows it; else count nothing and return the seconds
        until the most restrictive one would."""
        active = [(kind, subject, rate) for kind, subject, rate in checks if rate is not None]
        if not active:
            return 0.0
        args: list[str | int] = [secrets.token_hex(8)]
        for _, _, rate in active:
            args += [rate.count, max(1, int(rate.per * 1000))]
        refusing, wait_ms = await self._hit(
            keys=[self.keys.rate(kind, digest(subject)) for kind, subject, _ in active], args=args)
        if not refusing:
            return 0.0
        metrics.rate_limited.labels(active[int(refusing) - 1][0]).inc()
        return int(wait_ms) / 1000


class LoginGuard:
    KINDS = ("login.attempts_per_agent", "login.attempts_per_ip")

    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self.keys = keys
        self._run = redis.register_script(_script("login_guard"))

    async def attempt(self, agent: str, ip: str, policy: LoginPolicy) -> float:
        """Take one attempt for `agent` from `ip`; seconds to wait instead when locked out."""
        return await self._op("attempt", agent, ip, policy)

    async def failed(self, agent: str, ip: str, policy: LoginPolicy) -> float:
        """The password was wrong; seconds of the lock-out this starts, if it does."""
        return await self._op("failed", agent, ip, policy)

    async def succeeded(self, agent: str, ip: str, policy: LoginPolicy) -> None:
        """The agent name's failures are forgotten; the address's attempt does not count."""
        await self._op("succeeded", agent, ip, policy)

    async def _op(self, op: str, agent: str, ip: str, policy: LoginPolicy) -> float:
        keys = [self.keys.login_guard(kind, digest(subject)) for kind, subject in zip(self.KINDS, (agent, ip))]
        durations = (policy.window, policy.lockout, policy.max_lockout, policy.forget_after)
        wait_ms, which = await self._run(keys=keys, args=[
            op, *(int(s * 1000) for s in durations),
            policy.attempts_per_agent, "reset", policy.attempts_per_ip, "refund"])
        if not wait_ms:
            return 0.0
        metrics.rate_limited.labels(self.KINDS[int(which) - 1]).inc()
        return int(wait_ms) / 1000
