"""Two `kefu run` processes on one Redis share the work safely (SPEC "Shape",
"Routing": a conversation has exactly one owner at a time).

300 customers write at once, half of them to each process, to 5 agents with
40 slots each: 200 conversations get an owner, 100 wait.  No conversation is
opened twice or owned twice, no agent is over capacity, and both processes
show the same picture.  Then agents close conversations through either
process, concurrently, and the waiting ones are handed out, oldest first,
without ever exceeding anyone's capacity, until every conversation has been
served.

Also: claims and replies racing through both processes have one winner, and
a reply that takes the shop's endpoint longer than `bus.claim_idle` to accept
is not taken over and sent a second time by the other process.
"""
from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter

import aiohttp
import pytest
import redis.asyncio as aioredis

from connectors.api import sign
from tests.callback_server import CallbackServer
from tests.kefu_harness import Agent, wait_for

SECRET = "multi-secret"
CAPACITY = 40
AGENTS = [{"id": f"a{i}", "name": f"Agent {i}", "roles": ["presales"], "password": f"pw-a{i}",
           "max_concurrent": CAPACITY} for i in range(1, 6)]
CUSTOMERS = 300
SLOTS = CAPACITY * len(AGENTS)  # 200 < 300: some customers wait


async def post_inbound(http: aiohttp.ClientSession, url: str, i: int) -> int:
    body = json.dumps({"customer_id": f"c{i:03d}", "message_id": f"first-{i:03d}",
                       "text": f"hello from c{i:03d}"}).encode()
    async with http.post(url + "/api/channels/site/inbound", data=body,
                         headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
        return r.status


async def routed_count(http: aiohttp.ClientSession, d) -> int:
    async with http.get(d.url + "/metrics") as r:
        text = await r.text()
    line = next(ln for ln in text.splitlines() if ln.startswith("kefu_router_processed_total "))
    return int(float(line.split()[1]))


class Picture:
    """What the agents see, checked for the ownership invariants at every look."""

    def __init__(self) -> None:
        self.ever_assigned: set[str] = set()
        self.looks = 0

    def check(self, convs: list[dict]) -> dict:
        self.looks += 1
        ids = [c["id"] for c in convs]
        assert len(ids) == len(set(ids)), "a conversation listed twice"
        customers = Counter(c["customer"]["id"] for c in convs)
        assert customers and max(customers.values()) == 1, "a customer got two conversations"
        open_ = [c for c in convs if c["status"] == "open"]
        load = Counter(c["assignee"] for c in open_ if c["assignee"])
        assert set(load) <= {a["id"] for a in AGENTS}, load
        over = {a: n for a, n in load.items() if n > CAPACITY}
        assert not over, f"agents over capacity {CAPACITY}: {over}"
        for c in open_:
            assert bool(c["assignee"]) != bool(c["queued"]), c  # owned xor waiting
        self.ever_assigned |= {c["id"] for c in convs if c["assignee"]}
        return {
            "convs": convs,
            "open": open_,
            "closed": [c for c in convs if c["status"] == "closed"],
            "assigned": [c for c in open_ if c["assignee"]],
            "waiting": [c for c in open_ if not c["assignee"]],
            "load": load,
        }


async def check_storage(r: aioredis.Redis, prefix: str, view: dict) -> None:
    """Each agent's own list and load count agree with the conversations' owners."""
    owned_by = {a["id"]: {c["id"] for c in view["assigned"] if c["assignee"] == a["id"]} for a in AGENTS}
    total = 0
    for a in AGENTS:
        members = {m.decode() for m in await r.smembers(f"{prefix}agent:{a['id']}:convs")}
        assert members == owned_by[a["id"]], a["id"]
        assert await r.zscore(f"{prefix}agents:load", a["id"]) == len(members), a["id"]
        total += len(members)
    assert total == len(view["assigned"])


@pytest.mark.timeout(150)
async def test_two_processes_assign_each_conversation_once_and_drain_the_queue(shared_redis, make_daemon, http):
    # (shared_redis first: it is then torn down after the daemons, not under them)
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    prefix = f"mp{uuid.uuid4().hex[:8]}:"
    channels = {"site": {"kind": "api", "secret": SECRET, "callback_url": cb_url}}
    d1 = make_daemon("kefu-1", redis_url=shared_redis, redis={"url": shared_redis, "prefix": prefix},
                     agents=AGENTS, channels=channels)
    d2 = make_daemon("kefu-2", redis_url=shared_redis, redis={"url": shared_redis, "prefix": prefix},
                     agents=AGENTS, channels=channels)
    assert d1.config["state_dir"] != d2.config["state_dir"] and d1.url != d2.url
    await asyncio.gather(d1.start(), d2.start())

    # Each agent logs in on one process; the session is valid on both.
    on1: dict[str, Agent] = {}
    on2: dict[str, Agent] = {}
    for n, a in enumerate(AGENTS):
        home = d1 if n % 2 == 0 else d2
        agent = await Agent(home, http, a["id"]).login(a["password"])
        other = Agent(d2 if home is d1 else d1, http, a["id"])
        other.token = agent.token
        on1[a["id"]], on2[a["id"]] = (agent, other) if home is d1 else (other, agent)
        await other.presence("online")
    watcher1, watcher2 = on1["a1"], on2["a1"]

    # 300 first messages at once, alternating between the two processes.
    sem = asyncio.Semaphore(24)

    async def send(i: int) -> int:
        async with sem:
            return await post_inbound(http, (d1 if i % 2 else d2).url, i)
    assert set(await asyncio.gather(*(send(i) for i in range(CUSTOMERS)))) == {202}

    pic = Picture()

    async def look(agent: Agent) -> dict:
        return pic.check(await agent.conversations("all"))

    async def settled(expect_assigned: int, expect_closed: int) -> dict | None:
        v = await look(watcher1)
        if len(v["convs"]) == CUSTOMERS and len(v["assigned"]) == expect_assigned \
                and len(v["closed"]) == expect_closed:
            return v
        return None

    view = await wait_for(lambda: settled(SLOTS, 0), 60, 0.2, message="300 conversations, 200 assigned")
    assert sorted(view["load"].values()) == [CAPACITY] * len(AGENTS)
    assert len(view["waiting"]) == CUSTOMERS - SLOTS
    # Every conversation holds its one first message, and both processes agree.
    sample = [c["id"] for c in view["convs"][::15]]
    for cid in sample:
        conv = await (watcher2 if hash(cid) % 2 else watcher1).conversation(cid)
        assert [m["text"] for m in conv["messages"] if m["direction"] == "in"] == \
            [f"hello from {conv['customer']['id']}"]
    # Each inbound entry was routed by exactly one of the two processes.
    async def all_routed() -> list[int] | None:
        counts = [await routed_count(http, d) for d in (d1, d2)]
        return counts if sum(counts) >= CUSTOMERS else None
    routed = await wait_for(all_routed, 30, 0.2, message="routers' counts")
    assert sum(routed) == CUSTOMERS and min(routed) > 0, routed
    other = pic.check(await watcher2.conversations("all"))
    assert {c["id"]: c["assignee"] for c in other["convs"]} == {c["id"]: c["assignee"] for c in view["convs"]}

    r = aioredis.Redis.from_url(shared_redis)
    try:
        await check_storage(r, prefix, view)

        # Close rounds: each agent closes some of its conversations, through both
        # processes, all at once (in one round while new customers arrive); the
        # waiting ones are handed out, oldest first, within capacity.
        closed_total, customers = 0, CUSTOMERS
        for per_agent, arrivals in ((12, 0), (8, 40), (8, 0)):
            before = view
            to_close: list[tuple[Agent, str]] = []
            for a in AGENTS:
                mine = [c["id"] for c in before["assigned"] if c["assignee"] == a["id"]][:per_agent]
                to_close += [((on1 if k % 2 else on2)[a["id"]], cid) for k, cid in enumerate(mine)]

            async def close(agent: Agent, cid: str) -> None:
                code, body = await agent.call("POST", f"/api/conversations/{cid}/close")
                assert code == 200 and body["status"] == "closed", body

            async def keep_looking(stop: asyncio.Event) -> None:
                while not stop.is_set():  # invariants hold in the middle of the churn too
                    await look(watcher2)

            stop = asyncio.Event()
            looker = asyncio.create_task(keep_looking(stop))
            results = await asyncio.gather(*(close(a, cid) for a, cid in to_close),
                                           *(send(i) for i in range(customers, customers + arrivals)))
            assert set(results[len(to_close):]) <= {202}
            customers += arrivals
            closed_total += len(to_close)
            open_left = customers - closed_total

            async def settled_round(customers=customers, closed_total=closed_total,
                                    open_left=open_left) -> dict | None:
                v = await look(watcher1)
                if len(v["convs"]) == customers and len(v["closed"]) == closed_total \
                        and len(v["assigned"]) == min(SLOTS, open_left):
                    return v
                return None
            view = await wait_for(settled_round, 60, 0.2, message=f"queue drained after {closed_total} closes")
            stop.set()
            await looker

            assert sorted(view["load"].values()) == [CAPACITY] * len(AGENTS)
            assert len(view["waiting"]) == max(0, open_left - SLOTS)
            if not arrivals:
                # Oldest first: those handed out had waited at least as long as those still waiting.
                newly = {c["id"] for c in view["assigned"]} - {c["id"] for c in before["assigned"]}
                assert len(newly) == len(to_close)
                created = {c["id"]: c["created_at"] for c in view["convs"]}
                still = [created[c["id"]] for c in view["waiting"]]
                assert not still or max(created[c] for c in newly) <= min(still)
            await check_storage(r, prefix, view)
    finally:
        await r.aclose()

    assert not view["waiting"]
    assert len(view["assigned"]) == SLOTS and len(view["closed"]) == customers - SLOTS
    assert pic.ever_assigned == {c["id"] for c in view["convs"]}, "someone was never served"
    assert pic.looks > 5
    # The owner answers through either process; another agent is refused.
    cid = view["assigned"][0]["id"]
    owner = view["assigned"][0]["assignee"]
    code, _ = await (on2 if owner in ("a2", "a4") else on1)[owner].reply(cid, "ok")
    assert code == 201
    code, body = await on1["a1" if owner != "a1" else "a2"].reply(cid, "me too")
    assert code == 409 and owner in body["error"]
    await cb.stop()


class SlowCallback(CallbackServer):
    """A shop endpoint that takes a while to answer the first request carrying `slow_text`."""

    def __init__(self, secret: str, delay: float, slow_text: str):
        super().__init__(secret)
        self.delay, self.slow_text = delay, slow_text
        self.calls = 0
        self.answered = 0
        self.slowed = False

    async def handle(self, request):
        self.calls += 1
        try:
            if not self.slowed and json.loads(await request.read()).get("text") == self.slow_text:
                self.slowed = True
                await asyncio.sleep(self.delay)  # the endpoint is slow, not the test waiting
            return await super().handle(request)
        finally:
            self.answered += 1


@pytest.mark.timeout(90)
async def test_a_slow_callback_is_not_delivered_twice_by_two_processes(shared_redis, make_daemon, http):
    # bus.claim_idle is 5 s in the test config: the first delivery takes longer than that.
    cb = SlowCallback(SECRET, delay=9.0, slow_text="正在处理")
    cb_url = await cb.start()
    prefix = f"mp{uuid.uuid4().hex[:8]}:"
    channels = {"site": {"kind": "api", "secret": SECRET, "callback_url": cb_url, "callback_timeout": 20}}
    ds = [make_daemon(f"kefu-{n}", redis_url=shared_redis, redis={"url": shared_redis, "prefix": prefix},
                      agents=AGENTS, channels=channels) for n in (1, 2)]
    await asyncio.gather(*(d.start() for d in ds))
    agent = await Agent(ds[0], http, "a1").login("pw-a1")
    await agent.presence("online")
    assert await post_inbound(http, ds[1].url, 1) == 202
    conv = (await wait_for(agent.conversations, message="conversation"))[0]
    code, reply = await agent.reply(conv["id"], "正在处理")
    assert code == 201
    await wait_for(lambda: reply["id"] in cb.message_ids(), 40, message="the reply at the callback")
    # Then one more reply, to be sure nothing else is on its way.
    code, later = await agent.reply(conv["id"], "好了")
    assert code == 201
    await wait_for(lambda: later["id"] in cb.message_ids(), 20, message="the second reply")
    await wait_for(lambda: cb.slowed and cb.answered == cb.calls, 20, message="the slow request answered")
    ids = cb.message_ids()
    assert len(ids) == len(set(ids)), ids  # nothing delivered twice (automatic messages included)
    assert ids.count(reply["id"]) == ids.count(later["id"]) == 1
    await cb.stop()


@pytest.mark.timeout(90)
async def test_racing_claims_and_replies_across_processes_have_one_winner(shared_redis, make_daemon, http):
    """Nobody online, 30 customers waiting; three agents grab every conversation at
    the same moment through both processes (two claims and a reply, which claims an
    unowned conversation).  Each conversation ends with exactly one owner, the
    losers are told who owns it, and a losing reply is not stored or sent."""
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    prefix = f"mp{uuid.uuid4().hex[:8]}:"
    channels = {"site": {"kind": "api", "secret": SECRET, "callback_url": cb_url}}
    d1, d2 = [make_daemon(f"kefu-{n}", redis_url=shared_redis, redis={"url": shared_redis, "prefix": prefix},
                          agents=AGENTS, channels=channels) for n in (1, 2)]
    await asyncio.gather(d1.start(), d2.start())
    a1 = await Agent(d1, http, "a1").login("pw-a1")
    a2 = await Agent(d2, http, "a2").login("pw-a2")
    a3 = [await Agent(d, http, "a3").login("pw-a3") for d in (d1, d2)]
    n = 30
    assert set(await asyncio.gather(*(post_inbound(http, (d1, d2)[i % 2].url, i) for i in range(n)))) == {202}

    async def all_waiting():
        convs = await a1.conversations()
        return convs if len(convs) == n and all(c["queued"] and not c["assignee"] for c in convs) else None
    convs = await wait_for(all_waiting, 30, message="30 waiting conversations")

    async def grab(cid: str, k: int) -> dict[str, tuple[int, dict]]:
        ops = {
            "a1": lambda: a1.call("POST", f"/api/conversations/{cid}/claim"),
            "a2": lambda: a2.call("POST", f"/api/conversations/{cid}/claim"),
            "a3": lambda: a3[k % 2].reply(cid, f"a3 answers {cid}"),
        }
        order = list(ops)
        random.Random(k).shuffle(order)  # who sends first varies from one conversation to the next
        results = await asyncio.gather(*(ops[a]() for a in order))
        return dict(zip(order, results))
    outcomes = await asyncio.gather(*(grab(c["id"], k) for k, c in enumerate(convs)))

    r = aioredis.Redis.from_url(shared_redis)
    try:
        winners: dict[str, str] = {}
        for conv, out in zip(convs, outcomes):
            won = [a for a, (code, _) in out.items() if code in (200, 201)]
            assert len(won) == 1, (conv["id"], {a: c for a, (c, _) in out.items()})
            winners[conv["id"]] = won[0]
            for a, (code, body) in out.items():
                if a != won[0]:
                    assert code == 409 and won[0] in body["error"], (a, code, body)
        view = Picture().check(await a2.conversations("all"))
        assert {c["id"]: c["assignee"] for c in view["convs"]} == winners
        await check_storage(r, prefix, view)
    finally:
        await r.aclose()
    # The losing replies were neither stored nor sent; the winning ones were, once each.
    for conv in convs:
        full = await a1.conversation(conv["id"])
        agent_msgs = [m for m in full["messages"] if m["sender"]["kind"] == "agent"]
        expected = [f"a3 answers {conv['id']}"] if winners[conv["id"]] == "a3" else []
        assert [m["text"] for m in agent_msgs] == expected
    a3_won = {m_id for m_id, w in winners.items() if w == "a3"}
    await wait_for(lambda: {m["conversation_id"] for m in cb.received if m["text"].startswith("a3 answers")}
                   == a3_won, 20, message="winning replies delivered")
    sent = [m["text"] for m in cb.received if m["text"].startswith("a3 answers")]
    assert len(sent) == len(set(sent)) == len(a3_won)
    await cb.stop()


ROLE_AGENTS = [
    {"id": "p1", "roles": ["presales"], "max_concurrent": 40},
    {"id": "p2", "roles": ["presales", "aftersales"], "max_concurrent": 40},
    {"id": "s1", "roles": ["aftersales"], "max_concurrent": 40},
    {"id": "f1", "roles": ["finance"], "max_concurrent": 40},
    {"id": "v1", "roles": ["supervisor"], "max_concurrent": 30},  # disputes fall back to supervisors
]
ROLE_TEXTS = {"presales": "请问批发价多少钱", "aftersales": "卡密没收到", "finance": "我要退款",
              "dispute": "我要投诉你们"}


@pytest.mark.timeout(180)
async def test_500_conversations_across_roles_on_two_processes(shared_redis, make_daemon, http):
    """Issue 3: 500 new conversations across roles at once, two processes: each assigned
    exactly once, to an agent holding its role (or the fallback), never over capacity,
    and every waiting one is eventually assigned as slots free up."""
    agents = [{**a, "name": a["id"].upper(), "password": f"pw-{a['id']}"} for a in ROLE_AGENTS]
    caps = {a["id"]: a["max_concurrent"] for a in agents}
    holds = {a["id"]: set(a["roles"]) for a in agents}
    prefix = f"mr{uuid.uuid4().hex[:8]}:"
    channels = {"site": {"kind": "api", "secret": SECRET}}
    d1, d2 = [make_daemon(f"kefu-{n}", redis_url=shared_redis, redis={"url": shared_redis, "prefix": prefix},
                          agents=agents, channels=channels) for n in (1, 2)]
    await asyncio.gather(d1.start(), d2.start())
    logged = {a["id"]: await Agent((d1, d2)[k % 2], http, a["id"]).login(a["password"])
              for k, a in enumerate(agents)}
    for a in logged.values():
        await a.presence("online")
    roles = list(ROLE_TEXTS)
    sem = asyncio.Semaphore(32)

    async def send(i: int) -> int:
        body = json.dumps({"customer_id": f"r{i:03d}", "message_id": f"r-{i}",
                           "text": ROLE_TEXTS[roles[i % 4]]}, ensure_ascii=False).encode()
        async with sem, http.post((d1, d2)[i % 2].url + "/api/channels/site/inbound", data=body,
                                  headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
            return r.status
    assert set(await asyncio.gather(*(send(i) for i in range(500)))) == {202}

    served: dict[str, str] = {}  # conversation -> the one agent it was ever given to
    watcher = logged["v1"]

    async def look() -> list[dict]:
        convs = await watcher.conversations("all")
        assert len({c["id"] for c in convs}) == len(convs)
        load = Counter(c["assignee"] for c in convs if c["status"] == "open" and c["assignee"])
        assert all(n <= caps[a] for a, n in load.items()), load
        for c in convs:
            if c["assignee"]:
                assert served.setdefault(c["id"], c["assignee"]) == c["assignee"], "assigned twice"
                want = {c["role"], "supervisor"} if c["role"] == "dispute" else {c["role"]}
                assert holds[c["assignee"]] & want, (c["role"], c["assignee"])
        return convs

    async def stable() -> list[dict] | None:
        convs = await look()
        if len(convs) < 500:
            return None
        open_ = [c for c in convs if c["status"] == "open"]
        load = Counter(c["assignee"] for c in open_ if c["assignee"])
        # settled: nothing waits for a role that still has a free slot
        for c in open_:
            if not c["assignee"]:
                want = {"dispute": {"dispute", "supervisor"}}.get(c["role"], {c["role"]})
                if any(holds[a] & want and load[a] < caps[a] for a in caps):
                    return None
        return convs
    convs = await wait_for(stable, 60, 0.2, message="500 conversations routed and settled")
    assert Counter(c["role"] for c in convs) == {r: 125 for r in roles}

    rounds = 0
    while any(c["status"] == "open" and not c["assignee"] for c in convs):
        rounds += 1
        assert rounds <= 6
        owned = [c for c in convs if c["status"] == "open" and c["assignee"]]

        async def close(c: dict) -> None:
            code, body = await logged[c["assignee"]].call("POST", f"/api/conversations/{c['id']}/close")
            assert code == 200, body
        await asyncio.gather(*(close(c) for c in owned))
        convs = await wait_for(stable, 60, 0.2, message=f"queue drained, round {rounds}")
    assert len(served) == 500  # every conversation was eventually assigned, each exactly once
