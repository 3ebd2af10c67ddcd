"""Telegram, end to end: a real kefu daemon against the fake Bot API (tests/fakes/telegram_api.py).

Customers write to the bot (long polling or webhook); agents answer from the
console, or from Telegram itself (private chat with the bot, or a forum topic
per conversation in the agents' supergroup).  Nothing sleeps to synchronise:
every step waits for a condition.
"""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from connectors.api import sign
from tests.callback_server import CallbackServer
from tests.fakes.telegram_api import FakeTelegram, make_user
from tests.kefu_harness import DEFAULT_AGENTS, Agent, wait_for

TOKEN = "123456:TEST-TOKEN"
CUSTOMER = 777001
ALICE_TG = 5001
BOB_TG = 5002
FORUM = -1001234567890
SECRET = "site-secret"
T = 15.0

AGENTS = [dict(a) for a in DEFAULT_AGENTS]
AGENTS[0]["telegram_id"] = ALICE_TG  # alice is linked in config; bob links with a code


@pytest.fixture
async def tg():
    fake = FakeTelegram(TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def callback():
    cb = CallbackServer(SECRET)
    url = await cb.start()
    cb.url = url
    yield cb
    await cb.stop()


def tg_channel(fake: FakeTelegram, **kw) -> dict:
    return {"kind": "telegram", "token": TOKEN, "api_base": fake.url, **kw}


def sent_to(fake: FakeTelegram, chat, thread=None) -> list:
    return [m for m in fake.sent if m.chat_id == chat and (thread is None or m.thread_id == thread)]


async def post_site(http, d, customer: str, mid: str, text: str, name: str = "") -> None:
    body = json.dumps({"customer_id": customer, "message_id": mid, "text": text, "name": name}).encode()
    async with http.post(d.url + "/api/channels/site/inbound", data=body,
                         headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
        assert r.status == 202, await r.text()


async def one_conversation(agent: Agent, channel: str) -> dict:
    async def find():
        convs = [c for c in await agent.conversations("all") if c["channel"] == channel]
        return convs[0] if convs else None
    return await wait_for(find, T, message=f"a conversation on {channel}")


async def messages(agent: Agent, cid: str) -> list[dict]:
    return (await agent.conversation(cid))["messages"]


async def health(http, d) -> dict:
    async with http.get(d.url + "/healthz") as r:
        return (await r.json())["connectors"]["tg"]


async def _eq(coro, expected):
    return (await coro) == expected


# ---------------------------------------------------------------------- customer side
async def test_customer_round_trip_split_429_attachments_and_welcome(make_daemon, http, tg):
    d = await make_daemon(channels={"tg": tg_channel(tg)}, agents=AGENTS,
                          web={"max_text_length": 12000}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")

    # /start opens the conversation; the router's welcome reaches the customer on Telegram.
    tg.inject_private_message(CUSTOMER, "/start", from_user=make_user(CUSTOMER, "张", last_name="三"))
    welcome = await tg.wait_for_sent(lambda m: m.chat_id == CUSTOMER, timeout=T)
    assert welcome.method == "sendMessage" and welcome.text

    tg.inject_private_message(CUSTOMER, "我的卡密没收到",
                              from_user=make_user(CUSTOMER, "张", last_name="三", username="zs"))
    conv = await one_conversation(alice, "tg")
    cid = conv["id"]
    assert conv["customer"]["id"] == str(CUSTOMER) and conv["customer"]["name"] == "张 三"
    assert conv["assignee"] == "alice"

    async def customer_texts():
        return [m["text"] for m in await messages(alice, cid) if m["sender"]["kind"] == "customer"]
    assert await wait_for(lambda: _eq(customer_texts(), ["/start", "我的卡密没收到"]), T)
    welcome_msg = next(m for m in await messages(alice, cid) if m["sender"]["kind"] == "bot")
    assert welcome_msg["text"] == welcome.text  # the record is the same on both sides

    code, _ = await alice.reply(cid, "马上为您补发")
    assert code == 201
    out = await tg.wait_for_sent(lambda m: m.chat_id == CUSTOMER and m.text == "马上为您补发", timeout=T)
    assert out.method == "sendMessage"

    # Longer than 4096: split at paragraph boundaries, nothing lost.
    paragraphs = [f"第{i}段。" + "卡密补发说明 " * 220 for i in range(1, 7)]
    long_text = "\n\n".join(paragraphs)
    assert len(long_text) > 2 * 4096
    code, _ = await alice.reply(cid, long_text)
    assert code == 201
    await tg.wait_for_sent(lambda m: m.chat_id == CUSTOMER and "第6段" in m.text, timeout=T)
    parts = [m.text for m in sent_to(tg, CUSTOMER) if m.text.startswith("第")]
    assert len(parts) >= 3 and all(len(p) <= 4096 for p in parts)
    assert all(p.startswith("第") and p.endswith("说明") for p in parts)  # cut between paragraphs
    assert "".join("".join(parts).split()) == "".join(long_text.split())

    # 429 with retry_after: delayed, then delivered exactly once; the wait was respected.
    tg.fail_next("sendMessage", 429, retry_after=1, chat_id=CUSTOMER)
    before = len(tg.sent)
    code, _ = await alice.reply(cid, "请稍等")
    assert code == 201
    await tg.wait_for_sent(lambda m: m.text == "请稍等", timeout=T)
    assert [m.text for m in tg.sent[before:]] == ["请稍等"]
    assert any(r.get("status") == 429 for r in tg.requests)
    assert [v for v in tg.rate_violations if v.kind == "retry_after"] == []

    # Photos and documents arrive as attachments kefu serves itself.
    tg.inject_photo(CUSTOMER, data=b"\xff\xd8\xff\xe0screenshot-bytes", caption="截图")
    pdf = b"%PDF-1.4 order receipt"
    tg.inject_document(CUSTOMER, pdf, file_name="order.pdf", mime_type="application/pdf")

    async def with_files():
        ms = [m for m in await messages(alice, cid) if m["attachments"]]
        return ms if len(ms) == 2 else None
    photo_msg, doc_msg = await wait_for(with_files, T, message="photo and document")
    assert photo_msg["text"] == "截图" and photo_msg["attachments"][0]["type"] == "image/jpeg"
    doc = doc_msg["attachments"][0]
    assert doc["name"] == "order.pdf" and doc["type"] == "application/pdf"
    async with http.get(d.url + doc["url"]) as r:
        assert r.status == 200 and await r.read() == pdf
        assert "attachment" in r.headers["Content-Disposition"]
    async with http.get(d.url + photo_msg["attachments"][0]["url"]) as r:
        assert r.status == 200 and await r.read() == b"\xff\xd8\xff\xe0screenshot-bytes"
        assert r.headers["Content-Type"] == "image/jpeg"

    h = await health(http, d)
    assert h["state"] == "running" and h["mode"] == "polling" and h["leader"] is True
    assert h["polling"] is True and h["lease_holder"]
    assert not any(r.get("status") == 409 for r in tg.requests)


async def test_webhook_secret_checked_and_redelivery_stored_once(make_daemon, http, tg):
    d = make_daemon(channels={"tg": tg_channel(tg, mode="webhook", webhook_secret="hook-secret-1")},
                    agents=AGENTS)
    d.config["channels"]["tg"]["public_url"] = d.url
    await d.start()
    await tg.wait_for(lambda: tg.bot().webhook, timeout=T)
    assert tg.bot().webhook["url"] == f"{d.url}/telegram/tg/webhook"
    assert tg.bot().webhook["secret_token"] == "hook-secret-1"
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")

    # A forged update (wrong or missing secret) is refused and nothing is stored.
    forged = {"update_id": 900001, "message": {
        "message_id": 1, "date": int(time.time()), "chat": {"id": 31337, "type": "private", "first_name": "M"},
        "from": make_user(31337, "Mallory"), "text": "refund me"}}
    for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}):
        async with http.post(d.url + "/telegram/tg/webhook", json=forged, headers=headers) as r:
            assert r.status == 401 and "error" in await r.json()

    # The real thing, delivered by the fake Telegram with the secret.
    tg.inject_private_message(CUSTOMER, "hello, where is my key?")
    conv = await one_conversation(alice, "tg")
    assert conv["customer"]["id"] == str(CUSTOMER)
    assert tg.bot().webhook_deliveries[-1]["status"] == 200
    # Telegram re-delivering the same update (no 2xx seen) stores it once.
    update = tg.bot().webhook_deliveries[-1]["update"]
    async with http.post(d.url + "/telegram/tg/webhook", json=update,
                         headers={"X-Telegram-Bot-Api-Secret-Token": "hook-secret-1"}) as r:
        assert r.status == 200
    code, _ = await alice.reply(conv["id"], "Sent again, please check your mail")
    assert code == 201
    await tg.wait_for_sent(lambda m: m.text == "Sent again, please check your mail", timeout=T)
    msgs = await messages(alice, conv["id"])
    assert [m["text"] for m in msgs if m["sender"]["kind"] == "customer"] == ["hello, where is my key?"]
    assert all(c["customer"]["id"] != "31337" for c in await alice.conversations("all"))
    assert not any(r["method"].lower() == "getupdates" for r in tg.requests)  # webhook mode never polls
    h = await health(http, d)
    assert h["mode"] == "webhook" and h["state"] == "running"


async def test_replies_to_one_chat_are_paced_never_a_429(make_daemon, http):
    """Telegram allows about one message a second per chat.  A fake that refuses a second
    message within the second (429, no burst allowance) gets ten replies in a row, all
    accepted at the first try, in order."""
    strict = FakeTelegram(TOKEN, enforce_rate_limits=True, private_burst=1)
    await strict.start()
    try:
        d = await make_daemon(channels={"tg": tg_channel(strict)}, agents=AGENTS).start()
        alice = await Agent(d, http, "alice").login()
        await alice.presence("online")
        strict.inject_private_message(CUSTOMER, "在吗")
        cid = (await one_conversation(alice, "tg"))["id"]
        texts = [f"回复 {i}" for i in range(10)]
        for text in texts:
            assert (await alice.reply(cid, text))[0] == 201
        await strict.wait_for(lambda: [m.text for m in sent_to(strict, CUSTOMER) if m.text in texts] == texts,
                              timeout=30)
        assert not [r for r in strict.requests if r.get("status") == 429]
        assert strict.rate_violations == []
    finally:
        await strict.stop()


# ---------------------------------------------------------------------- agents on Telegram
async def test_private_mode_agents_answer_by_reply(make_daemon, http, tg, callback):
    d = await make_daemon(channels={
        "site": {"kind": "api", "secret": SECRET, "callback_url": callback.url},
        "tg": tg_channel(tg, agents={"mode": "private"})},
        agents=AGENTS, quick_replies=[{"name": "thanks", "text": "感谢您的耐心，{customer_name}"}]).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    alice_user = make_user(ALICE_TG, "Alice")

    await post_site(http, d, "u1", "s1", "你好，卡密显示已使用", name="李四")
    conv = await one_conversation(alice, "site")
    cid = conv["id"]
    assert conv["assignee"] == "alice"
    header = await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and "🆕" in m.text, timeout=T)
    assert f"#{cid[-6:]}" in header.text and "site" in header.text and "李四" in header.text
    assert "卡密显示已使用" in header.text  # recent history under the header

    # The agent answers by replying to the relayed message: the customer gets it on their channel.
    tg.inject_private_message(ALICE_TG, "请提供订单号", from_user=alice_user, reply_to=header.message_id)
    await wait_for(lambda: [m for m in callback.received if m["text"] == "请提供订单号"], T,
                   message="reply from Telegram at the shop's callback")
    got = next(m for m in callback.received if m["text"] == "请提供订单号")
    assert got == {"customer_id": "u1", "conversation_id": cid, "message_id": got["message_id"],
                   "text": "请提供订单号"}  # nothing tells the customer which app was used
    mine = [m for m in await messages(alice, cid) if m["text"] == "请提供订单号"]
    assert len(mine) == 1 and mine[0]["sender"]["id"] == "alice"  # in the console history too

    # Later customer messages and console replies reach the agent's chat.
    await post_site(http, d, "u1", "s2", "订单号是 A20240501123456", name="李四")
    later = await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and "A20240501123456" in m.text, timeout=T)
    code, _ = await alice.reply(cid, "已为您退款")
    assert code == 201
    await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and "已为您退款" in m.text and "Alice" in m.text,
                           timeout=T)
    # The Telegram reply was not echoed back to its author.
    assert not [m for m in sent_to(tg, ALICE_TG) if "请提供订单号" in (m.text or "")]

    # Commands as replies: /who and /q.
    tg.inject_private_message(ALICE_TG, "/who", from_user=alice_user, reply_to=later.message_id)
    who = await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and "tier" in m.text, timeout=T)
    assert "李四" in who.text and "site" in who.text and "A20240501123456" in who.text
    tg.inject_private_message(ALICE_TG, "/q thanks", from_user=alice_user, reply_to=who.message_id)
    await wait_for(lambda: [m for m in callback.received if m["text"] == "感谢您的耐心，李四"], T,
                   message="quick reply from Telegram")

    # Bob links his account with a one-time code; alice transfers the conversation to him.
    bob = await Agent(d, http, "bob").login()
    await bob.presence("online")
    code, body = await bob.call("POST", "/api/link_code")
    assert code == 200
    tg.inject_private_message(BOB_TG, f"/link {body['code']}", from_user=make_user(BOB_TG, "Bob"))
    await tg.wait_for_sent(lambda m: m.chat_id == BOB_TG and "Linked" in m.text, timeout=T)
    tg.inject_private_message(ALICE_TG, "/transfer bob", from_user=alice_user, reply_to=later.message_id)
    await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and "✔" in m.text and "Bob" in m.text, timeout=T)
    bob_header = await tg.wait_for_sent(lambda m: m.chat_id == BOB_TG and "🆕" in m.text, timeout=T)
    assert f"#{cid[-6:]}" in bob_header.text

    # Alice's reply now is refused with the reason; the customer never gets it.
    tg.inject_private_message(ALICE_TG, "我再补充一句", from_user=alice_user, reply_to=later.message_id)
    refused = await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and "owned by bob" in m.text, timeout=T)
    assert refused.reply_to_message_id is not None
    tg.inject_private_message(BOB_TG, "我是财务，退款已到账", from_user=make_user(BOB_TG, "Bob"),
                              reply_to=bob_header.message_id)
    await wait_for(lambda: [m for m in callback.received if m["text"] == "我是财务，退款已到账"], T,
                   message="bob's reply")
    assert not [m for m in callback.received if m["text"] == "我再补充一句"]
    tg.inject_private_message(BOB_TG, "/close", from_user=make_user(BOB_TG, "Bob"), reply_to=bob_header.message_id)
    await wait_for(lambda: _eq(_status(alice, cid), "closed"), T, message="closed from Telegram")
    assert tg.rate_violations == []


async def _status(agent: Agent, cid: str) -> str:
    return (await agent.conversation(cid))["status"]


def topic_texts(fake: FakeTelegram, thread: int) -> str:
    return "\n".join(m.text or "" for m in sent_to(fake, FORUM, thread))


async def test_team_mode_topic_per_conversation(make_daemon, http, tg, callback):
    tg.add_forum(FORUM, "客服组")
    agents = [dict(a) for a in AGENTS]
    agents[1]["telegram_id"] = BOB_TG
    agents[1]["roles"] = ["finance", "presales", "aftersales"]  # bob may see it: his refusal below is about ownership
    d = await make_daemon(channels={
        "site": {"kind": "api", "secret": SECRET, "callback_url": callback.url},
        "tg": tg_channel(tg, agents={"mode": "team", "group_id": FORUM})}, agents=agents).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    alice_user, bob_user = make_user(ALICE_TG, "Alice"), make_user(BOB_TG, "Bob")

    await post_site(http, d, "u7", "t1", "你好，充值没到账", name="王五")
    conv = await one_conversation(alice, "site")
    cid = conv["id"]
    await tg.wait_for(lambda: tg.topics(FORUM), timeout=T)
    (thread,) = tg.topics(FORUM)
    assert f"#{cid[-6:]}" in tg.topics(FORUM)[thread]["name"]
    header = await tg.wait_for_sent(lambda m: m.thread_id == thread and "🆕" in m.text, timeout=T)
    assert "王五" in header.text and "充值没到账" in header.text

    # A message in the topic is the reply (the topic-created quirk is no obstacle).
    tg.inject_topic_message(FORUM, thread, "请稍等，我查一下", from_user=alice_user)
    await wait_for(lambda: [m for m in callback.received if m["text"] == "请稍等，我查一下"], T, message="reply")
    assert (await alice.conversation(cid))["assignee"] == "alice"

    # A second agent's reply to alice's conversation is refused, in the topic, with the reason.
    tg.inject_topic_message(FORUM, thread, "我来回答", from_user=bob_user)
    refused = await tg.wait_for_sent(lambda m: m.thread_id == thread and "owned by alice" in m.text, timeout=T)
    assert refused.reply_to_message_id is not None
    assert not [m for m in callback.received if m["text"] == "我来回答"]

    # Console replies and later customer messages show up in the topic.
    code, _ = await alice.reply(cid, "已经到账了")
    assert code == 201
    await tg.wait_for_sent(lambda m: m.thread_id == thread and "已经到账了" in m.text, timeout=T)
    before = len(sent_to(tg, FORUM, thread))
    await asyncio.gather(*(post_site(http, d, "u7", f"burst{i}", f"补充信息 {i}") for i in range(12)))
    await tg.wait_for(lambda: all(f"补充信息 {i}" in topic_texts(tg, thread) for i in range(12)), timeout=T)
    assert len(sent_to(tg, FORUM, thread)) - before < 12  # merged, not one message each
    assert not [m for m in sent_to(tg, FORUM) if "请稍等，我查一下" in (m.text or "")]  # no echo

    # The topic is deleted by an admin: the next relay opens a new one and maps it.
    tg.delete_topic(FORUM, thread)
    await post_site(http, d, "u7", "t9", "还在吗？")
    await tg.wait_for(lambda: len(tg.topics(FORUM)) == 2, timeout=T)
    new_thread = max(tg.topics(FORUM))
    await tg.wait_for_sent(lambda m: m.thread_id == new_thread and "还在吗" in m.text, timeout=T)
    tg.inject_topic_message(FORUM, new_thread, "在的", from_user=alice_user)
    await wait_for(lambda: [m for m in callback.received if m["text"] == "在的"], T, message="reply in new topic")

    # A Telegram customer gets a topic too, and the answer from the topic reaches them on Telegram.
    tg.inject_private_message(CUSTOMER, "where is my card key?", from_user=make_user(CUSTOMER, "Tom"))
    tconv = await one_conversation(alice, "tg")
    await tg.wait_for(lambda: len(tg.topics(FORUM)) == 3, timeout=T)
    tthread = max(tg.topics(FORUM))
    await tg.wait_for_sent(lambda m: m.thread_id == tthread and "where is my card key" in m.text, timeout=T)
    tg.inject_topic_message(FORUM, tthread, "/claim", from_user=alice_user)
    tg.inject_topic_message(FORUM, tthread, "It is in your mailbox", from_user=alice_user)
    await tg.wait_for_sent(lambda m: m.chat_id == CUSTOMER and m.text == "It is in your mailbox", timeout=T)
    assert (await alice.conversation(tconv["id"]))["assignee"] == "alice"
    # The customer's photo is shown in the topic itself (re-sent by file_id, not as a link).
    tg.inject_photo(CUSTOMER, data=b"\xff\xd8\xff\xe0proof", caption="payment proof")
    relayed = await tg.wait_for_sent(lambda m: m.thread_id == tthread and m.method == "sendPhoto", timeout=T)
    assert relayed.files[0]["data"] == b"\xff\xd8\xff\xe0proof"
    assert "payment proof" in topic_texts(tg, tthread)
    assert [v for v in tg.rate_violations if v.kind != "private"] == []


async def test_team_group_gets_only_its_roles_masked(make_daemon, http, tg, callback):
    tg.add_forum(FORUM, "售前组")
    d = await make_daemon(channels={
        "site": {"kind": "api", "secret": SECRET, "callback_url": callback.url},
        "tg": tg_channel(tg, agents={"mode": "team", "group_id": FORUM, "roles": ["presales"]})},
        agents=AGENTS).start()
    sue = await Agent(d, http, "sue").login()
    alice_user = make_user(ALICE_TG, "Alice")

    await post_site(http, d, "payer", "f1", "支付失败了", name="13812345678")  # finance: no topic
    await post_site(http, d, "buyer", "p1", "多少钱？卡号 6222021234567890128", name="赵六")
    await tg.wait_for(lambda: len(tg.topics(FORUM)) == 1, timeout=T)
    (thread,) = tg.topics(FORUM)
    header = await tg.wait_for_sent(lambda m: m.thread_id == thread and "🆕" in m.text, timeout=T)
    assert "赵六" in header.text and "6222********0128" in header.text and "6222021234567890128" not in header.text
    convs = {c["customer"]["id"]: c for c in await sue.conversations()}
    assert convs["payer"]["role"] == "finance" and len(tg.topics(FORUM)) == 1

    # Handed to finance from the topic: announced once, then nothing more of it there.
    tg.inject_topic_message(FORUM, thread, "/transfer finance", from_user=alice_user)
    await tg.wait_for_sent(lambda m: m.thread_id == thread and "no longer relayed here" in m.text, timeout=T)
    await post_site(http, d, "buyer", "p2", "还在吗")
    tg.inject_topic_message(FORUM, thread, "/who", from_user=alice_user)
    await tg.wait_for_sent(lambda m: m.thread_id == thread and "role you do not have" in m.text, timeout=T)
    await post_site(http, d, "third", "p3", "有货吗")  # after 还在吗 in the stream
    await tg.wait_for(lambda: len(tg.topics(FORUM)) == 2, timeout=T)
    await tg.wait_for_sent(lambda m: m.thread_id == max(tg.topics(FORUM)) and "有货吗" in m.text, timeout=T)
    assert "还在吗" not in topic_texts(tg, thread)
    assert not [m for m in sent_to(tg, FORUM) if "13812345678" in (m.text or "") or "支付失败" in (m.text or "")]


# ---------------------------------------------------------------------- several processes, crashes
async def test_one_poller_per_bot_across_processes(make_daemon, http, tg, shared_redis):
    cfg = dict(channels={"tg": tg_channel(tg)}, agents=AGENTS)
    d1 = await make_daemon("k1", redis_url=shared_redis, **cfg).start()
    d2 = make_daemon("k2", redis_url=shared_redis, **cfg)
    d2.config["redis"]["prefix"] = d1.config["redis"]["prefix"]
    await d2.start()
    alice = await Agent(d2, http, "alice").login()
    await alice.presence("online")

    async def leaders():
        hs = [await health(http, d) for d in (d1, d2)]
        return hs if sum(h["leader"] for h in hs) == 1 and all(h["lease_holder"] for h in hs) else None
    hs = await wait_for(leaders, T, message="exactly one lease holder")
    assert hs[0]["lease_holder"] == hs[1]["lease_holder"]
    leader, other = (d1, d2) if hs[0]["leader"] else (d2, d1)

    for i in range(5):
        tg.inject_private_message(CUSTOMER + i, f"question {i}")
    await wait_for(lambda: _count(alice, "tg", 5), T, message="5 conversations")

    # The polling process dies: the other one takes over, still never polling concurrently.
    leader.kill()
    for i in range(5, 8):
        tg.inject_private_message(CUSTOMER + i, f"question {i}")
    survivor = await Agent(other, http, "alice").login()
    await wait_for(lambda: _count(survivor, "tg", 8), 20.0, message="taken over")
    assert (await health(http, other))["leader"] is True
    convs = [c for c in await survivor.conversations("all") if c["channel"] == "tg"]
    for c in convs:
        msgs = [m for m in await messages(survivor, c["id"]) if m["sender"]["kind"] == "customer"]
        assert len(msgs) == 1  # nothing stored twice
    assert not [r for r in tg.requests if r.get("status") == 409]
    assert other.stop() == 0  # while the shared Redis is still there


async def _count(agent: Agent, channel: str, n: int) -> bool:
    return len([c for c in await agent.conversations("all") if c["channel"] == channel]) >= n


async def test_killed_mid_conversation_loses_and_duplicates_nothing(make_daemon, http, tg):
    d = await make_daemon(channels={"tg": tg_channel(tg)}, agents=AGENTS).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    tg.inject_private_message(CUSTOMER, "m0")
    conv = await one_conversation(alice, "tg")
    cid = conv["id"]
    code, _ = await alice.reply(cid, "r-before")
    assert code == 201
    await tg.wait_for_sent(lambda m: m.text == "r-before", timeout=T)

    # Telegram is failing when the next reply is queued; customers keep writing; kill -9.
    tg.fail_next("sendMessage", status=502, times=10_000)
    code, _ = await alice.reply(cid, "r-pending")
    assert code == 201
    for i in range(1, 21):
        tg.inject_private_message(CUSTOMER, f"m{i}")

    async def stored_some():
        return len(await _customer_texts(alice, cid)) >= 6
    await wait_for(stored_some, T, message="some messages stored before the kill")
    d.kill()
    for i in range(21, 26):
        tg.inject_private_message(CUSTOMER, f"m{i}")
    tg._failures.clear()
    await d.start()
    alice = await Agent(d, http, "alice").login()
    expected = [f"m{i}" for i in range(26)]
    await wait_for(lambda: _eq(_customer_texts(alice, cid), expected), T, message="every message once")
    await tg.wait_for_sent(lambda m: m.text == "r-pending", timeout=T)
    code, _ = await alice.reply(cid, "r-after")
    assert code == 201
    await tg.wait_for_sent(lambda m: m.text == "r-after", timeout=T)
    texts = [m.text for m in sent_to(tg, CUSTOMER)]
    for t in ("r-before", "r-pending", "r-after"):
        assert texts.count(t) == 1, (t, texts)


async def _customer_texts(agent: Agent, cid: str) -> list[str]:
    return [m["text"] for m in await messages(agent, cid) if m["sender"]["kind"] == "customer"]


# ---------------------------------------------------------------------- pure helpers
def test_agent_commands_are_parsed():
    from connectors.telegram.agents import parse_command

    assert parse_command("/transfer finance") == ("transfer", "finance")
    assert parse_command("/claim@kefu_bot") == ("claim", "")
    assert parse_command("/q thanks") == ("q", "thanks")
    assert parse_command("hello /claim") == (None, "hello /claim")
