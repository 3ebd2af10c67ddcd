"""Permissions and masking (SPEC part 2), through real daemons.

Each built-in role against the conversations of each role; live events and a
chat-app relay leave out what an agent may not see; what agents read is
masked, the customer's own view is not; reveal with its audit entry.
"""
from __future__ import annotations

import asyncio
import json
import sys
import uuid

import aiohttp
import pytest

from aggregator import config as config_mod
from connectors.api import sign
from tests.callback_server import CallbackServer
from tests.kefu_harness import DEFAULT_AGENTS, REPO, Agent, wait_for
from tests.test_qq import TAG, qq_channel, reverse_fake

SECRET = "site-secret-for-permission-tests"
CARD, MOBILE, ID = "6222021234567890128", "13812345678", "11010519491231002X"
MASKED = {CARD: "6222********0128", MOBILE: "138****5678", ID: "110105********002X"}
PII_TEXT = f"卡号 {CARD} 手机 {MOBILE} 身份证 {ID}"

CONV_ROLES = ["presales", "aftersales", "finance", "dispute"]
ROLE_AGENTS = [{"id": f"{r[:3]}1", "name": r.title(), "roles": [r], "password": f"{r}-pw"}
               for r in [*CONV_ROLES, "supervisor"]]  # one agent per built-in role
OWNER = {a["roles"][0]: a["id"] for a in ROLE_AGENTS}
ALL_PERMISSIONS = sorted(["view_orders", "resend_card_key", "view_card_keys", "reveal_pii", "view_reports",
                          "export_evidence"])


async def customer_writes(d, http, channel: str, customer: str, text: str) -> str:
    body = json.dumps({"customer_id": customer, "message_id": uuid.uuid4().hex, "text": text}).encode()
    async with http.post(d.url + f"/api/channels/{channel}/inbound", data=body,
                         headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
        assert r.status == 202, await r.text()
        return (await r.json())["id"]


async def conversation_of(agent: Agent, channel: str, customer: str) -> dict | None:
    return next((c for c in await agent.conversations()
                 if c["channel"] == channel and c["customer"]["id"] == customer), None)


def about(frame: dict) -> str | None:
    return frame.get("conversation_id") or (frame.get("conversation") or {}).get("id")


async def frames_until(ws, cid: str, text: str) -> list[dict]:
    """Every live event up to and including the message `text` of conversation `cid`."""
    out = []
    while True:
        msg = await ws.receive(timeout=15)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        out.append(frame)
        if frame["type"] == "message" and about(frame) == cid and frame["message"]["text"] == text:
            return out


async def audit(d, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aggregator", "audit", "-c", str(d.config_path), *args,
        cwd=d.workdir, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def test_role_permissions_come_from_config_and_unknown_names_are_refused():
    s = config_mod.parse("roles:\n  finance: {permissions: [view_orders, view_reports]}\n")
    assert s.roles["finance"].permissions == ["view_orders", "view_reports"]
    assert s.roles["finance"].menu == 3  # the rest of the built-in role stays
    assert s.roles["aftersales"].permissions == ["view_orders", "resend_card_key"]
    assert sorted(s.roles["supervisor"].permissions) == ALL_PERMISSIONS
    with pytest.raises(config_mod.ConfigError) as exc:
        config_mod.parse("agents: []\nroles:\n  finance:\n    permissions: [view_orders, see_everything]\n")
    assert exc.value.problems[0].startswith("config.yaml:4: roles.finance.permissions[1]:")


async def test_each_role_sees_and_acts_on_its_own_conversations_only(make_daemon, http):
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    d = await make_daemon(agents=ROLE_AGENTS, channels={
        r: {"kind": "api", "secret": SECRET, "callback_url": cb_url, "role": r} for r in CONV_ROLES}).start()
    agents = {a["id"]: await Agent(d, http, a["id"]).login(a["password"]) for a in ROLE_AGENTS}
    for a in ROLE_AGENTS:
        code, me = await agents[a["id"]].call("GET", "/api/me")
        expected = {"presales": ["view_orders"], "aftersales": ["resend_card_key", "view_orders"],
                    "finance": ["view_orders"], "dispute": ["view_orders"], "supervisor": ALL_PERMISSIONS}
        assert code == 200 and me["permissions"] == expected[a["roles"][0]]
    for r in CONV_ROLES:
        await customer_writes(d, http, r, f"cust-{r}", PII_TEXT)
    sue = agents[OWNER["supervisor"]]
    convs = {}
    for r in CONV_ROLES:
        convs[r] = await wait_for(lambda r=r: conversation_of(sue, r, f"cust-{r}"), message=f"{r} conversation")
        assert convs[r]["role"] == r

    for role, conv in convs.items():
        cid = conv["id"]
        c = f"/api/conversations/{cid}"
        mid = next(m["id"] for m in (await sue.conversation(cid))["messages"] if m["sender"]["kind"] == "customer")
        for agent_id, agent in agents.items():
            allowed = agent_id in (OWNER[role], OWNER["supervisor"])
            assert (cid in [x["id"] for x in await agent.conversations()]) is allowed, (agent_id, role)
            code, body = await agent.call("GET", c)
            assert code == (200 if allowed else 403) and (allowed or "error" in body), (agent_id, role, body)
            if allowed:
                continue
            for method, path, payload in [("POST", "/claim", None), ("POST", "/messages", {"text": "hi"}),
                                          ("POST", "/transfer", {"role": "presales"}), ("POST", "/close", None),
                                          ("POST", f"/messages/{mid}/reveal", None)]:
                code, body = await agent.call(method, c + path, payload)
                assert code == 403 and isinstance(body.get("error"), str), (agent_id, role, path, body)
        unchanged = await sue.conversation(cid)
        assert unchanged["status"] == "open" and unchanged["assignee"] is None and unchanged["role"] == role
        assert not [m for m in unchanged["messages"] if m["sender"]["kind"] == "agent"]

        own = agents[OWNER[role]]
        code, body = await own.call("POST", c + "/claim")
        assert code == 200 and body["assignee"] == own.id
        code, body = await own.reply(cid, "您好")
        assert code == 201
        code, body = await own.call("POST", c + f"/messages/{mid}/reveal")
        assert code == 403 and "reveal_pii" in body["error"]
        code, body = await own.call("POST", c + "/transfer", {"role": role})
        assert code == 200 and body["assignee"] is None
        code, body = await own.call("POST", c + "/close")
        assert code == 200 and body["status"] == "closed"
        code, body = await sue.call("POST", c + f"/messages/{mid}/reveal")
        assert code == 200 and body == {"id": mid, "text": PII_TEXT}
    code, body = await sue.call("POST", f"/api/conversations/{convs['finance']['id']}/messages/nope/reveal")
    assert code == 404 and "error" in body

    # The audit stream has who did what where, refusals with their reason, and no text.
    fin = convs["finance"]["id"]
    lines = (await audit(d, "--conversation", fin, "-n", "50")).splitlines()
    assert any(" sup1 " in ln and " reveal " in ln and " ok" in ln for ln in lines), lines
    assert any(" fin1 " in ln and " reveal " in ln and "refused (not_permitted)" in ln for ln in lines)
    assert any(" pre1 " in ln and " reply " in ln and "refused (forbidden)" in ln for ln in lines)
    assert any(" fin1 " in ln and " transfer " in ln and "detail=role:finance" in ln for ln in lines)
    assert all("via=api" in ln for ln in lines) and not [ln for ln in lines if "您好" in ln or "卡号" in ln]
    only_amy = (await audit(d, "--agent", OWNER["aftersales"], "-n", "3")).splitlines()
    assert len(only_amy) == 3 and all(f" {OWNER['aftersales']} " in ln for ln in only_amy)
    await cb.stop()


async def test_live_events_and_views_show_only_what_the_agent_may_see_masked(make_daemon, http):
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    d = await make_daemon(channels={"webchat": {"kind": "webchat"},
                                    "site": {"kind": "api", "secret": SECRET, "callback_url": cb_url}}).start()
    alice, bob = await Agent(d, http, "alice").login(), await Agent(d, http, "bob").login()
    await alice.presence("online")
    await bob.presence("online")
    a_ws = await http.ws_connect(d.ws_url + "/api/events", headers=alice.headers)
    b_ws = await http.ws_connect(d.ws_url + "/api/events", headers=bob.headers)

    # finance (bob's), then presales (alice's), then finance again
    await customer_writes(d, http, "site", "payer", f"支付失败了 {CARD}")
    await customer_writes(d, http, "site", "buyer", f"多少钱? 我的手机 {MOBILE}")
    await customer_writes(d, http, "site", "payer", f"身份证 {ID}")
    fin = await wait_for(lambda: conversation_of(bob, "site", "payer"), message="finance conversation")
    pre = await wait_for(lambda: conversation_of(alice, "site", "buyer"), message="presales conversation")
    assert fin["role"] == "finance" and pre["role"] == "presales"
    alice_saw = await frames_until(a_ws, pre["id"], f"多少钱? 我的手机 {MASKED[MOBILE]}")
    assert fin["id"] not in {about(f) for f in alice_saw}
    bob_saw = await frames_until(b_ws, fin["id"], f"身份证 {MASKED[ID]}")
    assert pre["id"] not in {about(f) for f in bob_saw}
    texts = [f["message"]["text"] for f in alice_saw + bob_saw if f["type"] == "message"]
    assert f"支付失败了 {MASKED[CARD]}" in texts
    assert not [t for t in texts if CARD in t or MOBILE in t or ID in t]

    # Lists, the inbox preview and the conversation view: masked; alice cannot read bob's.
    assert fin["id"] not in [c["id"] for c in await alice.conversations()]
    assert (await alice.call("GET", f"/api/conversations/{fin['id']}"))[0] == 403
    assert (await conversation_of(alice, "site", "buyer"))["last_message"]["text"] == f"多少钱? 我的手机 {MASKED[MOBILE]}"
    view = await bob.conversation(fin["id"])
    customer_texts = [m["text"] for m in view["messages"] if m["sender"]["kind"] == "customer"]
    assert customer_texts == [f"支付失败了 {MASKED[CARD]}", f"身份证 {MASKED[ID]}"]

    # The web chat customer sees their own numbers and the agent's in clear; the agent, masked.
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    hello = json.loads((await ws.receive(timeout=10)).data)
    await ws.send_json({"type": "message", "text": f"多少钱 {MOBILE}", "client_msg_id": "w1"})
    web = await wait_for(lambda: _webchat(alice), message="web chat conversation")
    code, sent = await alice.reply(web["id"], f"已记录您的手机 {MOBILE}")
    assert code == 201 and sent["text"] == f"已记录您的手机 {MASKED[MOBILE]}"
    while True:
        frame = json.loads((await ws.receive(timeout=10)).data)
        if frame["type"] == "message" and frame["sender"]["kind"] == "agent":
            break
    assert frame["text"] == f"已记录您的手机 {MOBILE}"
    await ws.close()
    again = await http.ws_connect(d.ws_url + f"/webchat/ws?token={hello['visitor_token']}")
    while (frame := json.loads((await again.receive(timeout=10)).data))["type"] != "history":
        pass
    assert [m["text"] for m in frame["messages"] if m["sender"]["kind"] != "bot"] == [
        f"多少钱 {MOBILE}", f"已记录您的手机 {MOBILE}"]
    await again.close()

    # A password typed as the agent name is not logged; no clear number reached the log.
    async with http.post(d.url + "/api/login", json={"agent": "Tr0ub4dor&3", "password": "x"}) as r:
        assert r.status == 401
    await a_ws.close()
    await b_ws.close()
    d.stop()
    log = d.log_path.read_text()
    assert "login refused" in log and "Tr0ub4dor" not in log
    assert not [n for n in (CARD, MOBILE, ID) if n in log]
    await cb.stop()


async def _webchat(agent: Agent) -> dict | None:
    return next((c for c in await agent.conversations() if c["channel"] == "webchat"), None)


async def test_qq_group_gets_only_its_roles_and_commands_are_checked(make_daemon, http):
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    agents = [dict(a, qq_id={"alice": 40001, "bob": 40002}.get(a["id"])) for a in DEFAULT_AGENTS]
    d = await make_daemon(agents=agents, channels={
        "site": {"kind": "api", "secret": SECRET, "callback_url": cb_url},
        "qq": qq_channel(agents={"mode": "group", "group_id": 50000, "roles": ["presales", "aftersales"]})}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    fake = await reverse_fake(d)

    def in_group(text: str):
        return next((s for s in fake.sent if s["group_id"] == 50000 and text in s["text"]), None)

    await customer_writes(d, http, "site", "payer", "支付失败了")  # finance: not the group's
    await customer_writes(d, http, "site", "buyer", f"多少钱 {MOBILE}")
    header = await fake.wait_for(lambda: in_group("多少钱"), timeout=15)
    assert MASKED[MOBILE] in header["text"] and MOBILE not in header["text"]
    assert not in_group("支付失败")
    tag = TAG.search(header["text"]).group(1)

    # alice hands the buyer to finance: the group is told once, then hears nothing more of it.
    await fake.inject_group_message(50000, 40001, f"#{tag} /transfer finance")
    await fake.wait_for(lambda: in_group("no longer relayed here"), timeout=10)
    await customer_writes(d, http, "site", "buyer", "还在吗")
    await fake.inject_group_message(50000, 40001, f"#{tag} /who")
    refused = await fake.wait_for(lambda: in_group("belongs to a role you do not have"), timeout=10)
    assert f"#{tag}" in refused["text"]
    await customer_writes(d, http, "site", "third", "有货吗")  # after 还在吗 in the stream
    await fake.wait_for(lambda: in_group("有货吗"), timeout=15)
    assert not in_group("还在吗") and not [s for s in fake.sent if MOBILE in s["text"]]
    await fake.stop()
    await cb.stop()
