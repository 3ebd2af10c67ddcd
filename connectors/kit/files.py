"""Files a channel receives from its platform, kept in kefu's one file store.

Whatever a customer or an agent sends on a platform is fetched by kefu and kept in
storage/attachments.py (Redis, served at /files/<id> to every process), never
pointed at on the platform's host: those addresses expire, need the platform's
cookies, and the console's CSP would block them.  A file is typed by its bytes
(images) or its name, not by what the platform says it is.
"""
from __future__ import annotations

import asyncio
import mimetypes

import aiohttp

from storage.attachments import Attachment, AttachmentStore, human_size

FETCH_TIMEOUT = 30.0  # s for one file


class FileRefused(Exception):
    """A file kefu could not keep; the message says why, for a person."""


def guessed_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


async def fetch_file(session: aiohttp.ClientSession, store: AttachmentStore, url: str, name: str,
                     limit: int) -> Attachment:
    """Fetch `url` (a platform's file address) and keep it; FileRefused if it cannot be."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT)) as resp:
            if resp.status != 200:
                raise FileRefused(f"the platform answered {resp.status} for {name}")
            if resp.content_length is not None and resp.content_length > limit:
                raise FileRefused(f"{name} is larger than {human_size(limit)}")
            chunks, size = [], 0
            async for chunk in resp.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise FileRefused(f"{name} is larger than {human_size(limit)}")
                chunks.append(chunk)
            declared = resp.headers.get("Content-Type", "").partition(";")[0].strip()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        raise FileRefused(f"{name} could not be fetched ({type(exc).__name__})") from None
    if declared in ("", "application/octet-stream"):
        declared = guessed_type(name)
    return await store.put(b"".join(chunks), name, declared)
