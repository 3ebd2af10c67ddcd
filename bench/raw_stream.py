"""Phase raw: plain redis-py asyncio on the bench Redis, no kefu code — the baseline
the router is measured against (`raw_stream_msgs_per_s`)."""
from __future__ import annotations

import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from bench.common import delete_prefix


async def bench_raw(url: str, blobs: list[bytes], batch: int) -> dict[str, Any]:
    prefix = f"kbench{uuid.uuid4().hex[:8]}:"
    stream, group = prefix + "raw", "raw"
    r = aioredis.Redis.from_url(url)
    try:
        await r.xgroup_create(stream, group, id="0", mkstream=True)
        n = len(blobs)
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            pipe = r.pipeline(transaction=False)
            for b in blobs[i:i + batch]:
                pipe.xadd(stream, {"e": b})
            await pipe.execute()
        t1 = time.perf_counter()
        got = 0
        while True:
            res = await r.xreadgroup(group, "c1", {stream: ">"}, count=batch)
            if not res or not res[0][1]:
                break
            ids = [e[0] for e in res[0][1]]
            await r.xack(stream, group, *ids)
            got += len(ids)
        t2 = time.perf_counter()
        pending = (await r.xpending(stream, group))["pending"]
        if got != n or pending:
            raise RuntimeError(f"raw phase read {got}/{n}, {pending} pending")
    finally:
        await r.aclose()
        await delete_prefix(url, prefix)
    return {"raw_stream_msgs_per_s": n / (t2 - t0), "raw_add_msgs_per_s": n / (t1 - t0),
            "raw_read_ack_msgs_per_s": n / (t2 - t1), "raw_seconds": t2 - t0}
