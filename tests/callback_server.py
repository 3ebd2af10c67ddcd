"""A shop's site-message callback endpoint, as the API channel's peer."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web

from connectors.api import signature_ok


@dataclass
class CallbackServer:
    secret: str
    received: list[dict] = field(default_factory=list)  # every POST, re-sends included
    bad_signatures: int = 0
    fail_status: int | None = None  # answer this instead of 200 while set
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/cb", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}/cb"

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_ok(self.secret, body, request.headers.get("X-Kefu-Signature")):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        if self.fail_status:
            return web.json_response({"error": "down"}, status=self.fail_status)
        self.received.append(json.loads(body))
        return web.json_response({"ok": True})

    def message_ids(self) -> list[str]:
        return [m["message_id"] for m in self.received]
