"""OneBot events in: customers' private messages become events; friend requests.

A customer's message — text, faces (``[表情]``), images and files, a quote of a
reply (``meta.reply_to``), in array or CQ-string format — is stored once:
``{self_id}:{message_id}`` is its platform id, so an event OneBot re-sends is
stored once.  Its images and files are fetched from the OneBot host and kept by
kefu (connectors/kit/files.py), typed by their bytes; one that cannot be fetched
is described, with why.  The bot's own messages (``message_sent``, or
``user_id == self_id``) are never taken as customer messages; agents' messages go
to the agents' bridge.  Friend requests are accepted when ``auto_accept_friends``
is on.
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from connectors.kit.files import FileRefused, fetch_file, guessed_type
from connectors.qq.codec import normalise, platform_id
from connectors.qq.transport import ActionFailed, NotConnected
from storage.events import Event

if TYPE_CHECKING:
    from connectors.qq.connector import QQConnector

QUEUE = 10000  # events read but not yet handled


class QQInbound:
    def __init__(self, conn: "QQConnector"):
        self.conn = conn
        self.transport = conn.transport
        self.ctx = conn.ctx
        self.log = conn.log
        self.events: asyncio.Queue = asyncio.Queue(maxsize=QUEUE)

    def enqueue(self, frame: dict) -> None:
        """An event from the WebSocket; handled in order by `worker`."""
        try:
            self.events.put_nowait(frame)
        except asyncio.QueueFull:
            self.log.error("QQ event queue full, event dropped", extra={"post_type": frame.get("post_type")})

    async def drain(self, timeout: float) -> None:
        """Events already read are stored before the worker goes."""
        try:
            await asyncio.wait_for(self.events.join(), timeout)
        except TimeoutError:
            self.log.warning("QQ events left unprocessed at stop", extra={"count": self.events.qsize()})

    async def worker(self) -> None:
        while True:
            frame = await self.events.get()
            try:
                await self._on_event(frame)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("QQ event handling failed", extra={"post_type": frame.get("post_type")})
            finally:
                self.events.task_done()

    async def _on_event(self, ev: dict) -> None:
        post = ev.get("post_type")
        if post == "message_sent":
            return  # the bot's own message, reported back: never a customer message
        if post == "request":
            await self._on_request(ev)
        elif post == "message":
            await self._on_message(ev)

    async def _on_request(self, ev: dict) -> None:
        if ev.get("request_type") != "friend":
            return
        if not self.conn.config.auto_accept_friends:
            self.log.info("friend request left for a human", extra={"user_id": ev.get("user_id")})
            return
        try:
            await self.transport.call("set_friend_add_request", {"flag": ev.get("flag"), "approve": True})
            self.log.info("friend request accepted", extra={"user_id": ev.get("user_id")})
        except (TimeoutError, ActionFailed, NotConnected) as exc:
            self.log.warning("friend request not accepted", extra={"user_id": ev.get("user_id"), "error": str(exc)})

    async def _on_message(self, ev: dict) -> None:
        own = self.transport.self_id
        user_id = ev.get("user_id")
        self_id = ev.get("self_id", own)
        if user_id is None or str(user_id) == str(self_id) or str(user_id) == str(own):
            return  # our own message: never looped back
        msg = normalise(ev.get("message") if ev.get("message") is not None else ev.get("raw_message", ""), self_id)
        pmid = platform_id(self_id, ev.get("message_id"))
        agents = self.conn.agents
        if ev.get("message_type") == "group":
            if agents is not None:
                await agents.on_group_message(ev, msg, pmid)
            return
        if ev.get("message_type") != "private":
            return
        if agents is not None and await agents.on_private_message(ev, msg, pmid):
            return
        if not self.conn.config.customers or (not msg["text"] and not msg["attachments"]):
            return
        sender = ev.get("sender") or {}
        meta: dict[str, Any] = {}
        text = msg["text"]
        if msg["reply_to"]:
            meta["reply_to"] = platform_id(self_id, msg["reply_to"])
            quoted = await self.conn.outbound.recall(msg["reply_to"])
            if quoted and quoted.get("id"):
                meta["reply_to_message"] = quoted["id"]
                if quoted.get("text"):
                    text = f"「{quoted['text']}」\n{text}"
        if sender.get("group_id") or ev.get("sub_type") == "group":
            meta["temp_source_group"] = sender.get("group_id")
        event = self.conn.inbound_event(
            str(user_id), text, platform_msg_id=pmid,
            sender_name=str(sender.get("nickname") or sender.get("card") or "")[:100],
            attachments=await self.keep(msg["attachments"]), platform_ts=float(ev.get("time") or time.time()),
            meta=meta)
        await self._receive_durably(event)

    async def keep(self, attachments: list[dict]) -> list[dict[str, Any]]:
        """A customer's files, fetched from the OneBot host and kept by kefu."""
        out = []
        limit = self.ctx.settings.web.max_upload_bytes
        for att in attachments:
            name = att.get("name") or att["type"]
            try:
                if not att.get("url") or self.transport.session is None:
                    raise FileRefused("QQ gave no address for it")
                kept = await fetch_file(self.transport.session, self.ctx.files, att["url"], name, limit)
                out.append(kept.public())
            except FileRefused as exc:
                self.log.warning("QQ file not kept", extra={"channel": self.conn.name, "error": str(exc)})
                unkept = {"name": name, "type": guessed_type(name), "error": f"not kept: {exc}"}
                if att.get("size") is not None:
                    unkept["size"] = att["size"]
                out.append(unkept)
        return out

    async def _receive_durably(self, event: Event) -> None:
        """OneBot never re-delivers: keep trying a while if Redis is briefly away."""
        delay = 0.2
        for _ in range(8):
            try:
                await self.conn.receive(event)
                return
            except (TimeoutError, OSError, RedisError) as exc:
                err = exc
            self.log.warning("cannot store QQ message yet", extra={"error": str(err), "retry_in": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        self.log.error("QQ message lost: Redis unavailable", extra={"platform_msg_id": event.platform_msg_id})
