"""Phase router: the real router, built by aggregator/core.py's build_core as `kefu
run` builds it, draining a pre-loaded inbound stream (`router_msgs_per_s`)."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aggregator.config import Settings
from aggregator.core import build_core
from bench.common import command_usec, delete_prefix, log
from bench.workload import CHANNEL, SECRET
from routing.router import GROUP
from storage.connection import connect
from storage.events import Event


async def bench_router(url: str, events: list[Event], batch: int, agents: int, capacity: int,
                       profile: str | None) -> dict[str, Any]:
    prefix = f"kbench{uuid.uuid4().hex[:8]}:"
    base = {"redis": {"url": url, "prefix": prefix}, "bus": {"batch": batch},
            "channels": {CHANNEL: {"kind": "api", "secret": SECRET}}}
    # Agents spread over the configured roles (default roles and keyword routing).
    roles = list(getattr(Settings.model_validate(base), "roles", None) or ["presales", "aftersales"])
    base["agents"] = [{"id": f"agent{i}", "name": f"Agent {i}", "password": "x" * 12,
                       "roles": [roles[i % len(roles)], roles[(i + 1) % len(roles)]],
                       "max_concurrent": capacity} for i in range(agents)]
    settings = Settings.model_validate(base)
    redis, blocking = connect(url, block_ms=settings.bus.block_ms)
    core = build_core(settings, redis, blocking)
    keys, router = core.keys, core.router
    try:
        await core.sync_agents()
        for a in settings.agents:
            await core.store.set_presence(a.id, "online")

        n = len(events)
        last_id = None
        for i in range(0, n, 500):
            pipe = redis.pipeline(transaction=False)
            for ev in events[i:i + 500]:
                pipe.xadd(keys.inbound, {"e": ev.encode()})
            last_id = (await pipe.execute())[-1]
        log(f"router: {n} events pre-loaded into {keys.inbound}; draining")

        async def done() -> bool:
            if router.processed < n:  # cheap in-memory check first
                return False
            for g in await redis.xinfo_groups(keys.inbound):
                if g["name"] in (GROUP, GROUP.encode()):
                    return g["pending"] == 0 and g["last-delivered-id"] == last_id
            return False

        prof = None
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        stop = asyncio.Event()
        stats0 = await command_usec(redis)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        task = asyncio.create_task(router.run(stop))
        while not await done():
            if task.done():
                task.result()
                raise RuntimeError("router stopped early")
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"router did not finish: {router.processed}/{n}")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        stats1 = await command_usec(redis)
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
            log(f"router profile written to {profile}")
        stop.set()
        await asyncio.wait_for(task, 10)

        convs = await redis.zcard(keys.open_conversations)
        loads = await redis.zrange(keys.agent_load, 0, -1, withscores=True)
        assigned = int(sum(s for _, s in loads))
        queued = 0
        for role in [*roles, ""]:  # one waiting queue per role
            qk = keys.queue(role) if callable(keys.queue) else keys.queue
            queued += await redis.zcard(qk)
            if not callable(keys.queue):
                break
        ids = await redis.zrange(keys.open_conversations, 0, -1)
        pipe = redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hlen(keys.conversation_messages(cid.decode()))
        stored = sum(await pipe.execute())  # customer messages plus automatic ones
        if stored < n:
            raise RuntimeError(f"router stored {stored} messages, fewer than the {n} sent")
    finally:
        await redis.aclose()
        await blocking.aclose()
        await delete_prefix(url, prefix)
    redis_usec = {c: stats1[c] - stats0.get(c, 0) for c in stats1 if stats1[c] - stats0.get(c, 0) > 0}
    return {"router_msgs_per_s": n / elapsed, "router_seconds": elapsed,
            "router_automatic_messages": stored - n,
            "router_python_cpu_us_per_msg": round(cpu / n * 1e6, 1),
            "router_redis_cpu_us_per_msg": round(sum(redis_usec.values()) / n, 1),
            "router_redis_us_by_command": {c: round(u / n, 2) for c, u in
                                           sorted(redis_usec.items(), key=lambda x: -x[1])[:6]},
            "router_conversations": convs, "router_assigned": assigned, "router_queued": queued}
