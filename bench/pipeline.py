#!/usr/bin/env python3
"""kefu pipeline benchmark: stream baseline, router throughput, ingest latency, RSS growth.

    python bench/pipeline.py                 # full run (~3-5 min on 2 cores)
    python bench/pipeline.py --quick         # smaller figures for a smoke test
    python bench/pipeline.py --only raw,router --n 50000

Progress goes to stderr; the last line of stdout is one JSON object (see
bench/README.md for what each figure means).  Four phases:

raw     plain redis-py asyncio on the bench Redis: XADD (pipelined, `batch` per
        round trip) of N encoded Events, then XREADGROUP COUNT batch + XACK until
        the group is empty.  `raw_stream_msgs_per_s` = N / (add + read + ack time).
router  the same N events (1,000 customers, several messages each) pre-loaded
        into the inbound stream of a fresh key prefix, then the real
        routing.router.Router (built by aggregator/core.py:build_core, as `kefu
        run` builds it, a few agents online) drains them; timed from start until
        the group has nothing pending and nothing undelivered.
ingest  a real `kefu run` subprocess (API channel, one agent online); a separate
        load-generator process posts signed messages to
        /api/channels/{name}/inbound at a steady rate (open loop) and watches the
        agent's /api/events WebSocket; latency = POST about to be sent -> the
        message frame seen on the socket (same process, same clock).
rss     a fresh `kefu run`; messages posted as fast as it accepts them with
        bounded concurrency; VmRSS of the kefu process after 10,000 and after
        --rss-messages (default 100,000) messages, each once the agent socket
        has seen all of them.  rss_growth = rss_100k / rss_10k - 1.

Each phase is a module under bench/ (raw_stream, router_throughput, ingest, rss;
common, workload, kefu_process and loadgen are what they share); this file runs
them in turn and prints the figures.

Redis: the embedded binary (storage.redis_server.server_binary()) on a unix
socket in a temporary directory for raw/router; each `kefu run` starts its own
embedded Redis as it does in production.  With --redis-url every phase uses
that Redis under fresh key prefixes (and deletes them afterwards).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

import redis.asyncio as aioredis  # noqa: E402

from bench.common import log  # noqa: E402
from bench.ingest import bench_ingest, load_latency  # noqa: E402
from bench.loadgen import Sink  # noqa: E402
from bench.raw_stream import bench_raw  # noqa: E402
from bench.router_throughput import bench_router  # noqa: E402
from bench.rss import bench_rss, load_rss  # noqa: E402
from bench.workload import make_events  # noqa: E402
from tests.kefu_harness import RedisServer  # noqa: E402

TARGETS = {"router_ratio": 0.3, "ingest_p99_ms": 50.0, "rss_growth": 0.3}


def load_main(argv: list[str]) -> int:
    """The load generator's process (`pipeline.py _load ...`), started by bench/kefu_process.py."""
    ap = argparse.ArgumentParser(prog="pipeline.py _load")
    ap.add_argument("--mode", choices=["latency", "rss"], required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--sink-port", type=int)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--checkpoint", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    a = ap.parse_args(argv)
    async def run() -> dict[str, Any]:
        sink = Sink()
        if a.sink_port:
            await sink.start(a.sink_port)
        try:
            out = await (load_latency(a) if a.mode == "latency" else load_rss(a))
        finally:
            if a.sink_port:
                await sink.stop()
        out[f"{a.mode}_callbacks_received"] = sink.received
        return out

    out = asyncio.run(run())
    print(json.dumps(out))
    return 0


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    phases = set(a.only.split(",")) if a.only else {"raw", "router", "ingest", "rss"}
    tmp = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    server = None
    result: dict[str, Any] = {}
    try:
        url = a.redis_url
        if url is None:
            server = RedisServer(tmp / "redis").start()  # the embedded binary, as the tests run it
            url = server.url
        r = aioredis.Redis.from_url(url)
        info = await r.info("server")
        await r.aclose()
        from redis.utils import HIREDIS_AVAILABLE

        try:
            rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                 check=False, capture_output=True, text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            rev = None
        result.update({"git": rev, "redis_version": info.get("redis_version"),
                       "redis": "url" if a.redis_url else "embedded",
                       "redis_py": f"{aioredis.__name__.split('.')[0]} "
                                   f"{__import__('redis').__version__} "
                                   f"({'hiredis' if HIREDIS_AVAILABLE else 'pure-python'} parser)",
                       "loadavg_start": os.getloadavg()[0],
                       "n": a.n, "batch": a.batch, "rate": a.rate, "duration": a.duration})
        if phases & {"raw", "router"}:
            events = make_events(a.n, a.customers)
            blobs = [ev.encode() for ev in events]
            result["event_bytes_avg"] = round(sum(map(len, blobs)) / len(blobs), 1)
        if "raw" in phases:
            log(f"raw: XADD/XREADGROUP/XACK of {a.n} entries, batch {a.batch}")
            # A short warm-up so connection setup and first-allocation costs are not measured.
            await bench_raw(url, blobs[:min(2000, len(blobs))], a.batch)
        # Raw and router runs alternate, so a burst of load from elsewhere on the
        # machine hits both alike; the best run of each is reported.
        raws: list[dict] = []
        routers: list[dict] = []
        for i in range(a.repeat):
            if "raw" in phases:
                raws.append(await bench_raw(url, blobs, a.batch))
                x = raws[-1]
                log(f"raw: {x['raw_stream_msgs_per_s']:.0f} msg/s (add {x['raw_add_msgs_per_s']:.0f}, "
                    f"read+ack {x['raw_read_ack_msgs_per_s']:.0f})")
            if "router" in phases:
                evs = events if i == 0 else make_events(a.n, a.customers, seed=7 + i)
                routers.append(await bench_router(url, evs, a.batch, a.agents, a.capacity,
                                                  a.profile_router if i == 0 else None))
                x = routers[-1]
                log(f"router: {x['router_msgs_per_s']:.0f} msg/s ({x['router_conversations']} conversations, "
                    f"{x['router_assigned']} assigned, {x['router_queued']} queued; python "
                    f"{x['router_python_cpu_us_per_msg']} us/msg, redis {x['router_redis_cpu_us_per_msg']} us/msg)")
        if raws:
            result.update(max(raws, key=lambda x: x["raw_stream_msgs_per_s"]))
            result["raw_runs_msgs_per_s"] = [round(x["raw_stream_msgs_per_s"]) for x in raws]
        if routers:
            result.update(max(routers, key=lambda x: x["router_msgs_per_s"]))
            result["router_runs_msgs_per_s"] = [round(x["router_msgs_per_s"]) for x in routers]
        if raws and routers:
            result["router_ratio"] = result["router_msgs_per_s"] / result["raw_stream_msgs_per_s"]
            result["router_ratio_vs_read_ack"] = result["router_msgs_per_s"] / result["raw_read_ack_msgs_per_s"]
        if "ingest" in phases:
            result.update(await bench_ingest(tmp, a))
            log(f"ingest: p50 {result['ingest_p50_ms']:.1f} ms, p99 {result['ingest_p99_ms']:.1f} ms, "
                f"missing {result['ingest_missing']}")
        if "rss" in phases:
            result.update(await bench_rss(tmp, a))
            log(f"rss: growth {result['rss_growth']:.3f} "
                f"({result['rss_at_checkpoint_kb']} -> {result['rss_at_end_kb']} kB)")
        result["params"] = {k: getattr(a, k) for k in (
            "n", "batch", "customers", "agents", "capacity", "repeat", "rate", "duration", "warmup",
            "agent_capacity", "rss_messages", "rss_checkpoint", "rss_customers", "concurrency")}
        result["params"]["cpus"] = os.cpu_count()
        met = {}
        for key, target in TARGETS.items():
            if result.get(key) is not None:
                met[key] = result[key] >= target if key == "router_ratio" else result[key] <= target
        result["loadavg_end"] = os.getloadavg()[0]
        result["targets"] = TARGETS
        result["targets_met"] = met
    finally:
        if server is not None:
            server.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")
    return result


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so the redis-server and kefu processes are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        return load_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--redis-url", help="use this Redis instead of the embedded binary (fresh key prefixes)")
    ap.add_argument("--only", help="comma-separated phases: raw,router,ingest,rss")
    ap.add_argument("--n", type=int, default=30_000, help="events for the raw and router phases")
    ap.add_argument("--batch", type=int, default=100, help="XREADGROUP COUNT (bus.batch)")
    ap.add_argument("--customers", type=int, default=1000, help="distinct customers (raw/router/ingest)")
    ap.add_argument("--agents", type=int, default=5, help="agents online in the router phase")
    ap.add_argument("--capacity", type=int, default=50, help="slots per agent in the router phase")
    ap.add_argument("--repeat", type=int, default=3, help="raw/router runs; the best is reported")
    ap.add_argument("--rate", type=float, default=500, help="ingest: messages per second")
    ap.add_argument("--duration", type=float, default=30, help="ingest: measured seconds")
    ap.add_argument("--warmup", type=float, default=5,
                    help="ingest: seconds sent first, not measured (the customers' conversations open)")
    ap.add_argument("--agent-capacity", type=int, default=20, help="the kefu run agent's max_concurrent")
    ap.add_argument("--rss-messages", type=int, default=100_000)
    ap.add_argument("--rss-checkpoint", type=int, default=10_000)
    ap.add_argument("--rss-customers", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=32, help="rss: requests in flight")
    ap.add_argument("--profile-router", metavar="FILE", help="cProfile the first router run into FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (kefu logs)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: n=5000, 5 s at the rate, 20,000 RSS messages (2,000 checkpoint)")
    a = ap.parse_args()
    if a.quick:
        a.n, a.duration, a.rss_messages, a.rss_checkpoint, a.repeat = 5000, 5, 20_000, 2_000, 1
    result = asyncio.run(main_async(a))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
