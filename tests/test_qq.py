"""QQ (OneBot v11) end to end: a real kefu daemon against tests/fakes/onebot.py.

Both WebSocket directions, the customer side (normalisation, dedupe, friend
requests, the account going offline) and agents answering from QQ.
"""
from __future__ import annotations

import asyncio
import json
import re
import uuid

import aiohttp
import pytest

from connectors.qq.codec import normalise
from tests.callback_server import CallbackServer
from tests.fakes.onebot import (
    FakeOneBotForward,
    FakeOneBotReverse,
    OneBotConnectRefused,
    Seg,
)
from tests.kefu_harness import DEFAULT_AGENTS, Agent, wait_for

TOKEN = "qq-access-token"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40  # what sniff_image takes for a PNG
BOT = 10001
SECRET = "site-secret-for-qq-tests"


def qq_channel(**kw) -> dict:
    return {"kind": "qq", "mode": "reverse", "access_token": TOKEN, "self_id": BOT,
            "auto_accept_friends": True, "send_rate": 50, **kw}


async def reverse_fake(d, channel: str = "qq", **kw) -> FakeOneBotReverse:
    await wait_for(lambda: _connector(d, channel, "running"), message=f"{channel} connector running")
    fake = FakeOneBotReverse(f"{d.ws_url}/onebot/{channel}/ws", TOKEN, self_id=BOT,
                             reconnect_interval=0.1, **kw)
    await fake.start()
    await fake.wait_connected(timeout=15)
    await wait_for(lambda: _health_ok(d, channel), message="QQ connected and online")
    return fake


async def _health(d) -> dict:
    async with aiohttp.ClientSession() as s, s.get(d.url + "/healthz") as r:
        return await r.json()


async def _connector(d, channel: str, state: str):
    c = (await _health(d))["connectors"][channel]
    return c if c["state"] == state else None


async def _health_ok(d, channel: str, online: bool = True):
    c = (await _health(d))["connectors"][channel]
    return c if c["connected"] and c["online"] is online else None


async def _disconnected(d, channel: str) -> bool:
    c = (await _health(d))["connectors"][channel]
    return not c["connected"] and not c["online"]


async def human_messages(agent: Agent, cid: str) -> list[dict]:
    return [m for m in (await agent.conversation(cid))["messages"] if m["sender"]["kind"] != "bot"]


async def conv_of(agent: Agent, channel: str, customer: str):
    for c in await agent.conversations():
        if c["channel"] == channel and c["customer"]["id"] == customer:
            return c
    return None


async def ws_message(ws, text: str | None = None, timeout: float = 15.0) -> dict:
    """Next `message` frame (with `text`, if given) pushed to a web chat visitor."""
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["type"] == "message" and (text is None or frame["text"] == text):
            return frame


async def webchat_customer(d, http, text: str):
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    while json.loads((await ws.receive(timeout=10)).data)["type"] != "hello":
        pass
    await ws.send_json({"type": "message", "text": text, "client_msg_id": str(uuid.uuid4())})
    return ws


def sent_to(fake, user_id: int, contains: str = ""):
    return lambda s: s["user_id"] == user_id and s["message_type"] == "private" and contains in s["text"]


def sent_texts(fake, user_id: int, among: list[str]) -> list[str]:
    """What the bot sent to `user_id`, leaving out what is not in `among` (welcome texts...)."""
    return [s["text"] for s in fake.sent if s["user_id"] == user_id and s["text"] in among]


# ---------------------------------------------------------------------- pure functions
def test_normalise_segments_and_cq_strings():
    arr = normalise([Seg.reply(7), Seg.at(BOT), Seg.text("hi "), Seg.at(123), Seg.face(1),
                     Seg.file("a.zip", file_id="/f1", file_size=9)], BOT)
    assert arr["reply_to"] == "7" and arr["text"] == "hi @123[表情]"
    assert arr["attachments"] == [{"type": "file", "name": "a.zip", "url": None, "size": 9, "file_id": "/f1"}]
    cq = normalise("[CQ:reply,id=9]看 &#91;图&#93;[CQ:image,file=x.jpg,url=https://m.example/x.jpg?a=1&amp;b=2]")
    assert cq["reply_to"] == "9" and cq["text"] == "看 [图]"
    assert cq["attachments"][0]["url"] == "https://m.example/x.jpg?a=1&b=2"
    assert normalise([Seg.file("发票.pdf")])["text"] == "[文件] 发票.pdf"


# ---------------------------------------------------------------------- customer side
async def test_reverse_ws_customer_round_trip(make_daemon, http):
    d = await make_daemon(channels={"webchat": {"kind": "webchat"}, "qq": qq_channel()}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    await wait_for(lambda: _connector(d, "qq", "running"), message="qq running")
    url = f"{d.ws_url}/onebot/qq/ws"

    # A wrong or missing access token, or another account, is refused.
    for token, self_id, status in (("wrong", BOT, 401), (None, BOT, 401), (TOKEN, 99999, 403)):
        bad = FakeOneBotReverse(url, token, self_id=self_id)
        with pytest.raises(OneBotConnectRefused) as exc:
            await bad.connect()
        assert exc.value.status == status
        await bad.stop()
    health = (await _health(d))["connectors"]["qq"]
    assert health["connected"] is False and health["online"] is False
    assert await alice.conversations() == []  # nothing stored
    by_query = FakeOneBotReverse(f"{url}?access_token={TOKEN}", None, self_id=BOT)
    await by_query.connect()  # the token may come as ?access_token= too
    assert by_query.connect_attempts == [101]
    await by_query.stop()
    await wait_for(lambda: _disconnected(d, "qq"), message="query-token connection closed")

    fake = await reverse_fake(d)
    health = (await _health(d))["connectors"]["qq"]
    assert health["self_id"] == str(BOT) and health["state"] == "running"

    first = await fake.inject_private_message(20001, "我的卡密没收到", nickname="买家小王")
    conv = await wait_for(lambda: conv_of(alice, "qq", "20001"), message="QQ conversation")
    assert conv["customer"]["name"] == "买家小王" and conv["assignee"] == "alice"
    cid = conv["id"]
    assert [m["text"] for m in await human_messages(alice, cid)] == ["我的卡密没收到"]

    fake.fail_next("send_private_msg", message="temporary failure")  # retried, sent once
    code, _ = await alice.reply(cid, "马上为您补发")
    assert code == 201
    sent = await fake.wait_for_sent(sent_to(fake, 20001, "马上为您补发"), timeout=10)
    assert sent["action"] == "send_private_msg" and sent["text"] == "马上为您补发"
    assert sent_texts(fake, 20001, ["马上为您补发"]) == ["马上为您补发"]

    # The same event again (OneBot re-sent it), the bot's own message, and a
    # message_sent echo: none of them is stored.
    await fake.inject_private_message(20001, "我的卡密没收到", message_id=first["message_id"])
    await fake.inject_private_message(BOT, "bot talking to itself")
    await fake.emit_event({"post_type": "message_sent", "message_type": "private", "self_id": BOT,
                           "user_id": BOT, "target_id": 20001, "message_id": 5555,
                           "message": [Seg.text("马上为您补发")], "sender": {"user_id": BOT}})
    # Image, face and a quote of the bot's reply, as an array message.  The image is
    # fetched from the OneBot host (whose address expires) and kept by kefu, typed by
    # its bytes (the host says image/jpeg, the bytes are a PNG).
    url = await fake.add_media("abc.jpg", PNG, "image/jpeg")
    await fake.inject_private_message(20001, [
        Seg.reply(sent["message_id"]), Seg.text("还是不行"), Seg.face(14),
        Seg.image(file="abc.jpg", url=url, file_size=len(PNG))])
    msgs = await wait_for(lambda: _n_messages(alice, cid, 3), message="image message")
    texts = [m["text"] for m in msgs]
    assert texts[:2] == ["我的卡密没收到", "马上为您补发"]
    assert "还是不行[表情]" in texts[2] and "马上为您补发" in texts[2]  # the quote is shown
    (image,) = msgs[2]["attachments"]
    assert image["type"] == "image/png" and image["name"] == "abc.jpg" and image["size"] == len(PNG)
    assert image["url"].startswith("/files/")
    async with http.get(d.url + image["url"]) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png" and await r.read() == PNG
    # An image alone still reads as something in the console, also when it is gone from the host.
    await fake.inject_private_message(20001, [Seg.image(file="b.png", url=fake.media_base_url + "/media/gone")])
    msgs = await wait_for(lambda: _n_messages(alice, cid, 4), message="image-only message")
    assert msgs[3]["text"] == "[图片]" and "url" not in msgs[3]["attachments"][0]
    assert "404" in msgs[3]["attachments"][0]["error"]
    assert len(await human_messages(alice, cid)) == 4  # nothing duplicated or looped back

    # Friend requests are accepted.
    await fake.inject_friend_request(20002, "买点卡")
    await fake.wait_for(lambda: fake.handled_requests, timeout=10)
    assert fake.handled_requests[0]["approve"] is True and fake.handled_requests[0]["user_id"] == 20002
    await fake.stop()
    await wait_for(lambda: _disconnected(d, "qq"), message="health shows the drop")


async def _n_messages(agent: Agent, cid: str, n: int):
    msgs = await human_messages(agent, cid)
    return msgs if len(msgs) >= n else None


async def test_forward_ws_cq_strings_reconnect_and_no_duplicates(make_daemon, http):
    fake = FakeOneBotForward(TOKEN, self_id=BOT, message_format="string")
    url = await fake.start()
    d = await make_daemon(channels={
        "qq": qq_channel(mode="forward", url=url),
        "qqbad": {"kind": "qq", "mode": "forward", "url": url, "access_token": "not-the-token"},
    }).start()
    bob = await Agent(d, http, "bob").login()
    await bob.presence("online")
    await fake.wait_connected(timeout=15)
    await wait_for(lambda: _health_ok(d, "qq"), message="qq connected")
    # kefu's own token is checked by the OneBot side: the wrong one is refused (403).
    await fake.wait_for(lambda: any(a["status"] == 403 for a in fake.connection_attempts), timeout=15)
    bad = (await _health(d))["connectors"]["qqbad"]
    assert bad["connected"] is False and "403" in bad["error"]
    assert all(a["headers"].get("Authorization") in (f"Bearer {TOKEN}", "Bearer not-the-token")
               for a in fake.connection_attempts)

    first = await fake.inject_private_message(30003, [Seg.text("付款失败 [订单] & 退款"),
                                                      Seg.file("发票.pdf", file_size=10)], nickname="老张")
    assert isinstance(first["message"], str)  # CQ-code string format
    conv = await wait_for(lambda: conv_of(bob, "qq", "30003"), message="QQ conversation")
    cid = conv["id"]
    msgs = await human_messages(bob, cid)
    assert msgs[0]["text"] == "付款失败 [订单] & 退款"
    assert msgs[0]["attachments"][0]["type"] == "application/pdf" and msgs[0]["attachments"][0]["name"] == "发票.pdf"

    code, _ = await bob.reply(cid, "请提供订单号")
    assert code == 201
    await fake.wait_for_sent(sent_to(fake, 30003, "请提供订单号"), timeout=10)

    # The connection drops mid-conversation; kefu reconnects by itself.
    await fake.drop_connections()
    await fake.wait_connected(timeout=15)
    await wait_for(lambda: _health_ok(d, "qq"), message="qq reconnected")
    await fake.inject_private_message(30003, [Seg.text("付款失败 [订单] & 退款")],
                                      message_id=first["message_id"])  # re-sent: ignored
    await fake.inject_private_message(30003, "订单号 A1001")
    await wait_for(lambda: _n_messages(bob, cid, 3), message="message after reconnect")
    code, _ = await bob.reply(cid, "已查到,正在处理")
    assert code == 201
    await fake.wait_for_sent(sent_to(fake, 30003, "已查到"), timeout=10)
    texts = [m["text"] for m in await human_messages(bob, cid)]
    assert texts == ["付款失败 [订单] & 退款", "请提供订单号", "订单号 A1001", "已查到,正在处理"]
    assert sent_texts(fake, 30003, texts) == ["请提供订单号", "已查到,正在处理"]
    await fake.stop()


async def test_offline_account_replies_wait_other_channels_unaffected(make_daemon, http):
    d = await make_daemon(channels={"webchat": {"kind": "webchat"}, "qq": qq_channel()}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    fake = await reverse_fake(d)
    await fake.inject_private_message(20001, "在吗")
    cid = (await wait_for(lambda: conv_of(alice, "qq", "20001"), message="QQ conversation"))["id"]

    await fake.set_online(False)
    await wait_for(lambda: _health_ok(d, "qq", online=False), message="health shows offline")
    code, _ = await alice.reply(cid, "在的,请稍等")
    assert code == 201
    # A web chat customer is served meanwhile.
    ws = await webchat_customer(d, http, "网页客户")
    wconv = await wait_for(lambda: _webchat_conv(alice), message="webchat conversation")
    code, _ = await alice.reply(wconv["id"], "网页这边马上处理")
    assert code == 201
    await ws_message(ws, "网页这边马上处理")
    assert not [s for s in fake.sent if "请稍等" in s["text"]]
    assert (await _health(d))["connectors"]["qq"]["state"] == "running"  # not a crash

    await fake.set_online(True)
    await fake.wait_for_sent(sent_to(fake, 20001, "在的,请稍等"), timeout=30)
    code, _ = await alice.reply(cid, "已处理")
    assert code == 201
    await fake.wait_for_sent(sent_to(fake, 20001, "已处理"), timeout=10)
    assert sent_texts(fake, 20001, ["在的,请稍等", "已处理"]) == ["在的,请稍等", "已处理"]
    await ws.close()
    await fake.stop()


async def _webchat_conv(agent: Agent):
    return next((c for c in await agent.conversations() if c["channel"] == "webchat"), None)


async def test_kefu_killed_mid_conversation_loses_and_duplicates_nothing(shared_redis, make_daemon, http):
    d = await make_daemon(redis_url=shared_redis, channels={"qq": qq_channel()}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    fake = await reverse_fake(d)
    first = await fake.inject_private_message(20001, "卡密无效")
    cid = (await wait_for(lambda: conv_of(alice, "qq", "20001"), message="QQ conversation"))["id"]
    code, _ = await alice.reply(cid, "请发截图")
    assert code == 201
    await fake.wait_for_sent(sent_to(fake, 20001, "请发截图"), timeout=10)

    # OneBot goes away; a reply waits in the outbound stream; kefu is killed.
    await fake.stop()
    await wait_for(lambda: _disconnected(d, "qq"), message="qq disconnected")
    code, _ = await alice.reply(cid, "收到,正在核实")
    assert code == 201
    d.kill()
    await d.start()
    await fake.start()
    await fake.wait_connected(timeout=15)
    # The waiting reply goes out once; the re-sent old event is ignored.
    await fake.wait_for_sent(sent_to(fake, 20001, "收到,正在核实"), timeout=30)
    await fake.inject_private_message(20001, "卡密无效", message_id=first["message_id"])
    await fake.inject_private_message(20001, [Seg.image(file="s.png", url=await fake.add_media("s.png", PNG, "image/png"))])
    alice = await Agent(d, http, "alice").login()
    msgs = await wait_for(lambda: _n_messages(alice, cid, 4), message="screenshot")
    assert [m["text"] for m in msgs] == ["卡密无效", "请发截图", "收到,正在核实", "[图片]"]
    code, _ = await alice.reply(cid, "已换新卡")
    assert code == 201
    await fake.wait_for_sent(sent_to(fake, 20001, "已换新卡"), timeout=10)
    expected = ["请发截图", "收到,正在核实", "已换新卡"]
    assert sent_texts(fake, 20001, expected) == expected
    await fake.stop()


# ---------------------------------------------------------------------- agents on QQ
TAG = re.compile(r"#([0-9a-f]{4,12})")


async def test_agents_answer_from_private_qq(make_daemon, http):
    # bob may see after-sales too: his refusals below are about ownership, not roles
    agents = [dict(a, qq_id=40001) if a["id"] == "alice" else
              dict(a, roles=["finance", "aftersales"]) if a["id"] == "bob" else a for a in DEFAULT_AGENTS]
    d = await make_daemon(agents=agents,
                          quick_replies=[{"name": "resent", "text": "{customer_name} 您好,卡密已补发"}],
                          channels={"webchat": {"kind": "webchat"},
                                    "qq": qq_channel(agents={"mode": "private"})}).start()
    alice = await Agent(d, http, "alice").login()
    bob = await Agent(d, http, "bob").login()
    await alice.presence("online")
    fake = await reverse_fake(d)

    # Bob links his QQ with a one-time code from the agent API.
    code, body = await bob.call("POST", "/api/link_code")
    assert code == 200
    await fake.inject_private_message(40002, f"/link {body['code']}")
    await fake.wait_for_sent(sent_to(fake, 40002, "Bob"), timeout=10)
    await fake.inject_private_message(40002, f"/link {body['code']}")  # single use
    await fake.wait_for_sent(sent_to(fake, 40002, "unknown or expired"), timeout=10)

    # A web chat conversation assigned to Alice is relayed to her QQ with a tag.
    ws = await webchat_customer(d, http, "我的卡密没收到")
    header = await fake.wait_for_sent(sent_to(fake, 40001, "我的卡密没收到"), timeout=15)
    tag = TAG.search(header["text"]).group(1)
    assert "webchat" in header["text"]
    cid = (await _webchat_conv(alice))["id"]
    assert (await alice.conversation(cid))["assignee"] == "alice"

    # Alice answers by quoting the relayed message...
    await fake.inject_private_message(40001, [Seg.reply(header["message_id"]), Seg.text("马上为您补发")])
    frame = await ws_message(ws, "马上为您补发")
    assert frame["sender"] == {"kind": "agent", "name": "Alice"}  # no trace of QQ
    # ... and with #tag text.
    await fake.inject_private_message(40001, f"#{tag} 请稍等一分钟")
    await ws_message(ws, "请稍等一分钟")
    texts = [m["text"] for m in await human_messages(alice, cid)]
    assert texts == ["我的卡密没收到", "马上为您补发", "请稍等一分钟"]  # the console's record

    # Bob may not answer Alice's customer: refused with the reason, in QQ.
    await fake.inject_private_message(40002, f"#{tag} 我来处理")
    refused = await fake.wait_for_sent(sent_to(fake, 40002, "owned by alice"), timeout=10)
    assert tag in refused["text"]
    await fake.inject_private_message(40002, f"#{tag} /claim")
    await fake.wait_for_sent(sent_to(fake, 40002, "owned by alice"), count=2, timeout=10)

    # Console replies and the customer's later messages show up in Alice's QQ.
    code, _ = await alice.reply(cid, "控制台回复")
    assert code == 201
    await ws_message(ws, "控制台回复")
    await fake.wait_for_sent(sent_to(fake, 40001, "Alice: 控制台回复"), timeout=10)
    await ws.send_json({"type": "message", "text": "还没到账", "client_msg_id": "later-1"})
    relayed = await fake.wait_for_sent(sent_to(fake, 40001, "还没到账"), timeout=10)
    assert relayed["text"].startswith(f"#{tag} ")

    # Commands: /who and /q quoting a relayed message, /close with the tag.
    await fake.inject_private_message(40001, [Seg.reply(relayed["message_id"]), Seg.text("/who")])
    who = await fake.wait_for_sent(sent_to(fake, 40001, "tier"), timeout=10)
    assert "webchat" in who["text"] and "还没到账" in who["text"]
    await fake.inject_private_message(40001, [Seg.reply(relayed["message_id"]), Seg.text("/q resent")])
    await fake.wait_for_sent(sent_to(fake, 40001, "needs customer_name"), timeout=10)  # never sent blank
    await fake.inject_private_message(40001, [Seg.reply(relayed["message_id"]),
                                              Seg.text("/q resent customer_name=王先生")])
    frame = await ws_message(ws)
    assert frame["text"] == "王先生 您好,卡密已补发" and frame["sender"]["name"] == "Alice"
    # Alice's own QQ replies are not echoed back to her.
    assert not [s for s in fake.sent if s["user_id"] == 40001
                and s["text"].startswith((f"#{tag} Alice: 马上为您补发", f"#{tag} Alice: 请稍等"))]

    # /transfer from QQ: refused while Bob is offline, then done; Bob's QQ (linked
    # with the code) takes the conversation over and closes it.
    await fake.inject_private_message(40001, f"#{tag} /transfer bob")
    await fake.wait_for_sent(sent_to(fake, 40001, "not online"), timeout=10)
    await bob.presence("online")
    await fake.inject_private_message(40001, f"#{tag} /transfer bob")
    await fake.wait_for_sent(sent_to(fake, 40001, "transferred to Bob"), timeout=10)
    bob_header = await fake.wait_for_sent(
        lambda s: s["user_id"] == 40002 and s["text"].startswith(f"#{tag} ·"), timeout=10)
    assert "还没到账" in bob_header["text"]  # the history comes along
    await fake.inject_private_message(40002, [Seg.reply(bob_header["message_id"]), Seg.text("财务已退款")])
    assert (await ws_message(ws, "财务已退款"))["sender"] == {"kind": "agent", "name": "Bob"}
    await fake.inject_private_message(40001, f"#{tag} 我再补充一句")  # no longer Alice's
    await fake.wait_for_sent(sent_to(fake, 40001, "owned by bob"), timeout=10)
    await fake.inject_private_message(40002, f"#{tag} /close")
    await fake.wait_for_sent(sent_to(fake, 40002, "closed"), timeout=10)
    assert (await alice.conversation(cid))["status"] == "closed"
    texts = [m["text"] for m in await human_messages(alice, cid) if m["sender"]["kind"] == "agent"]
    assert texts == ["马上为您补发", "请稍等一分钟", "控制台回复", texts[3], "财务已退款"]
    await ws.close()
    await fake.stop()


async def test_agents_group_answer_api_customer_and_qq_customer(make_daemon, http):
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    agents = [dict(a, qq_id={"alice": 40001, "bob": 40002}.get(a["id"])) for a in DEFAULT_AGENTS]
    agents[1]["roles"] = ["finance", "presales", "aftersales"]  # bob's refusal below is about ownership
    d = await make_daemon(agents=agents, channels={
        "site": {"kind": "api", "secret": SECRET, "callback_url": cb_url},
        "qq": qq_channel(agents={"mode": "group", "group_id": 50000})}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    fake = await reverse_fake(d)

    # A QQ customer: the conversation appears in the agents' group.
    await fake.inject_private_message(20009, "充值没到账", nickname="小李")
    header = await fake.wait_for(lambda: next((s for s in fake.sent if s["group_id"] == 50000
                                               and "充值没到账" in s["text"]), None), timeout=15)
    tag = TAG.search(header["text"]).group(1)
    await fake.inject_group_message(50000, 40001, [Seg.reply(header["message_id"]), Seg.text("正在查")])
    await fake.wait_for_sent(sent_to(fake, 20009, "正在查"), timeout=10)
    # Team chatter in the group is left alone; Bob's answer is refused.
    await fake.inject_group_message(50000, 40002, "午饭吃什么")
    await fake.inject_group_message(50000, 40002, f"#{tag} 我来")
    await fake.wait_for(lambda: any(s["group_id"] == 50000 and "owned by alice" in s["text"]
                                    for s in fake.sent), timeout=10)
    assert not any("午饭" in s["text"] or s["text"] == "我来" for s in fake.sent)

    # An API (站内信) customer answered from the group with #tag.
    from connectors.api import sign
    body = json.dumps({"customer_id": "u77", "message_id": "m-77", "text": "卡密无效"}).encode()
    async with http.post(d.url + "/api/channels/site/inbound", data=body,
                         headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
        assert r.status == 202
    header2 = await fake.wait_for(lambda: next((s for s in fake.sent if s["group_id"] == 50000
                                                and "卡密无效" in s["text"]), None), timeout=15)
    tag2 = TAG.search(header2["text"]).group(1)
    assert tag2 != tag
    await fake.inject_group_message(50000, 40001, f"#{tag2} 已为您更换")
    await wait_for(lambda: [m for m in cb.received if m["text"] == "已为您更换"], message="API callback")
    cb_msg = next(m for m in cb.received if m["text"] == "已为您更换")
    assert cb_msg["customer_id"] == "u77"

    # An SLA reminder for a relayed conversation reaches the group too.
    import redis.asyncio as aioredis
    r = aioredis.Redis(unix_socket_path=str(d.workdir / "data" / "redis" / "redis.sock"))
    cid2 = next(c["id"] for c in await alice.conversations() if c["channel"] == "site")
    await r.publish(d.config["redis"]["prefix"] + "events", json.dumps(
        {"type": "reminder", "conversation_id": cid2, "agent": "alice", "waiting_seconds": 300}))
    await r.aclose()
    await fake.wait_for(lambda: any(s["group_id"] == 50000 and f"#{tag2}" in s["text"] and "5 min" in s["text"]
                                    for s in fake.sent), timeout=10)
    await fake.stop()
    await cb.stop()


async def test_two_processes_one_onebot_connection(shared_redis, make_daemon, http):
    """Reverse mode: OneBot dials one kefu process; replies another process consumes
    go out through it at once (not after the stream's idle claim)."""
    common = {"redis": {"url": shared_redis, "prefix": f"qqmp{uuid.uuid4().hex[:6]}:"},
              "bus": {"claim_idle": 120}, "channels": {"qq": qq_channel()}}
    a = await make_daemon("a", **common).start()
    b = await make_daemon("b", **common).start()
    alice_b = await Agent(b, http, "alice").login()
    await alice_b.presence("online")
    fake = await reverse_fake(a)  # connected to a only
    await wait_for(lambda: _remote(b), message="b sees a's connection")
    await fake.inject_private_message(20001, "两台服务器")
    cid = (await wait_for(lambda: conv_of(alice_b, "qq", "20001"), message="conversation"))["id"]
    texts = [f"回复 {i}" for i in range(6)]
    for t in texts:
        code, _ = await alice_b.reply(cid, t)
        assert code == 201
    # Each once (two consumers share the stream, so order across them is not promised).
    await fake.wait_for(lambda: sorted(sent_texts(fake, 20001, texts)) == texts, timeout=15)
    await fake.stop()


async def _remote(d) -> bool:
    c = (await _health(d))["connectors"]["qq"]
    return bool(c.get("via_other_process")) and c["online"] is True and not c["connected"]


async def test_reverse_split_event_and_api_connections(make_daemon, http):
    """OneBot may open an Event-only and an API-only connection instead of one Universal."""
    d = await make_daemon(channels={"qq": qq_channel()}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    await wait_for(lambda: _connector(d, "qq", "running"), message="qq running")
    url = f"{d.ws_url}/onebot/qq/ws"
    events = FakeOneBotReverse(url, TOKEN, self_id=BOT, role="Event")
    api = FakeOneBotReverse(url, TOKEN, self_id=BOT, role="API")
    await events.connect()
    await api.connect()
    await wait_for(lambda: _health_ok(d, "qq"), message="qq connected")
    await events.inject_private_message(20005, "分开的连接")
    cid = (await wait_for(lambda: conv_of(alice, "qq", "20005"), message="conversation"))["id"]
    code, _ = await alice.reply(cid, "收到")
    assert code == 201
    await api.wait_for_sent(sent_to(api, 20005, "收到"), timeout=10)
    assert not events.actions  # actions never go to the event-only connection
    await events.stop()
    await api.stop()


async def test_a_reply_qq_keeps_refusing_is_parked_after_growing_waits(make_daemon, http):
    """OneBot refuses one reply again and again while the account is online: each failure
    is logged with a longer wait before the next try, then the reply is parked (kept,
    counted, listed) and the customer's next reply goes out."""
    d = await make_daemon(channels={"qq": qq_channel()},
                          supervisor={"delivery_attempts": 4, "delivery_retry_initial": 0.2,
                                      "delivery_retry_max": 5}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    fake = await reverse_fake(d)
    await fake.inject_private_message(20001, "在吗")
    cid = (await wait_for(lambda: conv_of(alice, "qq", "20001"), message="QQ conversation"))["id"]
    await fake.wait_for(lambda: fake.sent, timeout=10)  # kefu's welcome is out
    fake.fail_next("send_private_msg", retcode=1200, message="消息被拒收", times=4)
    code, refused = await alice.reply(cid, "这条会被拒收")
    assert code == 201
    parked = await wait_for(lambda: _health_parked(d), 30, message="the refused reply parked")
    assert parked == 1
    failures = [r for r in d.log_records("delivery failed, will retry") if r["message_id"] == refused["id"]]
    assert [r["retry_in"] for r in failures] == [0.2, 0.4, 0.8] and all("1200" in r["error"] for r in failures)
    (gave_up,) = d.log_records("reply parked: the platform refuses it")
    assert gave_up["message_id"] == refused["id"] and gave_up["attempts"] == 4
    code, _ = await alice.reply(cid, "换个说法")
    assert code == 201
    await fake.wait_for_sent(sent_to(fake, 20001, "换个说法"), timeout=10)
    assert not [s for s in fake.sent if "拒收" in s["text"]]
    await fake.stop()


async def _health_parked(d) -> int:
    return (await _health(d))["parked"]


async def test_stopping_with_qq_connected_waits_for_nothing(make_daemon, http):
    """SIGTERM while OneBot is connected (sending heartbeats, and dialling again at once
    when kefu closes the socket): the connector stops at once — never cut off by the
    supervisor's stop timeout — and kefu exits 0.  Three stops, each at another moment
    of kefu's own one-second rounds."""
    d = make_daemon(channels={"qq": qq_channel()}, bus={"block_ms": 1000})
    for beats in (3, 4, 5):
        await d.start()
        fake = await reverse_fake(d, heartbeat_interval=370)
        await fake.wait_for(lambda: len([e for e in fake.events if e.get("meta_event_type") == "heartbeat"])
                            >= beats, timeout=10)
        assert await asyncio.to_thread(d.stop) == 0  # OneBot goes on meanwhile
        await fake.stop()
        assert not d.log_records("connector stop failed"), beats
    assert len(d.log_records("stopped")) == 3
