"""The kefu process: wires Redis, the bus, the router, the connectors and the
web server together, and owns startup, reload and graceful shutdown.

Shutdown order keeps the delivery promise: stop listening (no new inbound),
let the router and the outbound loops finish the batch in hand and ack it,
close the clients, then stop the embedded Redis (which fsyncs its AOF).
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from aggregator import config as config_mod
from aggregator import startup_notice
from aggregator import web as web_mod
from aggregator.agent_api import AgentApi
from aggregator.auth import Auth
from aggregator.config import Settings
from aggregator.core import build_core
from aggregator.metrics import start_series
from aggregator.state_lock import try_lock
from aggregator.systemd_notify import notify, watchdog_interval
from connectors import connector_class
from connectors.base import Connector
from connectors.context import build_context
from connectors.supervisor import Supervisor
from storage import metrics
from storage.archive.migrate import migrate
from storage.bus import sleep_or_stop
from storage.connection import connect
from storage.redis_server import EmbeddedRedis

log = logging.getLogger("kefu")

STOP_TIMEOUT = 8.0


class StartupError(Exception):
    """A problem an operator must fix before kefu can start (clear message, no trace)."""


class Kefu:
    def __init__(self, settings: Settings, config_path: str | None = None):
        self.settings = settings
        self.config_path = config_path
        self.stop_event = asyncio.Event()
        self.embedded: EmbeddedRedis | None = None
        self._lock_fd: int | None = None
        self.started_at = time.time()
        self.reload_refused: dict[str, Any] | None = None  # the last SIGHUP's file had problems

    # -- lifecycle -------------------------------------------------------------
    async def run(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        url = s.redis.url
        if url is None:
            self._lock_state_dir()
            self.embedded = EmbeddedRedis(s.state_dir, s.redis.appendfsync)
            await self.embedded.start()
            url = self.embedded.url
        self.redis, self.blocking = connect(url, block_ms=s.bus.block_ms)
        try:
            await self._wait_for_redis()
            await self._setup()
            await self._serve()
        finally:
            await self.redis.aclose()
            await self.blocking.aclose()
            if self.embedded is not None:
                await self.embedded.stop()
            self._unlock_state_dir()
            log.info("stopped")

    async def _setup(self) -> None:
        s = self.settings
        try:
            await migrate(s.archive.database_url(s.state_dir))
        except Exception as exc:  # drivers raise their own types for an unreachable or refusing database
            raise StartupError(f"archive: cannot create or upgrade its database: {exc}") from None
        self.core = core = build_core(s, self.redis, self.blocking, exclusive=self.embedded is not None)
        await core.sync_agents()
        self.auth = Auth(s, self.redis, core.keys)
        self.api = AgentApi(s, self.auth, core.store, core.actions, core.files)
        self.connectors: dict[str, Connector] = {}
        stopping = asyncio.Event()  # the supervisor sets it when kefu stops
        for name, cfg in s.channels.items():
            try:
                cls = connector_class(cfg)
                ctx = build_context(name, cfg, core, stopping=stopping, relay=cls.relays_agents)
                self.connectors[name] = cls(ctx)
            except Exception as exc:
                raise StartupError(f"channel {name!r}: cannot load its connector: {exc}") from None
        self.supervisor = Supervisor(s, core.bus, self.connectors)
        start_series(self.connectors, s)
        core.fanout.subscribe(core.keys.agent_events, self.api.on_event)

    async def _serve(self) -> None:
        s = self.settings
        app = web_mod.build(self)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, s.web.host, s.web.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise StartupError(f"cannot listen on {s.web.listen}: {exc.strerror or exc}") from None
        log.info("listening", extra={"listen": s.web.listen, "redis": "embedded" if self.embedded else "url",
                                     "channels": sorted(self.connectors)})
        startup_notice.announce(s)
        work_stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self.core.router.run(work_stop), name="router"),
            asyncio.create_task(self.supervisor.run(work_stop), name="supervisor"),
            asyncio.create_task(self.core.fanout.run(work_stop), name="fanout"),
            asyncio.create_task(self._housekeeping(work_stop), name="housekeeping"),
        ]
        if self.embedded is not None:
            tasks.append(asyncio.create_task(self.embedded.watch(work_stop), name="redis-watch"))
        try:
            await asyncio.wait_for(self.supervisor.started.wait(), 30)
        except asyncio.TimeoutError:
            log.warning("some connectors are still starting")
        notify("READY=1")
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        await self.stop_event.wait()
        log.info("stopping")
        notify("STOPPING=1")
        watchdog.cancel()
        await site.stop()  # no new connections
        await self.api.close_sockets()
        work_stop.set()
        done, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() is not None:
                log.error("task ended with an error", extra={"task": t.get_name(), "error": str(t.exception())})
        await runner.cleanup()

    async def _wait_for_redis(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.redis.ping()
                return
            except Exception as exc:
                if self.stop_event.is_set():
                    raise StartupError("stopped while waiting for Redis") from None
                log.warning("waiting for redis", extra={"error": str(exc), "retry_in": delay})
                await sleep_or_stop(self.stop_event, delay)
                delay = min(delay * 2, 5.0)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """Heartbeat (so others know this process lives) and stream trimming."""
        s = self.settings.bus
        next_trim = 0.0
        while not stop.is_set():
            try:
                await self.core.bus.heartbeat(s.heartbeat_ttl)
                if time.monotonic() >= next_trim:
                    next_trim = time.monotonic() + s.trim_interval
                    for stream in [self.core.keys.inbound, *(self.core.keys.outbound(n) for n in self.connectors)]:
                        await self.core.bus.trim(stream)
            except Exception as exc:
                log.warning("housekeeping failed", extra={"error": str(exc)})
            await sleep_or_stop(stop, min(s.heartbeat_ttl / 3, 5.0))

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        if not interval:
            return
        while True:
            if (await self.health())["status"] == "ok":
                notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    # -- config ----------------------------------------------------------------
    async def reload(self) -> None:
        """SIGHUP: apply a new config.yaml, or keep the old one if it has problems."""
        if not self.config_path:
            log.info("reload requested but kefu runs on built-in defaults")
            return
        try:
            new = await asyncio.to_thread(config_mod.load, self.config_path)
        except config_mod.ConfigError as exc:
            metrics.config_reload_failures.inc()
            log.error("config reload refused, keeping the old config", extra={"problems": exc.problems})
            self.reload_refused = {"refused_at": time.time(), "problems": len(exc.problems)}
            return
        self.reload_refused = None
        for section in ("redis", "web", "state_dir", "channels"):
            if getattr(new, section) != getattr(self.settings, section):
                log.warning("config section needs a restart to change", extra={"section": section})
        # Sections read at use time follow the new settings; the rest stay.
        new = new.model_copy(update={k: getattr(self.settings, k) for k in ("redis", "web", "state_dir", "channels")})
        hashes = await asyncio.to_thread(Auth.prepare, new)
        for agent_id in self.auth.apply(new, hashes):  # removed from config: their sessions end
            ended = await self.auth.revoke_agent(agent_id)
            log.info("agent removed, sessions revoked", extra={"agent": agent_id, "sessions": ended})
        self.settings = new
        for holder in (self.api, self.supervisor, *(c.ctx for c in self.connectors.values())):
            holder.settings = new
        self.core.apply(new)
        await self.core.sync_agents()
        await self.core.router.drain()
        log.info("config reloaded", extra={"agents": len(new.agents)})
        startup_notice.warn_demo_secrets(new)

    # -- state dir lock (embedded Redis belongs to one kefu) -------------------
    def _lock_state_dir(self) -> None:
        d = Path(self.settings.state_dir)
        fd = try_lock(d)
        if fd is None:
            raise StartupError(f"state_dir {d.resolve()} is in use by another kefu process "
                               "(give each process its own state_dir, or share a Redis URL)") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _unlock_state_dir(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- health and metrics ----------------------------------------------------
    def _degraded(self, redis_state: str, router_state: str, connectors: dict[str, dict],
                  parked: int | None) -> dict[str, Any]:
        """What /healthz adds to the SPEC shape: what is degraded, and why."""
        degraded: dict[str, str] = {}
        if redis_state != "ok":
            degraded["redis"] = "unreachable"
        if router_state != "ok":
            degraded["router"] = self.core.router.last_error or router_state
        for name, h in connectors.items():
            if h["state"] != "running":
                degraded[f"connector:{name}"] = h["state"] + (f": {h['error']}" if h.get("error") else "")
            elif h.get("online") is False:
                degraded[f"connector:{name}"] = "not connected to its platform, or the account is offline"
            if problem := self.supervisor.delivery_problem(name):
                h["deliveries"] = degraded[f"deliveries:{name}"] = problem
        if self.reload_refused is not None:
            degraded["config"] = (f"reload refused ({self.reload_refused['problems']} problems), "
                                  "the previous config stays in force")
        if parked:
            degraded["parked"] = f"{parked} entries parked (see `kefu parked`)"
        out: dict[str, Any] = {"parked": parked, "degraded": degraded}
        if self.embedded is not None:
            out["redis_restarts"] = self.embedded.restarts
        if self.reload_refused is not None:
            out["config_reload"] = self.reload_refused
        return out

    async def health(self) -> dict[str, Any]:
        """SPEC `/healthz`.  Only Redis or the router down make it "degraded" (503): then
        this process cannot take or route messages, and a load balancer should use
        another.  Everything else that is wrong is listed under "degraded" with a 200 —
        a connector down, QQ not connected, a channel whose deliveries keep failing, a
        refused config reload, parked entries — because taking the process out would
        stop every other channel too."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.ping()
            pipe.xlen(self.core.keys.parked)
            _, parked = await asyncio.wait_for(pipe.execute(), 2)
            redis_state = "ok"
        except Exception:
            redis_state, parked = "down", None
        router = self.core.router
        router_state = "ok" if router.running else "restarting" if router.state == "restarting" else "down"
        connectors = {n: c.health() for n, c in self.connectors.items()}
        return {
            "status": "ok" if redis_state == "ok" and router_state == "ok" else "degraded",
            "redis": redis_state,
            "router": router_state,
            "connectors": connectors,
            **self._degraded(redis_state, router_state, connectors, parked),
            "uptime": round(time.time() - self.started_at, 1),
        }
