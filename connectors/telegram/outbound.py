"""A customer's reply on Telegram: text split by UTF-16 units, then the files.

Each part is paced (transport) and recorded once Telegram took it
(connectors/kit/parts.py), so a retry sends only what is missing; each sent
message is remembered (connectors/kit/refs.py), so a customer quoting it is
understood.  Telegram's refusals become `DeliveryError`s the supervisor acts on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from connectors.base import DeliveryError
from connectors.kit.text import split_text, utf16_units
from connectors.telegram.codec import platform_id
from connectors.telegram.transport import MAX_LEN, retry_seconds
from storage.events import Event

if TYPE_CHECKING:
    from connectors.telegram.connector import TelegramConnector


def delivery_error(exc: TelegramError) -> DeliveryError:
    """What the supervisor makes of a Bot API error on a customer's reply."""
    if isinstance(exc, RetryAfter):
        wait = retry_seconds(exc)
        return DeliveryError(f"flood control: retry after {wait}s", retry_after=wait)
    if isinstance(exc, (Forbidden, BadRequest)):  # blocked by the user, chat gone, bad content
        return DeliveryError(f"telegram refused: {exc}", permanent=True)
    if isinstance(exc, (TimedOut, NetworkError)):
        return DeliveryError(f"telegram unreachable: {exc}", unavailable=True)
    return DeliveryError(f"telegram error: {exc}")


async def send_reply(conn: "TelegramConnector", event: Event) -> list[str]:
    client, files = conn.client, conn.files
    if client.bot is None:
        raise RuntimeError("connector not started")
    try:
        chat_id = int(event.customer_id)
    except ValueError:
        raise DeliveryError(f"not a Telegram chat id: {event.customer_id!r}", permanent=True) from None
    text = event.text or ""
    uploads = []
    for a, link in zip(event.attachments or [], conn.file_links(event.attachments or [])):
        if (file := await files.sendable(a)) is not None:
            uploads.append(file)
        else:
            text += f"\n📎 {link['name']}" + (f": {link['url']}" if link["url"] else "")
    parts: list[tuple[str, Any]] = [("text", p) for p in split_text(text.strip(), MAX_LEN, utf16_units)
                                    if p] if text.strip() else []
    parts += [("file", f) for f in uploads]

    async def send_one(part: tuple[str, Any]) -> str:
        what, body = part
        if what == "text":
            do = lambda: client.bot.send_message(chat_id, body)  # noqa: E731
        else:
            do = lambda: body[0](chat_id, body[1])  # noqa: E731
        try:
            sent = await client.call(chat_id, do)
        except TelegramError as exc:
            raise delivery_error(exc) from None
        pid = platform_id(chat_id, sent.message_id)
        await conn.ctx.refs.remember([pid], {"cid": event.conversation_id, "id": event.id, "to": "customer"})
        return pid

    return await conn.ctx.parts.send(event.id, parts, send_one)
