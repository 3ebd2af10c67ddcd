"""The signature both directions of the shop contract use (SPEC "The shop", "Shop events").

Headers ``X-Kefu-Timestamp: <unix seconds>`` and ``X-Kefu-Signature: sha256=<hex
HMAC-SHA256 of "<timestamp>.<raw body>">``.  The timestamp inside the signed text makes
a captured request useless after the window (300 s either way)."""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Kefu-Timestamp"
SIGNATURE_HEADER = "X-Kefu-Signature"
WINDOW = 300  # seconds a timestamp may be off, in either direction


class SignatureError(Exception):
    """A request whose signature or timestamp is refused; str() says which, for a 401 body."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers for a request carrying exactly `body` (now, unless `timestamp` is given)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(secret: str, body: bytes, headers: Mapping[str, str], now: float | None = None,
           window: int = WINDOW) -> int:
    """Check a signed request (headers as received; look-up must be case-insensitive, as
    aiohttp's are).  Returns the timestamp; raises SignatureError saying what is wrong."""
    raw_ts = (headers.get(TIMESTAMP_HEADER) or "").strip()
    if not raw_ts:
        raise SignatureError(f"missing {TIMESTAMP_HEADER}")
    if not raw_ts.isascii() or not raw_ts.lstrip("-").isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER} must be unix seconds, an integer")
    ts = int(raw_ts)
    if abs((time.time() if now is None else now) - ts) > window:
        raise SignatureError(f"{TIMESTAMP_HEADER} is more than {window} s off")
    given = (headers.get(SIGNATURE_HEADER) or "").strip()
    if not given:
        raise SignatureError(f"missing {SIGNATURE_HEADER}")
    if not hmac.compare_digest(signature(secret, ts, body).encode(), given.encode("utf-8", "replace")):
        raise SignatureError(f"invalid {SIGNATURE_HEADER}")
    return ts
