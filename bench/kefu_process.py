"""A real `kefu run` subprocess on the API channel, and the load generator's
process (`pipeline.py _load`) that the ingest and rss phases drive it with."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import delete_prefix, free_port, log
from bench.workload import CHANNEL, SECRET

REPO = Path(__file__).resolve().parent.parent


class KefuProcess:
    def __init__(self, workdir: Path, redis_url: str | None, agent_capacity: int):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.prefix = f"kbench{uuid.uuid4().hex[:8]}:" if redis_url else "kefu:"
        self.redis_url = redis_url
        self.sink_port = free_port()  # the load generator answers the channel's callbacks here
        from aggregator.config import Settings

        roles = list(getattr(Settings(), "roles", None) or ["presales", "aftersales"])
        self.config = {
            "state_dir": str(workdir / "data"),
            "log": {"level": "info", "format": "json"},
            "redis": {"url": redis_url, "prefix": self.prefix},
            "web": {"listen": f"127.0.0.1:{self.port}"},
            "agents": [{"id": "bench", "name": "Bench Agent", "roles": roles,
                        "password": "bench-agent-pw", "max_concurrent": agent_capacity}],
            "channels": {CHANNEL: {"kind": "api", "secret": SECRET,
                                   "callback_url": f"http://127.0.0.1:{self.sink_port}/cb"}},
            # The load generator is one shop writing far faster than any buyer: the
            # limit is checked (its cost is measured) but never reached.
            "limits": {"api": {"messages_per_customer": "1000000/1s"}},
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> KefuProcess:
        cfg = self.workdir / "config.yaml"
        cfg.write_text(json.dumps(self.config, indent=1))  # JSON is YAML
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        self._log = open(self.workdir / "kefu.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "aggregator", "run", "-c", str(cfg)],
                                     cwd=self.workdir, env=env, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as s:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"kefu exited with {self.proc.returncode}: {self.tail()}")
                try:
                    async with s.get(self.url + "/healthz") as r:
                        if r.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kefu did not become healthy: {self.tail()}")
                await asyncio.sleep(0.1)

    def tail(self) -> str:
        try:
            return (self.workdir / "kefu.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    async def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self.redis_url:
            await delete_prefix(self.redis_url, self.prefix)


async def drive(workdir: Path, a: argparse.Namespace, mode: str, args: list[str]) -> dict[str, Any]:
    """A fresh `kefu run` driven by the load generator (in its own process, so that its
    CPU is not kefu's) in `mode` (latency, rss) with `args`; the generator's figures."""
    k = await KefuProcess(workdir, a.redis_url, a.agent_capacity).start()
    try:
        log(f"{mode}: kefu pid {k.proc.pid} on {k.url}")
        cmd = [sys.executable, str(REPO / "bench" / "pipeline.py"), "_load", "--mode", mode, "--url", k.url,
               "--pid", str(k.proc.pid), "--sink-port", str(k.sink_port), *args]
        res = await asyncio.to_thread(subprocess.run, cmd, stdout=subprocess.PIPE, stderr=None, text=True,
                                      check=False)
    finally:
        await k.stop()
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"load generator failed ({res.returncode}): {res.stdout[-2000:]}")
    return json.loads(lines[-1])
