"""The first hour of a new user: what they noticed, each through a real daemon or the CLI.

(The console and widget parts are in tests/browser/test_first_hour_browser.py.)
"""
from __future__ import annotations

import json
import re

import aiohttp

from connectors.api import sign
from routing.automation import DEFAULTS
from tests.kefu_harness import REPO, Agent, wait_for
from tests.test_bad_input import run_cli
from tests.fakes.telegram_api import make_user
from tests.test_end_to_end import ws_frames
from tests.test_telegram import AGENTS as TG_AGENTS, ALICE_TG, SECRET as TG_SECRET, callback, post_site, tg, tg_channel  # noqa: F401

SECRET = "first-hour-secret"
SITE = {"webchat": {"kind": "webchat"}, "site": {"kind": "api", "secret": SECRET}}
QUICK = [
    {"name": "resend", "text": {"zh": "您好{customer_name}，订单 {order_no} 的卡密已重新发送。",
                                "en": "Hi {customer_name}, the key of order {order_no} was sent again."}},
    {"name": "coupon", "text": "{customer_name}, your coupon is {coupon_code} ({agent_name}, {channel})"},
]
HALF_WIDTH_AFTER_CJK = re.compile(r"[\u3400-\u9fff][,!?:;]|[,!?:;][\u3400-\u9fff]")


async def site_message(http, d, customer: str, mid: str, text: str, **extra) -> None:
    body = json.dumps({"customer_id": customer, "message_id": mid, "text": text, **extra},
                      ensure_ascii=False).encode()
    async with http.post(d.url + "/api/channels/site/inbound", data=body,
                         headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
        assert r.status == 202, await r.text()


async def conversation_of(agent: Agent, customer: str, messages: int = 1) -> dict:
    async def find():
        for c in await agent.conversations("all"):
            if c["customer"]["id"] == customer:
                conv = await agent.conversation(c["id"])
                if sum(m["sender"]["kind"] == "customer" for m in conv["messages"]) >= messages:
                    return conv
        return None
    return await wait_for(find, 15, message=f"conversation of {customer}")


async def test_quick_replies_fill_their_variables_and_ask_for_the_rest(make_daemon, http):
    d = await make_daemon(channels=SITE, quick_replies=QUICK).start()
    alice = await Agent(d, http, "alice").login()
    await site_message(http, d, "u1", "q1", "我的卡密没收到，订单号 D20261123001", name="李华")
    await site_message(http, d, "u1", "q2", "不对，是这个订单 D20261123002")
    conv = await conversation_of(alice, "u1", messages=2)
    cid = conv["id"]

    code, body = await alice.call("GET", f"/api/conversations/{cid}/quick_replies")
    assert code == 200
    by_name = {q["name"]: q for q in body["quick_replies"]}
    # {order_no} is the last order number seen in the conversation; Chinese customer → zh text
    assert by_name["resend"] == {"name": "resend", "missing": [],
                                 "text": "您好李华，订单 D20261123002 的卡密已重新发送。"}
    assert by_name["coupon"]["missing"] == ["coupon_code"]
    assert by_name["coupon"]["text"] == "李华, your coupon is {coupon_code} (Alice, site)"
    assert (await alice.call("GET", "/api/conversations/nope/quick_replies"))[0] == 404

    # Nothing with raw braces leaves: /q with a missing variable says which and how to give it
    code, err = await alice.reply(cid, "/q coupon")
    assert code == 400 and err["error"] == "quick reply coupon needs coupon_code: send /q coupon coupon_code=..."
    code, err = await alice.reply(cid, "your coupon is {coupon_code}")
    assert code == 400 and "{coupon_code}" in err["error"]
    code, msg = await alice.reply(cid, "/q coupon coupon_code=SPRING-20")
    assert code == 201 and msg["text"] == "李华, your coupon is SPRING-20 (Alice, site)"
    code, msg = await alice.reply(cid, "/q resend")
    assert code == 201 and msg["text"] == "您好李华，订单 D20261123002 的卡密已重新发送。"
    texts = [m["text"] for m in (await alice.conversation(cid))["messages"] if m["sender"]["kind"] == "agent"]
    assert not any("{" in t for t in texts)

    # A customer without a name: {customer_name} is asked for, not sent blank
    await site_message(http, d, "u2", "q3", "Hi, order D20261123009 never arrived")
    conv2 = await conversation_of(alice, "u2")
    code, body = await alice.call("GET", f"/api/conversations/{conv2['id']}/quick_replies")
    resend = next(q for q in body["quick_replies"] if q["name"] == "resend")
    assert resend["missing"] == ["customer_name"]
    assert resend["text"] == "Hi {customer_name}, the key of order D20261123009 was sent again."
    code, msg = await alice.reply(conv2["id"], '/q resend customer_name="Mike Li"')
    assert code == 201 and msg["text"] == "Hi Mike Li, the key of order D20261123009 was sent again."


async def test_english_visitors_get_the_english_bot_and_after_sales(make_daemon, http):
    d = await make_daemon(channels=SITE).start()
    alice = await Agent(d, http, "alice").login()
    await site_message(http, d, "en1", "e1", "Hi, my card key never arrived")
    await site_message(http, d, "zh1", "z1", "你好，我的卡密一直没到")
    english, chinese = await conversation_of(alice, "en1"), await conversation_of(alice, "zh1")
    assert english["role"] == chinese["role"] == "aftersales"

    async def bot_names(cid):
        conv = await alice.conversation(cid)
        return {m["sender"]["name"] for m in conv["messages"] if m["sender"]["kind"] == "bot"}
    assert await wait_for(lambda: bot_names(english["id"]), 10) == {"Assistant"}
    assert await wait_for(lambda: bot_names(chinese["id"]), 10) == {"小助手"}

    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    await ws_frames(ws, "hello")
    await ws.send_json({"type": "message", "text": "Hello, do you have Steam cards?", "client_msg_id": "w1"})
    welcome = await ws_frames(ws, "message", sender="bot")
    assert welcome["sender"]["name"] == "Assistant" and welcome["text"].startswith("Hello")
    await ws.close()


def test_chinese_default_texts_use_full_width_punctuation():
    for name, texts in DEFAULTS.items():
        assert not HALF_WIDTH_AFTER_CJK.search(texts["zh"]), (name, texts["zh"])
    for path in [REPO / "connectors/webchat_static/widget.js", *sorted((REPO / "aggregator/console_static").rglob("*.js"))]:
        for line in path.read_text().splitlines():
            assert not HALF_WIDTH_AFTER_CJK.search(line), (path.name, line)


async def test_widget_hears_when_agents_come_and_go(make_daemon, http):
    d = await make_daemon().start()
    alice = await Agent(d, http, "alice").login()
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    hello = await ws_frames(ws, "hello")
    assert hello["online"] is False and "暂无客服在线" in hello["offline_note"]["zh"]

    await alice.presence("online")
    assert (await ws_frames(ws, "presence"))["online"] is True
    await alice.presence("away")
    frame = await ws_frames(ws, "presence")
    assert frame["online"] is False and frame["offline_note"]["en"].startswith("No agent is online")
    # a visitor arriving now is told at once, and config.json agrees
    ws2 = await http.ws_connect(d.ws_url + "/webchat/ws")
    assert (await ws_frames(ws2, "hello"))["online"] is False
    async with http.get(d.url + "/webchat/config.json") as r:
        config = await r.json()
    assert config["online"] is False and config["welcome"]["en"] == "Hi! How can we help you?"
    await alice.presence("online")
    assert (await ws_frames(ws2, "presence"))["online"] is True
    await ws.close()
    await ws2.close()


async def test_kefu_run_says_where_to_go_and_warns_about_demo_passwords(make_daemon, http):
    agents = [{"id": "alice", "name": "Alice", "roles": ["presales"], "password": "alice-demo-password"},
              {"id": "bob", "name": "Bob", "roles": ["finance"], "password": "a-real-password"}]
    d = await make_daemon(agents=agents).start()
    log = d.log()
    listen = d.config["web"]["listen"]
    assert f"agent console:  http://{listen}/console/" in log
    assert f"demo chat page: http://{listen}/webchat/" in log
    warning = next(line for line in log.splitlines() if line.startswith("WARNING: demo passwords"))
    assert "alice" in warning and "bob" not in warning
    assert "alice-demo-password" not in log  # named, never printed
    assert any(json.loads(line).get("msg") == "demo passwords in use" for line in log.splitlines()
               if line.startswith("{"))


def test_check_config_suggests_the_key_meant_and_reads_durations(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text(
        "web:\n"
        "  listen: 127.0.0.1:8080\n"
        "  token_ttl: 12h\n"
        "chanels:\n"                                   # line 4
        "  webchat: {kind: webchat}\n"
        "bus: {claim_idle: 30s, heartbeat_ttl: 15s, dedupe_ttl: 3d, block_ms: 1s, trim_interval: 10}\n"
        "supervisor: {restart_initial: 1s, restart_max: 2m}\n"
        "router: {defualt_role: presales}\n"           # line 8
        "sla: {remind_after: soon}\n"
    )
    res = run_cli("check-config", str(bad))
    assert res.returncode == 2
    assert f"{bad}:4: chanels: unknown key `chanels` — did you mean `channels`?" in res.stderr
    assert f"{bad}:8: router.defualt_role: unknown key `defualt_role` — did you mean `default_role`?" in res.stderr
    assert f"{bad}:9: sla.remind_after: " in res.stderr and "30s, 15m, 12h, 90d" in res.stderr
    assert "bus." not in res.stderr and "web." not in res.stderr and "supervisor." not in res.stderr

    bad.write_text(bad.read_text().replace("chanels", "channels").replace("defualt_role", "default_role")
                   .replace("soon", "90s"))
    res = run_cli("check-config", str(bad))
    assert res.returncode == 0, res.stderr


async def test_durations_are_understood_by_the_running_daemon(make_daemon, http):
    """Plain numbers stay valid; '12h' is twelve hours, not twelve seconds."""
    d = await make_daemon(web={"token_ttl": "12h"}, bus={"claim_idle": "5s", "heartbeat_ttl": "3s",
                                                         "block_ms": "200ms", "dedupe_ttl": "1d"}).start()
    async with http.post(d.url + "/api/login", json={"agent": "alice", "password": "alice-pw"}) as r:
        assert (await r.json())["expires_in"] == 12 * 3600


async def test_quick_reply_from_a_chat_app_asks_for_what_is_missing(make_daemon, http, tg, callback):
    d = await make_daemon(channels={"site": {"kind": "api", "secret": TG_SECRET, "callback_url": callback.url},
                                    "tg": tg_channel(tg, agents={"mode": "private"})},
                          agents=TG_AGENTS, quick_replies=QUICK).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    await post_site(http, d, "u1", "s1", "你好，卡密显示已使用", name="李四")
    header = await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and "🆕" in m.text, timeout=15)
    alice_user = make_user(ALICE_TG, "Alice")

    tg.inject_private_message(ALICE_TG, "/q resend", from_user=alice_user, reply_to=header.message_id)
    answer = await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and "order_no" in (m.text or ""), timeout=15)
    assert "/q resend order_no=..." in answer.text
    tg.inject_private_message(ALICE_TG, "/q resend order_no=D20261123005", from_user=alice_user,
                              reply_to=header.message_id)
    await wait_for(lambda: [m for m in callback.received if "D20261123005" in m["text"]], 15,
                   message="the filled quick reply at the shop")
    agents_texts = [m["text"] for m in callback.received if "欢迎" not in m["text"]]  # the bot's welcome aside
    assert agents_texts == ["您好李四，订单 D20261123005 的卡密已重新发送。"]


def test_the_widget_stays_one_small_file():
    """Shops embed it with one <script> tag: no modules, and under 30 KB."""
    widget = REPO / "connectors/webchat_static/widget.js"
    assert widget.stat().st_size <= 30_000
    assert not re.search(r"^\s*(import|export)\s", widget.read_text(), re.M)
