"""Files that customers and agents send through kefu (screenshots of a payment,
a card key's activation guide...).

They are kept in Redis, not on one machine's disk, so every kefu process on the
Redis can store and serve them, and they expire after `web.upload_ttl` like
the rest of the record.  A file is reached at ``/files/<id>`` by whoever holds
the id — the visitor's widget, the shop's server, the QQ implementation
fetching an image — so ids are long random capability names, never guessable.

What a message carries is the file's description (`Attachment.public()`):
``{"id", "name", "type", "size", "url"}``; connectors turn it into what their
platform wants (a Telegram photo, a OneBot image segment, a link).
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

from storage.keys import Keys

_ID = re.compile(r"f_[0-9a-f]{32}")
# Served inline only when the bytes really are one of these images; anything
# else is offered as a download (no HTML or SVG ever runs from /files/).
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def sniff_image(data: bytes) -> str | None:
    """The image type the bytes are, if a safe one to show inline."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def clean_name(name: str, fallback: str = "file") -> str:
    """A file name safe to show and to put in a Content-Disposition header."""
    name = re.sub(r"[\x00-\x1f\x7f/\\\"]", "_", name.strip().rpartition("/")[2])[:120]
    return name or fallback


def human_size(n: int) -> str:
    for unit, size in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


@dataclass(slots=True)
class Attachment:
    id: str
    name: str
    type: str  # what the sender said, or the sniffed image type
    size: int
    data: bytes = b""

    def public(self) -> dict:
        return {"id": self.id, "name": self.name, "type": self.type, "size": self.size,
                "url": f"/files/{self.id}"}


class AttachmentStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl: float):
        self.redis = redis
        self.keys = keys
        self.ttl = int(ttl)

    async def put(self, data: bytes, name: str, mime: str = "") -> Attachment:
        image = sniff_image(data)
        mime = image or (mime if re.fullmatch(r"[\w.+-]+/[\w.+-]+", mime or "") and
                         not mime.startswith("image/") else "application/octet-stream")
        att = Attachment("f_" + secrets.token_hex(16), clean_name(name, "image" if image else "file"),
                         mime, len(data), data)
        key = self.keys.attachment(att.id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"data": data, "type": att.type, "name": att.name, "size": att.size})
        pipe.expire(key, self.ttl)
        await pipe.execute()
        return att

    async def get(self, attachment_id: str, *, data: bool = True) -> Attachment | None:
        if not _ID.fullmatch(attachment_id):
            return None
        fields = ("type", "name", "size", "data") if data else ("type", "name", "size")
        got = await self.redis.hmget(self.keys.attachment(attachment_id), *fields)
        if got[0] is None:
            return None
        return Attachment(attachment_id, got[1].decode(), got[0].decode(), int(got[2]),
                          got[3] if data else b"")

    async def delete(self, ids: list[str]) -> int:
        """Forget files (retention purges a transcript's files with it)."""
        keys = [self.keys.attachment(i) for i in ids if _ID.fullmatch(i)]
        return await self.redis.delete(*keys) if keys else 0

    async def describe(self, ids: list) -> list[dict] | None:
        """The public descriptions of files named in a message, or None if one is unknown."""
        out = []
        for aid in ids:
            att = await self.get(aid, data=False) if isinstance(aid, str) else None
            if att is None:
                return None
            out.append(att.public())
        return out
