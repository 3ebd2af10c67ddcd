"""The connector contract, run in-process against every channel's fake (channels.py).

Every connector: takes a customer's message into the stream as one event, and a
platform message seen twice as one; delivers a reply and says the platform's ids of
what it sent; splits a long reply by the platform's own measure (or keeps it whole
where there is no limit); waits out a 429's retry_after before trying again; and,
restarted in the middle of a long reply, sends only the parts not yet taken.
"""
from __future__ import annotations

import asyncio

import pytest

from connectors.base import DeliveryError
from tests.contract.channels import CHANNELS, Channel
from tests.contract.core import InProcessCore
from tests.kefu_harness import wait_for

T = 15.0


@pytest.fixture(params=CHANNELS, ids=[c.name for c in CHANNELS])
async def channel(request, tmp_path):
    ch: Channel = request.param()
    core = InProcessCore(tmp_path / "redis")
    await core.start(ch.name, await ch.setup(core))
    conn = await core.run(core.connector())
    await ch.ready(core, conn)
    yield ch, core, conn
    await ch.teardown()
    await core.close()


async def events_of(core: InProcessCore, n: int) -> list:
    return await wait_for(lambda: _at_least(core, n), T, message=f"{n} inbound events")


async def _at_least(core: InProcessCore, n: int):
    events = await core.inbound()
    return events if len(events) >= n else None


async def test_a_customer_message_is_one_event(channel):
    ch, core, _ = channel
    await ch.inject("我的卡密没收到")
    (event,) = await events_of(core, 1)
    assert (event.channel, event.direction, event.customer_id, event.text) == (
        ch.name, "in", ch.customer, "我的卡密没收到")
    assert event.platform_msg_id and event.sender_kind == "customer"


async def test_a_platform_message_seen_twice_is_one_event(channel):
    ch, core, _ = channel
    first = await ch.inject("first")
    await ch.inject_again(first)
    await ch.inject("second")  # after the repeat: once it is in, the repeat was handled
    events = await events_of(core, 2)
    assert [e.text for e in events] == ["first", "second"]


async def test_a_reply_is_sent_and_its_platform_ids_returned(channel):
    ch, core, conn = channel
    await ch.inject("hello")  # some platforms only let a bot answer who wrote first
    reply = core.reply(ch.customer, "马上为您补发")
    refs = await conn.send(reply)
    got = await wait_for(lambda: ch.received(), T, message="the reply")
    assert [text for _, text in got] == ["马上为您补发"]
    assert refs == [ref for ref, _ in got]


async def test_a_long_reply_is_split_by_the_platforms_measure(channel):
    ch, core, conn = channel
    await ch.inject("hello")
    paragraph = "第{}段：卡密补发说明 😀 " + "请在订单页查看。" * 60
    text = "\n\n".join(paragraph.format(i) for i in range(1, 40))
    refs = await conn.send(core.reply(ch.customer, text))
    got = await wait_for(lambda: ch.received() if len(ch.received()) == len(refs) else None, T,
                         message="every part")
    parts = [t for _, t in got]
    assert refs == [ref for ref, _ in got]
    if ch.limit is None:
        assert parts == [text]  # no limit: one message, whole
        return
    assert len(parts) > 1 and all(ch.measure(p) <= ch.limit for p in parts)
    assert all(p.startswith("第") for p in parts)  # cut between paragraphs
    assert "".join("".join(parts).split()) == "".join(text.split())


async def test_a_429_is_waited_out_then_the_reply_goes_once(channel):
    ch, core, conn = channel
    if not ch.answers_429:
        pytest.skip(f"{ch.name}'s platform has no rate-limit answer")
    await ch.inject("hello")
    ch.answer_429_once(retry_after=1)
    await conn.send(core.reply(ch.customer, "请稍等"))
    assert [t for _, t in ch.received()] == ["请稍等"]
    assert not ch.retried_too_early()


async def test_restarted_mid_reply_no_part_is_sent_twice(channel):
    ch, core, conn = channel
    if ch.limit is None:
        pytest.skip(f"{ch.name} sends a reply as one message: nothing to resume")
    assert ch.refuses
    await ch.inject("hello")
    text = "\n\n".join(f"第{i}段。" + "说明" * (ch.limit // 3) for i in range(1, 5))
    reply = core.reply(ch.customer, text)
    sending = conn.send(reply)

    async def first_part_then_refuse():
        await wait_for(lambda: ch.received(), T, message="the first part")
        ch.refuse_next()  # parts are paced: the second is not on its way yet
    refusal = asyncio.create_task(first_part_then_refuse())
    with pytest.raises(DeliveryError):
        await sending
    await refusal
    taken = len(ch.received())
    assert 1 <= taken < 4

    await core.halt(conn)  # kefu restarts: a new connector sends the reply again
    conn = await core.run(core.connector())
    await ch.ready(core, conn)
    refs = await conn.send(reply)
    parts = [t for _, t in ch.received()]
    assert len(parts) == len(refs) == 4 and len(set(parts)) == 4
    assert [p.split("。")[0] for p in parts] == ["第1段", "第2段", "第3段", "第4段"]
