"""Nothing that still fails stops anything, and kefu heals (issue 8, items 1 and 2):
entries the router cannot process are parked and the next go on, parked entries are
visible (/healthz, /metrics, `kefu parked`), /healthz says what is degraded, and a
killed embedded Redis is brought back with nothing acknowledged lost."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import redis.asyncio as aioredis

from storage.events import Event, new_id
from tests.callback_server import CallbackServer
from tests.faulty_connector import read_jsonl
from tests.kefu_harness import REPO, Agent, post_site_message, wait_for

SECRET = "healing-secret"


def site_channel(**kw) -> dict:
    return {"kind": "api", "secret": SECRET, **kw}


async def health(http, d) -> tuple[int, dict]:
    async with http.get(d.url + "/healthz") as r:
        return r.status, await r.json()


async def post(http, d, customer: str, message_id: str, text: str) -> int:
    return await post_site_message(http, d, SECRET, customer, message_id, text)


def embedded_redis(d) -> aioredis.Redis:
    return aioredis.Redis(unix_socket_path=str(d.workdir / "data" / "redis" / "redis.sock"))


def inbound(customer: str, text: str, **kw) -> bytes:
    return Event(id=new_id("m"), channel="site", channel_kind="api", direction="in", customer_id=customer,
                 text=text, sender_id=customer, **kw).encode()


def kefu_parked(d) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregator", "parked", "-c", str(d.config_path)],
                          capture_output=True, text=True, cwd=d.workdir, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


async def test_entries_the_router_cannot_process_are_parked_and_the_next_go_on(make_daemon, http):
    cb = CallbackServer(SECRET)
    d = await make_daemon(channels={"site": site_channel(callback_url=await cb.start())}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    r = embedded_redis(d)
    stream = d.config["redis"]["prefix"] + "in"
    # What an edge would refuse, as if it had got through anyway, between two good
    # messages of one batch: a value the scripts cannot store, and bytes that are no event.
    pipe = r.pipeline(transaction=True)
    pipe.xadd(stream, {"e": inbound("good-1", "你好,第一条")})
    pipe.xadd(stream, {"e": inbound("bad-1", "秘密的客户原文", meta={"attributes": {"order_count": float("inf")}})})
    pipe.xadd(stream, {"e": b"\xc1 not msgpack"})
    pipe.xadd(stream, {"e": inbound("good-2", "你好,第二条")})
    await pipe.execute()

    async def routed(*customers: str) -> bool:
        convs = {c["customer"]["id"]: c for c in await alice.conversations()}
        return all(convs.get(c, {}).get("assignee") == "alice" for c in customers)
    await wait_for(lambda: routed("good-1", "good-2"), timeout=20, message="good messages routed")
    code, body = await health(http, d)
    assert code == 200 and body["status"] == "ok" and body["router"] == "ok", body
    assert body["parked"] == 2 and "parked" in body["degraded"], body
    assert not [c for c in await alice.conversations() if c["customer"]["id"] == "bad-1"]
    async with http.get(d.url + "/metrics") as resp:
        assert 'kefu_parked_total{stage="router"} 2.0' in await resp.text()

    res = kefu_parked(d)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(f"{stream} ") == 2 and "router" in res.stdout, res.stdout
    assert "秘密" not in res.stdout and "undecodable entry" in res.stdout, res.stdout

    # A restart replays nothing parked: routing goes on, the count stays.
    d.stop()
    await d.start()
    assert await post(http, d, "good-3", "g3", "你好,第三条") == 202
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    await wait_for(lambda: routed("good-3"), timeout=20, message="routed after the restart")
    code, body = await health(http, d)
    assert code == 200 and body["parked"] == 2, body
    assert "router failed" not in d.log_path.read_text()
    await r.aclose()
    await cb.stop()


async def test_healthz_lists_what_is_degraded_and_stays_200(make_daemon, http):
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    cb.fail_status = 500
    d = await make_daemon(bus={"claim_idle": 1}, channels={
        "site": site_channel(callback_url=cb_url, retries=0),
        "qq": {"kind": "qq", "mode": "reverse", "access_token": "t", "self_id": 10001}}).start()
    sue = await Agent(d, http, "sue").login()
    for i in range(3):
        assert await post(http, d, f"u{i}", f"m{i}", "你好") == 202
    convs = await wait_for(lambda: _three(sue), message="three conversations")
    for c in convs:
        assert (await sue.reply(c["id"], "在的"))[0] == 201

    async def failing() -> dict | None:
        code, body = await health(http, d)
        return body if "deliveries:site" in body["degraded"] else None
    body = await wait_for(failing, timeout=20, message="deliveries reported failing")
    assert body["status"] == "ok" and "500" in body["connectors"]["site"]["deliveries"], body
    assert "connector:qq" in body["degraded"] and "config" not in body["degraded"], body

    d.config_path.write_text(d.config_path.read_text() + "\nnonsense_key: 1\n")
    d.proc.send_signal(signal.SIGHUP)

    async def refused() -> dict | None:
        code, body = await health(http, d)
        return body if code == 200 and "config" in body["degraded"] else None
    body = await wait_for(refused, message="refused reload reported")
    assert body["config_reload"]["problems"] == 1 and body["status"] == "ok"

    cb.fail_status = None  # the shop is back: deliveries recover, and so does /healthz
    async def recovered() -> bool:
        return "deliveries:site" not in (await health(http, d))[1]["degraded"]
    await wait_for(recovered, timeout=20, message="deliveries recovered")
    await cb.stop()


async def _three(agent: Agent) -> list[dict] | None:
    convs = await agent.conversations()
    return convs if len(convs) == 3 else None


async def test_killed_embedded_redis_is_restarted_and_loses_nothing_acknowledged(make_daemon, http):
    cb = CallbackServer(SECRET)
    d = await make_daemon(channels={"site": site_channel(callback_url=await cb.start())}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    accepted: list[str] = []
    killed = asyncio.Event()

    async def shop() -> None:
        """Site messages, one after the other, through the kill: each 202 must arrive once."""
        for i in range(400):
            text = f"消息 {i}"
            if await post(http, d, "heal", f"h{i}", text) == 202:
                accepted.append(text)
            if killed.is_set() and len(accepted) >= 40 and i % 10 == 0 and (await health(http, d))[0] == 200:
                return

    flow = asyncio.create_task(shop())
    await wait_for(lambda: len(accepted) >= 10, message="messages flowing")
    pid = int((d.workdir / "data" / "redis" / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    killed.set()
    await asyncio.wait_for(flow, 120)

    async def healed() -> dict | None:
        code, body = await health(http, d)
        return body if code == 200 and body["status"] == "ok" else None
    body = await wait_for(healed, timeout=30, message="/healthz ok again by itself")
    assert body["redis_restarts"] == 1, body
    assert int((d.workdir / "data" / "redis" / "redis.pid").read_text()) != pid

    async def all_once() -> bool:
        convs = [c for c in await alice.conversations() if c["customer"]["id"] == "heal"]
        if len(convs) != 1:
            return False
        texts = [m["text"] for m in (await alice.conversation(convs[0]["id"]))["messages"]
                 if m["sender"]["kind"] == "customer"]
        return sorted(texts) == sorted(accepted)
    await wait_for(all_once, timeout=30, message="every acknowledged message in its conversation, once")
    assert d.proc.poll() is None and "Traceback" not in d.log_path.read_text()
    await cb.stop()


def test_parked_cli_without_a_running_kefu(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'data'}\n")
    res = subprocess.run([sys.executable, "-m", "aggregator", "parked", "-c", str(cfg)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert res.returncode == 1 and "is `kefu run` running" in res.stderr and "Traceback" not in res.stderr




async def test_a_reply_that_breaks_send_is_parked_and_the_others_go_out(make_daemon, http, tmp_path):
    fdir = tmp_path / "faulty-state"
    d = await make_daemon(bus={"claim_idle": 1}, channels={
        "faulty": {"kind": "plugin", "class": "tests.faulty_connector:FaultyConnector",
                   "options": {"dir": str(fdir), "send_exception": "ValueError"}}}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    for customer in ("poisoned", "fine"):
        async with http.post(d.url + "/plugin/faulty/inbound",
                             json={"customer_id": customer, "message_id": customer, "text": "你好"}) as r:
            assert r.status == 202
    convs = await wait_for(lambda: _by_customer(alice, "poisoned", "fine"), message="two conversations")
    await wait_for(lambda: len(read_jsonl(fdir / "delivered.jsonl")) >= 2, message="welcomes delivered")
    (fdir / "poison-poisoned").touch()  # every send to this customer raises
    code, bad = await alice.reply(convs["poisoned"]["id"], "这条发不出去")
    assert code == 201
    await wait_for(lambda: _attempts(fdir, bad["id"]) >= 3, message="the reply tried (and failed) 3 times")
    for i in range(3):  # meanwhile the channel's other replies go out
        code, good = await alice.reply(convs["fine"]["id"], f"第 {i} 条")
        assert code == 201
        await wait_for(lambda: good["id"] in {x["id"] for x in read_jsonl(fdir / "delivered.jsonl")},
                       message=f"reply {i} delivered")

    async def parked() -> dict | None:
        code, body = await health(http, d)
        return body if body["parked"] == 1 else None
    body = await wait_for(parked, timeout=30, message="the breaking reply parked")
    assert body["status"] == "ok" and body["connectors"]["faulty"]["state"] == "running", body
    assert "reply parked" in d.log_path.read_text()
    attempts = _attempts(fdir, bad["id"])
    code, good = await alice.reply(convs["fine"]["id"], "之后")
    await wait_for(lambda: good["id"] in {x["id"] for x in read_jsonl(fdir / "delivered.jsonl")},
                   message="later reply delivered")
    assert _attempts(fdir, bad["id"]) == attempts  # parked: never tried again
    async with http.get(d.url + "/metrics") as resp:
        assert 'kefu_parked_total{stage="delivery"} 1.0' in await resp.text()


async def _by_customer(agent: Agent, *customers: str) -> dict | None:
    convs = {c["customer"]["id"]: c for c in await agent.conversations()}
    return convs if all(c in convs for c in customers) else None


def _attempts(fdir, message_id: str) -> int:
    return sum(1 for a in read_jsonl(fdir / "send-attempts.jsonl") if a["id"] == message_id)


async def test_the_router_is_restarted_until_its_stream_is_usable_again(shared_redis, make_daemon, http):
    d = await make_daemon(redis_url=shared_redis, channels={"site": site_channel()}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    r = aioredis.Redis.from_url(shared_redis)
    stream = d.config["redis"]["prefix"] + "in"
    # Something else clobbers the inbound stream (a second app on the same prefix, a FLUSHDB
    # and a stray SET): the router cannot read it, says so, and keeps trying.
    pipe = r.pipeline(transaction=True)
    pipe.delete(stream)
    pipe.set(stream, "not a stream")
    await pipe.execute()

    # (Redis 7 first unblocks a reader of the deleted stream with "UNBLOCKED ...": the
    # next attempt meets the stray key.)
    async def restarting() -> dict | None:
        code, body = await health(http, d)
        return body if (code == 503 and body["router"] == "restarting"
                        and "WRONGTYPE" in body["degraded"]["router"]) else None
    await wait_for(restarting, timeout=20, message="router restarting, saying why")
    await r.delete(stream)

    async def healed() -> bool:
        return (await health(http, d))[0] == 200
    await wait_for(healed, timeout=20, message="router back by itself")
    assert await post(http, d, "after", "after-1", "你好") == 202

    async def routed() -> bool:
        return any(c["customer"]["id"] == "after" and c["assignee"] == "alice" for c in await alice.conversations())
    await wait_for(routed, timeout=20, message="routing again")
    assert "router failed, restarting" in d.log_path.read_text()
    await r.aclose()
