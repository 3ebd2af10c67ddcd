"""The router's batch argument to storage/lua/ingest.lua is named once, in Python
(storage/conversations.py:IngestItem), and every field reaches the conversation."""
from __future__ import annotations

import re

import pytest

from storage.conversations import IngestItem, _lua
from tests.routing_harness import Desk

CONFIG = """
router: {auto_away_after: 0}
agents:
  - {id: alice, name: Alice, roles: [aftersales], password: x}
channels:
  site: {kind: api, secret: s}
"""


def test_the_script_unpacks_every_field_by_its_python_name():
    script = _lua("ingest")
    assert "INGEST_ITEM" not in script
    assert f"local {', '.join(IngestItem._fields)} = unpack(m)" in script
    body = script[script.index("= unpack(m)"):]
    unread = [f for f in IngestItem._fields if not re.search(rf"\b{f}\b", body)]
    assert not unread, f"ingest.lua never reads {unread}"


@pytest.fixture
async def desk(shared_redis):
    async with Desk(shared_redis, CONFIG) as d:
        yield d


async def test_each_decision_of_the_router_is_stored_with_the_message(desk):
    await desk.online("alice")
    conv = await desk.write("u1", "Order D2026112300017 never arrived, I want a human", order_count=25, shop="cn")
    assert conv["role"] == "aftersales" and conv["assignee"] == "alice"
    assert conv["customer"]["tier"] == "vip" and conv["priority"] == "urgent"
    assert conv["customer"]["attributes"] == {"order_count": 25, "shop": "cn"}
    assert conv["customer"]["language"] == "en"
    assert conv["order_no"] == "D2026112300017" and conv["human_requested"]
    assert conv["sla_due"] is not None and conv["id"] == "c" + conv["messages"][0]["id"][1:]
    assert [m["text"] for m in conv["messages"] if m["sender"]["kind"] == "customer"] == [
        "Order D2026112300017 never arrived, I want a human"]
