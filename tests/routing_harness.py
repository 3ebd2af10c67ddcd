"""An in-process help desk on a real Redis with a clock the test controls.

The router, the conversation store and the bus are the real ones; only time
is the test's, so "Friday 20:00 in Shanghai" or "five minutes later" need no
waiting.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from aggregator.config import Settings, parse
from aggregator.core import build_core
from storage.events import Event, new_id

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Desk:
    def __init__(self, redis_url: str, config_yaml: str):
        self.settings: Settings = parse(config_yaml)
        self.url = redis_url
        self.now = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI).timestamp()
        self.events: list[dict] = []

    def at(self, y: int, mo: int, d: int, h: int, mi: int = 0) -> None:
        self.now = datetime(y, mo, d, h, mi, tzinfo=SHANGHAI).timestamp()

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def __aenter__(self) -> "Desk":
        self.redis = aioredis.Redis.from_url(self.url)
        self.settings.redis.prefix = f"sc{uuid.uuid4().hex[:8]}:"
        core = build_core(self.settings, self.redis, clock=lambda: self.now)
        self.keys, self.bus, self.store, self.router, self.actions = (
            core.keys, core.bus, core.store, core.router, core.actions)
        await core.sync_agents()
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(self.keys.agent_events)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.pubsub.aclose()
        keys = [k async for k in self.redis.scan_iter(match=self.keys.prefix + "*", count=1000)]
        if keys:
            await self.redis.delete(*keys)
        await self.redis.aclose()

    # -- acting ------------------------------------------------------------------
    async def online(self, *agents: str, status: str = "online") -> None:
        for a in agents:
            await self.store.set_presence(a, status, self.now)
        await self.router.drain()
        await self.collect()

    async def write(self, customer: str, text: str, channel: str = "site", **attributes) -> dict:
        """A customer message through the stream and the router; returns the conversation."""
        kind = self.settings.channels[channel].kind
        ev = Event(id=new_id("m"), channel=channel, channel_kind=kind, direction="in", customer_id=customer,
                   text=text, platform_msg_id=str(uuid.uuid4()), sender_name=customer, ts=self.now,
                   meta={"attributes": attributes} if attributes else {})
        await self.bus.publish_inbound(ev)
        await self.router.consumer.poll_once()
        await self.collect()
        return await self.conversation_of(customer, channel)

    async def tick(self) -> None:
        """What the router's ticker does every second: timers, queue, auto-away."""
        await self.router.tick()
        await self.router.consumer.poll_once()  # fired timers are events on the stream
        await self.collect()

    async def reply(self, agent: str, cid: str, text: str) -> dict:
        return await self.actions.reply(self.actions.agent(agent), cid, text)

    async def close(self, agent: str, cid: str) -> dict:
        conv = await self.actions.close(self.actions.agent(agent), cid)
        await self.collect()
        return conv

    # -- looking -------------------------------------------------------------------
    async def conversation_of(self, customer: str, channel: str = "site") -> dict:
        cid = await self.store.current_for_customer(channel, customer)
        return await self.store.get(cid)

    async def bot_texts(self, customer: str, channel: str = "site") -> list[str]:
        conv = await self.conversation_of(customer, channel)
        return [m["text"] for m in conv["messages"] if m["sender"]["kind"] == "bot"]

    async def outbound(self, channel: str = "site") -> list[Event]:
        return [Event.decode(f[b"e"]) for _, f in await self.redis.xrange(self.keys.outbound(channel))]

    async def collect(self) -> list[dict]:
        """Live events published so far (what agents' consoles receive)."""
        while True:
            msg = await self.pubsub.get_message(timeout=0.01)
            if msg is None:
                return self.events
            self.events += [json.loads(line) for line in msg["data"].split(b"\n")]

    def events_of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]

    async def assignee(self, customer: str, channel: str = "site") -> str | None:
        return (await self.conversation_of(customer, channel))["assignee"]
