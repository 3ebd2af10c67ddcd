"""ArchiveConsumer: the change log (`Keys.changes`) -> the archive, through the group `archive`.

A small reader of its own rather than storage/bus.py's StreamConsumer, which
decodes Events, spreads work over every process and reclaims by heartbeat: the
archive has exactly one writer (writer_lock.py), so the process holding the lock
reads alone.  On taking the lock it claims every entry still pending in the
group — whoever read them is dead or no longer writing — then reads in batches:
decode, park what cannot be decoded, `ArchiveWriter.apply` in one transaction,
and XACK only after the commit.  A kill -9 between commit and XACK leaves the
batch pending; the next writer replays it and the writer's idempotency makes
that write nothing twice.  Between batches the lock holder runs periodic jobs
(rollups, chain-head anchors, retention), so they too run in one process only.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import msgpack
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from storage import changes as ch
from storage.archive.writer import ArchiveWriter
from storage.archive.writer_lock import WriterLock
from storage.bus import Bus, sleep_or_stop
from storage.changes import BrokenChange, Change

log = logging.getLogger("kefu.archive")

GROUP = "archive"
LOCK_RETRY_S = 5.0

# XREADGROUP answered as one msgpack array [id, c, m, id, c, m, ...] (m false when
# absent): one bulk string unpacked in C instead of a RESP reply parsed in Python,
# which was most of the consumer's own cost.  KEYS: stream; ARGV: group, consumer,
# count, start id.
_READ_PACKED = """
local res = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], ARGV[4])
local flat = {}
for _, e in ipairs(res and res[1][2] or {}) do
  local c, m = false, false
  local f = e[2] or {}
  for i = 1, #f, 2 do
    if f[i] == 'c' then c = f[i + 1] elseif f[i] == 'm' then m = f[i + 1] end
  end
  flat[#flat + 1] = e[1]
  flat[#flat + 1] = c
  flat[#flat + 1] = m
end
return cmsgpack.pack(flat)
"""


@dataclass(slots=True)
class _Batch:
    """Entries read from the log and decoded (while the previous batch is being written)."""
    ids: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    broken: list[tuple[str, str, bytes | None]] = field(default_factory=list)  # entry, why, record
    entry_of: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)  # message id -> entry, record

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class Periodic:
    """A job the writer's process runs every `interval` seconds between batches."""
    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    due: float = 0.0


class ArchiveConsumer:
    def __init__(self, bus: Bus, writer: ArchiveWriter, *, batch: int = 1000, block_ms: int = 1000,
                 jobs: list[Periodic] | None = None):
        self.bus = bus
        self.writer = writer
        self.stream = bus.keys.changes
        self.batch = batch
        self.block_ms = block_ms
        self.jobs = jobs or []
        self.writing = False  # this process holds the writer lock
        self._read_packed = bus.redis.register_script(_READ_PACKED)

    async def run(self, stop: asyncio.Event) -> None:
        """Write the archive while this process holds the writer lock; wait for it otherwise."""
        while not stop.is_set():
            try:
                lock = await WriterLock.try_acquire(self.writer.engine)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("archive unavailable", extra={"error": str(exc), "retry_in": LOCK_RETRY_S})
                lock = None
            if lock is None:
                await sleep_or_stop(stop, LOCK_RETRY_S)
                continue
            self.writing = True
            log.info("archive writer", extra={"consumer": self.bus.consumer})
            try:
                await self._write(stop, lock)
            finally:
                self.writing = False
                await lock.release()

    async def _write(self, stop: asyncio.Event, lock: WriterLock) -> None:
        backoff = 0.1
        start = "0"  # this consumer's own pending entries first (after a take-over or a failed batch)
        taken_over = False
        prefetch: asyncio.Task | None = None  # the next batch, read and decoded while this one is written
        try:
            while not stop.is_set():
                try:
                    if not taken_over:
                        await self.bus.ensure_group(self.stream, GROUP)
                        await self._take_over()
                        taken_over = True
                    if prefetch is not None:
                        batch, prefetch = await prefetch, None
                    else:
                        batch = await self._read(start)
                    if start == "0" and not batch:
                        start = ">"
                        continue
                    if batch:
                        if not await lock.held():
                            log.warning("archive writer lock lost")
                            return
                        if start == ">":
                            prefetch = asyncio.create_task(self._read(">", block=False))
                        await self._handle(batch)
                    await self._run_jobs()
                    backoff = 0.1
                except (RedisError, SQLAlchemyError, OSError) as exc:
                    log.warning("archive write failed, retrying", extra={"error": str(exc), "retry_in": backoff})
                    prefetch = await _cancel(prefetch)
                    await sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                    start = "0"
        finally:
            # What it read stays pending under this consumer: the next writer takes it over.
            await _cancel(prefetch)

    async def poll_once(self) -> int:
        """Write everything waiting now, without blocking (tests, benchmarks); the caller
        is the only writer.  Returns how many entries were handled."""
        await self.bus.ensure_group(self.stream, GROUP)
        await self._take_over()
        total = 0
        for start in ("0", ">"):
            batch = await self._read(start, block=False)
            while batch:
                # pending entries ("0") would be read again until acked: no read-ahead there
                ahead = asyncio.create_task(self._read(start, block=False)) if start == ">" else None
                await self._handle(batch)
                total += len(batch)
                batch = await ahead if ahead is not None else await self._read(start, block=False)
        return total

    async def _take_over(self) -> None:
        """Claim what other (dead) consumers of the group left pending, and forget them."""
        r, me = self.bus.redis, self.bus.consumer
        cursor = "0-0"
        while True:
            cursor, claimed, *_ = await r.xautoclaim(self.stream, GROUP, me, 0, start_id=cursor,
                                                     count=self.batch)
            if claimed:
                log.info("archive took over pending entries", extra={"count": len(claimed)})
            if cursor in (b"0-0", "0-0"):
                break
        for c in await r.xinfo_consumers(self.stream, GROUP):
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            if name != me and not c["pending"]:
                await r.xgroup_delconsumer(self.stream, GROUP, name)

    async def _read(self, start: str, *, block: bool = True) -> _Batch:
        """This consumer's pending entries ("0") or new ones (">"), decoded; new ones wait
        up to block_ms when nothing is there yet."""
        flat = msgpack.unpackb(await self._read_packed(keys=[self.stream], args=[GROUP, self.bus.consumer,
                                                                                 self.batch, start]), raw=True)
        if not flat and start == ">" and block:
            await self.bus.blocking.xreadgroup(GROUP, self.bus.consumer, {self.stream: ">"}, count=1,
                                               block=self.block_ms)  # wait for work...
            flat = msgpack.unpackb(await self._read_packed(keys=[self.stream], args=[
                GROUP, self.bus.consumer, self.batch, "0"]), raw=True)  # ...which that read made pending
        batch = _Batch()
        for i in range(0, len(flat), 3):
            sid, record, blob = flat[i].decode(), flat[i + 1] or None, flat[i + 2] or None
            batch.ids.append(sid)
            if record is None:
                continue  # trimmed away while pending
            try:
                change = Change.decode({b"c": record, b"m": blob} if blob else {b"c": record})
            except BrokenChange as exc:
                batch.broken.append((sid, str(exc), record))
                continue
            batch.changes.append(change)
            if change.kind == ch.MESSAGE:
                batch.entry_of[change.mid] = (sid, record)
        return batch

    async def _handle(self, batch: _Batch) -> None:
        """Park what cannot be read, write the rest in one transaction, then ack it all."""
        for sid, why, record in batch.broken:
            await self.bus.park(self.stream, sid, why, record, "archive")
        applied = await self.writer.apply(batch.changes)
        for mid in applied.unreadable:
            sid, record = batch.entry_of[mid]
            await self.bus.park(self.stream, sid, "message record whose message cannot be read", record, "archive")
        await self.bus.redis.xack(self.stream, GROUP, *batch.ids)
        log.debug("archived", extra={"entries": len(batch), "messages": applied.messages})

    async def _run_jobs(self) -> None:
        now = time.monotonic()
        for job in self.jobs:
            if now < job.due:
                continue
            job.due = now + job.interval
            try:
                await job.run()
            except (SQLAlchemyError, RedisError, OSError) as exc:
                log.warning("archive job failed", extra={"job": job.name, "error": str(exc)})


async def _cancel(task: asyncio.Task | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
