"""One owner of a platform connection across kefu processes.

A Telegram bot may be polled by one process only, and a OneBot connection reaches
one process (reverse mode): whoever holds the lease does what only one may (poll,
relay to agents, run other processes' QQ actions).  The lease is a hash in Redis
(`holder`, `info`) that expires unless its holder renews it (every third of its
life: `renew_every`); another process takes it at once when the holder's process
heartbeat is gone (storage/bus.py: `Bus.heartbeat`), or when this process owns the
Redis alone (embedded: any other holder is a previous run of this one).
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import redis.asyncio as aioredis

# KEYS[1] the lease; ARGV: me, ttl ms, exclusive ('1'), heartbeat key prefix, info.
_ACQUIRE = """
local cur = redis.call('HGET', KEYS[1], 'holder')
if cur == false or cur == ARGV[1] or ARGV[3] == '1' or redis.call('EXISTS', ARGV[4] .. cur) == 0 then
  redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'info', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, ARGV[1]}
end
return {0, cur}
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Lease:
    def __init__(self, redis: aioredis.Redis, key: str, me: str, *, ttl: float, exclusive: bool,
                 alive_prefix: str, heartbeat: Callable[[], Awaitable[None]]):
        self.redis = redis
        self.key = key
        self.me = me  # this process, as other processes see it
        self.ttl = ttl
        self.exclusive = exclusive
        self.alive_prefix = alive_prefix  # + a holder's id = its process heartbeat key
        self.heartbeat = heartbeat
        self.held = False
        self.holder: str | None = None  # as last seen
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    async def acquire(self, info: dict[str, Any] | None = None) -> bool:
        """Take or renew the lease (with `info` for other processes to read); whether it is ours.
        Redis errors propagate: whoever cannot renew must act as if the lease were lost."""
        if not self.held:
            await self.heartbeat()  # ours first, so nobody takes the lease from us as "dead"
        got, holder = await self._acquire(keys=[self.key], args=[
            self.me, int(self.ttl * 1000), "1" if self.exclusive else "0", self.alive_prefix,
            json.dumps(info or {}, ensure_ascii=False)])
        self.held, self.holder = bool(got), _s(holder)
        return self.held

    async def release(self) -> None:
        """Give the lease up (on stop, or when the connection it stands for is gone)."""
        self.held = False
        await self._release(keys=[self.key], args=[self.me])

    async def current(self) -> tuple[str | None, dict[str, Any]]:
        """Who holds the lease now, and what they said about it."""
        holder, info = await self.redis.hmget(self.key, "holder", "info")
        try:
            parsed = json.loads(info) if info else {}
        except ValueError:
            parsed = {}
        self.holder = _s(holder) if holder else None
        return self.holder, parsed if isinstance(parsed, dict) else {}
