"""The lease (connectors/kit/lease.py) on a real Redis: one holder across processes."""
from __future__ import annotations

from connectors.kit.lease import Lease
from storage.keys import Keys

KEYS = Keys("t:")


def lease(redis_client, me: str, exclusive: bool = False) -> Lease:
    """Process `me`'s view of the bot's lease; its heartbeat is set whenever it tries."""
    async def heartbeat() -> None:
        await redis_client.set(KEYS.consumer_alive(me), "1", ex=30)
    return Lease(redis_client, KEYS.lease("tg:123"), me, ttl=10.0, exclusive=exclusive,
                 alive_prefix=KEYS.consumer_alive(""), heartbeat=heartbeat)


async def test_one_holder_then_a_takeover_when_its_process_is_gone(redis_client):
    a, b = lease(redis_client, "proc-a"), lease(redis_client, "proc-b")
    assert await a.acquire({"online": True}) and not await b.acquire()
    assert b.holder == "proc-a" and await b.current() == ("proc-a", {"online": True})
    assert await a.acquire({"online": False})  # renewing, with news for the others
    assert (await b.current())[1] == {"online": False}
    await redis_client.delete(KEYS.consumer_alive("proc-a"))  # proc-a died
    assert await b.acquire() and not await a.acquire()


async def test_released_on_stop_and_taken_by_a_process_that_owns_the_redis(redis_client):
    a, b = lease(redis_client, "proc-a"), lease(redis_client, "proc-b")
    assert await a.acquire()
    await a.release()
    assert await b.current() == (None, {})
    assert await b.acquire()
    restarted = lease(redis_client, "proc-a2", exclusive=True)  # embedded Redis: any holder is a previous run
    assert await restarted.acquire() and not await b.acquire()
