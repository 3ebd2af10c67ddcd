"""A fake shop speaking kefu's signed HTTP contract (SPEC "The shop"), for tests.

    shop = FakeShop(secret="s3cret")
    url = await shop.start()           # "http://127.0.0.1:PORT/kefu" — shop.url in config
    shop.add_order({"order_no": "A1", "status": "paid", ...}, card_keys=["KEY-1"])
    ...
    await shop.stop()

It checks every request the way a careful shop would, independently of kefu's own
code: POST, `X-Kefu-Timestamp` an integer within 300 s of now (either way),
`X-Kefu-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`.  A request
failing any check is answered 401 `{"error": ...}` and kept in `refused`; an accepted
one in `calls` (path, parsed body, headers).

Answers: /orders/lookup `{"order": ...|null}`; /orders/search by customer_id or contact
(either matches), newest first, at most `limit`; /orders/card_keys `{"card_keys": [...]}`
for a known order (else 404).  Controls: `hold()` / `release()` make answers wait (a
slow shop; `waiting` counts the requests held), `down = <status>`
answers every call with that HTTP status, `answer_next(status, body)` answers the next
call with raw bytes (malformed answers), `stop()` closes the port (connection refused).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class ShopCall:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Refusal:
    path: str
    reason: str
    headers: dict[str, str] = field(default_factory=dict)


class FakeShop:
    BASE = "/kefu"

    def __init__(self, secret: str, window: int = 300):
        self.secret = secret
        self.window = window
        self.orders: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, list[str]] = {}
        self.calls: list[ShopCall] = []
        self.refused: list[Refusal] = []
        self.down: int | None = None
        self._next: list[tuple[int, bytes]] = []
        self._open = asyncio.Event()
        self._open.set()
        self.waiting = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- data and controls -------------------------------------------------------
    def add_order(self, order: dict[str, Any], card_keys: list[str] | None = None) -> None:
        self.orders[order["order_no"]] = order
        if card_keys is not None:
            self.keys[order["order_no"]] = card_keys

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def answer_next(self, status: int, body: bytes) -> None:
        self._next.append((status, body))

    def calls_to(self, path: str) -> list[ShopCall]:
        return [c for c in self.calls if c.path == path]

    # -- server ------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        for name in ("lookup", "search", "card_keys"):
            app.router.add_post(f"{self.BASE}/orders/{name}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}{self.BASE}"
        return self.url

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        path = request.path.removeprefix(self.BASE)
        headers = dict(request.headers)
        problem = self._check(raw, request.headers)
        if problem:
            self.refused.append(Refusal(path, problem, headers))
            return web.json_response({"error": problem}, status=401)
        body = json.loads(raw)
        self.calls.append(ShopCall(path, body, headers))
        self.waiting += 1
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1
        if self._next:
            status, answer = self._next.pop(0)
            return web.Response(status=status, body=answer, content_type="application/json")
        if self.down is not None:
            return web.json_response({"error": "down"}, status=self.down)
        return self._answer(path, body)

    def _check(self, raw: bytes, headers: Any) -> str:
        ts = headers.get("X-Kefu-Timestamp", "")
        if not ts.isdigit():
            return "X-Kefu-Timestamp missing or not an integer"
        if abs(time.time() - int(ts)) > self.window:
            return "X-Kefu-Timestamp out of the window"
        want = "sha256=" + hmac.new(self.secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, headers.get("X-Kefu-Signature", "")):
            return "bad X-Kefu-Signature"
        try:
            body = json.loads(raw)
        except ValueError:
            return "body is not JSON"
        return "" if isinstance(body, dict) else "body is not a JSON object"

    def _answer(self, path: str, body: dict[str, Any]) -> web.Response:
        if path == "/orders/lookup":
            return web.json_response({"order": self.orders.get(body.get("order_no", ""))})
        if path == "/orders/search":
            cid, contact = body.get("customer_id"), body.get("contact")
            if cid is None and contact is None:
                return web.json_response({"error": "customer_id or contact needed"}, status=400)
            found = [o for o in self.orders.values()
                     if (cid is not None and o.get("customer_id") == cid)
                     or (contact is not None and o.get("contact") == contact)]
            found.sort(key=lambda o: o["created_at"], reverse=True)
            return web.json_response({"orders": found[:int(body.get("limit", 5))]})
        order_no = body.get("order_no", "")
        if order_no not in self.orders:
            return web.json_response({"error": "unknown order"}, status=404)
        return web.json_response({"card_keys": self.keys.get(order_no, [])})
