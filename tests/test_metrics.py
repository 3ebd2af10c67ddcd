"""/metrics is something an operator can build a dashboard from: drive a daemon
(messages on two channels, a duplicate, logins, a limit, replies, an SLA breach,
a refused reload, QQ connecting and going away) and read back, with
prometheus_client's own parser, counters with the right labels and values.
"""
from __future__ import annotations

import json
import signal
import uuid

from prometheus_client.parser import text_string_to_metric_families

from connectors.api import sign
from tests.callback_server import CallbackServer
from tests.fakes.onebot import FakeOneBotReverse
from tests.kefu_harness import Agent, wait_for

SECRET = "metrics-secret"
ONEBOT_TOKEN = "metrics-onebot-token"
BOT = 10001


class Scrape(dict):
    """(sample name, labels) -> value of one /metrics read."""

    def value(self, name: str, **labels: str) -> float | None:
        return self.get((name, frozenset(labels.items())))


async def scrape(http, d) -> Scrape:
    async with http.get(d.url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    out = Scrape()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


async def post(http, d, customer: str, message_id: str) -> int:
    body = json.dumps({"customer_id": customer, "message_id": message_id, "text": f"hello {message_id}"}).encode()
    async with http.post(d.url + "/api/channels/site/inbound", data=body,
                         headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
        return r.status


async def test_metrics_count_what_happened(make_daemon, http):
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    d = await make_daemon(
        channels={"webchat": {"kind": "webchat"},
                  "site": {"kind": "api", "secret": SECRET, "callback_url": cb_url},
                  "qq": {"kind": "qq", "mode": "reverse", "access_token": ONEBOT_TOKEN, "self_id": BOT}},
        limits={"api": {"messages_per_customer": "2/1m"}},
        tiers={"vip_customers": ["site:vip1"]},
        sla={"urgent": {"first_response": "1s", "resolution": "1h"}}).start()

    # Before anything happened the series exist, at 0; QQ is down until OneBot connects.
    m = await scrape(http, d)
    assert m.value("kefu_inbound_messages_total", channel="site") == 0
    assert m.value("kefu_rate_limited_total", kind="webchat.messages_per_visitor") == 0
    assert m.value("kefu_connector_up", channel="webchat", kind="webchat") == 1
    assert m.value("kefu_connector_up", channel="qq", kind="qq") == 0
    assert m.value("process_cpu_seconds_total") > 0 and m.value("process_resident_memory_bytes") > 0
    assert any(name == "python_info" for name, _ in m)

    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    async with http.post(d.url + "/api/login", json={"agent": "bob", "password": "nope"}) as r:
        assert r.status == 401

    # Two messages and a repeat from c1, one over its limit; one from a VIP; one on the web chat.
    assert [await post(http, d, "c1", mid) for mid in ("m1", "m1", "m2", "m3")] == [202, 202, 202, 429]
    assert await post(http, d, "vip1", "v1") == 202
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    await ws.send_json({"type": "message", "text": "hi", "client_msg_id": "w1"})
    while json.loads((await ws.receive(timeout=10)).data)["type"] != "ack":
        pass
    await ws.close()

    async def routed() -> Scrape | None:
        m = await scrape(http, d)
        return m if m.value("kefu_router_processed_total") == 4 else None
    m = await wait_for(routed, message="4 customer messages routed")
    assert m.value("kefu_inbound_messages_total", channel="site") == 3
    assert m.value("kefu_inbound_messages_total", channel="webchat") == 1
    assert m.value("kefu_inbound_duplicates_total", channel="site") == 1
    assert m.value("kefu_inbound_to_agent_seconds_count") == 4
    assert m.value("kefu_rate_limited_total", kind="api.messages_per_customer") == 1
    assert m.value("kefu_logins_refused_total", reason="wrong_password") == 1
    assert m.value("kefu_logins_refused_total", reason="locked_out") == 0
    inbound = "/api/channels/site/inbound"
    assert m.value("kefu_http_requests_total", route=inbound, method="POST", status="202") == 4
    assert m.value("kefu_http_requests_total", route=inbound, method="POST", status="429") == 1
    assert m.value("kefu_http_requests_total", route="/api/login", method="POST", status="200") == 1
    assert m.value("kefu_http_requests_total", route="/api/login", method="POST", status="401") == 1

    # The VIP (urgent: first response within 1 s) is not answered: a breach.
    async def breached() -> bool:
        m = await scrape(http, d)
        return m.value("kefu_sla_breaches_total", priority="urgent", target="first_response") == 1
    await wait_for(breached, message="the urgent conversation's SLA breach")

    # Two replies to c1: one first response; each delivered reply counted once.
    (conv,) = [c for c in await alice.conversations() if c["customer"]["id"] == "c1"]
    for text in ("first answer", "second answer"):
        code, _ = await alice.reply(conv["id"], text)
        assert code == 201
    await wait_for(lambda: {"first answer", "second answer"} <= {x["text"] for x in cb.received},
                   message="replies delivered")
    async with http.get(d.url + f"/api/conversations/{uuid.uuid4().hex}", headers=alice.headers) as r:
        assert r.status == 404
    async with http.get(d.url + "/no/such/page") as r:
        assert r.status == 404

    async def delivered() -> Scrape | None:
        m = await scrape(http, d)
        return m if m.value("kefu_outbound_delivered_total", channel="site") == len(cb.received) else None
    m = await wait_for(delivered, message="every callback counted")
    assert m.value("kefu_first_response_seconds_count", role=conv["role"]) == 1
    assert m.value("kefu_outbound_failed_total", channel="site") == 0
    replies = "/api/conversations/{id}/messages"
    assert m.value("kefu_http_requests_total", route=replies, method="POST", status="201") == 2
    assert m.value("kefu_http_requests_total", route="/api/conversations/{id}", method="GET", status="404") == 1
    assert m.value("kefu_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert not [labels for name, labels in m if name == "kefu_http_requests_total"
                and "/no/such/page" in dict(labels)["route"]]

    # QQ: up while OneBot is connected, down again when it goes away.
    fake = FakeOneBotReverse(f"{d.ws_url}/onebot/qq/ws", ONEBOT_TOKEN, self_id=BOT, reconnect_interval=0.1)
    await fake.start()
    await fake.wait_connected(timeout=15)
    up = lambda value: _connector_up(http, d, "qq", value)  # noqa: E731
    await wait_for(up(1), message="QQ up while connected")
    await fake.stop()
    await wait_for(up(0), message="QQ down once disconnected")

    # A config file with a mistake: refused on SIGHUP, and counted.
    good = d.config_path.read_text()
    d.config_path.write_text(good + "\nnot_a_key: 1\n")
    d.proc.send_signal(signal.SIGHUP)

    async def reload_refused() -> bool:
        return (await scrape(http, d)).value("kefu_config_reload_failures_total") == 1
    await wait_for(reload_refused, message="the refused reload counted")
    d.config_path.write_text(good)
    await cb.stop()


def _connector_up(http, d, channel: str, value: int):
    async def check() -> bool:
        return (await scrape(http, d)).value("kefu_connector_up", channel=channel, kind="qq") == value
    return check
