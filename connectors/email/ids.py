"""kefu's marks on the mail it sends, shared by compose (sets them) and parse (recognises them).

A reply's Message-ID is derived from kefu's own message id and the domain of
the channel's address, so a re-send after a crash carries the same Message-ID
(recipients' clients and kefu itself recognise it), and kefu's mail coming
back — a customer's auto-responder, a mailing list, a misconfigured forward —
is recognised by it, by the X-Kefu-Message-Id header, or by the From address.
"""
from __future__ import annotations

import re

KEFU_HEADER = "X-Kefu-Message-Id"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")  # kefu's ids are of these; anything else could break the dot-atom


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower() or "localhost"


def message_id_for(kefu_id: str, address: str) -> str:
    """The Message-ID of kefu's message `kefu_id` sent from `address`: same inputs, same id."""
    local = _UNSAFE.sub("_", kefu_id) or "_"
    return f"<kefu.{local}@{domain_of(address)}>"


def is_own_message_id(message_id: str | None, address: str) -> bool:
    return bool(message_id) and message_id.startswith("<kefu.") and message_id.lower().endswith(
        "@" + domain_of(address) + ">")
