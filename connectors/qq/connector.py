"""`QQConnector`: the OneBot transport, inbound and outbound of one QQ account.

`/healthz` shows ``connected`` (a OneBot connection here), ``online`` (the account,
from lifecycle and heartbeat events, or — no connection here — from the process
holding one: ``via_other_process``) and ``self_id``.
"""
from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from connectors.base import Connector
from connectors.qq.agents import AgentBridge
from connectors.qq.inbound import QQInbound
from connectors.qq.outbound import QQOutbound
from connectors.qq.transport import OneBotTransport
from storage.events import Event


class QQConnector(Connector):
    kind = "qq"
    relays_agents = True

    def __init__(self, ctx):
        super().__init__(ctx)
        self.transport = OneBotTransport(ctx, on_event=lambda frame: self.inbound.enqueue(frame))
        self.inbound = QQInbound(self)
        self.outbound = QQOutbound(self)
        self.agents = AgentBridge(self) if self.config.agents.mode != "off" else None

    @property
    def ready(self) -> bool:
        """A connection here, and the account online."""
        return self.transport.ready

    @property
    def self_id(self) -> str | None:
        return self.transport.self_id

    def routes(self) -> list[web.RouteDef]:
        return [web.get(f"/onebot/{self.name}/ws", self.transport.reverse_ws)]

    async def start(self) -> None:
        self.transport.start()
        self.transport.spawn(self.inbound.worker(), "events")
        if self.agents is not None:
            self.transport.spawn(self.agents.worker(), "agent-relay")
        self.transport.accepting = True

    async def stop(self) -> None:
        self.transport.accepting = False
        await self.transport.close_connections()
        await self.inbound.drain(2.0)
        await self.transport.stop()

    def health(self) -> dict[str, Any]:
        out = super().health()
        t = self.transport
        if t.last_error and not self.last_error:
            out["error"] = t.last_error
        out.update({"mode": self.config.mode, "connected": t.connected, "online": t.ready, "self_id": t.self_id})
        if not t.connected and t.remote_online is not None:
            out["via_other_process"] = True  # another kefu process holds the connection
            out["online"] = t.remote_online
        if t.last_heartbeat is not None:
            out["last_heartbeat_age"] = round(time.time() - t.last_heartbeat, 1)
        if self.agents is not None:
            out["agents"] = self.config.agents.mode
        return out

    async def send(self, event: Event) -> list[str]:
        return await self.outbound.send(event)
