"""Runs real `kefu run` processes and real Redis servers for the tests.

Nothing is mocked: the daemon is started as a subprocess from a config file
written by the test, and talked to over HTTP/WebSocket like any client would.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import yaml

from connectors.api import sign
from storage.redis_server import server_binary

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(check: Callable[[], Awaitable[Any] | Any], timeout: float = 20.0,
                   interval: float = 0.05, message: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
        except Exception as exc:  # the daemon may still be starting
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}" + (f" (last error: {last_exc!r})" if last_exc else ""))
        await asyncio.sleep(interval)


class RedisServer:
    """A throwaway redis-server (the embedded binary) on a unix socket."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock = self.dir / "r.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            [server_binary(), "--port", "0", "--unixsocket", str(self.sock), "--dir", str(self.dir),
             "--appendonly", "yes", "--save", "", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


DEFAULT_AGENTS = [
    {"id": "alice", "name": "Alice", "roles": ["presales", "aftersales"], "password": "alice-pw"},
    {"id": "bob", "name": "Bob", "roles": ["finance"], "password": "bob-pw"},
    {"id": "sue", "name": "Sue", "roles": ["supervisor"], "password": "sue-pw"},
]
PASSWORDS = {a["id"]: a["password"] for a in DEFAULT_AGENTS}


def base_config(state_dir: Path, redis_url: str | None = None, **overrides: Any) -> dict:
    cfg: dict[str, Any] = {
        "state_dir": str(state_dir),
        "log": {"level": "info", "format": "json"},
        "redis": {"url": redis_url, "prefix": f"t{uuid.uuid4().hex[:8]}:"},
        "web": {"listen": f"127.0.0.1:{free_port()}"},
        "bus": {"claim_idle": 5, "heartbeat_ttl": 3, "block_ms": 200},
        "supervisor": {"restart_initial": 0.2, "restart_max": 1.0},
        "agents": DEFAULT_AGENTS,
        "channels": {"webchat": {"kind": "webchat"}},
    }
    for k, v in overrides.items():  # sections are merged, lists and scalars replaced
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) and k != "channels" else v
    return cfg


class Daemon:
    """One `kefu run` subprocess with its own config file."""

    def __init__(self, workdir: Path, config: dict):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_path = workdir / "config.yaml"
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "kefu.log"

    @property
    def url(self) -> str:
        return f"http://{self.config['web']['listen']}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config['web']['listen']}"

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, allow_unicode=True))

    async def start(self, timeout: float = 30.0, env: dict | None = None) -> "Daemon":
        self.write_config()
        env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "aggregator", "run", "-c", str(self.config_path)],
                                     cwd=self.workdir, env=env, stdout=self._log, stderr=self._log)
        async with aiohttp.ClientSession() as s:
            async def healthy() -> bool:
                if self.proc.poll() is not None:
                    raise AssertionError(f"kefu exited with {self.proc.returncode}:\n{self.log()}")
                async with s.get(self.url + "/healthz") as r:
                    return r.status == 200
            await wait_for(healthy, timeout, message="kefu /healthz")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def log_records(self, msg: str) -> list[dict]:
        """The structured log lines (log.format json) whose message is `msg`, oldest first."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("msg") == msg:
                out.append(rec)
        return out

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            return self.proc.wait(20)
        return self.proc.returncode if self.proc else None

    def stop(self) -> int | None:
        return self.kill(signal.SIGTERM)


async def post_site_message(http: aiohttp.ClientSession, d: "Daemon", secret: str, customer: str,
                            message_id: str, text: str, channel: str = "site") -> int:
    """The shop posts a signed site message to the API channel: its status (0 if kefu is unreachable)."""
    body = json.dumps({"customer_id": customer, "message_id": message_id, "text": text}).encode()
    try:
        async with http.post(f"{d.url}/api/channels/{channel}/inbound", data=body,
                             headers={"X-Kefu-Signature": sign(secret, body)}) as r:
            return r.status
    except OSError:
        return 0


class Agent:
    """An agent talking to the agent API over HTTP."""

    def __init__(self, daemon: Daemon, session: aiohttp.ClientSession, agent_id: str):
        self.d, self.s, self.id = daemon, session, agent_id
        self.token: str | None = None

    async def login(self, password: str | None = None) -> "Agent":
        async with self.s.post(self.d.url + "/api/login",
                               json={"agent": self.id, "password": password or PASSWORDS[self.id]}) as r:
            assert r.status == 200, await r.text()
            self.token = (await r.json())["token"]
        return self

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        async with self.s.request(method, self.d.url + path, json=json, headers=self.headers) as r:
            return r.status, await r.json()

    async def presence(self, status: str = "online") -> None:
        code, body = await self.call("PUT", "/api/presence", {"status": status})
        assert code == 200, body

    async def conversations(self, status: str = "open") -> list[dict]:
        code, body = await self.call("GET", f"/api/conversations?status={status}&limit=1000")
        assert code == 200, body
        return body["conversations"]

    async def conversation(self, cid: str) -> dict:
        code, body = await self.call("GET", f"/api/conversations/{cid}")
        assert code == 200, body
        return body

    async def reply(self, cid: str, text: str) -> tuple[int, Any]:
        return await self.call("POST", f"/api/conversations/{cid}/messages", {"text": text})
