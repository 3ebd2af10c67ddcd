"""`TelegramConnector`: the bot's lifecycle and its lease.

Only one kefu process polls a bot and relays to its agents: the one holding the
bot's lease (connectors/kit/lease.py), renewed every third of its life and taken
over at once when the holder's process is gone.  In webhook mode every process
takes the updates Telegram posts to it.
"""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from connectors.base import Connector
from connectors.telegram.agents import TelegramAgentBridge
from connectors.telegram.files import TelegramFiles
from connectors.telegram.inbound import ALLOWED_UPDATES, TelegramInbound
from connectors.telegram.outbound import send_reply
from connectors.telegram.transport import BotClient
from storage.events import Event

LEASE_TTL = 10.0  # s the poll/relay lease lives without renewal


class TelegramConnector(Connector):
    kind = "telegram"
    relays_agents = True

    def __init__(self, ctx):
        super().__init__(ctx)
        token = self.config.token.get_secret_value()
        bot_id = token.split(":", 1)[0] or "bot"
        self.client = BotClient(token, self.config.api_base, ctx.pacer(f"tg:{bot_id}"), self.log, self.name)
        self.files = TelegramFiles(self.client, ctx.files, lambda: self.ctx.settings.web.max_upload_bytes)
        self.lease = ctx.lease(f"tg:{bot_id}", LEASE_TTL)
        self.inbound = TelegramInbound(self)
        self.agents = TelegramAgentBridge(self)
        self._tasks: list[asyncio.Task] = []
        self._poll_task: asyncio.Task | None = None
        self._stopping = asyncio.Event()

    @property
    def leader(self) -> bool:
        return self.lease.held

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"/telegram/{self.name}/webhook", self.inbound.webhook)]

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        bot = await self.client.start()
        if self.config.mode == "webhook":
            url = f"{self.config.public_url.rstrip('/')}/telegram/{self.name}/webhook"
            await bot.set_webhook(url, secret_token=self.config.webhook_secret.get_secret_value(),
                                  allowed_updates=ALLOWED_UPDATES)
        else:
            await bot.delete_webhook()  # getUpdates is refused while a webhook is set
        await self.inbound.load_offset()
        self._tasks = [asyncio.create_task(self._hold_lease(), name=f"tg-lease-{self.name}")]

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [t for t in [*self._tasks, self._poll_task] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._poll_task = [], None
        await self.agents.stop()
        if self.lease.held:
            try:
                await self.lease.release()
            except Exception:
                pass
        await self.client.stop()

    def health(self) -> dict[str, Any]:
        out = super().health()
        out.update({"mode": self.config.mode, "leader": self.leader, "lease_holder": self.lease.holder,
                    "agents": self.config.agents.mode, "bot": self.client.username or None})
        if self.config.mode == "polling":
            out["polling"] = self._poll_task is not None and not self._poll_task.done()
            out["last_poll"] = self.inbound.last_poll
            out["conflicts"] = self.inbound.conflicts
        return out

    async def send(self, event: Event) -> list[str]:
        return await send_reply(self, event)

    # -- the lease: one poller / relayer per bot ----------------------------------
    async def _hold_lease(self) -> None:
        while not self._stopping.is_set():
            was_leader = self.leader
            try:
                await self.lease.acquire()
                if self.last_error and self.last_error.startswith("lease:"):
                    self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis away: we cannot renew, so we must assume the lease is lost.
                self.last_error = f"lease: {type(exc).__name__}: {exc}"[:300]
                self.lease.held = False
            if self.leader and not was_leader:
                self.log.info("telegram lease taken", extra={"channel": self.name})
                if self.config.mode == "polling":
                    self._poll_task = asyncio.create_task(self.inbound.poll(self._stopping),
                                                          name=f"tg-poll-{self.name}")
                self.agents.became_leader()
            elif was_leader and not self.leader:
                self.log.warning("telegram lease lost", extra={"channel": self.name, "holder": self.lease.holder})
                await self._lose_lead()
            try:
                await asyncio.wait_for(self._stopping.wait(), self.lease.renew_every if self.leader else 1.0)
            except asyncio.TimeoutError:
                pass

    async def _lose_lead(self) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
            await asyncio.gather(self._poll_task, return_exceptions=True)
            self._poll_task = None
        self.agents.lost_leadership()
