"""The delivery promise (SPEC "Delivery promise"), tested the hard way.

A shop floods the API channel with signed site messages from many customers
while an agent answers; in the middle kefu is killed with SIGKILL.  After a
restart on the same state the shop re-sends what it never saw acknowledged,
as its retry logic would.  Then:

- every message answered 202 is stored exactly once, in its customer's
  conversation; nothing is stored twice;
- every reply stored (every 201 among them) reaches the shop's callback at
  least once, a re-send carries the same message id and the same body, and
  nothing reaches the callback that kefu did not store;
- replies made after the restart arrive exactly once;
- with the embedded Redis, the redis-server survives the kill and the new
  kefu reuses it (and stops it on a clean exit).

The same holds when it is Redis (append-only file on) that restarts under
a running kefu, and when one of two kefu processes sharing a Redis is
killed: the survivor takes over what the dead one held.

And: a callback endpoint that is down for a while gets the
replies once it is back, each exactly once.
"""
from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from connectors.api import sign
from tests.callback_server import CallbackServer
from tests.kefu_harness import Agent, Daemon, RedisServer, wait_for

SECRET = "promise-secret"
N_MESSAGES = 1200
N_CUSTOMERS = 200
SENDERS = 12
KILL_AFTER_ACKS = 400  # kill -9 once this many inbound messages were answered 202 ...
KILL_AFTER_REPLIES = 60  # ... and the agent got this many replies accepted
REPLIERS = 4
POST_RESTART_REPLIES = 20

ALICE = {"id": "alice", "name": "Alice", "roles": ["presales", "aftersales"], "password": "alice-pw",
         "max_concurrent": 2000}
MID = re.compile(r"\bsm-\d{5}\b")


def inbound(i: int) -> tuple[str, str, bytes]:
    mid = f"sm-{i:05d}"
    cust = f"u{i % N_CUSTOMERS:03d}"
    body = json.dumps({"customer_id": cust, "message_id": mid, "text": f"order problem {mid} ({cust})",
                       "name": f"Buyer {cust}"}).encode()
    return mid, cust, body


async def post_signed(http: aiohttp.ClientSession, d: Daemon, body: bytes) -> tuple[int | None, dict | None]:
    """(status, json) of one signed inbound POST; (None, None) when no answer came back."""
    headers = {"X-Kefu-Signature": sign(SECRET, body), "Content-Type": "application/json"}
    try:
        async with http.post(d.url + "/api/channels/site/inbound", data=body, headers=headers,
                             timeout=aiohttp.ClientTimeout(total=20)) as r:
            data = await r.json(content_type=None)
            return r.status, data
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None, None


def redis_client(d: Daemon) -> aioredis.Redis:
    """A direct client to the Redis a daemon uses (only to wait for it to be idle)."""
    url = d.config["redis"]["url"]
    if url is None:
        return aioredis.Redis(unix_socket_path=str(Path(d.config["state_dir"]) / "redis" / "redis.sock"))
    return aioredis.Redis.from_url(url)


async def stream_idle(r: aioredis.Redis, stream: str, group: str) -> bool:
    """Every entry of `stream` was delivered to `group` and acknowledged."""
    try:
        groups = await r.xinfo_groups(stream)
    except aioredis.ResponseError:
        return False
    g = next((g for g in groups if g["name"] in (group, group.encode())), None)
    if g is None or g["pending"]:
        return False
    last = await r.xrevrange(stream, count=1)
    return not last or last[0][0] == g["last-delivered-id"]


def embedded_redis_pid(d: Daemon) -> int:
    return int((Path(d.config["state_dir"]) / "redis" / "redis.pid").read_text().strip())


def process_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not re.search(r"^State:\s+[ZX]", status, re.MULTILINE)  # a zombie has exited


async def all_conversations(agent: Agent) -> list[dict]:
    """Every conversation with its messages, as the agent API shows them."""
    listed = await agent.conversations("all")
    sem = asyncio.Semaphore(16)

    async def one(cid: str) -> dict:
        async with sem:
            return await agent.conversation(cid)
    return await asyncio.gather(*(one(c["id"]) for c in listed))


class Flood:
    """Shop senders flooding the API channel while the agent answers; `disrupt`
    runs once, in the middle, when enough was acknowledged and answered."""

    def __init__(self, http: aiohttp.ClientSession, daemons: list[Daemon], alices: list[Agent]):
        self.http = http
        self.daemons, self.alices = daemons, alices  # message i goes to daemons[i % n]
        self.statuses: dict[int, list[int | None]] = defaultdict(list)
        self.acked: set[int] = set()
        self.accepted: dict[str, str] = {}  # reply id -> text, answered 201
        self.attempted: set[str] = set()  # every reply text sent (some got no answer)
        self.reply_codes: Counter[int] = Counter()  # replies answered otherwise
        self.unanswered = 0  # inbound requests not answered 202
        self.disrupt_now, self.disrupted, self.stop_replies = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def _maybe_disrupt(self) -> None:
        if len(self.acked) >= KILL_AFTER_ACKS and len(self.accepted) >= KILL_AFTER_REPLIES:
            self.disrupt_now.set()

    async def run(self, disrupt, stop_replies_on_disruption: bool) -> None:
        todo = list(range(N_MESSAGES))
        random.Random(7).shuffle(todo)

        async def sender() -> None:
            while todo:
                i = todo.pop()
                status, _ = await post_signed(self.http, self.daemons[i % len(self.daemons)], inbound(i)[2])
                self.statuses[i].append(status)
                if status != 202:
                    self.unanswered += 1
                if status == 202:
                    self.acked.add(i)
                    self._maybe_disrupt()

        async def senders() -> None:
            await asyncio.gather(*(sender() for _ in range(SENDERS)))
            self.disrupt_now.set()  # (too late: the checks below will say so)
            await self.disrupted.wait()
            self.stop_replies.set()

        async def replier(k: int) -> None:
            agent = self.alices[k % len(self.alices)]
            convs: list[dict] = []
            n = 0
            while not self.stop_replies.is_set():
                if not convs or n % 10 == 0:
                    try:
                        convs = await agent.conversations()
                    except (aiohttp.ClientError, AssertionError, TimeoutError, OSError, ValueError):
                        await asyncio.sleep(0.05)  # kefu or its Redis is down: pace the retries
                        continue
                    if not convs:
                        await asyncio.sleep(0.02)
                        continue
                conv = random.choice(convs)
                text = f"reply r{k}-{n:04d}"
                n += 1
                self.attempted.add(text)
                try:
                    code, body = await agent.reply(conv["id"], text)
                except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
                    await asyncio.sleep(0.05)
                    continue  # no answer: the reply may or may not have been stored
                if code == 201:
                    assert body["text"] == text
                    self.accepted[body["id"]] = text
                    self._maybe_disrupt()
                else:
                    self.reply_codes[code] += 1

        async def disruptor() -> None:
            await self.disrupt_now.wait()
            self.acked_before = len(self.acked)
            await disrupt()
            self.disrupted.set()
            if stop_replies_on_disruption:
                self.stop_replies.set()

        await asyncio.gather(disruptor(), senders(), *(replier(k) for k in range(REPLIERS)))
        # The disruption really landed in the middle of the flood.
        assert KILL_AFTER_ACKS <= self.acked_before < N_MESSAGES - SENDERS, self.acked_before
        assert len(self.accepted) >= KILL_AFTER_REPLIES

    async def resend_unacknowledged(self) -> dict[int, tuple[int | None, dict | None]]:
        """What a shop's retry does: send again everything never answered 202; all 202 now."""
        unacked = [i for i in range(N_MESSAGES) if i not in self.acked]
        results: dict[int, tuple[int | None, dict | None]] = {}

        async def resender(items: list[int]) -> None:
            for i in items:
                results[i] = await post_signed(self.http, self.daemons[i % len(self.daemons)], inbound(i)[2])
        await asyncio.gather(*(resender(unacked[k::SENDERS]) for k in range(SENDERS)))
        bad = {i: r for i, r in results.items() if r[0] != 202}
        assert not bad, list(bad.items())[:5]
        self.acked |= set(results)
        return results

    async def replies_now(self) -> dict[str, str]:
        """Replies made with everything up: each must arrive exactly once."""
        convs = await self.alices[0].conversations()
        after: dict[str, str] = {}
        for n in range(POST_RESTART_REPLIES):
            conv = convs[n * 7 % len(convs)]
            text = f"reply after disruption {n:02d}"
            code, body = await self.alices[n % len(self.alices)].reply(conv["id"], text)
            assert code == 201, body
            after[body["id"]] = text
        return after

    async def verify(self, cb: CallbackServer, after: dict[str, str]) -> None:
        d, alice = self.daemons[0], self.alices[0]
        # Let kefu finish: every inbound entry routed, every reply handed over.
        r = redis_client(d)
        prefix = d.config["redis"]["prefix"]
        try:
            await wait_for(lambda: stream_idle(r, prefix + "in", "router"), 60, 0.1,
                           message="router to consume every inbound entry")
            await wait_for(lambda: set(self.accepted) | set(after) <= set(cb.message_ids()), 60, 0.1,
                           message="every accepted reply at the callback")
            await wait_for(lambda: stream_idle(r, prefix + "out:site", "connector"), 60, 0.1,
                           message="every reply handed over")
        finally:
            await r.aclose()

        # -- inbound: every message stored exactly once, in its customer's conversation
        conversations = await all_conversations(alice)
        assert len(conversations) == N_CUSTOMERS
        seen: Counter[str] = Counter()
        inbound_texts: Counter[str] = Counter()
        stored_out: dict[str, tuple[str, str, str]] = {}  # id -> (text, conversation id, sender kind)
        for conv in conversations:
            assert conv["status"] == "open" and conv["channel"] == "site"
            ids = [m["id"] for m in conv["messages"]]
            assert len(ids) == len(set(ids)), f"a message listed twice in {conv['id']}"
            for m in conv["messages"]:
                if m["direction"] == "in":
                    inbound_texts[m["text"]] += 1
                    seen[MID.search(m["text"]).group(0)] += 1
                    assert m["text"].endswith(f"({conv['customer']['id']})"), (conv["id"], m["text"])
                else:  # the agent's replies, and kefu's automatic messages (welcome...)
                    stored_out[m["id"]] = (m["text"], conv["id"], m["sender"]["kind"])
        twice = {t: n for t, n in inbound_texts.items() if n > 1}
        assert not twice, f"{len(twice)} messages stored more than once, e.g. {list(twice.items())[:3]}"
        lost = sorted(inbound(i)[0] for i in self.acked if seen[inbound(i)[0]] == 0)
        assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}"
        assert set(seen) == {inbound(i)[0] for i in range(N_MESSAGES)}

        # -- replies: 201 => stored; stored <=> delivered; re-sends recognisable
        agent_out = {i: v for i, v in stored_out.items() if v[2] == "agent"}
        for rid, text in {**self.accepted, **after}.items():
            assert agent_out.get(rid, (None,))[0] == text, (rid, text)
        assert {t for t, _, _ in agent_out.values()} <= self.attempted | set(after.values())
        by_id: dict[str, list[dict]] = defaultdict(list)
        for m in cb.received:
            by_id[m["message_id"]].append(m)
        never_stored = set(by_id) - set(stored_out)
        assert not never_stored, f"callback got messages kefu never stored: {sorted(never_stored)[:5]}"
        undelivered = set(stored_out) - set(by_id)
        assert not undelivered, f"{len(undelivered)} stored replies never delivered, e.g. " \
            f"{[stored_out[i] for i in sorted(undelivered)[:3]]}"
        customer_of = {c["id"]: c["customer"]["id"] for c in conversations}
        for rid, copies in by_id.items():
            text, cid, _ = stored_out[rid]
            assert all(c == {"customer_id": customer_of[cid], "conversation_id": cid, "message_id": rid,
                             "text": text} for c in copies), copies
        ids_per_text: dict[str, set[str]] = defaultdict(set)
        for m in cb.received:
            if m["message_id"] in agent_out:
                ids_per_text[m["text"]].add(m["message_id"])
        assert all(len(v) == 1 for v in ids_per_text.values()), "a re-send came with a new message id"
        for rid in after:
            assert len(by_id[rid]) == 1, f"reply {rid} made after the disruption delivered {len(by_id[rid])} times"
        assert cb.bad_signatures == 0


@pytest.mark.timeout(150)
async def test_kill_9_mid_flood_loses_nothing_and_duplicates_nothing(make_daemon, http, redis_url):
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    d = make_daemon("kefu", redis_url=redis_url, agents=[ALICE], channels={
        "site": {"kind": "api", "secret": SECRET, "callback_url": cb_url}})
    await d.start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    redis_pid = embedded_redis_pid(d) if redis_url is None else None

    async def kill() -> None:
        assert await asyncio.to_thread(d.kill) == -signal.SIGKILL
    flood = Flood(http, [d], [alice])
    await flood.run(kill, stop_replies_on_disruption=True)
    # Before the kill every request was answered as it should be.
    assert not flood.reply_codes, flood.reply_codes
    assert {s for ss in flood.statuses.values() for s in ss} <= {202, None}

    if redis_pid is not None:
        # kefu's own redis-server outlives a crashed kefu (its data is in memory there) ...
        assert process_alive(redis_pid), "embedded redis-server died with kefu"
    await d.start()
    if redis_pid is not None:
        # ... and the next kefu on the same state dir reuses it.
        assert embedded_redis_pid(d) == redis_pid
        assert process_alive(redis_pid)
        assert "reusing embedded redis" in d.log()
    flood.alices = [await Agent(d, http, "alice").login()]

    await flood.resend_unacknowledged()
    # A message stored before is recognised as such.
    code, body = await post_signed(http, d, inbound(next(iter(flood.acked)))[2])
    assert code == 202 and body["duplicate"] is True
    after = await flood.replies_now()
    await flood.verify(cb, after)

    # A clean stop also stops the reused embedded redis-server.
    assert d.stop() == 0
    if redis_pid is not None:
        await wait_for(lambda: not process_alive(redis_pid), 15, message="embedded redis to stop")
    await cb.stop()


@pytest.mark.timeout(150)
async def test_redis_restart_mid_flood_loses_nothing_and_duplicates_nothing(make_daemon, http, tmp_path):
    """Redis (append-only file on) is restarted under kefu's feet; kefu rides it out."""
    server = RedisServer(tmp_path / "redis").start()
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    try:
        d = make_daemon("kefu", redis_url=server.url, agents=[ALICE], channels={
            "site": {"kind": "api", "secret": SECRET, "callback_url": cb_url}})
        await d.start()
        alice = await Agent(d, http, "alice").login()
        await alice.presence("online")
        health_seen: list[int] = []

        async def restart_redis() -> None:
            await asyncio.to_thread(server.stop)  # a clean stop: the append-only file is complete
            async with http.get(d.url + "/healthz") as r:
                health_seen.append(r.status)
            # Down long enough for kefu to give up on some requests (it retries a little first).
            await wait_for(lambda: flood.unanswered >= SENDERS, 30, message="requests failing while Redis is down")
            await asyncio.to_thread(server.start)
        flood = Flood(http, [d], [alice])
        await flood.run(restart_redis, stop_replies_on_disruption=False)
        assert health_seen == [503]  # kefu noticed, and said so
        await wait_for(lambda: health_ok(http, d), 30, message="healthy again")
        # kefu itself never went away; while Redis was down nothing was acknowledged
        # falsely, and nothing was refused as if it were the shop's fault.
        assert d.proc.poll() is None
        codes = Counter(s for ss in flood.statuses.values() for s in ss)
        assert not [c for c in codes if c is not None and 400 <= c < 500], codes
        assert codes[202] < N_MESSAGES
        assert not [c for c in flood.reply_codes if c < 500], flood.reply_codes

        await flood.resend_unacknowledged()
        after = await flood.replies_now()
        await flood.verify(cb, after)
        assert d.stop() == 0
    finally:
        server.stop()
        await cb.stop()


@pytest.mark.timeout(150)
async def test_kill_9_of_one_of_two_processes_the_other_finishes_the_work(shared_redis, make_daemon, http):
    """Two kefu processes share one Redis; one is killed mid-flood.  The survivor
    takes over what the dead one held (inbound being routed, replies being sent)."""
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    prefix = f"k2{uuid.uuid4().hex[:8]}:"
    d1, d2 = [make_daemon(f"kefu-{n}", redis_url=shared_redis, redis={"url": shared_redis, "prefix": prefix},
                          agents=[ALICE], channels={"site": {"kind": "api", "secret": SECRET,
                                                             "callback_url": cb_url}}) for n in (1, 2)]
    await asyncio.gather(d1.start(), d2.start())
    a1 = await Agent(d1, http, "alice").login()
    a2 = Agent(d2, http, "alice")
    a2.token = a1.token
    await a2.presence("online")

    async def kill() -> None:
        assert await asyncio.to_thread(d1.kill) == -signal.SIGKILL
    flood = Flood(http, [d1, d2], [a1, a2])
    await flood.run(kill, stop_replies_on_disruption=False)
    assert not [c for c in flood.reply_codes], flood.reply_codes
    assert {s for ss in flood.statuses.values() for s in ss} <= {202, None}
    assert len(flood.accepted) > KILL_AFTER_REPLIES  # the survivor kept taking replies

    flood.daemons, flood.alices = [d2], [a2]
    await flood.resend_unacknowledged()
    after = await flood.replies_now()
    await flood.verify(cb, after)
    assert d2.stop() == 0
    await cb.stop()


async def health_ok(http: aiohttp.ClientSession, d: Daemon) -> bool:
    async with http.get(d.url + "/healthz") as r:
        return r.status == 200


class FlakyCallback(CallbackServer):
    """A callback endpoint that also counts the attempts it refused."""

    def __init__(self, secret: str):
        super().__init__(secret)
        self.refused: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail_status:
            body = json.loads(await request.read())
            self.refused.append(body["message_id"])
        return await super().handle(request)


@pytest.mark.timeout(90)
async def test_reply_waits_for_a_failing_callback_then_arrives_exactly_once(make_daemon, http, redis_url):
    cb = FlakyCallback(SECRET)
    cb_url = await cb.start()
    d = make_daemon("kefu", redis_url=redis_url, agents=[ALICE], channels={
        "site": {"kind": "api", "secret": SECRET, "callback_url": cb_url, "retries": 1}})
    await d.start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    _, _, body = inbound(1)
    assert (await post_signed(http, d, body))[0] == 202
    conv = (await wait_for(alice.conversations, message="conversation listed"))[0]

    cb.fail_status = 503
    code, first = await alice.reply(conv["id"], "请稍等, 正在查询")
    assert code == 201
    # Refused again and again: retried beyond the connector's own retries (1 → 2 attempts a
    # round, and no more than two messages are waiting yet: kefu's welcome and this reply).
    await wait_for(lambda: len(cb.refused) >= 5, 60, message="retry rounds")
    code, second = await alice.reply(conv["id"], "已为您补发卡密")
    assert code == 201
    refused = len(cb.refused)
    await wait_for(lambda: len(cb.refused) >= refused + 2, 30, message="another retry round")
    async with http.get(d.url + "/healthz") as r:
        health = await r.json()
    # A refusing endpoint is a delivery problem, not a broken connector.
    assert r.status == 200 and health["connectors"]["site"]["state"] == "running"
    assert not {first["id"], second["id"]} & set(cb.message_ids())

    cb.fail_status = None
    await wait_for(lambda: {first["id"], second["id"]} <= set(cb.message_ids()), 60,
                   message="both replies after the endpoint recovered")
    code, third = await alice.reply(conv["id"], "还有其他问题吗?")
    assert code == 201
    await wait_for(lambda: third["id"] in cb.message_ids(), 30, message="third reply")
    # Each exactly once.  The order of the first two is not checked: the supervisor keeps a
    # conversation's replies in order only within one batch, and these two were retried
    # in separate rounds.  The third, made after both arrived, comes last.
    # (kefu's own automatic messages, such as the welcome, are held to the same rule.)
    ids = cb.message_ids()
    assert len(ids) == len(set(ids)), ids
    ours = [i for i in ids if i in (first["id"], second["id"], third["id"])]
    assert len(ours) == 3 and ours[-1] == third["id"], ours
    texts = {m["message_id"]: m["text"] for m in cb.received if m["message_id"] in ours}
    assert texts == {first["id"]: "请稍等, 正在查询", second["id"]: "已为您补发卡密", third["id"]: "还有其他问题吗?"}
    assert all(m["conversation_id"] == conv["id"] and m["customer_id"] == "u001" for m in cb.received)
    assert cb.bad_signatures == 0
    await cb.stop()
