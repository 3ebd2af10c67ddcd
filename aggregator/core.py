"""The parts every kefu process has below its connectors and web server, wired once.

`kefu run` (aggregator/app.py), the tests that run kefu's parts in-process
(tests/routing_harness.py) and the benchmark (bench/) all build them here, so
what they measure and test is what runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import redis.asyncio as aioredis

from aggregator.config import Settings
from routing.actions import AgentActions
from routing.router import Router
from storage.attachments import AttachmentStore
from storage.bus import Bus
from storage.conversations import ConversationStore
from storage.fanout import Fanout
from storage.keys import Keys


@dataclass(slots=True)
class Core:
    settings: Settings
    keys: Keys
    bus: Bus
    store: ConversationStore
    router: Router
    actions: AgentActions
    files: AttachmentStore
    fanout: Fanout

    async def sync_agents(self) -> None:
        """Config's agents (names, capacity, roles) into Redis, where the scripts read them."""
        s = self.settings
        await self.store.sync_agents((a.id, a.name, s.capacity(a), a.roles) for a in s.agents)

    def apply(self, settings: Settings) -> None:
        """A reloaded config (SIGHUP) for the parts that read it at use time."""
        self.settings = self.actions.settings = settings
        self.router.apply(settings)


def build_core(settings: Settings, redis: aioredis.Redis, blocking: aioredis.Redis | None = None, *,
               exclusive: bool = False, clock: Callable[[], float] = time.time) -> Core:
    """Keys under `settings.redis.prefix`; `blocking` is the client for blocking stream
    reads (storage/connection.py; `redis` when none); `exclusive` when this process owns
    the Redis (embedded), so it may take over every other consumer's pending entries;
    `clock` is the router's time (tests control it)."""
    keys = Keys(settings.redis.prefix)
    bus = Bus(redis, blocking or redis, keys, settings.bus.dedupe_ttl, exclusive=exclusive)
    store = ConversationStore(redis, keys)
    router = Router(settings, bus, store, clock=clock)
    return Core(settings=settings, keys=keys, bus=bus, store=store, router=router,
                actions=AgentActions(settings, store, router),
                files=AttachmentStore(redis, keys, settings.web.upload_ttl), fanout=Fanout(redis))
