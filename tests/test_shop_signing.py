"""The contract's signature: HMAC-SHA256 of "<timestamp>.<raw body>", a 300 s window both ways."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from storage.shop import SignatureError, sign, verify

SECRET = "shop-secret"
BODY = b'{"event_id":"e1","type":"payment_failed"}'
NOW = 1_717_000_000


def test_sign_makes_the_spec_headers():
    headers = sign(SECRET, BODY, NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers == {"X-Kefu-Timestamp": str(NOW), "X-Kefu-Signature": f"sha256={expected}"}
    assert verify(SECRET, BODY, headers, now=NOW) == NOW


@pytest.mark.parametrize("skew", [-300, 300, 0])
def test_a_timestamp_within_300_s_either_way_is_accepted(skew):
    assert verify(SECRET, BODY, sign(SECRET, BODY, NOW + skew), now=NOW) == NOW + skew


@pytest.mark.parametrize("change, reason", [
    (lambda h: {**h, "X-Kefu-Timestamp": str(NOW - 301)}, "more than 300 s off"),
    (lambda h: sign(SECRET, BODY, NOW - 301), "more than 300 s off"),
    (lambda h: sign(SECRET, BODY, NOW + 301), "more than 300 s off"),
    (lambda h: {**h, "X-Kefu-Timestamp": str(NOW + 1)}, "invalid X-Kefu-Signature"),
    (lambda h: sign("another-secret", BODY, NOW), "invalid X-Kefu-Signature"),
    (lambda h: sign(SECRET, BODY + b" ", NOW), "invalid X-Kefu-Signature"),
    (lambda h: {**h, "X-Kefu-Signature": h["X-Kefu-Signature"].upper()}, "invalid X-Kefu-Signature"),
    (lambda h: {**h, "X-Kefu-Signature": "sha256=ünïcode"}, "invalid X-Kefu-Signature"),
    (lambda h: {"X-Kefu-Signature": h["X-Kefu-Signature"]}, "missing X-Kefu-Timestamp"),
    (lambda h: {"X-Kefu-Timestamp": str(NOW)}, "missing X-Kefu-Signature"),
    (lambda h: {**h, "X-Kefu-Timestamp": f"{NOW}.5"}, "must be unix seconds, an integer"),
    (lambda h: {**h, "X-Kefu-Timestamp": "１７１７００００００"}, "must be unix seconds, an integer"),
])
def test_anything_else_is_refused_saying_why(change, reason):
    headers = change(sign(SECRET, BODY, NOW))
    with pytest.raises(SignatureError, match=reason):
        verify(SECRET, BODY, headers, now=NOW)
