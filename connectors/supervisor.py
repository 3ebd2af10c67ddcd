"""Runs every connector as its own task and feeds it its outbound stream.

A connector that raises — on start, or on send with anything but a
DeliveryError — is stopped and started again after an exponential backoff;
the others are never touched.  A reply whose send keeps raising that way stops
restarting the connector after CRASHES_BEFORE_PARK tries and waits for the retry
rounds; once other replies of the channel go out meanwhile, it is the reply that
breaks `send()`, and it is parked (storage/bus.py).  Each reply is marked sent
right after the platform took it and acknowledged after that, so a restart or a claim by
another process resends only what was not yet handed over (and a resend
carries the same message id).

A reply the connector could not deliver (a `DeliveryError`) is retried with a
growing backoff and, when the platform keeps refusing it, parked after
`supervisor.delivery_attempts` tries — every failure logged, the parking too
(connectors/kit/delivery.py says which failures count).

Replies reach a customer in the order agents sent them.  Within a batch, a
conversation's replies go one after the other; when one cannot be delivered
now (a DeliveryError: a 429, the platform away), the conversation is held:
its later replies, even in later batches, stay pending too, and the retry
round (this consumer's pending entries, in stream order, once the backoff of
the failed one is over) sends them after it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from connectors.base import Connector, DeliveryError
from connectors.kit.delivery import RetryPolicy
from storage import metrics
from storage.bus import Bus, StreamConsumer, sleep_or_stop
from storage.events import Event
from storage.bus import park_reason, transient

if TYPE_CHECKING:
    from aggregator.config import Settings

log = logging.getLogger("kefu.supervisor")

GROUP = "connector"
STAGE = "delivery"  # parked replies are counted under it
CRASHES_BEFORE_PARK = 3  # sends of one reply that raise unexpectedly before it can be parked
FAILING_AFTER = 3  # deliveries failing in a row before /healthz reports the channel
SENT_TTL = 7 * 86400
FORGET_AFTER = 3600.0  # s: the retry state of a reply another process has taken over is dropped


@dataclass(slots=True)
class _Retry:
    """One reply's failed deliveries so far."""
    tries: int = 0
    failures: int = 0  # those that count towards parking (not `unavailable`)
    due: float = 0.0  # monotonic time of the next try


class Supervisor:
    def __init__(self, settings: Settings, bus: Bus, connectors: dict[str, Connector]):
        self.settings = settings
        self.bus = bus
        self.connectors = connectors
        self.started = asyncio.Event()  # every connector has tried to start once
        self._tried: set[str] = set()
        # channel -> conversation -> (stream id of its reply that failed, when it last failed)
        self._held: dict[str, dict[str | None, tuple[str, float]]] = defaultdict(dict)
        # channel -> (deliveries failed in a row, the last error): see delivery_problem
        self.failing: dict[str, tuple[int, str | None]] = defaultdict(lambda: (0, None))
        # outbound stream id -> (sends that raised unexpectedly, when it first did)
        self._crashes: dict[str, tuple[int, float]] = {}
        self._last_success: dict[str, float] = defaultdict(float)  # channel -> monotonic time
        self._retries: dict[str, _Retry] = {}  # outbound stream id -> its failed deliveries
        self._consumers: dict[str, StreamConsumer] = {}  # channel -> its outbound reader

    @property
    def policy(self) -> RetryPolicy:
        cfg = self.settings.supervisor
        return RetryPolicy(cfg.delivery_attempts, cfg.delivery_retry_initial, cfg.delivery_retry_max)

    async def run(self, stop: asyncio.Event) -> None:
        if not self.connectors:
            self.started.set()
        stopping = asyncio.create_task(self._tell_stopping(stop))
        try:
            await asyncio.gather(*(self._run_one(c, stop) for c in self.connectors.values()))
        finally:
            stopping.cancel()

    async def _tell_stopping(self, stop: asyncio.Event) -> None:
        """Sends waiting for a slot (connectors/kit/pacing.py) give up when kefu stops: the
        batch in hand ends at once, its unsent replies stay pending for the next run."""
        await stop.wait()
        for conn in self.connectors.values():
            conn.ctx.stopping.set()

    def _mark_tried(self, name: str) -> None:
        self._tried.add(name)
        if self._tried >= set(self.connectors):
            self.started.set()

    async def _run_one(self, conn: Connector, stop: asyncio.Event) -> None:
        cfg = self.settings.supervisor
        delay = cfg.restart_initial
        while not stop.is_set():
            running_since = None
            try:
                conn.state = "starting"
                await conn.start()
                running_since = time.monotonic()
                conn.state, conn.last_error = "running", None
                log.info("connector running", extra={"channel": conn.name, "kind": conn.kind})
                self._mark_tried(conn.name)
                consumer = StreamConsumer(
                    self.bus, self.bus.keys.outbound(conn.name), GROUP,
                    lambda batch, c=conn: self._deliver(c, batch),
                    batch=min(self.settings.bus.batch, 50), block_ms=self.settings.bus.block_ms,
                    claim_idle_ms=int(self.settings.bus.claim_idle * 1000),
                    heartbeat_ttl=self.settings.bus.heartbeat_ttl, stage=STAGE,
                )
                self._consumers[conn.name] = consumer
                await consumer.run(stop)
                delay = cfg.restart_initial
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                while isinstance(exc, ExceptionGroup):
                    exc = exc.exceptions[0]
                conn.state, conn.last_error = "failed", f"{type(exc).__name__}: {exc}"[:300]
                self._mark_tried(conn.name)
                if running_since is not None and time.monotonic() - running_since >= cfg.restart_max:
                    delay = cfg.restart_initial  # it had been healthy: a new failure, not the same one
                log.error("connector failed, restarting", extra={
                    "channel": conn.name, "error": conn.last_error, "retry_in": delay})
                await self._stop(conn)
                await sleep_or_stop(stop, delay)
                delay = min(delay * 2, cfg.restart_max)
                continue
        await self._stop(conn)
        conn.state = "stopped"

    def delivery_problem(self, channel: str) -> str | None:
        """Why the channel's replies keep failing, once FAILING_AFTER in a row have."""
        count, error = self.failing[channel]
        return f"{count} deliveries failed in a row: {error}" if count >= FAILING_AFTER else None

    def _count_failure(self, channel: str, exc: DeliveryError) -> None:
        self.failing[channel] = (self.failing[channel][0] + 1, str(exc)[:300])

    async def _unexpected(self, conn: Connector, sid: str, ev: Event, exc: Exception) -> str:
        """A send raised something unexpected: "restart" the connector (the first
        CRASHES_BEFORE_PARK - 1 times for a reply), then "hold" the reply for the retry
        round without restarting — the connector may be broken as a whole and the reply
        fine — until another reply of the channel has gone out since it first failed:
        then it is the reply that breaks `send()`, and it is "parked"."""
        n, since = self._crashes.get(sid, (0, time.monotonic()))
        self._crashes[sid] = (n := n + 1, since)
        if n < CRASHES_BEFORE_PARK:
            return "restart"
        reason = park_reason(exc)
        if self._last_success[conn.name] <= since:
            log.warning("reply held: sending it keeps failing", extra={
                "channel": conn.name, "message_id": ev.id, "error": reason, "attempts": n})
            return "hold"
        del self._crashes[sid]
        log.error("reply parked: sending it keeps failing while others go out", extra={
            "channel": conn.name, "message_id": ev.id, "error": reason, "attempts": n})
        await self.bus.park(self.bus.keys.outbound(conn.name), sid, reason, ev.encode(), STAGE)
        return "parked"

    async def _failed(self, conn: Connector, sid: str, ev: Event, exc: DeliveryError) -> bool:
        """A DeliveryError: park the reply (True) or set when it is tried again."""
        retry = self._retries.setdefault(sid, _Retry())
        retry.tries += 1
        if not exc.unavailable:
            retry.failures += 1
        policy = self.policy
        if exc.permanent or policy.exhausted(retry.failures):
            del self._retries[sid]
            log.error("reply parked: the platform refuses it", extra={
                "channel": conn.name, "message_id": ev.id, "error": str(exc), "attempts": retry.tries,
                "permanent": exc.permanent})
            await self.bus.park(self.bus.keys.outbound(conn.name), sid, park_reason(exc), ev.encode(), STAGE)
            return True
        delay = policy.delay(retry.tries, exc.retry_after)
        retry.due = time.monotonic() + delay
        log.warning("delivery failed, will retry", extra={
            "channel": conn.name, "message_id": ev.id, "error": str(exc), "attempt": retry.tries,
            "failures": retry.failures, "of": policy.attempts, "retry_in": round(delay, 2),
            "unavailable": exc.unavailable})
        self._retry_within(conn.name, delay)
        return False

    def _retry_within(self, channel: str, seconds: float) -> None:
        if (consumer := self._consumers.get(channel)) is not None:
            consumer.retry_within(seconds)

    async def _stop(self, conn: Connector) -> None:
        try:
            await asyncio.wait_for(conn.stop(), 5)
        except Exception as exc:
            log.warning("connector stop failed", extra={"channel": conn.name, "error": str(exc)})

    async def _deliver(self, conn: Connector, batch: list[tuple[str, Event]]) -> Iterable[str]:
        r, keys = self.bus.redis, self.bus.keys
        pipe = r.pipeline(transaction=False)
        for _, ev in batch:
            pipe.exists(keys.sent(ev.id))
        already = await pipe.execute()
        done: list[str] = []
        by_conversation: dict[str | None, list[tuple[str, Event]]] = defaultdict(list)
        for (sid, ev), was_sent in zip(batch, already):
            if was_sent:
                done.append(sid)
            else:
                by_conversation[ev.conversation_id].append((sid, ev))

        held = self._held[conn.name]
        # A hold outlives its failed reply only if that reply went elsewhere (another
        # process claimed it): then it is released after a while.
        stale = time.monotonic() - 3 * self.settings.bus.claim_idle
        for cid in [c for c, (_, since) in held.items() if since < stale]:
            del held[cid]
        forgotten = time.monotonic() - FORGET_AFTER
        for sid in [s for s, r in self._retries.items() if r.due < forgotten]:
            del self._retries[sid]

        async def in_order(cid: str | None, items: list[tuple[str, Event]]) -> None:
            if cid in held and held[cid][0] not in {sid for sid, _ in items}:
                return  # not the retry round: wait behind the reply that failed
            for sid, ev in items:
                retry = self._retries.get(sid)
                if retry is not None and retry.due > time.monotonic():
                    held[cid] = (sid, time.monotonic())  # its backoff is not over: the rest waits
                    self._retry_within(conn.name, retry.due - time.monotonic())
                    return
                try:
                    await conn.send(ev)
                except DeliveryError as exc:
                    metrics.outbound_failed.labels(conn.name).inc()
                    self._count_failure(conn.name, exc)
                    if await self._failed(conn, sid, ev, exc):
                        held.pop(cid, None)
                        done.append(sid)  # parked
                        continue
                    held[cid] = (sid, time.monotonic())
                    return  # later replies of this conversation wait behind it
                except Exception as exc:
                    verdict = "restart" if transient(exc) else await self._unexpected(conn, sid, ev, exc)
                    if verdict == "restart":
                        raise  # the connector is restarted, and the reply tried again
                    if verdict == "hold":
                        held[cid] = (sid, time.monotonic())
                        return
                    held.pop(cid, None)
                    done.append(sid)
                    continue
                self.failing[conn.name] = (0, None)
                self._last_success[conn.name] = time.monotonic()
                self._crashes.pop(sid, None)
                self._retries.pop(sid, None)
                held.pop(cid, None)
                await r.set(keys.sent(ev.id), "1", ex=SENT_TTL)
                metrics.outbound_delivered.labels(conn.name).inc()
                done.append(sid)

        async with asyncio.TaskGroup() as tg:
            for cid, items in by_conversation.items():
                tg.create_task(in_order(cid, items))
        return done
