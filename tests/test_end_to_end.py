"""A customer message on each connector reaches an agent; the reply reaches the customer."""
from __future__ import annotations

import json
import re
import uuid
from datetime import date, timedelta

import aiohttp

from connectors.api import sign
from tests.callback_server import CallbackServer
from tests.kefu_harness import DEFAULT_AGENTS, Agent, wait_for

SECRET = "s3cret-for-tests"


async def ws_frames(ws, kind: str, timeout: float = 10.0, sender: str | None = None) -> dict:
    """Next frame of `kind` (from `sender` kind, if given), skipping others."""
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["type"] == kind and (sender is None or frame["sender"]["kind"] == sender):
            return frame


def human_texts(messages: list[dict]) -> list[str]:
    return [m["text"] for m in messages if m["sender"]["kind"] != "bot"]


async def test_webchat_round_trip_and_resume(make_daemon, http, redis_url):
    d = await make_daemon(redis_url=redis_url).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    events = await http.ws_connect(d.ws_url + "/api/events", headers=alice.headers)
    assert (await ws_frames(events, "hello"))["agent"] == "alice"

    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    hello = await ws_frames(ws, "hello")
    token = hello["visitor_token"]
    await ws.send_json({"type": "message", "text": "我的卡密没收到", "client_msg_id": "c1"})
    ack = await ws_frames(ws, "ack")
    assert ack["client_msg_id"] == "c1" and ack["id"]

    live = await ws_frames(events, "message")  # pushed, not polled
    assert live["message"]["text"] == "我的卡密没收到"
    cid = live["conversation_id"]
    conv = await alice.conversation(cid)
    assert conv["channel"] == "webchat" and conv["assignee"] == "alice"
    assert human_texts(conv["messages"]) == ["我的卡密没收到"]
    welcome = await ws_frames(ws, "message", sender="bot")  # the automatic welcome
    assert "欢迎" in welcome["text"]

    code, msg = await alice.reply(cid, "马上为您补发")
    assert code == 201
    pushed = await ws_frames(ws, "message", sender="agent")
    assert pushed["text"] == "马上为您补发" and pushed["id"] == msg["id"]
    assert pushed["sender"] == {"kind": "agent", "name": "Alice"}

    # Same client_msg_id again (a widget retry): acknowledged with the same id, stored once.
    await ws.send_json({"type": "message", "text": "我的卡密没收到", "client_msg_id": "c1"})
    assert (await ws_frames(ws, "ack"))["id"] == ack["id"]
    await ws.close()

    # A reply while the visitor is away arrives when they come back, with the history.
    code, later = await alice.reply(cid, "已补发,请查收")
    assert code == 201
    ws2 = await http.ws_connect(d.ws_url + f"/webchat/ws?token={token}")
    hello2 = await ws_frames(ws2, "hello")
    assert hello2["visitor_token"] == token and hello2["conversation_id"] == cid
    history = await ws_frames(ws2, "history")
    assert human_texts(history["messages"]) == ["我的卡密没收到", "马上为您补发", "已补发,请查收"]
    assert (await ws_frames(ws2, "message", sender="agent"))["id"] == later["id"]
    await ws2.close()

    # ... and after a daemon restart too.
    assert d.stop() == 0
    await d.start()
    ws3 = await http.ws_connect(d.ws_url + f"/webchat/ws?token={token}")
    await ws_frames(ws3, "hello")
    assert len(human_texts((await ws_frames(ws3, "history"))["messages"])) == 3
    await ws3.close()
    await events.close()


async def test_api_channel_round_trip(make_daemon, http, redis_url):
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    d = await make_daemon(redis_url=redis_url, channels={
        "site": {"kind": "api", "secret": SECRET, "callback_url": cb_url}}).start()
    bob = await Agent(d, http, "bob").login()
    await bob.presence("online")

    body = json.dumps({"customer_id": "u1001", "message_id": "sm-1", "text": "支付失败了怎么办",
                       "name": "张三"}).encode()
    headers = {"X-Kefu-Signature": sign(SECRET, body), "Content-Type": "application/json"}
    async with http.post(d.url + "/api/channels/site/inbound", data=body, headers=headers) as r:
        assert r.status == 202
        first = await r.json()
    async with http.post(d.url + "/api/channels/site/inbound", data=body, headers=headers) as r:
        assert r.status == 202 and (await r.json()) == {"id": first["id"], "duplicate": True}

    convs = await wait_for(lambda: bob.conversations(), message="conversation listed")
    conv = convs[0]
    assert conv["channel"] == "site" and conv["customer"]["id"] == "u1001"
    assert conv["customer"]["name"] == "张三" and conv["assignee"] == "bob"
    assert human_texts((await bob.conversation(conv["id"]))["messages"]) == ["支付失败了怎么办"]
    # The inbox preview is what the customer wrote, not kefu's welcome that followed it.
    await wait_for(lambda: _has_bot_message(bob, conv["id"]), message="kefu's welcome")
    assert (await bob.conversations())[0]["last_message"]["text"] == "支付失败了怎么办"

    code, msg = await bob.reply(conv["id"], "请提供订单号")
    assert code == 201
    assert (await bob.conversations())[0]["last_message"]["text"] == "请提供订单号"
    await wait_for(lambda: msg["id"] in cb.message_ids(), message="callback")
    assert {"customer_id": "u1001", "conversation_id": conv["id"], "message_id": msg["id"],
            "text": "请提供订单号"} in cb.received
    assert cb.message_ids().count(msg["id"]) == 1
    assert cb.bad_signatures == 0

    code, closed = await bob.call("POST", f"/api/conversations/{conv['id']}/close")
    assert code == 200 and closed["status"] == "closed"
    assert await bob.conversations("open") == []
    # The customer's next message opens a new conversation.
    body = json.dumps({"customer_id": "u1001", "message_id": "sm-2", "text": "还在吗"}).encode()
    async with http.post(d.url + "/api/channels/site/inbound", data=body,
                         headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
        assert r.status == 202
    sue = await Agent(d, http, "sue").login()  # "还在吗" is pre-sales: not bob's to see
    reopened = await wait_for(lambda: sue.conversations(), message="new conversation")
    assert reopened[0]["id"] != conv["id"]
    assert await bob.conversations("open") == []
    await cb.stop()


async def _has_bot_message(agent: Agent, cid: str) -> bool:
    return any(m["sender"]["kind"] == "bot" for m in (await agent.conversation(cid))["messages"])


async def test_ownership_claim_and_transfer(make_daemon, http):
    carol = {"id": "carol", "name": "Carol", "roles": ["presales"], "password": "carol-pw"}
    d = await make_daemon(agents=[*DEFAULT_AGENTS, carol]).start()
    alice, bob, sue = [await Agent(d, http, a).login() for a in ("alice", "bob", "sue")]
    carol = await Agent(d, http, "carol").login("carol-pw")
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    await ws_frames(ws, "hello")
    await ws.send_json({"type": "message", "text": "hello", "client_msg_id": str(uuid.uuid4())})
    await ws_frames(ws, "ack")
    conv = (await wait_for(lambda: alice.conversations(), message="listed"))[0]
    assert conv["assignee"] is None and conv["queued"]  # nobody online yet

    await alice.presence("online")
    conv = await wait_for(lambda: _assigned(alice, conv["id"]), message="assigned when alice came online")
    assert conv["assignee"] == "alice"

    code, body = await carol.reply(conv["id"], "I'll take it")
    assert code == 409 and "alice" in body["error"]
    code, body = await carol.call("POST", f"/api/conversations/{conv['id']}/claim")
    assert code == 409
    code, body = await bob.reply(conv["id"], "finance here")  # not his role at all
    assert code == 403 and body["error"]
    code, _ = await sue.reply(conv["id"], "supervisor here")  # supervisors may step in
    assert code == 201

    await bob.presence("online")
    code, moved = await alice.call("POST", f"/api/conversations/{conv['id']}/transfer", {"agent": "bob"})
    assert code == 200 and moved["assignee"] == "bob"
    code, _ = await bob.reply(conv["id"], "finance here")
    assert code == 201
    code, body = await alice.call("POST", f"/api/conversations/{conv['id']}/transfer", {"role": "finance"})
    assert code == 409  # alice no longer owns it
    code, body = await bob.call("POST", "/api/conversations/nope/claim")
    assert code == 404 and body == {"error": "conversation not found"}
    await ws.close()


async def _assigned(agent: Agent, cid: str):
    conv = await agent.conversation(cid)
    return conv if conv["assignee"] else None


async def test_console_and_widget_are_served_safely(make_daemon, http):
    d = await make_daemon(channels={"webchat": {"kind": "webchat", "color": "#ff6600",
                                                "title": {"zh": "小店客服", "en": "Shop help"}}}).start()
    async with http.get(d.url + "/console/") as r:
        assert r.status == 200 and "script-src" not in r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
    async with http.get(d.url + "/webchat/widget.js") as r:
        js = await r.text()
        assert r.status == 200 and len(js.encode()) < 30 * 1024  # small enough to load after the page
        code = "\n".join(line for line in js.splitlines() if not line.lstrip().startswith(("*", "/*", "//")))
        urls = re.findall(r"https?://[^'\"\s]*", code)
        assert urls == ["http://www.w3.org/2000/svg"], urls  # an XML namespace; no external requests
    async with http.get(d.url + "/webchat/config.json") as r:
        cfg = await r.json()
        assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert cfg["color"] == "#ff6600" and cfg["title"]["zh"] == "小店客服" and cfg["online"] is False
    assert "暂无客服在线" in cfg["offline_note"]["zh"] and cfg["welcome"]["en"]
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    async with http.get(d.url + "/webchat/config.json") as r:
        assert (await r.json())["online"] is True


async def test_widget_says_when_a_human_answers_outside_hours(make_daemon, http):
    day = date.today() + timedelta(days=200)
    closed_today = {"timezone": "Asia/Shanghai", "weekly": {}, "holidays": None,
                    "open_dates": {day.isoformat(): ["09:00-18:00"]}}  # open once, months ahead
    d = await make_daemon(hours={"later": closed_today}, roles={
        "presales": {"name": {"zh": "售前", "en": "Sales"}, "menu": 1, "hours": "later"}}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    async with http.get(d.url + "/webchat/config.json") as r:
        cfg = await r.json()
    assert cfg["online"] is False
    assert f"{day.month}月{day.day}日" in cfg["offline_note"]["zh"]
    assert "09:00 (北京时间)" in cfg["offline_note"]["zh"] and "Beijing time" in cfg["offline_note"]["en"]
