"""Each channel's declaration for the contract: its fake platform and a few hooks.

A new channel gets the whole contract by adding a `Channel` here: how to configure
it against its fake (`config`), how a customer writes (`inject`, and the same
platform message again: `inject_again`), what reached the customer (`received`),
its message limit and how the platform measures it, and — where the platform has
them — how to make it answer 429 once and to refuse the next message.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from connectors.api import sign
from connectors.base import Connector
from connectors.kit.text import Measure, characters, utf16_units
from connectors.webchat import customer_id_for
from tests.callback_server import CallbackServer
from tests.contract.core import InProcessCore
from tests.fakes.onebot import FakeOneBotForward
from tests.fakes.telegram_api import FakeTelegram
from tests.kefu_harness import wait_for


class Channel:
    name: str  # the channel in config.yaml, and the test id
    limit: int | None = None  # the platform's longest message by `measure`; None: any length
    measure: Measure = staticmethod(characters)
    answers_429 = False  # the platform has a rate limit answer with retry_after
    refuses = False  # the fake can refuse one message

    async def setup(self, core: InProcessCore) -> dict[str, Any]:
        """Start the fake; the channel's config against it."""
        raise NotImplementedError

    async def ready(self, core: InProcessCore, conn: Connector) -> None:
        """Wait until the connector talks to the fake (connected, polling ...)."""

    async def teardown(self) -> None:
        pass

    @property
    def customer(self) -> str:
        """The id kefu knows the fake's customer by."""
        raise NotImplementedError

    async def inject(self, text: str) -> Any:
        """The customer writes `text`; a handle on that platform message."""
        raise NotImplementedError

    async def inject_again(self, handle: Any) -> None:
        """The platform delivers the same message again."""
        raise NotImplementedError

    def received(self) -> list[tuple[str, str]]:
        """(platform id, text) of each message the customer got, in order."""
        raise NotImplementedError

    def answer_429_once(self, retry_after: int) -> None:
        raise NotImplementedError

    def retried_too_early(self) -> bool:
        raise NotImplementedError

    def refuse_next(self) -> None:
        raise NotImplementedError


class Webchat(Channel):
    name = "webchat"

    async def setup(self, core):
        self.frames: list[dict] = []
        self.session = aiohttp.ClientSession()
        return {"kind": "webchat"}

    async def ready(self, core, conn):
        self.ws = await self.session.ws_connect(core.ws_url + "/webchat/ws")
        hello = json.loads((await self.ws.receive(timeout=10)).data)
        self.token = hello["visitor_token"]
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        async for msg in self.ws:
            self.frames.append(json.loads(msg.data))

    async def teardown(self):
        self.reader.cancel()
        await self.ws.close()
        await self.session.close()

    @property
    def customer(self):
        return customer_id_for(self.token)

    async def inject(self, text):
        cmid = f"c{len(self.frames)}-{time.monotonic_ns()}"
        await self.inject_again((cmid, text))
        return cmid, text

    async def inject_again(self, handle):
        cmid, text = handle
        acks = len([f for f in self.frames if f.get("client_msg_id") == cmid])
        await self.ws.send_json({"type": "message", "text": text, "client_msg_id": cmid})
        await wait_for(lambda: len([f for f in self.frames if f.get("client_msg_id") == cmid]) > acks, 10,
                       message="ack")

    def received(self):
        return [(f["id"], f["text"]) for f in self.frames if f["type"] == "message"]


class RateLimitedCallback(CallbackServer):
    """The shop's callback endpoint, answering 429 with Retry-After when asked to."""

    def __init__(self, secret: str):
        super().__init__(secret)
        self.attempts: list[float] = []  # monotonic time of every POST
        self.limited: list[tuple[float, int]] = []  # (when, retry_after) of each 429 answered
        self.pending_429: int | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts.append(time.monotonic())
        if self.pending_429 is not None:
            ra, self.pending_429 = self.pending_429, None
            self.limited.append((time.monotonic(), ra))
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": str(ra)})
        return await super().handle(request)


class Api(Channel):
    name = "site"
    answers_429 = True
    secret = "contract-secret"

    async def setup(self, core):
        self.core = core
        self.callback = RateLimitedCallback(self.secret)
        url = await self.callback.start()
        self.session = aiohttp.ClientSession()
        self.n = 0
        return {"kind": "api", "secret": self.secret, "callback_url": url, "retries": 2}

    async def teardown(self):
        await self.session.close()
        await self.callback.stop()

    @property
    def customer(self):
        return "shop-customer-1"

    async def inject(self, text):
        self.n += 1
        handle = (f"sm-{self.n}", text)
        await self.inject_again(handle)
        return handle

    async def inject_again(self, handle):
        body = json.dumps({"customer_id": self.customer, "message_id": handle[0], "text": handle[1]}).encode()
        async with self.session.post(f"{self.core.url}/api/channels/{self.name}/inbound", data=body,
                                     headers={"X-Kefu-Signature": sign(self.secret, body)}) as r:
            assert r.status == 202, await r.text()

    def received(self):
        return [(m["message_id"], m["text"]) for m in self.callback.received]

    def answer_429_once(self, retry_after):
        self.callback.pending_429 = retry_after

    def retried_too_early(self):
        return any(any(when < t < when + ra for t in self.callback.attempts) for when, ra in self.callback.limited)


class Telegram(Channel):
    name = "tg"
    limit, measure = 4096, staticmethod(utf16_units)
    answers_429 = refuses = True
    chat = 777123

    async def setup(self, core):
        self.fake = FakeTelegram("123456:CONTRACT")
        await self.fake.start()
        return {"kind": "telegram", "token": self.fake.token, "api_base": self.fake.url}

    async def ready(self, core, conn):
        await wait_for(lambda: conn.health().get("polling"), 10, message="polling")

    async def teardown(self):
        await self.fake.stop()

    @property
    def customer(self):
        return str(self.chat)

    async def inject(self, text):
        return self.fake.inject_private_message(self.chat, text)

    async def inject_again(self, handle):
        self.fake.inject_update(handle)

    def received(self):
        return [(f"{m.chat_id}:{m.message_id}", m.text) for m in self.fake.sent if m.chat_id == self.chat]

    def answer_429_once(self, retry_after):
        self.fake.fail_next("sendMessage", 429, retry_after=retry_after, chat_id=self.chat)

    def retried_too_early(self):
        return any(v.kind == "retry_after" for v in self.fake.rate_violations)

    def refuse_next(self):
        self.fake.fail_next("sendMessage", 502, chat_id=self.chat)


class QQ(Channel):
    name = "qq"
    limit = 3000
    refuses = True
    user = 20001

    async def setup(self, core):
        self.fake = FakeOneBotForward("contract-token", self_id=10001)
        url = await self.fake.start()
        return {"kind": "qq", "mode": "forward", "url": url, "access_token": "contract-token",
                "self_id": 10001, "send_rate": 2}

    async def ready(self, core, conn):
        await self.fake.wait_connected(timeout=10)
        await wait_for(lambda: conn.ready, 10, message="QQ connected and online")

    async def teardown(self):
        await self.fake.stop()

    @property
    def customer(self):
        return str(self.user)

    async def inject(self, text):
        return await self.fake.inject_private_message(self.user, text)

    async def inject_again(self, handle):
        await self.fake.inject_private_message(self.user, handle["message"], message_id=handle["message_id"])

    def received(self):
        return [(str(s["message_id"]), s["text"]) for s in self.fake.sent if s["user_id"] == self.user]

    def refuse_next(self):
        self.fake.fail_next("send_private_msg", retcode=1400, message="refused by the contract")


CHANNELS = [Webchat, Api, Telegram, QQ]
