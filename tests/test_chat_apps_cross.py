"""Issue 5 across apps: a QQ customer answered by an agent on Telegram (private chat
and forum topic), and a Telegram customer answered by an agent on QQ.  Whatever app
the agent used, the reply leaves through the customer's own channel."""
from __future__ import annotations

import pytest

from tests.fakes.onebot import Seg
from tests.fakes.telegram_api import make_user
from tests.kefu_harness import DEFAULT_AGENTS, Agent, wait_for
from tests.test_qq import qq_channel, reverse_fake
from tests.test_telegram import tg, tg_channel  # noqa: F401  (tg is a fixture)

ALICE_TG, ALICE_QQ = 5001, 40001
QQ_CUSTOMER, TG_CUSTOMER = 20001, 777002
FORUM = -1009876543210
T = 15.0


def agents() -> list[dict]:
    out = [dict(a) for a in DEFAULT_AGENTS]
    out[0].update(telegram_id=ALICE_TG, qq_id=ALICE_QQ)
    return out


def qq_sent(fake, user_id: int, text: str):
    return lambda s: s["user_id"] == user_id and s["message_type"] == "private" and s["text"] == text


@pytest.mark.parametrize("mode", ["private", "team"])
async def test_qq_customer_answered_from_telegram(make_daemon, http, tg, mode):
    tg_agents = {"mode": "private"} if mode == "private" else {"mode": "team", "group_id": FORUM}
    if mode == "team":
        tg.add_forum(FORUM, "客服组")
    d = await make_daemon(agents=agents(), channels={
        "qq": qq_channel(), "tg": tg_channel(tg, agents=tg_agents)}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    qq = await reverse_fake(d)

    await qq.inject_private_message(QQ_CUSTOMER, "卡密没收到,订单 D20261123009", nickname="买家小王")
    if mode == "private":
        relayed = await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and "卡密没收到" in (m.text or ""),
                                         timeout=T)
        tg.inject_private_message(ALICE_TG, "已为您补发,请查收", from_user=make_user(ALICE_TG, "Alice"),
                                  reply_to=relayed.message_id)
    else:
        await tg.wait_for(lambda: tg.topics(FORUM), timeout=T)
        (thread,) = tg.topics(FORUM)
        await tg.wait_for_sent(lambda m: m.chat_id == FORUM and m.thread_id == thread
                               and "卡密没收到" in (m.text or ""), timeout=T)
        tg.inject_topic_message(FORUM, thread, "已为您补发,请查收", from_user=make_user(ALICE_TG, "Alice"))

    sent = await qq.wait_for_sent(qq_sent(qq, QQ_CUSTOMER, "已为您补发,请查收"), timeout=T)
    assert "Telegram" not in sent["text"]  # the customer never sees which app the agent used
    conv = next(c for c in await alice.conversations() if c["channel"] == "qq")
    msgs = (await alice.conversation(conv["id"]))["messages"]
    agent_msgs = [m for m in msgs if m["sender"]["kind"] == "agent"]
    assert [(m["text"], m["sender"]["id"]) for m in agent_msgs] == [("已为您补发,请查收", "alice")]
    await qq.stop()


async def test_telegram_customer_answered_from_qq(make_daemon, http, tg):
    d = await make_daemon(agents=agents(), channels={
        "qq": qq_channel(agents={"mode": "private"}), "tg": tg_channel(tg)}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    qq = await reverse_fake(d)

    tg.inject_private_message(TG_CUSTOMER, "my card key does not work", from_user=make_user(TG_CUSTOMER, "Mike"))
    header = await qq.wait_for_sent(lambda s: s["user_id"] == ALICE_QQ and "card key does not work" in s["text"],
                                    timeout=T)
    await qq.inject_private_message(ALICE_QQ, [Seg.reply(header["message_id"]), Seg.text("Sending a new key now")])
    out = await tg.wait_for_sent(lambda m: m.chat_id == TG_CUSTOMER and m.text == "Sending a new key now",
                                 timeout=T)
    assert out.method == "sendMessage"
    # A console reply to the same conversation shows up in alice's QQ thread too.
    conv = next(c for c in await alice.conversations() if c["channel"] == "tg")
    code, _ = await alice.reply(conv["id"], "Check your inbox")
    assert code == 201
    await qq.wait_for_sent(lambda s: s["user_id"] == ALICE_QQ and "Check your inbox" in s["text"], timeout=T)
    await tg.wait_for_sent(lambda m: m.chat_id == TG_CUSTOMER and m.text == "Check your inbox", timeout=T)
    await wait_for(lambda: _agent_texts(alice, conv["id"]), T, message="both replies in the history")
    await qq.stop()


async def _agent_texts(agent: Agent, cid: str) -> bool:
    msgs = (await agent.conversation(cid))["messages"]
    return [m["text"] for m in msgs if m["sender"]["kind"] == "agent"] == ["Sending a new key now", "Check your inbox"]
