"""Operators' view: systemd notify protocol, graceful stop, health and metrics."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess

import redis

from tests.kefu_harness import REPO, Agent, wait_for


async def test_notify_ready_watchdog_and_graceful_stop(make_daemon, http, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.setblocking(False)
    seen: list[str] = []

    def drain() -> list[str]:
        while True:
            try:
                seen.append(sock.recv(4096).decode())
            except BlockingIOError:
                return seen

    d = make_daemon()
    await d.start(env={"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "200000"})
    await wait_for(lambda: "READY=1" in drain(), message="READY=1")
    await wait_for(lambda: drain().count("WATCHDOG=1") >= 2, message="watchdog pings")

    async with http.get(d.url + "/healthz") as r:
        health = await r.json()
    assert r.status == 200 and health["status"] == "ok" and health["redis"] == "ok"
    assert health["connectors"]["webchat"]["state"] == "running"
    async with http.get(d.url + "/metrics") as r:
        text = await r.text()
    assert r.status == 200 and 'kefu_connector_up{channel="webchat",kind="webchat"} 1.0' in text

    # A message acknowledged right before SIGTERM survives the stop.
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    token = (await ws.receive_json())["visitor_token"]
    await ws.send_json({"type": "message", "text": "last words", "client_msg_id": "x1"})
    assert (await ws.receive_json())["type"] == "ack"
    d.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(d.proc.wait, 10)  # the promise: out within 10 s
    assert code == 0
    assert "STOPPING=1" in drain()
    await ws.close()

    await d.start()
    alice = await Agent(d, http, "alice").login()
    convs = await wait_for(lambda: alice.conversations(), message="conversation after restart")
    messages = (await alice.conversation(convs[0]["id"]))["messages"]
    assert [m["text"] for m in messages if m["sender"]["kind"] == "customer"] == ["last words"]
    ws = await http.ws_connect(d.ws_url + f"/webchat/ws?token={token}")
    assert (await ws.receive_json())["conversation_id"] == convs[0]["id"]
    await ws.close()
    sock.close()


async def test_embedded_redis_is_private_and_stopped(make_daemon):
    d = await make_daemon().start()
    redis_dir = d.workdir / "data" / "redis"
    pid = int((redis_dir / "redis.pid").read_text())
    assert (redis_dir / "redis.sock").exists() and (redis_dir / "appendonly.aof").exists()
    client = redis.Redis(unix_socket_path=str(redis_dir / "redis.sock"))
    assert client.config_get("port") == {"port": "0"}  # no TCP port at all
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    client.close()
    assert d.stop() == 0
    await wait_for(lambda: not os.path.exists(f"/proc/{pid}"), message="embedded redis stopped")


async def test_second_process_on_same_state_dir_is_refused(make_daemon, tmp_path):
    d = await make_daemon().start()
    other = make_daemon("other")
    other.config["state_dir"] = d.config["state_dir"]
    other.write_config()
    res = subprocess.run([os.sys.executable, "-m", "aggregator", "run", "-c", str(other.config_path)],
                         capture_output=True, text=True, timeout=60, cwd=other.workdir,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.returncode == 1
    lines = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert any("in use by another kefu process" in line["msg"] for line in lines)
    assert "Traceback" not in res.stderr


async def test_sighup_reloads_and_refuses_a_bad_file(make_daemon, http):
    d = await make_daemon(quick_replies=[{"name": "hi", "text": {"zh": "您好{customer_name}", "en": "Hi"}}]).start()
    alice = await Agent(d, http, "alice").login()
    code, body = await alice.call("GET", "/api/quick_replies")
    assert [q["name"] for q in body["quick_replies"]] == ["hi"]

    d.config["quick_replies"].append({"name": "bye", "text": "再见"})
    d.config["agents"] = [*d.config["agents"], {"id": "dan", "name": "Dan", "roles": ["finance"],
                                                "password": "dan-pw"}]
    d.write_config()
    d.proc.send_signal(signal.SIGHUP)

    async def reloaded() -> bool:
        return [q["name"] for q in (await alice.call("GET", "/api/quick_replies"))[1]["quick_replies"]] == ["hi", "bye"]
    await wait_for(reloaded, message="new quick replies")
    await Agent(d, http, "dan").login("dan-pw")  # a new agent can log in without a restart
    await alice.presence("online")

    d.config_path.write_text(d.config_path.read_text() + "\nnonsense_key: 1\n")
    d.proc.send_signal(signal.SIGHUP)
    await wait_for(lambda: "config reload refused" in d.log(), message="refusal logged")
    assert "nonsense_key" in d.log() and d.proc.poll() is None
    code, body = await alice.call("GET", "/api/quick_replies")  # the old config stays in force
    assert code == 200 and len(body["quick_replies"]) == 2

    # /q expands a quick reply with the conversation's variables
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    await ws.receive_json()
    await ws.send_json({"type": "message", "text": "在吗", "client_msg_id": "q1", "name": "小王"})
    await ws.receive_json()
    conv = (await wait_for(lambda: alice.conversations(), message="conversation"))[0]
    code, msg = await alice.reply(conv["id"], "/q hi")
    assert code == 201 and msg["text"] == "您好小王"
    code, body = await alice.reply(conv["id"], "/q nope")
    assert code == 400 and "quick reply" in body["error"]
    await ws.close()
