"""What a channel gets from kefu — and nothing more.

A customer connector turns platform messages into events and delivers replies: it
gets `publish` (into the inbound stream, deduplicated), the file store, the
toolkit (connectors/kit/: leases, pacers, sent parts, message refs), the Redis keys
of its own state, the settings it reads and a logger.  It gets no bus, store,
agent actions or fan-out: what the web chat must read of the core (a visitor's own
history, whether a human can answer now, live presence changes) comes as small
read-only views.

The agents' chat-app relays (connectors/telegram/agents.py, connectors/qq/agents.py)
act for agents, so they get the conversation store and the agent actions besides,
through an explicit `RelayContext` — until the relay engine replaces them.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import redis.asyncio as aioredis

from connectors.kit.lease import Lease
from connectors.kit.pacing import Pacer
from connectors.kit.parts import SentParts
from connectors.kit.refs import MessageRefs
from storage.attachments import AttachmentStore
from storage.bus import Published
from storage.conversations import ConversationStore
from storage.events import Event
from storage.keys import Keys

if TYPE_CHECKING:
    from aggregator.config import Settings
    from aggregator.core import Core
    from connectors.config import ChannelConfig
    from routing.actions import AgentActions

Listener = Callable[[bytes], Awaitable[None]]


class CustomerHistory:
    """A customer's own record on one channel, as the customer sees it (not masked)."""

    def __init__(self, store: ConversationStore, channel: str):
        self._store = store
        self._channel = channel

    async def current(self, customer_id: str) -> str | None:
        """The customer's open conversation, else their latest one."""
        return await self._store.current_for_customer(self._channel, customer_id)

    async def messages(self, cid: str) -> list[dict[str, Any]]:
        conv = await self._store.get(cid)
        return conv["messages"] if conv else []


class Desk:
    """Whether a human can answer now: who is online, which roles are outside their hours."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, off_hours: Callable[[str, str, str], str | None]):
        self._redis = redis
        self._keys = keys
        self.off_hours_text = off_hours  # (role, lang, channel) -> the off-hours message if closed now

    async def online_agents(self) -> set[str]:
        return {m.decode() for m in await self._redis.smembers(self._keys.agents_online)}


@dataclass(slots=True)
class RelayContext:
    """What the agents' chat-app relays get besides a channel's context."""
    store: ConversationStore
    actions: "AgentActions"  # agents acting from a chat app go through the console's rules
    on_live: Callable[[Listener], None]  # listen (in __init__) to live events


@dataclass(slots=True)
class ConnectorContext:
    name: str  # the channel's name in config.yaml
    config: "ChannelConfig"
    settings: "Settings"  # replaced on reload
    log: logging.Logger
    redis: aioredis.Redis  # for the channel's own keys
    blocking: aioredis.Redis  # its blocking reads (BLPOP) of them
    keys: Keys
    process: str  # this process, as leases and heartbeats name it
    publish: Callable[[Event], Awaitable[Published]]  # into the inbound stream, deduplicated
    files: AttachmentStore  # files customers and agents send (storage/attachments.py)
    refs: MessageRefs
    parts: SentParts
    stopping: asyncio.Event  # set when kefu stops: waits for a send slot end
    lease: Callable[[str, float], Lease]  # (name, ttl s)
    pacer: Callable[[str], Pacer]  # (namespace: one account's scopes)
    on_live: Callable[[Listener], None]  # live events (presence changes)
    on_push: Callable[[str, Listener], None]  # a pub/sub channel of its own
    desk: Desk
    history: CustomerHistory
    relay: RelayContext | None = None  # the agents' relays only


def build_context(name: str, config: "ChannelConfig", core: "Core", *, stopping: asyncio.Event,
                  relay: bool = False) -> ConnectorContext:
    """A channel's context over this process's core (aggregator/core.py); with `relay`, the
    agents' relay context too."""
    settings, bus, keys, redis, fanout = core.settings, core.bus, core.keys, core.bus.redis, core.fanout

    def on_live(listener: Listener) -> None:
        fanout.subscribe(keys.agent_events, listener)

    def lease(lease_name: str, ttl: float) -> Lease:
        return Lease(redis, keys.lease(lease_name), bus.consumer, ttl=ttl, exclusive=bus.exclusive,
                     alive_prefix=keys.consumer_alive(""),
                     heartbeat=lambda: bus.heartbeat(settings.bus.heartbeat_ttl))

    return ConnectorContext(
        name=name, config=config, settings=settings, log=logging.getLogger(f"kefu.channel.{name}"),
        redis=redis, blocking=bus.blocking, keys=keys, process=bus.consumer, publish=bus.publish_inbound,
        files=core.files, refs=MessageRefs(redis, keys, name), parts=SentParts(redis, keys, name),
        stopping=stopping, lease=lease, pacer=lambda namespace: Pacer(redis, keys, namespace, stopping),
        on_live=on_live, on_push=fanout.subscribe, desk=Desk(redis, keys, core.router.off_hours_text),
        history=CustomerHistory(core.store, name),
        relay=RelayContext(core.store, core.actions, on_live) if relay else None)
