"""Sessions end (issue 8): logout, expiry and removal from config close /api/events."""
from __future__ import annotations

import signal
import uuid

import aiohttp

from tests.kefu_harness import DEFAULT_AGENTS, Agent
from tests.test_permissions import audit


async def closed_with(ws) -> tuple[int, str]:
    """Wait for the server to close the socket; its close code and reason."""
    while True:
        msg = await ws.receive(timeout=15)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code, msg.extra or ""


async def still_open(ws) -> bool:
    await ws.send_str("ping")
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "pong":
            return True
        if msg.type != aiohttp.WSMsgType.TEXT:
            return False


async def test_logout_in_another_process_ends_the_session_everywhere(shared_redis, make_daemon, http):
    prefix = f"ss{uuid.uuid4().hex[:8]}:"
    d1, d2 = [await make_daemon(f"kefu-{n}", redis_url=shared_redis,
                                redis={"url": shared_redis, "prefix": prefix}).start() for n in (1, 2)]
    alice = await Agent(d1, http, "alice").login()
    other = await Agent(d1, http, "alice").login()  # her second session (another browser)
    ws = await http.ws_connect(d1.ws_url + "/api/events", headers=alice.headers)
    ws_other = await http.ws_connect(d1.ws_url + "/api/events", headers=other.headers)
    assert (await ws.receive_json(timeout=10))["type"] == "hello"

    on_d2 = Agent(d2, http, "alice")
    on_d2.token = alice.token
    code, _ = await on_d2.call("POST", "/api/logout")
    assert code == 200
    code, reason = await closed_with(ws)
    assert code == 4401 and reason
    assert (await alice.call("GET", "/api/me"))[0] == 401
    assert await still_open(ws_other) and (await other.call("GET", "/api/me"))[0] == 200

    lines = (await audit(d1, "--agent", "alice")).splitlines()
    assert [ln.split()[2] for ln in lines][:3] == ["logout", "login", "login"]
    await ws_other.close()


async def test_an_agent_removed_from_config_is_logged_out_on_reload(make_daemon, http):
    d = await make_daemon().start()
    alice, bob = await Agent(d, http, "alice").login(), await Agent(d, http, "bob").login()
    a_ws = await http.ws_connect(d.ws_url + "/api/events", headers=alice.headers)
    b_ws = await http.ws_connect(d.ws_url + "/api/events", headers=bob.headers)
    d.config["agents"] = [a for a in DEFAULT_AGENTS if a["id"] != "alice"]
    d.write_config()
    d.proc.send_signal(signal.SIGHUP)
    code, reason = await closed_with(a_ws)
    assert code == 4401 and reason
    assert (await alice.call("GET", "/api/me"))[0] == 401
    assert await still_open(b_ws)
    await b_ws.close()


async def test_an_expired_token_closes_its_events_socket(make_daemon, http):
    d = await make_daemon(web={"token_ttl": 2}).start()
    alice = await Agent(d, http, "alice").login()
    ws = await http.ws_connect(d.ws_url + "/api/events", headers=alice.headers)
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    code, reason = await closed_with(ws)
    assert code == 4401 and reason
    assert (await alice.call("GET", "/api/me"))[0] == 401
