"""Routing, working hours, SLA and automatic replies, on a clock the test controls."""
from __future__ import annotations

import re

import pytest

from storage.conversations import IngestItem, _lua
from tests.routing_harness import Desk

WEEKDAYS = '["09:00-12:00", "13:30-18:00"]'
CONFIG = f"""
hours:
  support:
    timezone: Asia/Shanghai
    weekly: {{mon: {WEEKDAYS}, tue: {WEEKDAYS}, wed: {WEEKDAYS}, thu: {WEEKDAYS}, fri: {WEEKDAYS}}}
roles:
  presales: {{name: {{zh: 售前咨询, en: Pre-sales}}, menu: 1, hours: support}}
  aftersales: {{name: {{zh: 售后处理, en: After-sales}}, menu: 2, hours: support}}
  finance: {{name: {{zh: 财务查询, en: Billing}}, menu: 3, hours: support}}
router: {{auto_away_after: 0, position_updates: 0}}
agents:
  - {{id: alice, name: Alice, roles: [presales, aftersales], password: x, max_concurrent: 1}}
  - {{id: bob, name: Bob, roles: [presales, finance], password: x, max_concurrent: 1}}
  - {{id: sue, name: Sue, roles: [supervisor], password: x, max_concurrent: 3}}
channels:
  site: {{kind: api, secret: s}}
"""


@pytest.fixture
async def desk(shared_redis):
    async with Desk(shared_redis, CONFIG) as d:
        yield d


async def test_friday_evening_gets_monday_opening_and_waits(desk):
    await desk.online("alice")
    desk.at(2026, 11, 27, 20, 0)  # Friday 20:00 Beijing time
    conv = await desk.write("u1", "你好,我想问一下价格")
    assert conv["role"] == "presales" and conv["assignee"] is None and conv["queued"]
    texts = await desk.bot_texts("u1")
    assert any("周一 09:00 (北京时间)" in t for t in texts), texts
    desk.advance(3600)
    await desk.write("u1", "还在吗")
    assert sum("非工作时间" in t for t in await desk.bot_texts("u1")) == 1  # once per closed period
    desk.at(2026, 11, 30, 9, 5)  # Monday morning: alice takes it
    await desk.tick()
    assert await desk.assignee("u1") == "alice"


async def test_english_customer_gets_english_off_hours_reply(desk):
    desk.at(2026, 11, 28, 15, 0)  # Saturday
    await desk.write("u2", "hello, how much is the monthly plan?")
    assert any("Monday 09:00 (Beijing time)" in t for t in await desk.bot_texts("u2"))


async def test_lunch_break_public_holiday_and_make_up_workday(desk):
    await desk.online("alice")
    desk.at(2026, 11, 24, 12, 30)  # Tuesday lunch break
    await desk.write("lunch", "卡密在哪里")
    assert any("今天 13:30" in t for t in await desk.bot_texts("lunch"))
    assert await desk.assignee("lunch") is None

    desk.at(2026, 10, 1, 10, 0)  # National Day, a Thursday
    await desk.write("holiday", "卡密在哪里")
    assert await desk.assignee("holiday") is None
    assert any("10月8日" in t for t in await desk.bot_texts("holiday"))

    await desk.close("alice", (await desk.conversation_of("lunch"))["id"])
    await desk.close("alice", (await desk.conversation_of("holiday"))["id"])
    desk.at(2026, 10, 10, 10, 0)  # Saturday, but a make-up workday (调休上班)
    conv = await desk.write("makeup", "卡密在哪里")
    assert conv["assignee"] == "alice"


async def test_vip_jumps_the_queue_and_capacity_is_respected(desk):
    desk.at(2026, 11, 24, 10, 0)
    await desk.online("alice")  # capacity 1
    first = await desk.write("a", "价格多少")
    assert first["assignee"] == "alice"
    normal = await desk.write("b", "价格多少")
    vip = await desk.write("c", "价格多少", total_spent=5000)
    assert normal["assignee"] is None and vip["assignee"] is None  # alice is full
    assert vip["customer"]["tier"] == "vip" and vip["priority"] == "urgent"
    assert vip["position"] == 1 and (await desk.conversation_of("b"))["position"] == 2
    assert any("第 1 位" in t for t in await desk.bot_texts("b"))  # told on arrival, before the VIP came

    await desk.close("alice", first["id"])  # the freed slot takes the VIP at once
    assert await desk.assignee("c") == "alice"
    assert await desk.assignee("b") is None
    await desk.close("alice", vip["id"])
    assert await desk.assignee("b") == "alice"


async def test_sticky_agent(desk):
    desk.at(2026, 11, 24, 10, 0)
    await desk.online("bob")
    conv = await desk.write("loyal", "价格多少")
    assert conv["assignee"] == "bob"
    await desk.reply("bob", conv["id"], "您好")
    await desk.close("bob", conv["id"])
    await desk.online("alice")  # both free now; alice has been idle longer
    again = await desk.write("loyal", "再问一下价格")
    assert again["id"] != conv["id"] and again["assignee"] == "bob"
    fresh = await desk.write("stranger", "价格多少")  # bob is full: alice
    assert fresh["assignee"] == "alice"


async def test_keywords_menu_and_human_request(desk):
    desk.at(2026, 11, 24, 10, 0)
    refund = await desk.write("r", "我要退款,支付失败了")
    assert refund["role"] == "finance" and not refund["menu_pending"]
    dispute = await desk.write("d", "I will file a chargeback")
    assert dispute["role"] == "dispute" and dispute["priority"] == "dispute"

    await desk.online("sue")  # no dispute agent: disputes fall back to supervisors
    await desk.tick()
    assert await desk.assignee("d") == "sue"

    menu = await desk.write("m", "你好")
    assert menu["role"] == "presales" and menu["menu_pending"]
    assert any("3. 财务查询" in t for t in await desk.bot_texts("m"))
    chosen = await desk.write("m", "3")
    assert chosen["role"] == "finance" and not chosen["menu_pending"]
    assert any("已为您转接财务查询" in t for t in await desk.bot_texts("m"))

    await desk.online("alice")
    await desk.write("busy", "价格")  # alice is now full
    human = await desk.write("h", "转人工")
    assert human["human_requested"] and any("人工客服" in t for t in await desk.bot_texts("h"))
    older = await desk.write("older", "价格")  # written after, but no human request
    assert (await desk.conversation_of("h"))["position"] < older["position"]


async def test_nobody_online_leaves_a_message_taken_first(desk):
    desk.at(2026, 11, 24, 10, 0)
    early = await desk.write("early", "价格")
    note = await desk.write("note", "我的卡密没收到")
    assert note["left_message"] and any("暂无客服在线" in t for t in await desk.bot_texts("note"))
    assert [e for e in desk.events_of("alert") if e["conversation_id"] == note["id"]]
    await desk.online("alice")  # capacity 1: the older left message wins over nothing
    assert {await desk.assignee("early"), await desk.assignee("note")} == {"alice", None}
    assert early["left_message"]  # both were left messages: the older is first
    assert await desk.assignee("early") == "alice"


async def test_reminder_fires_once_and_holding_reply(desk):
    desk.at(2026, 11, 24, 10, 0)
    await desk.online("alice")
    conv = await desk.write("w", "卡密没收到")
    desk.advance(299)
    await desk.tick()
    assert not desk.events_of("reminder")
    desk.advance(2)
    await desk.tick()
    await desk.tick()
    reminders = [e for e in desk.events_of("reminder") if e["conversation_id"] == conv["id"]]
    assert len(reminders) == 1 and reminders[0]["agent"] == "alice"
    assert sum("您的问题已记录" in t for t in await desk.bot_texts("w")) == 1
    await desk.reply("alice", conv["id"], "马上处理")
    await desk.write("w", "好的")  # answered, then a new wait starts its own reminder
    desk.advance(301)
    await desk.tick()
    assert len([e for e in desk.events_of("reminder") if e["conversation_id"] == conv["id"]]) == 2


async def test_breach_escalates_then_reassigns(desk):
    desk.at(2026, 11, 24, 10, 0)
    await desk.online("alice", "bob")
    conv = await desk.write("slow", "价格多少")  # presales, normal: first response due in 30 min
    owner = conv["assignee"]
    assert conv["sla_due"] == pytest.approx(desk.now + 1800)
    desk.advance(1801)
    await desk.tick()
    esc = [e for e in desk.events_of("escalation") if e["conversation_id"] == conv["id"]]
    assert [e["level"] for e in esc] == [1] and "supervisor" in esc[0]["roles"]
    assert (await desk.conversation_of("slow"))["sla_breached"]
    assert await desk.assignee("slow") == owner
    desk.advance(1801)
    await desk.tick()
    esc = [e for e in desk.events_of("escalation") if e["conversation_id"] == conv["id"]]
    assert [e["level"] for e in esc] == [1, 2]
    other = {"alice", "bob"} - {owner}
    assert await desk.assignee("slow") in other  # handed to another agent of the role


async def test_reload_changes_hours_and_keeps_timers(desk):
    desk.at(2026, 11, 24, 10, 0)
    await desk.online("alice")
    conv = await desk.write("t", "价格")
    assert conv["assignee"] == "alice"
    always = CONFIG.replace("timezone: Asia/Shanghai", "timezone: Asia/Shanghai\n    always_open: true")
    from aggregator.config import parse
    desk.settings = parse(always)
    desk.router.apply(desk.settings)
    desk.at(2026, 11, 28, 23, 0)  # Saturday night: open now
    await desk.close("alice", conv["id"])
    late = await desk.write("t2", "价格")
    assert late["assignee"] == "alice"
    desk.advance(301)  # the reminder scheduled before the reload still fires
    await desk.tick()
    assert [e for e in desk.events_of("reminder") if e["conversation_id"] == late["id"]]


async def test_auto_away_vip_agents_personal_hours_and_channel_welcome(shared_redis):
    config = CONFIG.replace("router: {auto_away_after: 0, position_updates: 0}",
                            "router: {auto_away_after: 10m, position_updates: 0, vip_agents: [bob]}")
    config = config.replace("password: x, max_concurrent: 3}",
                            "password: x, max_concurrent: 3, hours: support}")
    config += """
messages:
  welcome@site: {zh: "欢迎来到本店站内客服", en: "Welcome to the shop's message desk"}
"""
    async with Desk(shared_redis, config) as desk:
        desk.at(2026, 11, 24, 10, 0)
        await desk.online("alice", "bob")
        vip = await desk.write("rich", "价格多少", order_count=50)
        assert vip["customer"]["tier"] == "vip" and vip["assignee"] == "bob"  # only VIP agents
        assert any(t.startswith("欢迎来到本店站内客服") for t in await desk.bot_texts("rich"))
        other_vip = await desk.write("rich2", "价格多少", total_spent=99999)
        assert other_vip["assignee"] is None  # bob is full; alice is not a VIP agent

        desk.advance(9 * 60)
        await desk.tick()
        assert not desk.events_of("agent")
        desk.advance(2 * 60)  # nobody touched anything for 11 minutes
        await desk.tick()
        assert {e["agent"]["id"] for e in desk.events_of("agent") if e["agent"]["status"] == "away"} == {"alice", "bob"}

        desk.at(2026, 11, 24, 20, 0)  # sue's personal hours are over: no dispute for her now
        await desk.online("sue")
        late = await desk.write("angry", "我要投诉")
        assert late["role"] == "dispute" and late["assignee"] is None
        desk.at(2026, 11, 25, 9, 30)
        await desk.tick()
        assert await desk.assignee("angry") == "sue"


def test_the_ingest_script_unpacks_every_field_by_its_python_name():
    script = _lua("ingest")
    assert "INGEST_ITEM" not in script
    assert f"local {', '.join(IngestItem._fields)} = unpack(m)" in script
    body = script[script.index("= unpack(m)"):]
    unread = [f for f in IngestItem._fields if not re.search(rf"\b{f}\b", body)]
    assert not unread, f"ingest.lua never reads {unread}"


async def test_each_decision_of_the_router_is_stored_with_the_message(desk):
    await desk.online("alice")
    conv = await desk.write("u1", "Order D2026112300017 never arrived, I want a human", order_count=25, shop="cn")
    assert conv["role"] == "aftersales" and conv["assignee"] == "alice"
    assert conv["customer"]["tier"] == "vip" and conv["priority"] == "urgent"
    assert conv["customer"]["attributes"] == {"order_count": 25, "shop": "cn"}
    assert conv["customer"]["language"] == "en"
    assert conv["order_no"] == "D2026112300017" and conv["human_requested"]
    assert conv["sla_due"] is not None and conv["id"] == "c" + conv["messages"][0]["id"][1:]
    assert [m["text"] for m in conv["messages"] if m["sender"]["kind"] == "customer"] == [
        "Order D2026112300017 never arrived, I want a human"]
