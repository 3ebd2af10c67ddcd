"""Property-based: every inbound edge of one running daemon, driven with hypothesis
(issue 8 item 1).  Whatever comes in — API channel bodies and headers, web chat
frames, Telegram updates (webhook), OneBot events, agent API bodies — kefu answers
below 500, keeps the socket or connection open, logs no stack trace, and a normal
message still reaches an agent afterwards.

One daemon serves the whole module (its fakes live in the module's event loop), and
examples are bounded so the file stays fast.  In CI the examples are derandomized
(the same every run); locally each run explores new ones.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.api import sign
from tests.callback_server import CallbackServer
from tests.fakes.onebot import FakeOneBotReverse
from tests.fakes.telegram_api import FakeTelegram
from tests.kefu_harness import Agent, Daemon, base_config, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "fuzz-site-secret"
TG_TOKEN = "123456:FUZZ-TOKEN"
HOOK = "fuzz-hook-secret"
QQ_TOKEN = "fuzz-qq-token"
BOT_QQ = 10001

FUZZ = settings(max_examples=80, deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@dataclass
class Edges:
    d: Daemon
    http: aiohttp.ClientSession
    alice: Agent
    bob: Agent
    onebot: FakeOneBotReverse


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edges(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    tg, cb = FakeTelegram(TG_TOKEN), CallbackServer(SECRET)
    await tg.start()
    # The abuse limits are tested in tests/test_limits.py; here every example must reach the edges.
    no_limits = {"webchat": {k: None for k in ("messages_per_visitor", "messages_per_ip", "new_visitors_per_ip")},
                 "api": {"messages_per_customer": None}, "login": {"attempts_per_agent": 100000,
                                                                   "attempts_per_ip": 100000}}
    cfg = base_config(root / "data", router={"default_capacity": 5000}, limits=no_limits, channels={
        "webchat": {"kind": "webchat"},
        "site": {"kind": "api", "secret": SECRET, "callback_url": await cb.start()},
        "tg": {"kind": "telegram", "token": TG_TOKEN, "api_base": tg.url, "mode": "webhook",
               "webhook_secret": HOOK},
        "qq": {"kind": "qq", "mode": "reverse", "access_token": QQ_TOKEN, "self_id": BOT_QQ, "send_rate": 200},
    })
    d = Daemon(root / "kefu", cfg)
    d.config["channels"]["tg"]["public_url"] = d.url
    await d.start()
    http = aiohttp.ClientSession()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    bob = await Agent(d, http, "bob").login()
    onebot = FakeOneBotReverse(f"{d.ws_url}/onebot/qq/ws", QQ_TOKEN, self_id=BOT_QQ, reconnect_interval=0.1)
    await onebot.start()
    await onebot.wait_connected(timeout=15)
    yield Edges(d, http, alice, bob, onebot)
    await onebot.stop()
    await http.close()
    d.stop()
    await cb.stop()
    await tg.stop()


async def after_fuzz(e: Edges) -> None:
    """The daemon lives, is healthy, logged no stack trace, and a normal site message routes."""
    assert e.d.proc.poll() is None
    log = e.d.log_path.read_text(errors="replace")
    assert "Traceback" not in log and '"exc":' not in log, log[-4000:]
    customer = "ok-" + uuid.uuid4().hex[:8]
    body = json.dumps({"customer_id": customer, "message_id": customer, "text": "你好"}).encode()
    async with e.http.post(e.d.url + "/api/channels/site/inbound", data=body,
                           headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
        assert r.status == 202, await r.text()
    await wait_for(lambda: _assigned(e.alice, "site", customer), timeout=20, message="normal message routed")
    async with e.http.get(e.d.url + "/healthz") as r:
        assert r.status == 200, await r.text()


async def _assigned(agent: Agent, channel: str, customer: str) -> bool:
    return any(c["channel"] == channel and c["customer"]["id"] == customer and c["assignee"] == agent.id
               for c in await agent.conversations())


# -- strategies --------------------------------------------------------------------
ODD_TEXT = st.sampled_from(["\ud800", "a\udfffb", "\udc00\ud800", "²", "①", "٣", "𝟙", "1", "12", "\x00",
                            "\u202e", "Infinity", "NaN", "1e999", "转人工", "   ", "", "\n" * 3])
TEXT = st.text(max_size=40) | ODD_TEXT
NUMBER = st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 30, 1e308])
SCALAR = st.none() | st.booleans() | NUMBER | TEXT
JSON = st.recursive(SCALAR, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
                    max_leaves=12)
DEEP = st.integers(min_value=15, max_value=3000).map(lambda n: "[" * n + "]" * n)


def dumps(value) -> str:
    """JSON as a hostile client writes it: NaN/Infinity literals, surrogates as \\u escapes."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True)


def json_or_raw(objects: st.SearchStrategy) -> st.SearchStrategy[str]:
    """Mostly well-formed objects; some deep nesting, some bytes that are not JSON."""
    return st.one_of(objects.map(dumps), DEEP, st.binary(max_size=200).map(lambda b: b.decode("latin-1")))


API_BODY = st.fixed_dictionaries({}, optional={
    "customer_id": TEXT | NUMBER | JSON, "message_id": TEXT | NUMBER | JSON, "text": TEXT | JSON,
    "name": TEXT | JSON, "contact": TEXT | NUMBER, "attributes": st.dictionaries(TEXT, JSON, max_size=5) | JSON,
}) | JSON
HEADER = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=80)


# -- API channel -----------------------------------------------------------------------
@FUZZ
@given(text=json_or_raw(API_BODY), signature=st.sampled_from(["valid", "none"]) | HEADER)
async def test_api_channel_bodies_and_signatures(edges, text, signature):
    body = text.encode()
    headers = {} if signature == "none" else {
        "X-Kefu-Signature": sign(SECRET, body) if signature == "valid" else signature}
    async with edges.http.post(edges.d.url + "/api/channels/site/inbound", data=body, headers=headers) as r:
        answer = await r.json()
        assert r.status in (202, 400, 401, 413), (r.status, answer)
        assert r.status == 202 or isinstance(answer.get("error"), str)
        if signature != "valid":
            assert r.status == 401


async def test_api_channel_after_fuzz(edges):
    await after_fuzz(edges)


# -- web chat --------------------------------------------------------------------------
WEBCHAT_FRAME = st.fixed_dictionaries({"type": st.just("message") | TEXT}, optional={
    "text": TEXT | JSON, "client_msg_id": TEXT | NUMBER | JSON, "name": TEXT | JSON,
    "attachments": st.lists(TEXT | NUMBER, max_size=12) | JSON, "extra": JSON,
}) | JSON


@FUZZ
@given(frames=st.lists(json_or_raw(WEBCHAT_FRAME), min_size=1, max_size=5))
async def test_webchat_frames(edges, frames):
    async with edges.http.ws_connect(edges.d.ws_url + "/webchat/ws") as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        for frame in frames:
            await ws.send_str(frame)
            answer = await _answer(ws)
            assert answer["type"] in ("ack", "error"), answer
            assert answer["type"] == "ack" or isinstance(answer["error"], str)
        await ws.send_json({"type": "message", "text": "还在吗", "client_msg_id": uuid.uuid4().hex})
        assert (await _answer(ws))["type"] == "ack"


async def _answer(ws) -> dict:
    """The server's answer to the last frame (pushed replies skipped); the socket must stay open."""
    while True:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["type"] not in ("message", "history"):
            return frame


async def test_webchat_after_fuzz(edges):
    await after_fuzz(edges)


# -- Telegram (webhook) ----------------------------------------------------------------
TG_USER = st.fixed_dictionaries({"id": NUMBER | TEXT, "is_bot": st.booleans() | TEXT},
                                optional={"first_name": TEXT | NUMBER, "last_name": TEXT, "username": TEXT,
                                          "language_code": TEXT})
TG_MESSAGE = st.fixed_dictionaries({
    "message_id": st.integers(1, 10 ** 6) | NUMBER, "date": st.integers(0, 2 ** 31) | NUMBER,
    "chat": st.fixed_dictionaries({"id": st.integers(1, 10 ** 9) | NUMBER, "type": st.just("private") | TEXT}),
}, optional={"from": TG_USER, "text": TEXT | JSON, "caption": TEXT, "entities": JSON, "photo": JSON,
             "document": JSON, "reply_to_message": JSON})
TG_UPDATE = st.fixed_dictionaries({"update_id": st.integers(0, 2 ** 31) | NUMBER},
                                  optional={"message": TG_MESSAGE | JSON, "edited_message": JSON}) | JSON


@FUZZ
@given(body=json_or_raw(TG_UPDATE))
async def test_telegram_updates(edges, body):
    async with edges.http.post(edges.d.url + "/telegram/tg/webhook", data=body.encode(),
                               headers={"X-Telegram-Bot-Api-Secret-Token": HOOK}) as r:
        answer = await r.json()
        assert r.status in (200, 400), (r.status, answer)


async def test_telegram_after_fuzz(edges):
    await after_fuzz(edges)


# -- QQ (OneBot events) ----------------------------------------------------------------
SEGMENT = st.fixed_dictionaries({"type": st.sampled_from(["text", "image", "reply", "at", "face", "file"]) | TEXT},
                                optional={"data": st.dictionaries(TEXT, SCALAR | JSON, max_size=4) | JSON})
ONEBOT_EVENT = st.fixed_dictionaries({
    "post_type": st.sampled_from(["message", "notice", "request", "meta_event", "message_sent"]) | TEXT,
}, optional={
    "message_type": st.sampled_from(["private", "group"]) | TEXT, "sub_type": TEXT,
    "user_id": st.integers(1, 10 ** 10) | NUMBER | TEXT, "self_id": st.just(BOT_QQ) | NUMBER,
    "group_id": NUMBER | TEXT, "message_id": NUMBER | TEXT, "time": NUMBER,
    "message": TEXT | st.lists(SEGMENT, max_size=5) | JSON, "raw_message": TEXT | JSON,
    "sender": st.dictionaries(st.sampled_from(["user_id", "nickname", "card", "group_id"]), SCALAR | JSON) | JSON,
    "meta_event_type": TEXT, "request_type": st.just("friend") | TEXT, "flag": TEXT | NUMBER,
    "status": JSON, "echo": TEXT | NUMBER,
}) | JSON


@FUZZ
@given(events=st.lists(json_or_raw(ONEBOT_EVENT), min_size=1, max_size=5))
async def test_onebot_events(edges, events):
    for frame in events:
        await edges.onebot.emit_raw(frame)
    assert edges.onebot.connected


async def test_onebot_after_fuzz(edges):
    await after_fuzz(edges)
    qq = 20000 + int(uuid.uuid4().int % 10000)
    await edges.onebot.inject_private_message(qq, "你好,在吗")
    await wait_for(lambda: _assigned(edges.alice, "qq", str(qq)), timeout=20, message="QQ message routed")


# -- agent API -------------------------------------------------------------------------
AGENT_CALL = st.sampled_from([("POST", "/api/login"), ("PUT", "/api/presence"), ("POST", "{c}/messages"),
                              ("POST", "{c}/transfer"), ("POST", "{c}/claim"), ("POST", "{c}/close"),
                              ("POST", "/api/attachments"), ("GET", "/api/conversations?status={t}")])
AGENT_BODY = st.fixed_dictionaries({}, optional={
    "agent": TEXT | JSON, "password": TEXT | JSON, "status": st.sampled_from(["online", "away"]) | TEXT | JSON,
    "text": TEXT | JSON, "attachments": st.lists(TEXT, max_size=12) | JSON, "role": TEXT | JSON,
}) | JSON


@FUZZ
@given(call=AGENT_CALL, body=json_or_raw(AGENT_BODY), target=st.sampled_from(["own", "c_nope", "%00", "..%2F.."]))
async def test_agent_api_bodies(edges, call, body, target):
    convs = await edges.alice.conversations()
    cid = convs[0]["id"] if convs and target == "own" else target
    method, path = call
    path = path.format(c=f"/api/conversations/{cid}", t=target)
    async with edges.http.request(method, edges.d.url + path, data=body.encode(), headers=edges.bob.headers) as r:
        answer = await r.json()
        assert r.status < 500, (r.status, answer)
        assert 200 <= r.status < 300 or isinstance(answer.get("error"), str)


async def test_agent_api_after_fuzz(edges):
    await after_fuzz(edges)
