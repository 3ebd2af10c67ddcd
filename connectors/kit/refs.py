"""Platform message ids ↔ kefu ids, one store for every channel.

What a message the bot sent belongs to — the conversation, the kefu message id, a
snippet, whom it went to — is remembered under the platform's id, so that a quote
or a reply-to on the platform finds its conversation (a QQ customer quoting a
reply, an agent answering a relayed message).  The other way round — the platform ids
a reply became — is what connectors/kit/parts.py records.
"""
from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from storage.keys import Keys

TTL = 30 * 86400  # how long a sent message stays quotable


class MessageRefs:
    def __init__(self, redis: aioredis.Redis, keys: Keys, channel: str):
        self.redis = redis
        self.keys = keys
        self.channel = channel

    async def remember(self, platform_ids: list[str], ref: dict[str, Any]) -> None:
        """`ref` ({"cid", "id"?, "text"?, "to"?}) for each of `platform_ids`."""
        if not platform_ids:
            return
        blob = json.dumps(ref, ensure_ascii=False)
        pipe = self.redis.pipeline(transaction=False)
        for pid in platform_ids:
            pipe.set(self.keys.msg_ref(self.channel, pid), blob, ex=TTL)
        await pipe.execute()

    async def recall(self, platform_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.msg_ref(self.channel, platform_id))
        try:
            ref = json.loads(raw) if raw else None
        except ValueError:
            return None
        return ref if isinstance(ref, dict) else None
