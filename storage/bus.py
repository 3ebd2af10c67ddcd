"""The Redis Streams bus: durable inbound publish, consumer-group readers, trimming.

Delivery rules (SPEC "Delivery promise"):
- `publish_inbound` returns only once the event is in the stream, so a
  connector acknowledges its platform only after that; a platform message id
  seen before returns the first event's id instead of adding a second entry.
- `StreamConsumer` reads through a consumer group in batches and acks an entry
  only after its handler reports it done.  Entries of a consumer whose process
  died are claimed at once (heartbeat expired, or any other consumer when this
  process owns its embedded Redis); entries a live consumer left pending too
  long are taken over with XAUTOCLAIM.  Handlers are idempotent, so a claimed
  entry is processed once in effect.
- Streams are trimmed to the oldest entry some group still needs, so memory
  stays bounded without ever dropping unconsumed work.
- No entry stops a consumer (SPEC "Delivery promise", last paragraph): an entry
  that cannot be decoded, or (with ``isolate``) whose handling raises anything but
  Redis being away, is found by halving the batch, parked with its reason
  (`Bus.park`: the ``parked`` stream, counted per stage) and acknowledged, so it
  never replays into a crash loop; the rest of the batch goes on.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage import metrics
from storage.events import BrokenEvent, Event
from storage.keys import Keys

log = logging.getLogger("kefu.bus")

# A handler gets decoded events (or what `prepare` made of them) and returns
# the stream ids it finished.
Handler = Callable[[Any], Awaitable[Iterable[str]]]
Prepare = Callable[[list[tuple[str, Event]]], Any]
Entries = list[tuple[str, "Event | BrokenEvent", "bytes | None"]]

_PUBLISH_DEDUPED = """
local prev = redis.call('GET', KEYS[1])
if prev then return {prev, 1} end
redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return {ARGV[1], 0}
"""


# XREADGROUP without BLOCK, answered as one msgpack array [id, blob, id, blob, ...]:
# one bulk string for the client to unpack in C, instead of five RESP items to
# parse in Python per entry.  KEYS: stream; ARGV: group, consumer, count.
_READ_PACKED = """
local res = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
local flat = {}
for _, e in ipairs(res and res[1][2] or {}) do
  local f = e[2] or {}
  for i = 1, #f, 2 do
    if f[i] == 'e' then
      flat[#flat + 1] = e[1]
      flat[#flat + 1] = f[i + 1]
    end
  end
end
return cmsgpack.pack(flat)
"""


# Answers of a Redis that is away or busy for now: the work is retried, never parked.
_TRANSIENT_REPLIES = frozenset({"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "OOM",
                                "MISCONF", "BUSY", "NOREPLICAS", "NOSCRIPT"})
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def transient(exc: BaseException) -> bool:
    """Redis (or the network) is away for now; anything else is the entry's own fault."""
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)):
        return True
    return isinstance(exc, ResponseError) and str(exc).split(" ", 1)[0] in _TRANSIENT_REPLIES


def park_reason(exc: BaseException) -> str:
    """What went wrong, for operators: quoted values (customer text) left out."""
    return f"{type(exc).__name__}: {_QUOTED.sub('…', str(exc))}"[:300]


@dataclass(slots=True)
class Published:
    id: str  # kefu event id (the first one's, for a duplicate)
    duplicate: bool


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class Bus:
    def __init__(self, redis: aioredis.Redis, blocking: aioredis.Redis, keys: Keys,
                 dedupe_ttl: int, exclusive: bool):
        self.redis = redis
        self.blocking = blocking  # own pool, socket timeout above the block time
        self.keys = keys
        self.dedupe_ttl = dedupe_ttl
        self.exclusive = exclusive  # this process alone uses the Redis (embedded)
        self.consumer = consumer_name()
        self._publish = redis.register_script(_PUBLISH_DEDUPED)
        self._read_packed = redis.register_script(_READ_PACKED)

    async def read_packed(self, stream: str, group: str, count: int) -> list[tuple[bytes, bytes]]:
        """New entries of `stream` for this consumer, without blocking: [(id, blob)]."""
        flat = msgpack.unpackb(await self._read_packed(keys=[stream], args=[group, self.consumer, count]), raw=True)
        return list(zip(flat[::2], flat[1::2]))

    async def publish_inbound(self, event: Event) -> Published:
        blob = event.encode()
        if not event.platform_msg_id:
            await self.redis.xadd(self.keys.inbound, {"e": blob})
            return Published(event.id, False)
        eid, dup = await self._publish(
            keys=[self.keys.dedupe(event.channel, event.platform_msg_id), self.keys.inbound],
            args=[event.id, blob, self.dedupe_ttl],
        )
        return Published(eid.decode() if isinstance(eid, bytes) else eid, bool(dup))

    async def ensure_group(self, stream: str, group: str) -> None:
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def park(self, stream: str, entry_id: str, reason: str, raw: bytes | None, stage: str) -> None:
        """Keep an entry that cannot be processed, with why (`kefu parked` lists them).
        `reason` must not carry customer text (see park_reason)."""
        log.warning("parked entry", extra={"stream": stream, "entry": entry_id, "reason": reason, "stage": stage})
        await self.redis.xadd(
            self.keys.parked,
            {"stream": stream, "entry": entry_id, "reason": reason, "stage": stage, "raw": raw or b""},
            maxlen=10000, approximate=True,
        )
        metrics.parked.labels(stage).inc()

    async def parked(self, count: int) -> list[dict[str, Any]]:
        """The latest parked entries, newest first: id, stream, entry, stage, reason, event (no text)."""
        out = []
        for pid, fields in await self.redis.xrevrange(self.keys.parked, count=count):
            f = {_sid(k): v for k, v in fields.items()}
            item: dict[str, Any] = {"id": _sid(pid), "at": _parse_id(pid)[0] / 1000,
                                    **{k: _sid(f.get(k, b"")) for k in ("stream", "entry", "stage", "reason")}}
            try:
                ev = Event.decode(f.get("raw") or b"")
                item["event"] = {"id": ev.id, "channel": ev.channel, "type": ev.type, "direction": ev.direction,
                                 "conversation_id": ev.conversation_id, "text_length": len(ev.text)}
            except BrokenEvent:
                item["event"] = None
            out.append(item)
        return out

    async def heartbeat(self, ttl: float) -> None:
        await self.redis.set(self.keys.consumer_alive(self.consumer), "1", px=int(ttl * 1000))

    async def trim(self, stream: str) -> int:
        """Drop entries every group of `stream` has finished with."""
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:
            return 0
        if not groups:
            return 0
        floor: tuple[int, int] | None = None
        for g in groups:
            last = _parse_id(g["last-delivered-id"])
            need = (last[0], last[1] + 1)
            if g["pending"]:
                summary = await self.redis.xpending(stream, g["name"])
                need = min(need, _parse_id(summary["min"]))
            floor = need if floor is None else min(floor, need)
        assert floor is not None
        return await self.redis.xtrim(stream, minid=f"{floor[0]}-{floor[1]}", approximate=False)


def _parse_id(raw: bytes | str) -> tuple[int, int]:
    s = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


def _blobs(entries: list) -> list[tuple[bytes | str, bytes]]:
    """(id, event blob) of XREADGROUP / XCLAIM entries; deleted ones (no fields) left out."""
    return [(sid, fields.get(b"e") or fields.get("e")) for sid, fields in entries if fields]


def _sid(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class StreamConsumer:
    """Reads one stream through one consumer group and feeds a handler in batches.

    The next batch is read while the handler works on this one.  `prepare`, if
    given, is the handler's pure-Python first step: it runs on a batch as soon
    as it is read — while Redis is still busy with the previous batch's work, so
    the two overlap on two cores — and the handler gets what it returns."""

    def __init__(self, bus: Bus, stream: str, group: str, handler: Handler, *,
                 prepare: Prepare | None = None, batch: int = 100, block_ms: int = 1000,
                 claim_idle_ms: int = 30000, heartbeat_ttl: float = 15.0, stage: str = "",
                 isolate: bool = False):
        self.bus = bus
        self.stage = stage or group  # parked entries are counted by it
        self.isolate = isolate  # an entry whose handling raises is parked, not retried forever
        self.stream = stream
        self.group = group
        self.handler = handler
        self.prepare = prepare
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.heartbeat_ttl = heartbeat_ttl
        self.name = bus.consumer
        self.running = False
        self._next_claim = 0.0
        # Entries a handler left unfinished are retried from this consumer's own
        # pending list after a short delay (not only after claim_idle).
        self.retry_delay = min(claim_idle_ms / 1000, 5.0)
        self._retry_at: float | None = None
        self._backlog = False  # the last read filled a batch: more is likely waiting

    async def run(self, stop: asyncio.Event) -> None:
        """Process until `stop` is set; the batch in hand is always finished first."""
        await self.bus.ensure_group(self.stream, self.group)
        own_pending = True
        backoff = 0.1
        prefetch: asyncio.Task | None = None  # the next batch, read while this one is handled
        prepared: Any = None
        self.running = True
        try:
            while not stop.is_set():
                try:
                    if self._retry_at is not None and time.monotonic() >= self._retry_at:
                        self._retry_at, own_pending = None, True
                    prepared = None
                    if own_pending:
                        entries = self._decode(await self._read("0"))
                        own_pending = bool(entries)
                    elif prefetch is not None:
                        (entries, prepared), prefetch = await prefetch, None
                    else:
                        entries = self._decode(_blobs(await self._reclaim()) or await self._read(">"))
                    if entries and not own_pending:
                        prefetch = asyncio.create_task(self._read_ahead())
                        await asyncio.sleep(0)  # let it send its read before the handler's commands
                    if entries and await self._handle(entries, prepared):
                        own_pending = False  # unfinished ones are retried after retry_delay
                    backoff = 0.1
                except (RedisError, OSError) as exc:
                    if not transient(exc):
                        raise  # e.g. the group or stream is gone: the owner restarts this consumer
                    prefetch = None
                    log.warning("redis unavailable, retrying",
                                extra={"stream": self.stream, "error": str(exc), "retry_in": backoff})
                    await sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                    own_pending = True
        finally:
            self.running = False
            if prefetch is not None:
                # Entries it may still deliver stay pending under this consumer and are
                # claimed as a dead consumer's after a restart: nothing is lost.
                prefetch.cancel()
                await asyncio.gather(prefetch, return_exceptions=True)

    def retry_within(self, seconds: float) -> None:
        """Read this consumer's pending entries again within `seconds` (a handler's
        backoff ends), or the usual retry round, whichever comes first."""
        at = time.monotonic() + min(max(seconds, 0.0), self.retry_delay)
        if self._retry_at is None or at < self._retry_at:
            self._retry_at = at

    async def poll_once(self) -> int:
        """Handle what is waiting now, without blocking (tests, benchmarks)."""
        await self.bus.ensure_group(self.stream, self.group)
        total = 0
        while True:
            entries = await self.bus.read_packed(self.stream, self.group, self.batch)
            if not entries:
                return total
            await self._handle(self._decode(entries))
            total += len(entries)

    async def _read(self, start: str) -> list[tuple[bytes | str, bytes]]:
        """[(id, blob)]: this consumer's own pending entries ("0"), or new ones (">"),
        blocking for at most block_ms unless a backlog is being worked through."""
        if start == ">" and self._backlog:
            entries = await self.bus.read_packed(self.stream, self.group, self.batch)
            self._backlog = len(entries) >= self.batch
            if entries:
                return entries
        client = self.bus.blocking if start == ">" else self.bus.redis
        res = await client.xreadgroup(
            self.group, self.name, {self.stream: start}, count=self.batch,
            block=self.block_ms if start == ">" else None,
        )
        entries = _blobs(res[0][1]) if res else []
        if start == ">":
            self._backlog = len(entries) >= self.batch
        return entries

    async def _reclaim(self) -> list:
        """Entries of dead consumers at once; entries idle too long via XAUTOCLAIM."""
        now = time.monotonic()
        if now < self._next_claim:
            return []
        self._next_claim = now + min(self.claim_idle_ms / 1000 / 2, 5.0)
        r = self.bus.redis
        await self.bus.heartbeat(self.heartbeat_ttl)
        claimed: list = []
        for c in await r.xinfo_consumers(self.stream, self.group):
            name = _sid(c["name"])
            if name == self.name:
                continue
            dead = self.bus.exclusive or not await r.exists(self.bus.keys.consumer_alive(name))
            if not dead:
                continue
            if c["pending"]:
                pend = await r.xpending_range(self.stream, self.group, "-", "+", self.batch, consumername=name)
                ids = [p["message_id"] for p in pend]
                if ids:
                    claimed += await r.xclaim(self.stream, self.group, self.name, 0, ids)
            if c["pending"] <= self.batch and not claimed:
                await r.xgroup_delconsumer(self.stream, self.group, name)
            if claimed:
                break
        if not claimed:
            res = await r.xautoclaim(self.stream, self.group, self.name, self.claim_idle_ms,
                                     start_id="0-0", count=self.batch)
            claimed = res[1]
        claimed = [e for e in claimed if e and e[1]]
        if claimed:
            log.info("claimed pending entries", extra={"stream": self.stream, "count": len(claimed)})
            self._next_claim = 0.0  # more may be waiting
        return claimed

    async def _read_ahead(self) -> tuple[Entries, Any]:
        """The next batch, read, decoded and prepared while the previous one is
        being handled (so this work overlaps with the handler's wait on Redis).
        A batch `prepare` fails on is prepared again, entry by entry, in `_handle`."""
        entries = self._decode(await self._read(">"))
        try:
            return entries, self._prepare(entries)
        except Exception:
            return entries, None

    def _prepare(self, entries: Entries) -> Any:
        events = [(sid, ev) for sid, ev, _ in entries if not isinstance(ev, BrokenEvent)]
        return self.prepare(events) if self.prepare is not None and events else events

    @staticmethod
    def _decode(entries: list[tuple[bytes | str, bytes]]) -> Entries:
        out = []
        for sid, raw in entries:
            try:
                out.append((_sid(sid), Event.decode(raw), raw))
            except BrokenEvent as exc:
                out.append((_sid(sid), exc, raw))
        return out

    async def _handle(self, entries: Entries, prepared: Any = None) -> int:
        """Park broken entries, hand the rest to the handler, ack what it finished;
        returns how many it did not."""
        broken: list[str] = []
        for sid, ev, raw in entries:
            if isinstance(ev, BrokenEvent):
                await self.bus.park(self.stream, sid, str(ev), raw, self.stage)
                broken.append(sid)
        good = [e for e in entries if not isinstance(e[1], BrokenEvent)]
        ids = [sid for sid, _, _ in good]
        done = list(await self._holding(ids, self._run(good, prepared))) if ids else []
        if done or broken:
            await self.bus.redis.xack(self.stream, self.group, *done, *broken)
        unfinished = len(ids) - len(done)
        if unfinished and self._retry_at is None:
            self._retry_at = time.monotonic() + self.retry_delay
        return unfinished

    async def _run(self, entries: Entries, prepared: Any = None) -> list[str]:
        """The handler on `entries`; with `isolate`, a failure is narrowed down by halves
        to the entry that causes it, which is parked (and counts as done)."""
        try:
            if prepared is None:
                prepared = self._prepare(entries)
            return list(await self.handler(prepared))
        except Exception as exc:
            if not self.isolate or transient(exc):
                raise
            if len(entries) > 1:
                half = len(entries) // 2
                return await self._run(entries[:half]) + await self._run(entries[half:])
            sid, _, raw = entries[0]
            await self.bus.park(self.stream, sid, park_reason(exc), raw, self.stage)
            return [sid]

    async def _holding(self, ids: list[str], work: Awaitable[Iterable[str]]) -> Iterable[str]:
        """Run `work` while keeping the entries in hand from looking idle, so a
        slow handler (a platform taking its time) is not taken over by another
        process's XAUTOCLAIM and done twice."""
        async def touch() -> None:
            while True:
                await asyncio.sleep(self.claim_idle_ms / 1000 / 3)
                try:
                    await self.bus.redis.xclaim(self.stream, self.group, self.name, 0, ids, justid=True)
                except (RedisError, OSError):
                    pass
        toucher = asyncio.create_task(touch())
        try:
            return await work
        finally:
            toucher.cancel()


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
