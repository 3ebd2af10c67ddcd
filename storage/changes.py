"""The change log: one typed record per change of a conversation, in one stream.

Every Lua script that changes a conversation (storage/lua/) appends its record
to the stream `Keys.changes` in the same atomic step as the change itself, so
the log can never disagree with the state: what is in Redis is in the log, in
the order Redis made it.  Readers:

- live fan-out (each process, plain XREAD from "$"): agents' consoles and
  chat apps see changes at once; nothing to replay, they re-read on reconnect;
- consumer groups that must see everything once (agents' chat-app relays, the
  SQL archive): they ack a record only after its effect, and stream trimming
  never drops what a group has not acked.

An entry has two fields: ``c``, the record (a msgpack map written by Lua's
cmsgpack, strings only), and, for a stored message, ``m``, the message's
Event blob exactly as kept in the conversation (binary, so kept apart from
the map).  Decoding tolerates fields a newer kefu added (kept in `extra`) and
refuses entries without what every reader needs (`BrokenChange`), so a reader
can park them instead of crashing — like storage/events.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import msgpack

from storage.events import BrokenEvent, Event

SCHEMA_VERSION = 1

# What a record says happened (`Change.kind`).
MESSAGE = "message"  # a message was stored in the conversation (customer, agent, bot, system)
OPENED = "opened"  # a conversation was opened (its first message follows as MESSAGE)
ASSIGNED = "assigned"  # given to an agent by the router (ingest, drain, SLA reassignment)
QUEUED = "queued"  # waiting in its role's queue
CLAIMED = "claimed"  # an agent took it (claim, or a reply to an unowned conversation)
TRANSFERRED = "transferred"  # handed to another agent or role (data: {"to_agent"} or {"to_role"})
CLOSED = "closed"
UPDATED = "updated"  # fields changed without a change of owner (priority, flags, order numbers...)
SLA = "sla"  # an SLA breach or escalation step (data: {"reason", "level"})
AGENT = "agent"  # an agent's presence or profile changed (cid ""; data: {"agent", "status"})
NOTICE = "notice"  # something agents must be told that changes no state (reminder, alert)

KINDS = frozenset({MESSAGE, OPENED, ASSIGNED, QUEUED, CLAIMED, TRANSFERRED, CLOSED, UPDATED, SLA,
                   AGENT, NOTICE})


class BrokenChange(ValueError):
    """A change-log entry that cannot be turned into a Change."""


@dataclass(slots=True)
class Change:
    kind: str
    cid: str  # the conversation ("" for AGENT)
    ts: float  # when Redis made the change (the script's `now`)
    actor: str = ""  # agent id, "system" (router, timers) or "customer"
    mid: str = ""  # the message id, for MESSAGE
    conv: dict[str, str] | None = None  # the conversation's hash after the change, when its state changed
    data: dict[str, Any] = field(default_factory=dict)  # kind-specific details
    v: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    blob: bytes | None = None  # the message's Event blob (entry field "m"), for MESSAGE

    def message(self) -> Event | None:
        """The stored message of a MESSAGE record (None for other kinds or a broken blob)."""
        if self.blob is None:
            return None
        try:
            ev = Event.decode(self.blob)
        except BrokenEvent:
            return None
        ev.conversation_id = self.cid
        return ev

    def fields(self) -> dict[str, bytes]:
        """The stream entry's fields (what the Lua helper `change()` writes)."""
        record = {name: getattr(self, name) for name in _RECORD_FIELDS}
        record.update(self.extra)
        out = {"c": msgpack.packb(record, use_bin_type=True)}
        if self.blob is not None:
            out["m"] = self.blob
        return out

    @classmethod
    def decode(cls, entry_fields: dict) -> "Change":
        """A Change from a stream entry's fields (keys as bytes or str)."""
        raw = entry_fields.get(b"c", entry_fields.get("c"))
        blob = entry_fields.get(b"m", entry_fields.get("m"))
        try:
            data = msgpack.unpackb(raw, raw=False) if raw is not None else None
        except Exception as exc:  # msgpack raises several unrelated types
            raise BrokenChange(f"not msgpack: {exc}") from None
        if not isinstance(data, dict):
            raise BrokenChange("not a map")
        kwargs = {k: v for k, v in data.items() if k in _KNOWN}
        kwargs["extra"] = {k: v for k, v in data.items() if k not in _KNOWN}
        # Lua's cmsgpack writes an empty table as an array and numbers as it found them.
        if kwargs.get("conv") == []:
            kwargs["conv"] = None
        if kwargs.get("data") == []:
            kwargs["data"] = {}
        try:
            change = cls(**kwargs, blob=blob if isinstance(blob, bytes) else None)
        except TypeError as exc:
            raise BrokenChange(str(exc)) from None
        if not isinstance(change.kind, str) or not change.kind:
            raise BrokenChange("missing kind")
        if not isinstance(change.cid, str) or not isinstance(change.ts, (int, float)):
            raise BrokenChange("bad cid or ts")
        if change.kind == MESSAGE and (not change.mid or change.blob is None):
            raise BrokenChange("message record without its message")
        return change


_RECORD_FIELDS = tuple(f.name for f in fields(Change) if f.name not in ("extra", "blob"))
_KNOWN = frozenset(_RECORD_FIELDS)
