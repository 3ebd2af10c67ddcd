"""Messages out: a customer's reply, files as QQ takes them, what a sent message is.

A reply leaves through ``send_private_msg``: its text split at MAX_PART characters,
then each file as a message of its own; the parts QQ took are recorded
(connectors/kit/parts.py), so a retry never repeats one.  Sends are paced by the
bot's `send_rate` (connectors/kit/pacing.py).  While the account is offline or no
OneBot connection is up, `send()` raises an unavailable `DeliveryError`: the reply
waits in the outbound stream and goes out once the account is back, and no other
channel notices; a reply OneBot refuses while online is retried and parked by the
supervisor's policy.  Every message the bot sends is remembered
(connectors/kit/refs.py), so a quote of it finds its conversation.
"""
from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any

from connectors.base import DeliveryError
from connectors.kit.files import FileRefused, fetch_file
from connectors.kit.text import split_text
from connectors.qq.codec import text_segment
from connectors.qq.transport import Target
from storage.events import Event

if TYPE_CHECKING:
    from connectors.qq.connector import QQConnector

MAX_PART = 3000  # characters per QQ message (QQ refuses very long ones)
QUOTE_RACE = 5.0  # s a quote waits for the bookkeeping of a message just sent


class QQOutbound:
    def __init__(self, conn: "QQConnector"):
        self.conn = conn
        self.transport = conn.transport
        self.ctx = conn.ctx
        self._unsettled = 0  # sends whose message id is not yet remembered

    async def send(self, event: Event) -> list[str]:
        if not event.customer_id.isdigit():
            raise DeliveryError(f"{event.customer_id!r} is not a QQ number", permanent=True)
        # text parts, then each file as a message of its own
        parts = [[text_segment(t)] for t in split_text(event.text, MAX_PART) if t]
        parts += [[seg] for seg in await self.media_segments(event.attachments)]
        if not parts:
            return []
        problem = await self.transport.unavailable()
        if problem:
            raise DeliveryError(problem, unavailable=True)
        target = ("private", int(event.customer_id))
        ref = {"cid": event.conversation_id, "id": event.id, "text": event.text[:60], "to": "customer"}

        async def send_one(segs: list[dict]) -> str:
            return await self.send_remembered(target, segs, ref) or ""

        return await self.ctx.parts.send(event.id, parts, send_one)

    async def send_remembered(self, target: Target, segs: list[dict], ref: dict,
                              attempts: int = 1) -> str | None:
        """send_message, then remember what the sent message belongs to (for quotes)."""
        self._unsettled += 1
        try:
            mid = await self.transport.send_message(target, segs, attempts)
            if mid and ref:
                await self.ctx.refs.remember([mid], ref)
            return mid
        finally:
            self._unsettled -= 1
            self.transport.notify()

    async def recall(self, qq_message_id: str | None) -> dict | None:
        """What a quoted message of the bot belongs to.  A quote can race the bookkeeping of
        a message just sent: wait (briefly) for sends in flight before giving up."""
        if not qq_message_id:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUOTE_RACE
        while True:
            changed = self.transport.watch()
            # Counted before the read: a send that settles while the read is on its way
            # may have remembered the id just after it; then read again (it notified).
            in_flight = self._unsettled
            ref = await self.ctx.refs.recall(qq_message_id)
            if ref or not in_flight or loop.time() >= deadline:
                return ref
            try:
                await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                pass

    async def media_segments(self, attachments: list[dict], sep: str = "") -> list[dict]:
        """A segment per file: images as images — inline when kefu keeps them (so the QQ
        implementation needs no way to reach kefu), else by address — other files as a
        `sep`-prefixed "name: link" text."""
        segs: list[dict] = []
        for att, link in zip(attachments, self.conn.file_links(attachments)):
            image = str(att.get("type") or "").startswith("image")
            kept = await self.ctx.files.get(att["id"]) if image and att.get("id") else None
            if kept is not None:
                segs.append({"type": "image", "data": {"file": "base64://" + base64.b64encode(kept.data).decode()}})
            elif image and link["url"]:
                segs.append({"type": "image", "data": {"file": link["url"]}})
            elif link["url"]:
                segs.append(text_segment(f"{sep}{link['name']}: {link['url']}"))
        return segs

    async def keep_files(self, attachments: list[dict]) -> tuple[list[dict[str, Any]], str | None]:
        """An agent's QQ images and files, fetched from QQ's servers and kept by kefu so they
        can go to a customer on any channel; or a sentence for the agent saying why not."""
        out = []
        limit = self.ctx.settings.web.max_upload_bytes
        for att in attachments:
            name = (att.get("name") if att.get("type") == "file" else "image") or "file"
            if not att.get("url") or self.transport.session is None:
                return [], f"{att.get('name') or 'the file'} cannot be fetched from QQ (no address)"
            try:
                kept = await fetch_file(self.transport.session, self.ctx.files, att["url"], name, limit)
            except FileRefused as exc:
                return [], str(exc)
            out.append(kept.public())
        return out, None
