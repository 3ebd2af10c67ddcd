"""Paced sending, shared by every kefu process through Redis.

A platform's limits — Telegram: about one message a second per chat, 30 a second
per bot, 20 a minute per group; a QQ account: `send_rate` a second — are kept by
*pacing*: each send reserves the next free slot of every scope it falls in and
sleeps until then, so messages leave spaced out and the platform never has to
answer 429.  A scope is either `every` (one slot every `interval` seconds) or
`at_most` (`count` slots in any `period` seconds: a burst, then one slot as each
old one leaves the window).  When a platform still answers "retry after N s",
`cool_down` keeps every slot of an `every` scope clear of the next N seconds.
Times are Redis's clock, so processes on several machines agree.

A wait is cut short when kefu stops (`DeliveryError`, unavailable: the message
was not sent and is sent after the restart).
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import redis.asyncio as aioredis

from connectors.kit.delivery import DeliveryError
from storage.keys import Keys

# KEYS: the scopes; ARGV: a unique token, then per scope its kind ('every': a hash
# {tat, cool}; 'at_most': a sorted set of slots) and two numbers (every: interval ms,
# unused; at_most: period ms, count).  Reserves the earliest slot every scope allows
# and returns how many ms from now it is.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot = now
for i, key in ipairs(KEYS) do
  local kind, a, b = ARGV[3 * i - 1], tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local earliest
  if kind == 'every' then
    local h = redis.call('HMGET', key, 'tat', 'cool')
    earliest = math.max(tonumber(h[1]) or 0, tonumber(h[2]) or 0)
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - a)
    local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    earliest = tonumber(last[2]) or 0
    if redis.call('ZCARD', key) >= b then
      local kth = redis.call('ZRANGE', key, -b, -b, 'WITHSCORES')
      earliest = math.max(earliest, tonumber(kth[2]) + a)
    end
  end
  if earliest > slot then slot = earliest end
end
for i, key in ipairs(KEYS) do
  local kind, a = ARGV[3 * i - 1], tonumber(ARGV[3 * i])
  if kind == 'every' then
    redis.call('HSET', key, 'tat', slot + a)
    redis.call('PEXPIRE', key, slot + a - now + 60000)
  else
    redis.call('ZADD', key, slot, ARGV[1] .. ':' .. slot)
    redis.call('PEXPIRE', key, slot - now + a)
  end
end
return slot - now
"""

# KEYS[1] an `every` scope; ARGV[1] ms from now no slot may be in.
_COOL_DOWN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cool = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[1], 'cool')) or 0
if cool > cur then redis.call('HSET', KEYS[1], 'cool', cool) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) + 60000 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 60000)
end
return cool
"""


@dataclass(frozen=True, slots=True)
class Scope:
    key: str
    kind: str  # "every" | "at_most"
    ms: int  # every: the interval; at_most: the period
    count: int = 1  # at_most: slots in a period


class Pacer:
    def __init__(self, redis: aioredis.Redis, keys: Keys, namespace: str, stopping: asyncio.Event):
        self.redis = redis
        self.keys = keys
        self.namespace = namespace  # e.g. "tg:<bot id>": scopes of one account
        self.stopping = stopping
        self._reserve = redis.register_script(_RESERVE)
        self._cool_down = redis.register_script(_COOL_DOWN)

    def every(self, name: str, interval: float) -> Scope:
        """One slot every `interval` seconds."""
        return Scope(self.keys.pace(f"{self.namespace}:{name}"), "every", max(1, round(interval * 1000)))

    def at_most(self, name: str, count: int, period: float) -> Scope:
        """At most `count` slots in any `period` seconds."""
        return Scope(self.keys.pace(f"{self.namespace}:{name}"), "at_most", max(1, round(period * 1000)), count)

    async def reserve(self, *scopes: Scope) -> float:
        """Reserve the next slot of `scopes`: seconds until it (0: now)."""
        args: list[str | int] = [os.urandom(6).hex()]
        for s in scopes:
            args += [s.kind, s.ms, s.count]
        return int(await self._reserve(keys=[s.key for s in scopes], args=args)) / 1000

    async def wait(self, *scopes: Scope) -> None:
        """Reserve the next slot of `scopes` and sleep until it."""
        delay = await self.reserve(*scopes)
        if delay > 0:
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
            except TimeoutError:
                return
        if self.stopping.is_set():
            raise DeliveryError("kefu is stopping", unavailable=True)

    async def cool_down(self, scope: Scope, seconds: float) -> None:
        """The platform asked to wait `seconds` before the next send in `scope` (an `every` scope)."""
        await self._cool_down(keys=[scope.key], args=[max(1, round(seconds * 1000))])
