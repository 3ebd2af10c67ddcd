"""Phase rss: the memory of a `kefu run` after 10,000 and after 100,000 messages
sent as fast as it takes them (`rss_growth`)."""
from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import log, pct, rss_kb
from bench.kefu_process import drive
from bench.loadgen import AgentSocket, Poster


async def bench_rss(tmp: Path, a: argparse.Namespace) -> dict[str, Any]:
    log(f"rss: {a.rss_messages} messages, {a.concurrency} in flight")
    return await drive(tmp / "kefu-rss", a, "rss", [
        "--messages", str(a.rss_messages), "--checkpoint", str(a.rss_checkpoint),
        "--concurrency", str(a.concurrency), "--customers", str(a.rss_customers)])


async def load_rss(a: argparse.Namespace) -> dict[str, Any]:
    conn = aiohttp.TCPConnector(limit=a.concurrency * 2)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as s:
        sock = AgentSocket()
        await sock.open(s, a.url)
        p = Poster(s, a.url, a.customers, seed=13)
        next_seq = 0
        curve: list[tuple[int, int]] = []

        async def send_until(limit: int) -> None:
            nonlocal next_seq

            async def worker() -> None:
                nonlocal next_seq
                while next_seq < limit:
                    seq = next_seq
                    next_seq += 1
                    await p.post(seq)

            await asyncio.gather(*(worker() for _ in range(a.concurrency)))

        async def settle(count: int) -> int:
            # The router may lag behind the HTTP intake; wait until it caught up.
            if not await sock.wait_count(count, max(60.0, count / 200)):
                raise RuntimeError(f"agent socket saw {len(sock.seen)} of {count} messages")
            await asyncio.sleep(1.0)  # let the last batch's garbage go
            return rss_kb(a.pid)

        rss_start = rss_kb(a.pid)
        t0 = time.perf_counter()
        await send_until(a.checkpoint)
        rss_10k = await settle(a.checkpoint)
        curve.append((a.checkpoint, rss_10k))
        log(f"rss: {a.checkpoint} messages, VmRSS {rss_10k} kB")
        t1 = time.perf_counter()
        step = max(a.checkpoint, (a.messages - a.checkpoint) // 9)
        sent = a.checkpoint
        while sent < a.messages:
            sent = min(a.messages, sent + step)
            await send_until(sent)
            curve.append((sent, rss_kb(a.pid)))
            log(f"rss: {sent} messages sent, VmRSS {curve[-1][1]} kB")
        t2 = time.perf_counter()
        rss_end = await settle(a.messages)
        curve[-1] = (a.messages, rss_end)
        await sock.close()
    return {
        "rss_growth": rss_end / rss_10k - 1, "rss_start_kb": rss_start,
        "rss_at_checkpoint_kb": rss_10k, "rss_at_end_kb": rss_end, "rss_checkpoint": a.checkpoint,
        "rss_messages": a.messages, "rss_curve_kb": curve,
        "rss_accept_msgs_per_s": (a.messages - a.checkpoint) / (t2 - t1),
        "rss_errors": p.errors, "rss_missing": a.messages - len(sock.seen),
        "rss_duplicates": sock.duplicates,
        "rss_http_ack_p50_ms": pct(list(p.ack_ms.values()), 50),
        "rss_http_ack_p99_ms": pct(list(p.ack_ms.values()), 99),
        "rss_wall_seconds": time.perf_counter() - t0,
    }
