"""The API channel (站内信): the shop's own site messages.

In: ``POST /api/channels/{name}/inbound`` signed with
``X-Kefu-Signature: sha256=<hex HMAC-SHA256 of the raw body>``; answered 202
only once the message is in the stream; a repeated ``message_id`` is accepted
and ignored.  Out: each reply is POSTed to ``callback_url``, signed the same
way, with a stable ``message_id`` so the shop can recognise a re-send.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from connectors.base import Connector, DeliveryError
from connectors.channels import ApiChannel
from connectors.http import json_error, too_many_requests
from connectors.payloads import ApiInbound
from connectors.validation import PayloadError, parse_json, problem
from storage.events import Event
from storage.limits import RateLimiter

SIGNATURE_HEADER = "X-Kefu-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check; a header that is not even ASCII is simply wrong."""
    if not header or not header.isascii():
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


class ApiConnector(Connector):
    kind = "api"
    config: ApiChannel

    def __init__(self, ctx):
        super().__init__(ctx)
        self.session: aiohttp.ClientSession | None = None
        self.secret = self.config.secret.get_secret_value()
        self.limiter = RateLimiter(ctx.redis, ctx.keys)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"/api/channels/{self.name}/inbound", self.inbound)]

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.callback_timeout))

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def inbound(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_ok(self.secret, body, request.headers.get(SIGNATURE_HEADER)):
            return json_error(401, "invalid or missing X-Kefu-Signature")
        try:
            data = ApiInbound.model_validate(parse_json(body)).model_dump()
        except PayloadError as exc:
            return json_error(400, str(exc))
        except ValidationError as exc:
            return json_error(400, problem(exc))
        if len(data["text"]) > self.ctx.settings.web.max_text_length:
            return json_error(413, f"text longer than {self.ctx.settings.web.max_text_length} characters")
        meta: dict[str, Any] = {}
        if isinstance(data.get("attributes"), dict):
            meta["attributes"] = data["attributes"]
        event = self.inbound_event(str(data["customer_id"]), data["text"],
                                   platform_msg_id=str(data["message_id"]),
                                   sender_name=str(data.get("name") or ""), meta=meta)
        if wait := await self._limited(event):
            return too_many_requests(wait, "too many messages from this customer")
        published = await self.receive(event)
        return web.json_response({"id": published.id, "duplicate": published.duplicate}, status=202)

    async def _limited(self, event: Event) -> float:
        """Seconds this customer must wait (`limits.api.messages_per_customer`: per
        customer, as the shop's server is one address for all of them); a repeated
        message_id is not a new message and always gets its 202."""
        if await self.ctx.redis.exists(self.ctx.keys.dedupe(self.name, event.platform_msg_id)):
            return 0.0
        return await self.limiter.hit(("api.messages_per_customer", f"{self.name}:{event.customer_id}",
                                       self.ctx.settings.limits.api.messages_per_customer))

    async def send(self, event: Event) -> list[str]:
        """POST the reply to the shop; its `message_id` (kefu's id) is the shop's handle on it.
        A few quick retries (`retries`) first; then what the supervisor makes of the last
        answer: a 4xx refuses it for good, 429 says when to retry, 5xx or no answer means
        the shop is away (the reply waits however long that lasts)."""
        if self.config.callback_url is None:
            raise DeliveryError("channel has no callback_url", permanent=True)
        if self.session is None:
            raise RuntimeError("connector not started")
        payload = {"customer_id": event.customer_id, "conversation_id": event.conversation_id,
                   "message_id": event.id, "text": event.text}
        if links := self.file_links(event.attachments):
            payload["attachments"] = links  # [{name, type, size, url}]
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body)}
        delay, last, away, retry_after = 0.5, "", True, None
        for attempt in range(self.config.retries + 1):
            if attempt:
                await asyncio.sleep(max(delay * (0.75 + random.random() / 2), retry_after or 0.0))
                delay, retry_after = min(delay * 2, 30.0), None
            try:
                async with self.session.post(str(self.config.callback_url), data=body, headers=headers) as resp:
                    if resp.status < 300:
                        return [event.id]
                    last, away = f"callback answered {resp.status}", resp.status >= 500
                    if 400 <= resp.status < 500 and resp.status not in (408, 409, 425, 429):
                        raise DeliveryError(last, permanent=True)
                    if resp.status == 429 and resp.headers.get("Retry-After", "").isdigit():
                        retry_after = float(resp.headers["Retry-After"])
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                last, away = f"callback unreachable: {type(exc).__name__}", True
        raise DeliveryError(last, unavailable=away, retry_after=retry_after)
