"""Telegram's files in kefu's file store, and kefu's files on Telegram.

A customer's photo or document is downloaded (getFile) and kept in
storage/attachments.py like every other channel's files, served at /files/<id> by
any process; its Telegram file id stays with it, so the same bot re-sends it (to an
agent's chat) without uploading it again.  Bots may download at most 20 MB.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

from telegram import InputFile, Message
from telegram.error import TelegramError

from connectors.telegram.codec import files_of
from connectors.telegram.transport import BotClient
from storage.attachments import AttachmentStore, human_size

MAX_DOWNLOAD = 20 * 1024 * 1024  # what the Bot API lets a bot download

Sender = Callable[..., Awaitable[Message]]


class TelegramFiles:
    def __init__(self, client: BotClient, store: AttachmentStore, max_bytes: Callable[[], int]):
        self.client = client
        self.store = store
        self.max_bytes = max_bytes  # web.max_upload_bytes, read at use time

    def _limit(self) -> int:
        return min(MAX_DOWNLOAD, self.max_bytes())

    async def _keep(self, obj: Any, mime: str, name: str) -> dict[str, Any]:
        assert self.client.bot is not None
        data = bytes(await (await self.client.bot.get_file(obj.file_id)).download_as_bytearray())
        kept = await self.store.put(data, name, mime)
        return {**kept.public(), "telegram_file_id": obj.file_id, "telegram_bot": self.client.bot_id}

    async def attachments(self, msg: Message) -> list[dict[str, Any]]:
        """A customer's files, kept; one that cannot be is described, with why."""
        out = []
        for obj, mime, fname in files_of(msg):
            name = fname or _default_name(msg, mime)
            size = getattr(obj, "file_size", None)
            if size is not None and size > self._limit():
                out.append(_unkept(obj, mime, name, size, self.client.bot_id,
                                   f"file larger than {human_size(self._limit())}: not downloaded"))
                continue
            try:
                out.append(await self._keep(obj, mime, name))
            except TelegramError as exc:
                out.append(_unkept(obj, mime, name, size, self.client.bot_id, f"download failed: {exc}"[:200]))
        return out

    async def keep_files(self, msg: Message) -> tuple[list[dict[str, Any]], str | None]:
        """An agent's files, kept so they can go to a customer on any channel; or a
        sentence for the agent saying why not."""
        out = []
        for obj, mime, fname in files_of(msg):
            if (getattr(obj, "file_size", None) or 0) > self._limit():
                return [], f"that file is larger than {human_size(self._limit())}"
            try:
                out.append(await self._keep(obj, mime, fname or _default_name(msg, mime)))
            except TelegramError as exc:
                return [], f"could not fetch the file from Telegram ({exc})"
        return out, None

    async def sendable(self, a: dict) -> tuple[Sender, InputFile | str] | None:
        """(send_photo or send_document, the file) for an attachment this bot can send: one
        of its own files (by file id) or one kefu keeps (uploaded); None otherwise."""
        bot = self.client.bot
        assert bot is not None
        if a.get("telegram_file_id") and a.get("telegram_bot") == self.client.bot_id:
            file: InputFile | str = a["telegram_file_id"]
        elif a.get("id") and (kept := await self.store.get(a["id"])) is not None:
            file = InputFile(kept.data, filename=kept.name)
        else:
            return None
        return (bot.send_photo if str(a.get("type") or "").startswith("image/") else bot.send_document), file


def _default_name(msg: Message, mime: str) -> str:
    if msg.photo:
        return "photo.jpg"
    kind = mime.partition("/")[0] or "file"
    return kind if kind in ("video", "audio") else "file"


def _unkept(obj: Any, mime: str, name: str, size: int | None, bot_id: str, error: str) -> dict[str, Any]:
    """A file's description without the file: the console says why; the bot can still re-send it."""
    return {"type": mime, "name": Path(name).name, "size": size, "error": error,
            "telegram_file_id": obj.file_id, "telegram_bot": bot_id}
