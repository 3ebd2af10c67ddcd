"""Bad input gets a clear error and loses nothing; never a stack trace."""
from __future__ import annotations

import json
import subprocess
import sys

from connectors.api import sign
from tests.kefu_harness import REPO, Agent, wait_for

SECRET = "bad-input-secret"


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregator", *args], capture_output=True, text=True,
                          cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, timeout=60)


def test_check_config_names_path_and_line(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text(
        "web:\n"
        "  listen: 127.0.0.1:8080\n"
        "  lissen: 1\n"                       # typo: unknown key
        "agents:\n"
        "  - id: alice\n"
        "    name: Alice\n"
        "    password: ${NOT_SET_ANYWHERE}\n"  # missing env var
        "channels:\n"
        "  site: {kind: api, callback_url: 'http://x/cb'}\n"  # secret missing
    )
    res = run_cli("check-config", str(bad))
    assert res.returncode == 2
    assert f"{bad}:3: web.lissen: unknown key `lissen` — did you mean `listen`?" in res.stderr
    assert f"{bad}:7: agents[0].password: environment variable NOT_SET_ANYWHERE is not set" in res.stderr
    assert f"{bad}:9: channels.site.secret: Field required" in res.stderr
    assert "Traceback" not in res.stderr

    res = run_cli("run", "-c", str(bad), cwd=tmp_path)
    assert res.returncode == 2 and "web.lissen" in res.stderr and "Traceback" not in res.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("web:\n  listen: [unclosed\n")
    res = run_cli("check-config", str(broken))
    assert res.returncode == 2 and res.stderr.startswith(f"{broken}:") and "Traceback" not in res.stderr


def test_shipped_config_is_valid():
    res = run_cli("check-config", str(REPO / "config.yaml"))
    assert res.returncode == 0, res.stderr


async def test_api_channel_rejects_bad_requests(make_daemon, http):
    d = await make_daemon(web={"max_text_length": 50}, channels={
        "site": {"kind": "api", "secret": SECRET}}).start()
    alice = await Agent(d, http, "alice").login()
    url = d.url + "/api/channels/site/inbound"

    async def post(body: bytes, signature: str | None) -> tuple[int, dict]:
        headers = {"X-Kefu-Signature": signature} if signature else {}
        async with http.post(url, data=body, headers=headers) as r:
            return r.status, await r.json()

    good = json.dumps({"customer_id": "c1", "message_id": "m1", "text": "hi"}).encode()
    assert (await post(good, None))[0] == 401
    assert (await post(good, sign("wrong-secret", good)))[0] == 401
    assert (await post(good, "sha256=" + "0" * 64)) == (401, {"error": "invalid or missing X-Kefu-Signature"})
    broken = b'{"customer_id": "c1", '
    assert (await post(broken, sign(SECRET, broken))) == (400, {"error": "body is not valid JSON"})
    missing = json.dumps({"customer_id": "c1", "text": "hi"}).encode()
    code, body = await post(missing, sign(SECRET, missing))
    assert code == 400 and "message_id" in body["error"]
    long = json.dumps({"customer_id": "c1", "message_id": "m2", "text": "x" * 51}).encode()
    assert (await post(long, sign(SECRET, long)))[0] == 413
    huge = b"x" * (2 << 20)
    async with http.post(url, data=huge, headers={"X-Kefu-Signature": sign(SECRET, huge)}) as r:
        assert r.status == 413 and "error" in await r.json()
    async with http.post(d.url + "/api/channels/nope/inbound", data=good) as r:
        assert r.status == 404 and "error" in await r.json()

    # None of that was stored; a good message still is.
    assert await alice.conversations("all") == []
    assert (await post(good, sign(SECRET, good)))[0] == 202
    convs = await wait_for(lambda: alice.conversations(), message="good message stored")
    messages = (await alice.conversation(convs[0]["id"]))["messages"]
    assert len(convs) == 1 and [m["text"] for m in messages if m["sender"]["kind"] == "customer"] == ["hi"]


async def test_agent_api_rejects_bad_requests(make_daemon, http):
    d = await make_daemon(web={"token_ttl": 1}).start()
    async with http.post(d.url + "/api/login", json={"agent": "alice", "password": "wrong"}) as r:
        assert r.status == 401 and (await r.json()) == {"error": "wrong agent or password"}
    async with http.post(d.url + "/api/login", data=b"not json") as r:
        assert r.status == 400 and "error" in await r.json()
    forged = Agent(d, http, "alice")
    forged.token = "forged-token-forged-token-forged-token"
    assert (await forged.call("GET", "/api/conversations"))[0] == 401
    async with http.get(d.url + "/api/conversations") as r:
        assert r.status == 401 and "error" in await r.json()

    alice = await Agent(d, http, "alice").login()
    code, body = await alice.call("GET", "/api/conversations/c_doesnotexist")
    assert (code, body) == (404, {"error": "conversation not found"})
    code, body = await alice.reply("c_doesnotexist", "hello")
    assert code == 404
    code, body = await alice.call("PUT", "/api/presence", {"status": "sleeping"})
    assert code == 400
    code, body = await alice.call("GET", "/api/conversations?status=weird")
    assert code == 400
    async with http.get(d.url + "/no/such/page") as r:
        assert r.status == 404 and "error" in await r.json()
    # token_ttl is 1 s in this config: the login expires.
    await wait_for(lambda: _expired(alice), timeout=10, message="token expiry")


async def _expired(agent: Agent) -> bool:
    return (await agent.call("GET", "/api/me"))[0] == 401


async def test_webchat_bad_frames_keep_the_connection(make_daemon, http):
    d = await make_daemon(web={"max_text_length": 20}).start()
    ws = await http.ws_connect(d.ws_url + "/webchat/ws?token=%3Cscript%3E")  # bad token: a new one is issued
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello" and hello["visitor_token"] != "<script>"
    await ws.send_str("this is not json")
    assert (await ws.receive_json(timeout=10)) == {"type": "error", "error": "frame is not valid JSON"}
    await ws.send_json({"type": "message", "text": "y" * 21, "client_msg_id": "a"})
    err = await ws.receive_json(timeout=10)
    assert err["type"] == "error" and "20" in err["error"]
    await ws.send_json({"type": "message", "text": "", "client_msg_id": "b"})
    assert (await ws.receive_json(timeout=10))["type"] == "error"
    await ws.send_json({"type": "message", "text": "still here", "client_msg_id": "c"})
    ack = await ws.receive_json(timeout=10)
    assert ack["type"] == "ack" and ack["client_msg_id"] == "c"
    alice = await Agent(d, http, "alice").login()
    convs = await wait_for(lambda: alice.conversations(), message="stored")
    messages = (await alice.conversation(convs[0]["id"]))["messages"]
    assert [m["text"] for m in messages if m["sender"]["kind"] == "customer"] == ["still here"]
    await ws.close()


def test_check_config_names_hours_and_sla_mistakes(tmp_path):
    bad = tmp_path / "hours.yaml"
    bad.write_text(
        "hours:\n"
        "  support:\n"
        "    timezone: Mars/Base\n"                                   # line 3
        "    weekly:\n"
        "      mon: ['09:00-12:00', '11:30-18:00']\n"                 # line 5: overlap
        "roles:\n"
        "  finance: {name: {zh: 财务, en: Billing}, hours: office}\n"  # line 7: unknown calendar
        "sla:\n"
        "  remind_after: soon\n"                                      # line 9
        "agents:\n"
        "  - {id: a, name: A, password: x, roles: [sales]}\n"          # line 11: unknown role
    )
    res = run_cli("check-config", str(bad))
    assert res.returncode == 2, res.stderr
    assert f"{bad}:3: hours.support.timezone:" in res.stderr and "Mars/Base" in res.stderr
    assert f"{bad}:5: hours.support.weekly.mon:" in res.stderr and "overlap" in res.stderr
    assert f"{bad}:9: sla.remind_after:" in res.stderr
    # Cross-references are checked once the sections themselves are valid.
    bad.write_text(bad.read_text().replace("Mars/Base", "Asia/Shanghai").replace("'11:30-18:00'", "'13:30-18:00'")
                   .replace("soon", "5m"))
    res = run_cli("check-config", str(bad))
    assert res.returncode == 2
    assert f"{bad}:7: roles.finance.hours: unknown calendar 'office'" in res.stderr
    bad.write_text(bad.read_text().replace("hours: office", "hours: support"))
    res = run_cli("check-config", str(bad))
    assert f"{bad}:11: agents[0].roles: unknown role 'sales'" in res.stderr


def test_version():
    res = run_cli("version")
    assert res.returncode == 0 and res.stdout.startswith("kefu ")
