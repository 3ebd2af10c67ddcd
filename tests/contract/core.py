"""kefu's parts below the connectors, in the test's own process, on a real redis-server.

A connector under contract test runs here as it runs in `kefu run`: built by
connectors/context.py:build_context over the core aggregator/core.py:build_core makes,
its HTTP routes served on a local port, its live pushes fanned out — only the router
and the supervisor do not run: the tests call `send()` and read the inbound stream
themselves.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from aggregator.config import Settings
from aggregator.core import build_core
from connectors import connector_class
from connectors.base import Connector
from connectors.context import build_context
from storage.connection import connect
from storage.events import Event, new_id
from storage.fanout import Fanout
from tests.kefu_harness import RedisServer, free_port


class InProcessCore:
    def __init__(self, directory: Path):
        self.server = RedisServer(directory)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._runners: list[web.AppRunner] = []
        self.connectors: list[Connector] = []

    async def start(self, channel: str, config: dict[str, Any], **settings: Any) -> None:
        self.server.start()
        self.redis, self.blocking = connect(self.server.url, block_ms=200)
        self.settings = Settings.model_validate({"redis": {"url": self.server.url},
                                                 "web": {"listen": f"127.0.0.1:{self.port}"},
                                                 "channels": {channel: config}, **settings})
        self.channel = channel
        self.core = build_core(self.settings, self.redis, self.blocking, exclusive=True)

    def connector(self) -> Connector:
        """A new connector of the channel, as a (re)started kefu process builds it."""
        cfg = self.settings.channels[self.channel]
        cls = connector_class(cfg)
        return cls(build_context(self.channel, cfg, self.core, stopping=asyncio.Event(), relay=cls.relays_agents))

    async def run(self, conn: Connector) -> Connector:
        """Start `conn` the way the supervisor does, with its routes served and its pushes fanned out."""
        app = web.Application()
        app.add_routes(conn.routes())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runners.append(runner)
        self._stop = asyncio.Event()
        if self.core.fanout.listeners:
            self._tasks.append(asyncio.create_task(self.core.fanout.run(self._stop)))
        await conn.start()
        conn.state = "running"
        self.connectors.append(conn)
        return conn

    async def halt(self, conn: Connector) -> None:
        """Stop `conn` as kefu's shutdown does (a restart follows with a new one)."""
        conn.ctx.stopping.set()
        await conn.stop()
        conn.state = "stopped"
        self.connectors.remove(conn)
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        self.core.fanout = Fanout(self.redis)  # subscriptions are made by the next connector

    async def close(self) -> None:
        for conn in list(self.connectors):
            await self.halt(conn)
        await self.redis.aclose()
        await self.blocking.aclose()
        self.server.stop()

    async def inbound(self) -> list[Event]:
        """Every event in the inbound stream, oldest first."""
        return [Event.decode(fields[b"e"]) for _, fields in await self.redis.xrange(self.core.keys.inbound)]

    def reply(self, customer_id: str, text: str) -> Event:
        """An agent's reply to the customer, as the outbound stream carries it."""
        return Event(id=new_id("m"), channel=self.channel, channel_kind=self.settings.channels[self.channel].kind,
                     direction="out", customer_id=customer_id, text=text, conversation_id="c_contract",
                     sender_kind="agent", sender_id="alice", sender_name="Alice")
