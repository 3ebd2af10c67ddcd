"""Resume of a long reply sent in parts.

A reply longer than a platform takes goes out as several messages.  Each part the
platform took is recorded (its platform message id) right after it was taken, so a
retry — after a failed later part, a crash or a restart — sends only the parts not
yet taken, and none twice.
"""
from __future__ import annotations

from typing import Awaitable, Callable, Sequence, TypeVar

import redis.asyncio as aioredis

from storage.keys import Keys

P = TypeVar("P")
TTL = 7 * 86400  # as long as a sent marker (connectors/supervisor.py)


class SentParts:
    def __init__(self, redis: aioredis.Redis, keys: Keys, channel: str):
        self.redis = redis
        self.keys = keys
        self.channel = channel

    async def taken(self, message_id: str) -> list[str]:
        """Platform ids of the parts of `message_id` already taken, in order."""
        return [v.decode() for v in await self.redis.lrange(self.keys.sent_parts(self.channel, message_id), 0, -1)]

    async def send(self, message_id: str, parts: Sequence[P], send_one: Callable[[P], Awaitable[str]]) -> list[str]:
        """Send the parts of `message_id` not yet taken, one by one (`send_one` returns the
        platform's id of what it sent); the platform ids of all of them."""
        key = self.keys.sent_parts(self.channel, message_id)
        taken = await self.taken(message_id)
        for part in parts[len(taken):]:
            platform_id = await send_one(part)
            pipe = self.redis.pipeline(transaction=True)
            pipe.rpush(key, platform_id)
            pipe.expire(key, TTL)
            await pipe.execute()
            taken.append(platform_id)
        return taken
