"""The archive writer and its consumer: every record once, whatever is replayed."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from storage.archive import schema
from storage.archive.consumer import GROUP, ArchiveConsumer
from storage.archive.evidence import verify_archive
from storage.archive.migrate import migrate
from storage.archive.reader import UnknownCursor
from storage.bus import Bus
from storage.changes import Change
from storage.connection import connect
from storage.conversations import conversation_view
from storage.keys import Keys
from tests.archive_harness import Transcript, archive, postgres_database  # noqa: F401 (fixtures)
from tests.kefu_harness import REPO, RedisServer, wait_for


async def test_a_replayed_log_writes_nothing_twice(archive):
    a, b = Transcript("c_a"), Transcript("c_b", customer="u2")
    log = a.whole(5) + b.whole(4)
    log.insert(3, b.opened())  # interleaved, as the log interleaves conversations
    await archive.writer.apply(log)
    before = [await archive.count(t) for t in (schema.messages, schema.evidence_links, schema.conversation_events)]
    # kill -9 between commit and XACK: the batch comes again, cut differently
    for part in (log[:4], log[2:9], log[5:], log):
        applied = await archive.writer.apply(part)
        assert applied.messages == 0
    after = [await archive.count(t) for t in (schema.messages, schema.evidence_links, schema.conversation_events)]
    assert after == before and before[0] == 9
    assert (await verify_archive(archive.read)).ok
    view = await archive.reader.conversation("c_a")
    assert [m["id"] for m in view["messages"]] == [f"m_c_a_{i}" for i in range(5)]
    assert view["status"] == "closed"


async def test_an_old_snapshot_replayed_after_a_newer_one_changes_nothing(archive):
    t = Transcript("c_1")
    opened, assigned, closed = t.opened(), t.assigned("alice", 1_000_001), t.closed(1_000_050)
    await archive.writer.apply([opened, assigned, closed])
    await archive.writer.apply([assigned])
    view = await archive.reader.conversation("c_1")
    assert view["status"] == "closed" and view["assignee"] is None


async def test_archived_views_have_the_live_shape_and_page_back_through_history(archive):
    t = Transcript("c_long", name="张三")
    await archive.writer.apply(t.whole(250, close=False) + [t.closed(1_000_400)])
    view = await archive.reader.conversation("c_long", limit=100)
    live = conversation_view({k: v for k, v in t.conv.items()})
    assert set(live) <= set(view) and view["customer"] == live["customer"]
    assert view["status"] == "closed" and view["has_more"] is True
    seen = view["messages"]
    assert [m["id"] for m in seen] == [f"m_c_long_{i}" for i in range(150, 250)]
    assert view["last_message"]["id"] == "m_c_long_249"  # what a person last wrote
    while True:
        page = await archive.reader.messages("c_long", before=seen[0]["id"], limit=100)
        if not page:
            break
        seen = page + seen
    assert [m["id"] for m in seen] == [f"m_c_long_{i}" for i in range(250)]
    assert seen[1]["sender"] == {"kind": "agent", "id": "alice", "name": "alice"}
    with pytest.raises(UnknownCursor):
        await archive.reader.messages("c_long", before="m_nope")
    assert await archive.reader.conversation("c_missing") is None


async def test_the_inbox_of_closed_conversations_pages_by_cursor(archive):
    log = []
    for i in range(23):
        t = Transcript(f"c_{i:02d}", customer=f"u{i % 3}")
        log += t.whole(1, close=False) + [t.closed(1_000_100 + i // 2)]  # ties in closed_at too
    log += Transcript("c_open", customer="u0").whole(1, close=False)
    await archive.writer.apply(log)
    pages, cursor = [], None
    while True:
        views, cursor = await archive.reader.closed(limit=5, cursor=cursor)
        pages.append([v["id"] for v in views])
        if cursor is None:
            break
    ids = [cid for page in pages for cid in page]
    assert len(ids) == 23 and len(set(ids)) == 23 and "c_open" not in ids
    assert all(len(p) == 5 for p in pages[:-1])
    assert ids[0] in ("c_22", "c_21") and ids[-1] in ("c_00", "c_01")
    mine = await archive.reader.customer_conversations("u0", "site")
    assert {v["id"] for v in mine} == {f"c_{i:02d}" for i in range(0, 23, 3)} | {"c_open"}
    with pytest.raises(UnknownCursor):
        await archive.reader.closed(cursor="garbage")


async def test_migrate_again_is_harmless(archive):
    assert await migrate(archive.url) == await migrate(archive.url)


_CONSUMER = textwrap.dedent("""
    import asyncio, sys
    from storage.archive.consumer import ArchiveConsumer
    from storage.archive.db import open_engine
    from storage.archive.writer import ArchiveWriter
    from storage.bus import Bus
    from storage.connection import connect
    from storage.keys import Keys

    async def main(redis_url, prefix, db_url):
        redis, blocking = connect(redis_url, block_ms=200)
        bus = Bus(redis, blocking, Keys(prefix), 60, exclusive=False)
        await ArchiveConsumer(bus, ArchiveWriter(open_engine(db_url)), batch=20, block_ms=200).run(asyncio.Event())
    asyncio.run(main(*sys.argv[1:]))
""")


async def test_kill_9_during_load_loses_and_repeats_nothing(archive, tmp_path):
    """A real consumer process on a real Redis stream, killed mid-load; the next one finishes."""
    server = RedisServer(tmp_path / "redis").start()
    redis, blocking = connect(server.url, block_ms=200)
    keys = Keys("kefu:test:")
    try:
        log = []
        for i in range(40):
            log += Transcript(f"c_{i}", customer=f"u{i}").whole(30)
        pipe = redis.pipeline(transaction=False)
        for c in log:
            pipe.xadd(keys.changes, c.fields())
        pipe.xadd(keys.changes, {"c": b"\xc1 not msgpack"})  # parked, not fatal
        await pipe.execute()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-c", _CONSUMER, server.url, keys.prefix, archive.url], env=env)
        try:
            await wait_for(lambda: _at_least(archive, 200), timeout=60, message="the first consumer writing")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        written = await archive.count(schema.messages)
        assert written < 1200, "the first consumer finished before it could be killed"
        bus = Bus(redis, blocking, keys, 60, exclusive=False)
        await ArchiveConsumer(bus, archive.writer, batch=50).poll_once()
        assert await archive.count(schema.messages) == 1200
        assert await archive.count(schema.evidence_links) == 1200
        assert (await redis.xpending(keys.changes, GROUP))["pending"] == 0
        assert await redis.xlen(keys.parked) == 1
        assert (await verify_archive(archive.read)).ok
        async with archive.read.connect() as conn:
            seqs = (await conn.execute(sa.select(schema.messages.c.seq).where(
                schema.messages.c.conversation_id == "c_7").order_by(schema.messages.c.pk))).scalars().all()
        assert seqs == list(range(1, 31))
    finally:
        await redis.aclose()
        await blocking.aclose()
        server.stop()


async def _at_least(archive, n: int) -> bool:
    return await archive.count(schema.messages) >= n


async def test_a_second_process_waits_for_the_writer_lock(archive, tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    redis, blocking = connect(server.url, block_ms=100)
    try:
        keys = Keys("kefu:lock:")
        first = ArchiveConsumer(Bus(redis, blocking, keys, 60, exclusive=False), archive.writer, block_ms=100)
        second = ArchiveConsumer(Bus(redis, blocking, keys, 60, exclusive=False), archive.writer, block_ms=100)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(first.run(stop))]
        await wait_for(lambda: first.writing, message="the first writer")
        tasks.append(asyncio.create_task(second.run(stop)))
        await redis.xadd(keys.changes, Change(**{"kind": "opened", "cid": "c_x", "ts": 1.0}).fields())
        await wait_for(lambda: _at_least_conversations(archive), message="the change archived")
        assert first.writing and not second.writing
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        await redis.aclose()
        await blocking.aclose()
        server.stop()


async def _at_least_conversations(archive) -> bool:
    return await archive.count(schema.conversations) >= 1
