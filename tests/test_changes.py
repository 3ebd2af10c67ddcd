"""The change-log record: what a Lua script writes is what a reader decodes."""
from __future__ import annotations

import msgpack
import pytest

from storage.changes import MESSAGE, BrokenChange, Change
from storage.events import Event


def test_a_message_record_round_trips_with_its_event():
    ev = Event(id="m_1", channel="site", channel_kind="api", direction="in", customer_id="u1", text="卡密没收到")
    rec = Change(kind=MESSAGE, cid="c_1", ts=1.5, actor="customer", mid="m_1", blob=ev.encode())
    back = Change.decode(rec.fields())
    assert (back.kind, back.cid, back.mid, back.ts) == (MESSAGE, "c_1", "m_1", 1.5)
    assert back.message().text == "卡密没收到" and back.message().conversation_id == "c_1"


def test_lua_shapes_and_newer_fields_are_accepted():
    # cmsgpack writes empty tables as arrays; a newer kefu may add fields
    raw = msgpack.packb({"kind": "closed", "cid": "c_2", "ts": 3, "conv": [], "data": [], "v": 2, "why": "x"})
    back = Change.decode({b"c": raw})
    assert back.conv is None and back.data == {} and back.extra == {"why": "x"}


@pytest.mark.parametrize("fields", [
    {}, {b"c": b"\xc1"}, {b"c": msgpack.packb([1, 2])}, {b"c": msgpack.packb({"cid": "c"})},
    {b"c": msgpack.packb({"kind": "message", "cid": "c", "ts": 1, "mid": "m"})},  # no blob
    {b"c": msgpack.packb({"kind": "closed", "cid": 5, "ts": 1})},
])
def test_broken_entries_are_refused_not_crashed_on(fields):
    with pytest.raises(BrokenChange):
        Change.decode(fields)
