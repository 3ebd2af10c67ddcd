"""The one normalised event schema every connector speaks, msgpack-encoded.

A message from any channel becomes an `Event` before it touches the stream; a
reply becomes one before it leaves.  Decoding tolerates fields a newer kefu
added (they are kept in `extra` and written back unchanged) and refuses entries
that lack what a consumer needs (`BrokenEvent`), so the consumer can park them
instead of crashing.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields
from typing import Any

import msgpack

SCHEMA_VERSION = 1

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    """Time-ordered, collision-resistant id such as ``m_lx2k9a1b3f9d0c7e``.

    Time first so ids sort by creation; 64 random bits so several processes
    never collide.
    """
    ms = int(time.time() * 1000)
    head = ""
    while ms:
        ms, r = divmod(ms, 36)
        head = _ALPHABET[r] + head
    return f"{prefix}_{head}{os.urandom(8).hex()}"


class BrokenEvent(ValueError):
    """An entry that cannot be turned into an Event."""


@dataclass(slots=True)
class Event:
    id: str
    channel: str  # configured channel name, e.g. "site"
    channel_kind: str  # connector kind, e.g. "api"
    direction: str  # "in" (from a customer) or "out" (to a customer)
    customer_id: str  # the customer's id on that channel
    text: str = ""
    type: str = "message"
    conversation_id: str | None = None
    sender_kind: str = "customer"  # customer | agent | bot | system
    sender_id: str = ""
    sender_name: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    platform_msg_id: str | None = None
    ts: float = field(default_factory=time.time)  # when kefu took it
    platform_ts: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    v: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        # A shallow dict: msgpack walks nested lists/dicts itself, so asdict's
        # recursive deep copy (most of the cost of encoding) is not needed.
        data = {name: getattr(self, name) for name in _FIELDS}
        data.update(self.extra)
        return msgpack.packb(data, use_bin_type=True)

    @classmethod
    def decode(cls, raw: bytes) -> "Event":
        try:
            data = msgpack.unpackb(raw, raw=False)
        except Exception as exc:  # msgpack raises several unrelated types
            raise BrokenEvent(f"not msgpack: {exc}") from None
        if not isinstance(data, dict):
            raise BrokenEvent("not a map")
        kwargs = {k: v for k, v in data.items() if k in _KNOWN}
        kwargs["extra"] = {k: v for k, v in data.items() if k not in _KNOWN}
        try:
            event = cls(**kwargs)
        except TypeError as exc:
            raise BrokenEvent(str(exc)) from None
        for name in ("id", "channel", "channel_kind", "direction", "customer_id"):
            if not isinstance(getattr(event, name), str) or not getattr(event, name):
                raise BrokenEvent(f"missing {name}")
        if not isinstance(event.text, str) or not isinstance(event.attachments, list):
            raise BrokenEvent("bad text or attachments")
        return event

    def public(self) -> dict[str, Any]:
        """The message as the agent API and the web chat show it."""
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "direction": self.direction,
            "text": self.text,
            "sender": {"kind": self.sender_kind, "id": self.sender_id, "name": self.sender_name},
            "ts": self.ts,
            "attachments": self.attachments,
            "channel": self.channel,
        }


_FIELDS = tuple(f.name for f in fields(Event) if f.name != "extra")
_KNOWN = frozenset(_FIELDS)
