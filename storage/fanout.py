"""One Redis pub/sub connection per process, fanned out to local listeners.

Live pushes (agents' /api/events, replies to a web chat visitor whose socket
another process holds) are not the durable path — that is the stream — so
pub/sub's at-most-once delivery is enough; clients re-read state on reconnect.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("kefu.fanout")

Listener = Callable[[bytes], Awaitable[None]]


class Fanout:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self.listeners: dict[str, list[Listener]] = defaultdict(list)

    def subscribe(self, channel: str, listener: Listener) -> None:
        """Register before run() starts."""
        self.listeners[channel].append(listener)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self.listeners)
                backoff = 0.1
                while not stop.is_set():
                    msg = await pubsub.get_message(timeout=0.5)
                    if msg is None:
                        continue
                    channel = msg["channel"].decode()
                    # one message may carry several events, a line each (storage/conversations.py:live_frame)
                    for data in msg["data"].split(b"\n"):
                        for listener in self.listeners.get(channel, ()):
                            try:
                                await listener(data)
                            except Exception:
                                log.exception("live listener failed", extra={"channel": channel})
            except (RedisError, OSError) as exc:
                log.warning("pub/sub connection lost", extra={"error": str(exc), "retry_in": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
