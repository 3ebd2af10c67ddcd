"""The evidence chain's arithmetic: what a link's hash covers (docs/evidence.md).

Every archived message is a link in its conversation's chain:

    digest = SHA-256(canonical JSON of the message)
    hash   = SHA-256(previous link's hash + digest)      (hex strings, ASCII)

the first link's previous hash being GENESIS.  The canonical JSON is the message's
id, conversation, direction, sender, text, attachments (with the SHA-256 of each
file's bytes) and time in integer microseconds, keys sorted, no spaces, UTF-8 —
reproducible in any language.  Changing a message's text or time changes its
digest; moving it changes the previous hash it is chained to: either way the
link's hash no longer matches.  A purged message keeps its digest in its link, so
the chain still verifies without its text.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def canonical_attachment(att: dict) -> dict:
    return {"id": str(att.get("id", "")), "name": str(att.get("name", "")), "type": str(att.get("type", "")),
            "size": int(att.get("size") or 0), "sha256": att.get("sha256")}


def canonical_message(*, id: str, conversation_id: str, direction: str, sender_kind: str, sender_id: str,
                      sender_name: str, text: str, attachments: list[dict], ts: float) -> dict:
    """What a link covers, as a JSON object (the bundle carries it as is)."""
    return {"id": id, "conversation_id": conversation_id, "direction": direction,
            "sender": {"kind": sender_kind, "id": sender_id, "name": sender_name},
            "text": text, "attachments": [canonical_attachment(a) for a in attachments],
            "ts_us": round(ts * 1_000_000)}


def digest(message: dict) -> str:
    return hashlib.sha256(canonical_json(message)).hexdigest()


def link_hash(prev: str, message_digest: str) -> str:
    return hashlib.sha256((prev + message_digest).encode("ascii")).hexdigest()


def anchor_hash(prev: str, heads: list[list]) -> str:
    """An anchor covers the heads [[conversation, seq, link hash], ...] it names, chained."""
    return hashlib.sha256(prev.encode("ascii") + canonical_json(heads)).hexdigest()
