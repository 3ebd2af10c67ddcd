"""Abuse limits (config `limits:`), through real daemons: a flood is refused —
web chat with an error frame saying when to retry (the connection stays open),
HTTP with 429 and Retry-After — nothing refused is stored, the limit recovers
once its window has passed, and processes sharing a Redis share the limits.

Windows are a few seconds here; recovery is waited for by retrying, the way a
client would, never by sleeping.
"""
from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp

from connectors.api import sign
from connectors.webchat import customer_id_for
from tests.kefu_harness import PASSWORDS, Agent, wait_for

SECRET = "limits-secret"


def xff(address: str) -> dict:
    return {"X-Forwarded-For": address}


async def frame(ws, *types: str, timeout: float = 10.0) -> dict:
    """The next frame of one of `types`, skipping others (welcome messages...)."""
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        if data["type"] in types:
            return data


async def visitor(http, d, address: str | None = None, token: str | None = None):
    """A web chat socket and its hello (or the error frame refusing it)."""
    url = d.ws_url + "/webchat/ws" + (f"?token={token}" if token else "")
    ws = await http.ws_connect(url, headers=xff(address) if address else None)
    return ws, await frame(ws, "hello", "error")


async def say(ws, text: str) -> dict:
    await ws.send_json({"type": "message", "text": text, "client_msg_id": uuid.uuid4().hex})
    return await frame(ws, "ack", "error")


async def customer_texts(agent: Agent, channel: str, customer: str) -> list[str]:
    for c in await agent.conversations():
        if c["channel"] == channel and c["customer"]["id"] == customer:
            return [m["text"] for m in (await agent.conversation(c["id"]))["messages"]
                    if m["sender"]["kind"] == "customer"]
    return []


def assert_refusal(err: dict) -> None:
    assert err["type"] == "error" and err["retry_after"] >= 1
    assert f"{err['retry_after']} 秒" in err["text"]["zh"] and f"{err['retry_after']} s" in err["text"]["en"]


async def test_webchat_flood_is_refused_per_visitor_and_per_address(make_daemon, http):
    d = await make_daemon(limits={"webchat": {"messages_per_visitor": "3/3s", "messages_per_ip": "5/3s"}}).start()
    alice = await Agent(d, http, "alice").login()

    # One visitor floods: three get in, the rest is refused with when to retry.
    a, hello = await visitor(http, d, "203.0.113.7")
    for i in range(12):
        await a.send_json({"type": "message", "text": f"flood {i}", "client_msg_id": f"f{i}"})
    answers = [await frame(a, "ack", "error") for _ in range(12)]
    acked = [x["client_msg_id"] for x in answers if x["type"] == "ack"]
    refused = [x for x in answers if x["type"] == "error"]
    assert len(acked) == 3 and len(refused) == 9
    for err in refused:
        assert_refusal(err)
        assert "too many messages" in err["error"]

    # Another visitor behind the same address shares its limit; one elsewhere does not.
    b, hello_b = await visitor(http, d, "203.0.113.7")
    assert [(await say(b, f"b{i}"))["type"] for i in range(3)] == ["ack", "ack", "error"]
    c, hello_c = await visitor(http, d, "198.51.100.9")
    assert (await say(c, "c0"))["type"] == "ack"

    # The socket stayed open: once the window has passed, the same visitor gets through.
    await wait_for(lambda: _acked(a, "after the wait"), timeout=15, interval=0.2, message="the limit recovers")

    a_customer = customer_id_for(hello["visitor_token"])
    expected = sorted([f"flood {int(m[1:])}" for m in acked] + ["after the wait"])
    await wait_for(lambda: _sorted_texts(alice, "webchat", a_customer, len(expected)), message="a's messages")
    assert sorted(await customer_texts(alice, "webchat", a_customer)) == expected  # nothing refused was stored
    b_customer = customer_id_for(hello_b["visitor_token"])
    await wait_for(lambda: _sorted_texts(alice, "webchat", b_customer, 2), message="b's messages")
    assert await customer_texts(alice, "webchat", b_customer) == ["b0", "b1"]
    for ws in (a, b, c):
        await ws.close()


async def _acked(ws, text: str) -> bool:
    return (await say(ws, text))["type"] == "ack"


async def _sorted_texts(agent: Agent, channel: str, customer: str, n: int) -> bool:
    return len(await customer_texts(agent, channel, customer)) >= n


async def test_new_visitor_tokens_and_uploads_per_address(make_daemon, http):
    # 127.0.0.1 is not a trusted proxy here: an X-Forwarded-For from it is not believed.
    d = await make_daemon(web={"trusted_proxies": ["10.0.0.0/8"]}, limits={"webchat": {
        "new_visitors_per_ip": "2/3s", "uploads_per_ip": "2/3s", "uploads_per_visitor": "5/1m"}}).start()
    first, h1 = await visitor(http, d)
    second, h2 = await visitor(http, d, "198.51.100.1")
    assert h1["type"] == h2["type"] == "hello"
    for spoofed in ("198.51.100.2", None):
        third, refused = await visitor(http, d, spoofed)
        assert_refusal(refused)
        assert "new visitors" in refused["error"] and "visitor_token" not in refused
        assert (await third.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
        assert third.close_code == 1013
    # A token the client made up is a new visitor too; a token kefu issued comes back in.
    made_up, refused = await visitor(http, d, token="x" * 32)
    assert refused["type"] == "error"
    back, hello = await visitor(http, d, token=h1["visitor_token"])
    assert hello["type"] == "hello" and hello["visitor_token"] == h1["visitor_token"]

    async def upload(token: str, body: bytes) -> aiohttp.ClientResponse:
        async with http.post(d.url + "/webchat/upload", params={"token": token, "name": "a.txt"},
                             data=body, headers=xff("203.0.113.50")) as r:
            await r.read()
            return r
    assert [(await upload(h1["visitor_token"], b"%d" % i)).status for i in range(2)] == [201, 201]
    r = await upload(h2["visitor_token"], b"other visitor, same address")
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1

    async def new_visitor_gets_in() -> bool:
        ws, got = await visitor(http, d)
        await ws.close()
        return got["type"] == "hello"
    await wait_for(new_visitor_gets_in, timeout=15, interval=0.2, message="new visitors again")
    await wait_for(lambda: _status_is(upload(h2["visitor_token"], b"later"), 201), timeout=15, interval=0.2,
                   message="uploads again")
    for ws in (first, second, back):
        await ws.close()


async def _status_is(response, status: int) -> bool:
    return (await response).status == status


def inbound(customer: str, message_id: str, text: str = "hello") -> tuple[bytes, dict]:
    body = json.dumps({"customer_id": customer, "message_id": message_id, "text": text}).encode()
    return body, {"X-Kefu-Signature": sign(SECRET, body), "Content-Type": "application/json"}


async def post(http, d, customer: str, message_id: str) -> tuple[int, dict, dict]:
    body, headers = inbound(customer, message_id, f"text of {message_id}")
    async with http.post(d.url + "/api/channels/site/inbound", data=body, headers=headers) as r:
        return r.status, await r.json(), dict(r.headers)


async def test_api_channel_limits_each_customer_not_the_shop(make_daemon, http):
    d = await make_daemon(channels={"site": {"kind": "api", "secret": SECRET}},
                          limits={"api": {"messages_per_customer": "3/3s"}}).start()
    alice = await Agent(d, http, "alice").login()
    results = await asyncio.gather(*(post(http, d, "c1", f"c1-{i}") for i in range(6)))
    accepted = [f"text of c1-{i}" for i, (status, _, _) in enumerate(results) if status == 202]
    refused = [(i, body, headers) for i, (status, body, headers) in enumerate(results) if status == 429]
    assert len(accepted) == 3 and len(refused) == 3
    for _, body, headers in refused:
        assert "too many messages" in body["error"] and int(headers["Retry-After"]) >= 1
    assert (await post(http, d, "c2", "c2-0"))[0] == 202  # same shop server, another customer
    accepted_id = next(f"c1-{i}" for i, (status, _, _) in enumerate(results) if status == 202)
    status, body, _ = await post(http, d, "c1", accepted_id)  # the shop retrying a message: not a new one
    assert status == 202 and body["duplicate"] is True

    # A refused message was not stored: sent again after the wait, it is new, not a duplicate.
    again = f"c1-{refused[0][0]}"
    status, body, _ = await wait_for(lambda: _accepted(post(http, d, "c1", again)), timeout=15, interval=0.2,
                                     message="the customer's limit recovers")
    assert body["duplicate"] is False
    expected = sorted(accepted + [f"text of {again}"])
    await wait_for(lambda: _sorted_texts(alice, "site", "c1", len(expected)), message="c1's messages routed")
    assert sorted(await customer_texts(alice, "site", "c1")) == expected


async def _accepted(result):
    got = await result
    return got if got[0] == 202 else None


async def login(http, d, agent: str, password: str, address: str) -> tuple[int, int | None]:
    async with http.post(d.url + "/api/login", json={"agent": agent, "password": password},
                         headers=xff(address)) as r:
        body = await r.json()
        assert ("token" in body) == (r.status == 200) and (r.status == 200 or "error" in body)
        return r.status, int(r.headers["Retry-After"]) if "Retry-After" in r.headers else None


async def test_login_lockout_grows_and_does_not_tell_which_agents_exist(make_daemon, http):
    d = await make_daemon(limits={"login": {"attempts_per_agent": 3, "attempts_per_ip": 4, "window": "1m",
                                            "lockout": "2s", "max_lockout": "10s"}}).start()
    # An agent and a name nobody has are answered alike, from their own addresses.
    seen = {}
    for name, address in (("alice", "203.0.113.1"), ("nobody", "203.0.113.2")):
        seen[name] = [await login(http, d, name, "wrong", address) for _ in range(3)]
        seen[name].append(await login(http, d, name, PASSWORDS.get(name, "right?"), address))
    assert seen["alice"][:3] == seen["nobody"][:3] == [(401, None), (401, None), (429, 2)]
    assert seen["alice"][3][0] == seen["nobody"][3][0] == 429  # even with the right password

    # Once the lock-out is over, the next failures lock alice out for longer (from
    # wherever they come).
    first_lockout = seen["alice"][2][1]
    await wait_for(lambda: _status_is_login(login(http, d, "alice", "wrong", "203.0.113.11"), 401),
                   timeout=15, interval=0.2, message="the lock-out ends")
    assert await login(http, d, "alice", "wrong", "203.0.113.11") == (401, None)
    status, second_lockout = await login(http, d, "alice", "wrong", "203.0.113.11")
    assert status == 429 and second_lockout > first_lockout
    await wait_for(lambda: _status_is_login(login(http, d, "alice", PASSWORDS["alice"], "203.0.113.11"), 200),
                   timeout=20, interval=0.2, message="alice logs in after the lock-out")

    # One address trying many names is locked out too (a new name each time).
    statuses = [(await login(http, d, f"guess{i}", "wrong", "203.0.113.3"))[0] for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    assert (await login(http, d, "bob", PASSWORDS["bob"], "203.0.113.3"))[0] == 429
    assert (await login(http, d, "bob", PASSWORDS["bob"], "203.0.113.4"))[0] == 200


async def _status_is_login(result, status: int) -> bool:
    return (await result)[0] == status


async def test_two_processes_share_the_limits(shared_redis, make_daemon, http):
    prefix = f"lim{uuid.uuid4().hex[:8]}:"
    settings = dict(redis={"url": shared_redis, "prefix": prefix},
                    channels={"site": {"kind": "api", "secret": SECRET}},
                    limits={"api": {"messages_per_customer": "3/1m"},
                            "login": {"attempts_per_agent": 3, "lockout": "1m"}})
    d1 = make_daemon("kefu-1", redis_url=shared_redis, **settings)
    d2 = make_daemon("kefu-2", redis_url=shared_redis, **settings)
    await asyncio.gather(d1.start(), d2.start())
    assert [(await post(http, d, "c1", f"m{i}"))[0] for i, d in enumerate((d1, d2, d1, d2, d1))] == \
        [202, 202, 202, 429, 429]
    assert [(await login(http, d, "alice", "wrong", "203.0.113.9"))[0] for d in (d1, d2, d1, d2)] == \
        [401, 401, 429, 429]
