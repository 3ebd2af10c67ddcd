"""What every phase of the pipeline benchmark uses: progress lines, percentiles,
ports, a process's CPU and memory, Redis key clean-up and server time."""
from __future__ import annotations

import math
import socket
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_ticks(pid: int) -> dict[str, int]:
    """CPU ticks (user+system) of kefu and of its embedded redis-server child, if any."""
    out = {}

    def ticks(p: int) -> int:
        f = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        return int(f[11]) + int(f[12])

    out["kefu"] = ticks(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"redis-server" in Path(f"/proc/{child}/cmdline").read_bytes():
                out["redis"] = ticks(int(child))
        except OSError:
            pass
    return out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def delete_prefix(url: str, prefix: str) -> None:
    r = aioredis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        async for k in r.scan_iter(match=prefix + "*", count=1000):
            batch.append(k)
            if len(batch) >= 1000:
                await r.unlink(*batch)
                batch = []
        if batch:
            await r.unlink(*batch)
    finally:
        await r.aclose()


async def command_usec(r: aioredis.Redis) -> dict[str, int]:
    """Server-side time spent per command so far (INFO commandstats), in microseconds."""
    out = {}
    for name, st in (await r.info("commandstats")).items():
        out[name.removeprefix("cmdstat_")] = int(st["usec"])
    return out
