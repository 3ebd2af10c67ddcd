"""The one small interface every channel implements.

A connector turns platform messages into `Event`s and hands them to
`receive()` (which returns only once the event is durably in the stream —
acknowledge the platform after that, never before), and delivers outbound
events in `send()`.  What it gets from kefu is its `ConnectorContext`
(connectors/context.py): the channel toolkit and nothing of the core it does not
need.  The supervisor (connectors/supervisor.py) owns the
lifecycle: it calls `start()`, feeds `send()` from the channel's outbound
stream, and restarts a connector that raises, with backoff, while the others
keep running.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from connectors.kit.delivery import DeliveryError  # part of the interface: what send() raises
from storage import metrics
from storage.bus import Published
from storage.events import Event, new_id

if TYPE_CHECKING:
    from connectors.context import ConnectorContext

__all__ = ["Connector", "DeliveryError"]


class Connector(ABC):
    kind: ClassVar[str]
    relays_agents: ClassVar[bool] = False  # gets a RelayContext (connectors/context.py)

    def __init__(self, ctx: ConnectorContext):
        self.ctx = ctx
        self.name = ctx.name
        self.config = ctx.config
        self.log = ctx.log
        self.state = "starting"  # starting | running | failed | stopped
        self.last_error: str | None = None

    def routes(self) -> list[web.RouteDef]:
        """HTTP routes this channel serves on the shared web server (mounted once)."""
        return []

    async def start(self) -> None:
        """Connect to the platform; return once ready to receive and send."""

    async def stop(self) -> None:
        """Disconnect; must be safe to call after a failed start."""

    @abstractmethod
    async def send(self, event: Event) -> list[str]:
        """Deliver one outbound message; the platform's ids of what it took (one per
        message a long reply became).  Raise DeliveryError for this message only,
        anything else to have the connector restarted."""

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "state": self.state}
        if self.last_error:
            out["error"] = self.last_error
        return out

    # -- helpers for subclasses ---------------------------------------------------
    def inbound_event(self, customer_id: str, text: str, *, platform_msg_id: str | None,
                      sender_name: str = "", **kw: Any) -> Event:
        return Event(
            id=new_id("m"), channel=self.name, channel_kind=self.kind, direction="in",
            customer_id=customer_id, text=text, platform_msg_id=platform_msg_id,
            sender_kind="customer", sender_id=customer_id, sender_name=sender_name, **kw,
        )

    def file_links(self, attachments: list[dict]) -> list[dict[str, Any]]:
        """A message's files as {name, type, size, url} with an address reachable from
        outside (web.public_url), for platforms that get a link rather than the file."""
        out = []
        for a in attachments:
            url = str(a.get("url") or "")
            out.append({"name": a.get("name") or "file", "type": a.get("type") or "", "size": a.get("size"),
                        "url": self.ctx.settings.web.absolute(url) if url.startswith("/") else url})
        return out

    async def receive(self, event: Event) -> Published:
        """Put an inbound event durably into the stream (deduplicated)."""
        published = await self.ctx.publish(event)
        (metrics.inbound_duplicates if published.duplicate else metrics.inbound_messages).labels(self.name).inc()
        return published
