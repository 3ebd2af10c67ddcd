"""The event schema and the stream bus, seen from outside the daemon."""
from __future__ import annotations

import msgpack
import pytest
import redis.asyncio as aioredis

from storage.events import BrokenEvent, Event
from tests.kefu_harness import Agent, wait_for


def test_event_round_trip_keeps_fields_a_newer_kefu_added():
    ev = Event(id="m_1", channel="site", channel_kind="api", direction="in", customer_id="u1", text="你好",
               attachments=[{"name": "a.png", "url": "/x"}], platform_msg_id="p1", meta={"attributes": {"vip": 1}})
    data = msgpack.unpackb(ev.encode())
    data["sentiment"] = -0.8  # a field from the future
    back = Event.decode(msgpack.packb(data))
    assert back.text == "你好" and back.attachments == ev.attachments and back.extra == {"sentiment": -0.8}
    assert msgpack.unpackb(back.encode())["sentiment"] == -0.8  # written back unchanged


@pytest.mark.parametrize("raw", [b"\xc1garbage", msgpack.packb([1, 2]), msgpack.packb({"id": "x"}),
                                 msgpack.packb({"id": "m", "channel": "c", "channel_kind": "k", "direction": "in",
                                                "customer_id": "u", "text": 5})])
def test_broken_entries_are_refused_clearly(raw):
    with pytest.raises(BrokenEvent):
        Event.decode(raw)


async def test_broken_entry_is_parked_and_streams_are_trimmed(make_daemon, http):
    d = make_daemon(bus={"trim_interval": 0.2})
    await d.start()
    prefix = d.config["redis"]["prefix"]
    r = aioredis.Redis(unix_socket_path=str(d.workdir / "data" / "redis" / "redis.sock"))
    await r.xadd(f"{prefix}in", {"e": b"\xc1 not an event"})
    await r.xadd(f"{prefix}in", {"wrong": b"field"})

    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    await ws.receive_json()
    for i in range(20):
        await ws.send_json({"type": "message", "text": f"msg {i}", "client_msg_id": f"c{i}"})
        while (frame := await ws.receive_json(timeout=10))["type"] != "ack":  # skip the bot's welcome
            assert frame["type"] == "message"
    alice = await Agent(d, http, "alice").login()
    convs = await wait_for(lambda: alice.conversations(), message="messages routed past the broken entries")

    async def all_routed() -> bool:
        msgs = (await alice.conversation(convs[0]["id"]))["messages"]
        return len([m for m in msgs if m["sender"]["kind"] == "customer"]) == 20
    await wait_for(all_routed, message="20 messages")
    parked = await r.xrange(f"{prefix}parked")
    assert len(parked) == 2 and {p[1][b"stream"] for p in parked} == {f"{prefix}in".encode()}
    await wait_for(lambda: _stream_empty(r, f"{prefix}in"), message="inbound stream trimmed")
    await wait_for(lambda: _stream_empty(r, f"{prefix}out:webchat"), message="outbound stream trimmed")
    assert d.proc.poll() is None
    await ws.close()
    await r.aclose()


async def _stream_empty(r: aioredis.Redis, key: str) -> bool:
    return await r.xlen(key) == 0
