"""Phase ingest: latency from a signed POST to the message on the agent's socket,
at a steady rate (open loop), against a real `kefu run` (`ingest_p50_ms`, `ingest_p99_ms`)."""
from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import log, pct, proc_ticks
from bench.kefu_process import drive
from bench.loadgen import AgentSocket, Poster


async def bench_ingest(tmp: Path, a: argparse.Namespace) -> dict[str, Any]:
    log(f"ingest: {a.rate} msg/s for {a.duration} s")
    return await drive(tmp / "kefu-ingest", a, "latency", [
        "--rate", str(a.rate), "--duration", str(a.duration), "--warmup", str(a.warmup),
        "--customers", str(a.customers)])


async def load_latency(a: argparse.Namespace) -> dict[str, Any]:
    conn = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as s:
        sock = AgentSocket()
        await sock.open(s, a.url)
        p = Poster(s, a.url, a.customers, seed=11)
        warm = int(a.rate * a.warmup)
        total = int(a.rate * a.duration)
        tasks: set[asyncio.Task] = set()
        start = time.perf_counter() + 0.1
        behind_max = 0.0
        for i in range(warm + total):
            target = start + i / a.rate  # open loop: the schedule never waits for answers
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                behind_max = max(behind_max, -delay)
            t = asyncio.create_task(p.post(i))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            if i == warm:
                measure_t0 = time.perf_counter()
                cpu0 = proc_ticks(a.pid) if a.pid else {}
        send_elapsed = time.perf_counter() - measure_t0
        if tasks:
            await asyncio.wait(tasks)
        measured = set(range(warm, warm + total))
        await sock.wait_count(measured, 15)
        lat = [(sock.seen[i] - p.sent_at[i]) * 1000 for i in measured if i in sock.seen]
        missing = len(measured) - len(lat)
        await sock.close()
    # Per second of the run: p99 and max, to tell a steady tail from a few stalls.
    per_s: dict[int, list[float]] = {}
    for i in measured:
        if i in sock.seen:
            per_s.setdefault(int(p.sent_at[i] - measure_t0), []).append((sock.seen[i] - p.sent_at[i]) * 1000)
    cpu = None
    if a.pid:
        cpu = {name: round((ticks - cpu0[name]) / os.sysconf("SC_CLK_TCK") / send_elapsed * 100, 1)
               for name, ticks in proc_ticks(a.pid).items()}
    return {
        "ingest_p99_ms_by_second": [round(pct(v, 99), 1) for _, v in sorted(per_s.items())],
        "ingest_seconds_over_50ms_p99": sum(1 for v in per_s.values() if pct(v, 99) > 50),
        "ingest_cpu_percent": cpu,
        "ingest_p50_ms": pct(lat, 50), "ingest_p90_ms": pct(lat, 90), "ingest_p99_ms": pct(lat, 99),
        "ingest_max_ms": max(lat) if lat else None,
        "ingest_http_ack_p50_ms": pct([v for i, v in p.ack_ms.items() if i >= warm], 50),
        "ingest_http_ack_p99_ms": pct([v for i, v in p.ack_ms.items() if i >= warm], 99),
        "ingest_sent": total, "ingest_seen": len(lat), "ingest_missing": missing,
        "ingest_duplicates": sock.duplicates, "ingest_errors": p.errors,
        "ingest_achieved_rate": total / send_elapsed if send_elapsed else None,
        "ingest_schedule_lag_max_ms": behind_max * 1000,
    }
