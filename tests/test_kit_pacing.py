"""The pacer (connectors/kit/pacing.py) on a real Redis: slots spaced by every process."""
from __future__ import annotations

import asyncio

import pytest

from connectors.base import DeliveryError
from connectors.kit.pacing import Pacer
from storage.keys import Keys


def pacers(redis_client, n: int = 2) -> list[Pacer]:
    """What n kefu processes sending as one bot have."""
    return [Pacer(redis_client, Keys("t:"), "tg:123", asyncio.Event()) for _ in range(n)]


async def test_every_process_takes_the_next_slot_of_a_chat(redis_client):
    a, b = pacers(redis_client)
    delays = [await p.reserve(p.every("chat:1", 1.0)) for p in (a, b, a, b, a)]
    # one slot a second, whichever process asks: 0, 1, 2, 3, 4 s from now (give or take
    # the milliseconds the reservations themselves took)
    assert [round(d) for d in delays] == [0, 1, 2, 3, 4]
    assert await a.reserve(a.every("chat:2", 1.0)) == 0  # another chat is not held up


async def test_a_message_counts_in_every_scope_it_falls_in(redis_client):
    (p,) = pacers(redis_client, 1)
    chat, group = p.every("chat:-100", 0.1), p.at_most("group:-100", 3, 60.0)
    delays = [await p.reserve(chat, group) for _ in range(4)]
    # three spaced by the chat's interval, the fourth only when the first leaves the minute
    assert [round(d, 1) for d in delays[:3]] == [0.0, 0.1, 0.2]
    assert 59.5 < delays[3] <= 60.0


async def test_retry_after_clears_a_scope_then_pacing_goes_on(redis_client):
    (p,) = pacers(redis_client, 1)
    chat = p.every("chat:7", 1.0)
    assert await p.reserve(chat) == 0
    await p.cool_down(chat, 5.0)
    assert 4.9 < await p.reserve(chat) <= 5.0
    assert 5.9 < await p.reserve(chat) <= 6.0


async def test_a_wait_ends_when_kefu_stops(redis_client):
    (p,) = pacers(redis_client, 1)
    chat = p.every("chat:9", 30.0)
    await p.wait(chat)  # the first slot is now
    waiting = asyncio.create_task(p.wait(chat))  # the next one in 30 s
    p.stopping.set()
    with pytest.raises(DeliveryError) as exc:
        await waiting
    assert exc.value.unavailable  # not sent: the reply waits for the next run
