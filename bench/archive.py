#!/usr/bin/env python3
"""kefu archive benchmark: archive throughput vs the stream and the router, report latency.

    python bench/archive.py                     # SQLite, and PostgreSQL if it answers
    python bench/archive.py --quick             # smaller figures for a smoke test
    python bench/archive.py --postgres ''       # SQLite only

Progress goes to stderr; the last line of stdout is one JSON object.  Phases, on the
embedded redis-server (unix socket, AOF on) as bench/pipeline.py runs it:

raw      bench/pipeline.py's baseline in this run: N encoded Events XADDed (pipelined),
         then XREADGROUP + XACK until the group is empty.
router   bench/pipeline.py's router phase in this run (the real Router over N events).
archive  the change log of the same traffic (per customer message: its MESSAGE record;
         per conversation OPENED and ASSIGNED; an agent reply every third message) XADDed
         as `Change.fields()`, then the real ArchiveConsumer + ArchiveWriter drain it
         through the group `archive` into a fresh archive (SQLite file; PostgreSQL
         database).  archive_msgs_per_s = messages archived / drain time;
         archive_vs_router and archive_vs_raw divide it by the two rates above.
reports  --messages (1,000,000) messages in --conversations (100,000) conversations spread
         over a year, bulk-loaded (executemany / COPY, search indexes included), daily
         rollups refreshed, then the year's report, a month's report and two searches
         are timed (median of --repeat runs).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import pipeline  # noqa: E402  (bench/pipeline.py: its raw and router phases, its texts)

import sqlalchemy as sa  # noqa: E402

from storage import changes as ch  # noqa: E402
from storage.archive import schema  # noqa: E402
from storage.archive.consumer import ArchiveConsumer  # noqa: E402
from storage.archive.db import open_engine  # noqa: E402
from storage.archive.migrate import migrate  # noqa: E402
from storage.archive.reports import question_key, refresh_rollups, report  # noqa: E402
from storage.archive.search import Visibility, cjk_bigrams, search  # noqa: E402
from storage.archive.writer import ArchiveWriter  # noqa: E402
from storage.bus import Bus  # noqa: E402
from storage.changes import Change  # noqa: E402
from storage.connection import connect  # noqa: E402
from storage.events import Event  # noqa: E402
from storage.keys import Keys  # noqa: E402

log = pipeline.log
YEAR = 365 * 86400


def change_log(events: list[Event]) -> tuple[list[Change], int]:
    """The change records the router's traffic makes: (records, messages among them)."""
    out: list[Change] = []
    seen: dict[str, int] = {}
    messages = 0
    for ev in events:
        cid = f"c_{ev.customer_id}"
        conv = {"id": cid, "channel": ev.channel, "channel_kind": "api", "customer_id": ev.customer_id,
                "customer_name": ev.sender_name, "status": "open", "role": "aftersales", "assignee": "agent1",
                "priority": "normal", "created_at": f"{ev.ts:.6f}", "updated_at": f"{ev.ts:.6f}"}
        if cid not in seen:
            seen[cid] = 0
            out.append(Change(kind=ch.OPENED, cid=cid, ts=ev.ts, actor="customer", conv=conv))
            out.append(Change(kind=ch.ASSIGNED, cid=cid, ts=ev.ts, actor="system", conv=conv))
        seen[cid] += 1
        out.append(Change(kind=ch.MESSAGE, cid=cid, ts=ev.ts, actor="customer", mid=ev.id, blob=ev.encode()))
        messages += 1
        if seen[cid] % 3 == 0:
            reply = Event(id=ev.id.replace("m_", "m_r"), channel=ev.channel, channel_kind="api", direction="out",
                          customer_id=ev.customer_id, text="您好，已为您补发卡密，请查收邮件", sender_kind="agent",
                          sender_id="agent1", sender_name="Agent 1", ts=ev.ts + 1)
            out.append(Change(kind=ch.MESSAGE, cid=cid, ts=ev.ts + 1, actor="agent1", mid=reply.id,
                              blob=reply.encode()))
            messages += 1
    return out, messages


async def bench_archive(redis_url: str, db_url: str, records: list[Change], messages: int,
                        batch: int) -> dict[str, Any]:
    await migrate(db_url)
    redis, blocking = connect(redis_url, block_ms=100)
    keys = Keys(f"kbench{uuid.uuid4().hex[:8]}:")
    engine = open_engine(db_url)
    try:
        for i in range(0, len(records), 500):
            pipe = redis.pipeline(transaction=False)
            for c in records[i:i + 500]:
                pipe.xadd(keys.changes, c.fields())
            await pipe.execute()
        consumer = ArchiveConsumer(Bus(redis, blocking, keys, 60, exclusive=False), ArchiveWriter(engine),
                                   batch=batch)
        t0 = time.perf_counter()
        handled = await consumer.poll_once()
        elapsed = time.perf_counter() - t0
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.select(sa.func.count()).select_from(schema.messages))).scalar_one()
        if handled != len(records) or stored != messages:
            raise RuntimeError(f"archive handled {handled}/{len(records)} entries, stored {stored}/{messages}")
    finally:
        await engine.dispose()
        await pipeline.delete_prefix(redis_url, keys.prefix)
        await redis.aclose()
        await blocking.aclose()
    return {"msgs_per_s": messages / elapsed, "records_per_s": len(records) / elapsed, "seconds": elapsed}


def bulk_rows(n_messages: int, n_conversations: int, start: float, seed: int = 11):
    """Conversations and messages of a busy year, as the writer would have stored them."""
    rng = random.Random(seed)
    channels, roles = ["site", "webchat", "telegram", "qq", "email"], ["presales", "aftersales", "finance"]
    per = n_messages // n_conversations
    convs, msgs, scores = [], [], []
    for i in range(n_conversations):
        opened = start + YEAR * i / n_conversations
        first = rng.choice(pipeline.TEXTS).format(order=f"D{rng.randrange(10**11, 10**12)}")
        fr = rng.expovariate(1 / 120)
        res = fr + rng.expovariate(1 / 1800)
        cid = f"c_{i:07d}"
        convs.append({"id": cid, "channel": rng.choice(channels), "customer_id": f"u{i % 30000}",
                      "role": rng.choice(roles), "priority": "urgent" if i % 10 == 0 else "normal",
                      "status": "closed", "opened_at": opened, "updated_at": opened + res,
                      "first_customer_at": opened, "first_response_at": opened + fr, "first_response_s": fr,
                      "closed_at": opened + res, "resolution_s": res, "closed_assignee": f"agent{i % 20}",
                      "sla_breached": i % 17 == 0, "question": first, "question_key": question_key(first),
                      "message_count": per, "state": "{}", "state_ts": opened + res})
        if i % 4 == 0:
            scores.append({"conversation_id": cid, "score": rng.randint(1, 5), "agent": f"agent{i % 20}",
                           "ts": opened + res + 60})
        for k in range(per):
            text = first if k == 0 else rng.choice(pipeline.TEXTS).format(order=f"D{rng.randrange(10**11, 10**12)}")
            msgs.append({"id": f"m_{i:07d}_{k}", "conversation_id": cid, "seq": k + 1, "channel": "site",
                         "direction": "in" if k % 2 == 0 else "out",
                         "sender_kind": "customer" if k % 2 == 0 else "agent", "sender_id": "", "sender_name": "",
                         "text": text, "attachments": "[]", "ts": opened + k * 30, "grams": cjk_bigrams(text)})
    return convs, msgs, scores


async def bench_reports(db_url: str, n_messages: int, n_conversations: int, repeat: int) -> dict[str, Any]:
    await migrate(db_url)
    start = 1_735_689_600.0  # 2025-01-01 UTC
    convs, msgs, scores = bulk_rows(n_messages, n_conversations, start)
    engine = open_engine(db_url)
    read = open_engine(db_url, readonly=True) if engine.dialect.name == "sqlite" else engine
    try:
        t0 = time.perf_counter()
        async with engine.begin() as conn:
            for i in range(0, len(convs), 10000):
                await conn.execute(schema.conversations.insert(), convs[i:i + 10000])
            for i in range(0, len(msgs), 20000):
                await conn.execute(schema.messages.insert(), msgs[i:i + 20000])
            await conn.execute(schema.csat.insert(), scores)
            await conn.execute(schema.rollup_dirty.insert(), [{"day": d} for d in
                                                              range(int(start // 86400), int(start // 86400) + 366)])
            await conn.execute(sa.text("ANALYZE"))  # what autovacuum (PostgreSQL) does for a live archive
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        await refresh_rollups(engine, limit=1000)
        rollup_s = time.perf_counter() - t0

        async def timed(work) -> float:
            runs = []
            for _ in range(repeat):
                t = time.perf_counter()
                await work()
                runs.append((time.perf_counter() - t) * 1000)
            return round(statistics.median(runs), 1)

        everyone = Visibility(everything=True)
        return {
            "messages": len(msgs), "conversations": len(convs), "load_s": round(load_s, 1),
            "rollup_refresh_s": round(rollup_s, 1),
            "report_year_ms": await timed(lambda: report(read, start, start + YEAR)),
            "report_month_ms": await timed(lambda: report(read, start + 100 * 86400, start + 130 * 86400)),
            "report_year_unaligned_ms": await timed(lambda: report(read, start + 3600.5, start + YEAR - 7200)),
            "search_zh2_ms": await timed(lambda: search(read, "卡密", everyone)),
            "search_en_ms": await timed(lambda: search(read, "license key", everyone)),
            "search_rare_ms": await timed(lambda: search(read, "D1234567", everyone)),
        }
    finally:
        await engine.dispose()
        if read is not engine:
            await read.dispose()


async def postgres_database(admin_url: str, name: str, drop: bool = False) -> str:
    import asyncpg
    conn = await asyncpg.connect(admin_url, timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if drop else f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return "postgresql+asyncpg://" + admin_url.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"n": a.n, "batch": a.batch, "messages": a.messages, "conversations": a.conversations}
    tmp = Path(tempfile.mkdtemp(prefix="kefu-archive-bench-"))
    server = pipeline.RedisServer(tmp / "redis").start()
    backends = {"sqlite": lambda tag: f"sqlite+aiosqlite:///{tmp / f'{tag}.sqlite3'}"}
    created: list[str] = []
    if a.postgres:
        try:
            name = f"kefu_bench_{uuid.uuid4().hex[:8]}"
            await postgres_database(a.postgres, name + "_a")
            created.append(name + "_a")
            await postgres_database(a.postgres, name + "_r")
            created.append(name + "_r")
            backends["postgresql"] = lambda tag, n=name: (
                "postgresql+asyncpg://" + a.postgres.split("://", 1)[1].rsplit("/", 1)[0] + f"/{n}_{tag[0]}")
        except (OSError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - any failure: SQLite only
            log(f"PostgreSQL not used: {exc}")
    try:
        events = pipeline.make_events(a.n, 1000)
        raw = await pipeline.bench_raw(server.url, [e.encode() for e in events], a.batch)
        out["raw_stream_msgs_per_s"] = round(raw["raw_stream_msgs_per_s"])
        log(f"raw {out['raw_stream_msgs_per_s']} msg/s")
        router = await pipeline.bench_router(server.url, pipeline.make_events(a.n, 1000), a.batch, 6, 400, None)
        out["router_msgs_per_s"] = round(router["router_msgs_per_s"])
        log(f"router {out['router_msgs_per_s']} msg/s")
        records, messages = change_log(events)
        for backend, url in backends.items():
            got = await bench_archive(server.url, url("archive"), records, messages, a.archive_batch)
            out[f"archive_{backend}_msgs_per_s"] = round(got["msgs_per_s"])
            out[f"archive_{backend}_records_per_s"] = round(got["records_per_s"])
            out[f"archive_{backend}_vs_router"] = round(got["msgs_per_s"] / router["router_msgs_per_s"], 3)
            out[f"archive_{backend}_vs_raw"] = round(got["msgs_per_s"] / raw["raw_stream_msgs_per_s"], 3)
            log(f"archive {backend}: {out[f'archive_{backend}_msgs_per_s']} msg/s")
        for backend, url in backends.items():
            log(f"reports {backend}: loading {a.messages} messages")
            for k, v in (await bench_reports(url("reports"), a.messages, a.conversations, a.repeat)).items():
                out[f"reports_{backend}_{k}"] = v
            log(f"reports {backend}: year {out[f'reports_{backend}_report_year_ms']} ms")
    finally:
        server.stop()
        for name in created:
            await postgres_database(a.postgres, name, drop=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=30000, help="customer messages for raw/router/archive")
    p.add_argument("--batch", type=int, default=100, help="stream batch of the raw and router phases")
    p.add_argument("--archive-batch", type=int, default=1000, help="change-log entries per archive transaction")
    p.add_argument("--messages", type=int, default=1_000_000, help="archived messages for the report phase")
    p.add_argument("--conversations", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                   help="a PostgreSQL server's URL (its database is used to create and drop bench databases); "
                        "'' = SQLite only")
    p.add_argument("--quick", action="store_true", help="n=5000, 100,000 messages")
    a = p.parse_args()
    if a.quick:
        a.n, a.messages, a.conversations, a.repeat = 5000, 100_000, 10_000, 3
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=BENCH, capture_output=True, text=True)
    result = {"git": git.stdout.strip(), **asyncio.run(main_async(a))}
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
