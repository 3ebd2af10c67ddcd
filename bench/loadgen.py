"""The load generator's tools (it runs in its own process, `pipeline.py _load`):
the agent's live socket that sees each message arrive, the shop's callback
endpoint, and the signed poster of customer messages."""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid

import aiohttp

from bench.workload import CHANNEL, NAMES, SECRET, text_for
from connectors.api import SIGNATURE_HEADER, sign


class AgentSocket:
    """The agent's /api/events socket; records when each bench message shows up."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.duplicates = 0
        self.frames = 0
        self.changed = asyncio.Event()

    async def open(self, s: aiohttp.ClientSession, url: str) -> None:
        async with s.post(url + "/api/login", json={"agent": "bench", "password": "bench-agent-pw"}) as r:
            if r.status != 200:
                raise RuntimeError(f"login failed: {r.status} {await r.text()}")
            token = (await r.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with s.put(url + "/api/presence", json={"status": "online"}, headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"presence failed: {r.status}")
        self.ws = await s.ws_connect(url.replace("http", "ws", 1) + "/api/events", headers=headers,
                                     max_msg_size=0, heartbeat=None)
        first = await self.ws.receive_json(timeout=10)
        if first.get("type") != "hello":
            raise RuntimeError(f"unexpected first frame {first}")
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            self.frames += 1
            frame = json.loads(msg.data)
            if frame.get("type") != "message":
                continue
            text = frame["message"]["text"]
            if not text.startswith("#"):
                continue
            seq = int(text[1:text.index("#", 1)])
            if seq in self.seen:
                self.duplicates += 1
            else:
                self.seen[seq] = now
            self.changed.set()

    async def wait_count(self, want: set[int] | int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while True:
            have = len(self.seen) if isinstance(want, int) else len(want & self.seen.keys())
            need = want if isinstance(want, int) else len(want)
            if have >= need:
                return True
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


class Sink:
    """The shop's callback endpoint: takes the automatic replies (welcome etc.) kefu sends."""

    received = 0

    async def start(self, port: int) -> None:
        from aiohttp import web

        async def cb(request: web.Request) -> web.Response:
            await request.read()
            self.received += 1
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/cb", cb)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        await self.runner.cleanup()


class Poster:
    def __init__(self, s: aiohttp.ClientSession, url: str, customers: int, seed: int):
        self.s = s
        self.endpoint = f"{url}/api/channels/{CHANNEL}/inbound"
        self.customers = customers
        self.rng = random.Random(seed)
        self.run = uuid.uuid4().hex[:6]
        self.sent_at: dict[int, float] = {}
        self.ack_ms: dict[int, float] = {}
        self.errors: dict[str, int] = {}

    def body(self, seq: int) -> bytes:
        c = self.rng.randrange(self.customers)
        return json.dumps({"customer_id": f"u{100000 + c}", "message_id": f"{self.run}-{seq}",
                           "text": f"#{seq}# {text_for(self.rng)}", "name": NAMES[c % len(NAMES)]},
                          ensure_ascii=False).encode()

    async def post(self, seq: int) -> None:
        body = self.body(seq)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(SECRET, body)}
        t = time.perf_counter()
        self.sent_at[seq] = t
        try:
            async with self.s.post(self.endpoint, data=body, headers=headers) as r:
                await r.read()
                if r.status != 202:
                    key = f"http_{r.status}"
                    self.errors[key] = self.errors.get(key, 0) + 1
                    return
        except (TimeoutError, aiohttp.ClientError) as exc:
            key = type(exc).__name__
            self.errors[key] = self.errors.get(key, 0) + 1
            return
        self.ack_ms[seq] = (time.perf_counter() - t) * 1000
