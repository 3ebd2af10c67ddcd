"""What kefu reads of a Telegram update: who wrote, the files, the rest as text."""
from __future__ import annotations

from typing import Any

from telegram import Message, User

# Message attributes that carry a file, with the type when Telegram gives none.
_FILE_KINDS = (("document", "application/octet-stream"), ("video", "video/mp4"), ("audio", "audio/mpeg"),
               ("voice", "audio/ogg"), ("animation", "video/mp4"), ("video_note", "video/mp4"))


def platform_id(chat_id: int | str, message_id: int | str) -> str:
    """A Telegram message's id as kefu keeps it: message ids are per chat."""
    return f"{chat_id}:{message_id}"


def display_name(user: User | None) -> str:
    if user is None:
        return ""
    name = " ".join(p for p in (user.first_name, user.last_name) if p).strip()
    return name or (f"@{user.username}" if user.username else str(user.id))


def language(user: User) -> str | None:
    """The customer's language as kefu names it (zh, en, ...), from their Telegram settings."""
    code = (user.language_code or "").lower()
    if not code:
        return None
    return "zh" if code.startswith("zh") else code[:2]


def files_of(msg: Message) -> list[tuple[Any, str, str | None]]:
    """(file object, type, file name) of each file a message carries."""
    found: list[tuple[Any, str, str | None]] = []
    if msg.photo:
        found.append((msg.photo[-1], "image/jpeg", None))
    for attr, default_type in _FILE_KINDS:
        obj = getattr(msg, attr, None)
        if obj is not None and not (attr == "document" and msg.animation is not None):
            found.append((obj, getattr(obj, "mime_type", None) or default_type, getattr(obj, "file_name", None)))
    return found


def describe_other(msg: Message) -> str:
    """A sticker, a location or a contact as text (nothing else kefu keeps has none)."""
    if msg.sticker is not None:
        return f"[sticker {msg.sticker.emoji or ''}]".replace(" ]", "]")
    if msg.location is not None:
        return f"[location {msg.location.latitude:.5f},{msg.location.longitude:.5f}]"
    if msg.contact is not None:
        return f"[contact {msg.contact.first_name or ''} {msg.contact.phone_number or ''}]".strip()
    return ""
