"""No input stops kefu (issue 8, "What was seen"): each crafted payload gets a 4xx (or a
web chat error frame, the socket kept), and a normal message afterwards still reaches
an agent — through a real daemon."""
from __future__ import annotations

import json
import uuid

import aiohttp

from connectors.api import sign
from tests.kefu_harness import Agent, Daemon, wait_for

SECRET = "poison-secret"


async def started(make_daemon, http) -> tuple[Daemon, Agent, "Site"]:
    """A daemon with the web chat and a site channel, alice online to take conversations."""
    d = await make_daemon(router={"default_capacity": 200}, channels={
        "webchat": {"kind": "webchat"}, "site": {"kind": "api", "secret": SECRET}}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    return d, alice, Site(d, http)


class Site:
    """The shop posting site messages to the API channel."""

    def __init__(self, d, http: aiohttp.ClientSession):
        self.url, self.http = d.url + "/api/channels/site/inbound", http

    async def post(self, body: bytes, signature: str | None = None) -> tuple[int, dict]:
        headers = {"X-Kefu-Signature": sign(SECRET, body) if signature is None else signature,
                   "Content-Type": "application/json"}
        async with self.http.post(self.url, data=body, headers=headers) as r:
            return r.status, await r.json()


async def still_routes(site: Site, alice: Agent) -> None:
    """A normal message from a new customer is stored and assigned to alice."""
    customer = "c-" + uuid.uuid4().hex[:8]
    body = json.dumps({"customer_id": customer, "message_id": customer, "text": "你好,卡密在哪"}).encode()
    code, answer = await site.post(body)
    assert code == 202, answer

    async def assigned():
        return [c for c in await alice.conversations() if c["customer"]["id"] == customer and c["assignee"] == "alice"]
    await wait_for(assigned, timeout=15, message=f"{customer} routed to alice")


async def healthy(d, http) -> None:
    async with http.get(d.url + "/healthz") as r:
        body = await r.json()
    assert r.status == 200 and body["status"] == "ok" and body["router"] == "ok", body


def no_traceback(d) -> None:
    log = d.log_path.read_text(errors="replace")
    assert "Traceback" not in log and '"exc":' not in log, log[-3000:]


async def test_api_channel_poison_bodies_are_refused(make_daemon, http):
    d, alice, site = await started(make_daemon, http)
    deep = "[" * 20000 + "]" * 20000
    bodies = [
        b'{"customer_id": "p1", "message_id": "p1", "text": "hi", "attributes": {"order_count": 1e999}}',
        b'{"customer_id": "p2", "message_id": "p2", "text": "hi", "attributes": {"order_count": Infinity}}',
        b'{"customer_id": "p3", "message_id": "p3", "text": "hi", "attributes": {"total_spent": -Infinity}}',
        b'{"customer_id": "p4", "message_id": "p4", "text": "hi", "attributes": {"total_spent": NaN}}',
        b'{"customer_id": "p5", "message_id": "p5", "text": "hi", "attributes": {"order_count": 9223372036854775808}}',
        b'{"customer_id": "p6", "message_id": "p6", "text": "hi", "attributes": {"order_count": 18446744073709551616}}',
        b'{"customer_id": "p7", "message_id": "p7", "text": "hi", "attributes": {"x": ' + deep.encode() + b'}}',
        b'{"customer_id": "p8", "message_id": "p8", "text": "hi", "attributes": {"x": '
        + b"[" * 40 + b"1" + b"]" * 40 + b"}}",
        b'{"customer_id": "p9", "message_id": "p9", "text": "a\\ud800b"}',
        b'{"customer_id": "p10", "message_id": "p10", "text": "hi", "name": "\\udfff"}',
        b'{"customer_id": "\\ud800", "message_id": "p11", "text": "hi"}',
        b'{"customer_id": "p12", "message_id": 1e999, "text": "hi"}',
        b'{"customer_id": 99999999999999999999999, "message_id": "p13", "text": "hi"}',
        deep.encode(),
    ]
    for body in bodies:
        code, answer = await site.post(body)
        assert code == 400 and isinstance(answer.get("error"), str), (body[:80], code, answer)
        await still_routes(site, alice)
    assert not [c for c in await alice.conversations("all") if c["customer"]["id"].startswith("p")]
    await healthy(d, http)
    no_traceback(d)


async def test_non_ascii_signature_is_401_and_a_nul_in_a_console_path_404(make_daemon, http):
    d, alice, site = await started(make_daemon, http)
    body = json.dumps({"customer_id": "s1", "message_id": "s1", "text": "hi"}).encode()
    for signature in ("sha256=é", "sha256=" + "卡" * 64, "\u00ff" * 71):
        code, answer = await site.post(body, signature)
        assert code == 401 and answer == {"error": "invalid or missing X-Kefu-Signature"}, (signature, code, answer)
    for path in ("/console/x%00.html", "/console/%00", "/console/..%2Fconfig.yaml", "/console/x%ff.js"):
        async with http.get(d.url + path) as r:
            assert r.status == 404 and "error" in await r.json(), path
    await still_routes(site, alice)
    await healthy(d, http)
    no_traceback(d)


async def test_agent_transfer_to_a_surrogate_is_400(make_daemon, http):
    d, alice, site = await started(make_daemon, http)
    await still_routes(site, alice)
    cid = (await alice.conversations())[0]["id"]
    url = f"{d.url}/api/conversations/{cid}/transfer"
    for body in (b'{"role": "\\ud800"}', b'{"agent": "\\udc00x"}', b'{"role": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        async with http.post(url, data=body, headers=alice.headers) as r:
            assert r.status == 400 and "error" in await r.json(), (body[:40], r.status)
    async with http.post(f"{d.url}/api/conversations/{cid}/messages", data=b'{"text": "\\ud83d"}',
                         headers=alice.headers) as r:
        assert r.status == 400 and "error" in await r.json()
    async with http.post(f"{d.url}/api/login", data=b'{"agent": "\\ud800", "password": "x"}') as r:
        assert r.status == 400 and "error" in await r.json()
    await still_routes(site, alice)
    no_traceback(d)


async def ws_answer(ws) -> dict:
    """The server's next answer to a frame (replies pushed meanwhile are skipped)."""
    while True:
        frame = await ws.receive_json(timeout=10)
        if frame["type"] not in ("message", "history"):
            return frame


async def ws_next(ws, kind: str) -> dict:
    frame = await ws_answer(ws)
    assert frame["type"] == kind, frame
    return frame


async def test_webchat_menu_answers_in_other_digits_do_not_stop_routing(make_daemon, http):
    d, alice, site = await started(make_daemon, http)
    for answer in ("²", "①", "٣", "1" * 40):
        ws = await http.ws_connect(d.ws_url + "/webchat/ws")
        await ws_next(ws, "hello")
        await ws.send_json({"type": "message", "text": "hello", "client_msg_id": "a"})
        await ws_next(ws, "ack")
        await ws.send_json({"type": "message", "text": answer, "client_msg_id": "b"})
        assert (await ws_next(ws, "ack"))["client_msg_id"] == "b"
        await still_routes(site, alice)
        await ws.close()
    await healthy(d, http)
    no_traceback(d)


async def test_webchat_poison_frames_get_an_error_frame(make_daemon, http):
    d, alice, site = await started(make_daemon, http)
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    await ws_next(ws, "hello")
    frames = [
        "[" * 30000 + "]" * 30000,
        '{"type": "message", "text": "x", "client_msg_id": "n1", "extra": ' + "[" * 20000 + "]" * 20000 + "}",
        '{"type": "message", "text": "a\\ud800", "client_msg_id": "s1"}',
        '{"type": "message", "text": "hi", "client_msg_id": "\\udfff"}',
        '{"type": "message", "text": "hi", "client_msg_id": "n2", "name": "\\ud800"}',
        '{"type": "message", "text": "hi", "client_msg_id": "n3", "attachments": [1e999]}',
        '{"type": "message", "text": "hi", "client_msg_id": "n4", "attachments": {"a": 1}}',
        '{"type": "message", "text": 12, "client_msg_id": "n5"}',
        '{"type": "message", "text": "hi", "client_msg_id": 9223372036854775808}',
    ]
    for frame in frames:
        await ws.send_str(frame)
        err = await ws_answer(ws)
        assert err["type"] == "error" and isinstance(err["error"], str), (frame[:60], err)
        await ws.send_json({"type": "message", "text": "still here", "client_msg_id": uuid.uuid4().hex})
        assert (await ws_answer(ws))["type"] == "ack", frame[:60]
        await still_routes(site, alice)
    await ws.close()
    await healthy(d, http)
    no_traceback(d)
