"""kefu rides out a restart of its Redis: nothing acknowledged is lost, and it
reconnects by itself (SPEC "Delivery promise")."""
from __future__ import annotations

from tests.callback_server import CallbackServer
from tests.kefu_harness import Agent, RedisServer, post_site_message, wait_for

SECRET = "restart-secret"


async def test_redis_restart_loses_nothing(make_daemon, http, tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    d = await make_daemon(redis_url=server.url, channels={
        "site": {"kind": "api", "secret": SECRET, "callback_url": cb_url}}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")

    async def send(i: int) -> int:
        return await post_site_message(http, d, SECRET, "u1", f"m{i}", f"message {i}")

    assert [await send(i) for i in range(10)] == [202] * 10
    conv = (await wait_for(lambda: alice.conversations(), message="conversation"))[0]
    code, reply = await alice.reply(conv["id"], "before the restart")
    assert code == 201

    server.stop()  # SIGTERM: Redis writes its append-only file and exits
    async with http.get(d.url + "/healthz") as r:
        assert r.status == 503 and (await r.json())["redis"] == "down"
    assert await send(99) == 503  # not stored, so not acknowledged: the shop retries later
    server.start()
    await wait_for(lambda: _healthy(http, d), message="kefu reconnected")

    statuses = [await send(i) for i in range(10, 20)]
    assert statuses == [202] * 10
    await wait_for(lambda: reply["id"] in cb.message_ids(), message="reply delivered")

    async def all_stored() -> bool:
        msgs = (await alice.conversation(conv["id"]))["messages"]
        texts = [m["text"] for m in msgs if m["sender"]["kind"] == "customer"]
        return sorted(texts) == sorted(f"message {i}" for i in range(20))
    await wait_for(all_stored, message="20 messages, each once")
    assert d.proc.poll() is None
    await cb.stop()
    d.stop()
    server.stop()


async def _healthy(http, d) -> bool:
    async with http.get(d.url + "/healthz") as r:
        return r.status == 200
