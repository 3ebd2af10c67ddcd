"""Retention: an expired transcript is purged from every store, its bytes included."""
from __future__ import annotations

from pathlib import Path

from storage.archive.evidence import verify_archive
from storage.archive.reports import refresh_rollups, report
from storage.archive.retention import Purged, purge_expired
from storage.archive.search import Visibility, search
from storage.attachments import AttachmentStore
from storage.connection import connect
from storage.keys import Keys
from tests.archive_harness import Transcript, archive, postgres_database  # noqa: F401 (fixtures)
from tests.kefu_harness import RedisServer

YEAR = 365 * 86400
SECRET = "旧的秘密句子：卡号改了 purged-sentence-4711"
KEPT = "这句话应该保留 kept-sentence-0815"


async def test_an_expired_transcript_is_purged_everywhere(archive, tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    redis, blocking = connect(server.url, block_ms=100)
    try:
        files = AttachmentStore(redis, Keys("kefu:ret:"), ttl=10 * YEAR)
        proof = await files.put(b"\x89PNG\r\n\x1a\n-screenshot-", "proof.png")
        old, recent = Transcript("c_old"), Transcript("c_recent", customer="u2", opened=1_000_000 + 200 * 86400)
        await archive.writer.apply([
            old.opened(), old.assigned("alice", 1_000_000.5), old.message("m_secret", SECRET, 1_000_001, attachments=[proof.public()]),
            old.message("m_answer", "已补发", 1_000_030, "agent", "alice"), old.closed(1_000_100),
            old.csat(5, 1_000_200),
            recent.opened(), recent.message("m_kept", KEPT, 1_000_000 + 200 * 86400 + 1),
            recent.closed(1_000_000 + 200 * 86400 + 50)])
        await refresh_rollups(archive.engine)  # the daily figures hold its first question now
        forgotten: list[str] = []

        async def forget_redis(cids: list[str]) -> None:
            forgotten.extend(cids)

        now = 1_000_100 + YEAR + 1
        purged = await purge_expired(archive.engine, now, YEAR, forget_redis=forget_redis,
                                     delete_files=files.delete)
        assert purged == Purged(conversations=1, messages=2, files=1)
        assert forgotten == ["c_old"] and await files.get(proof.id) is None
        assert await archive.reader.conversation("c_old") is None
        assert await search(archive.read, "秘密句子", Visibility(everything=True)) == []
        assert [v["id"] for v in await archive.reader.customer_conversations("u1")] == []
        assert (await archive.reader.conversation("c_recent"))["messages"][0]["text"] == KEPT
        figures = await report(archive.read, 0, now)
        assert [q["text"] for q in figures["top_questions"]] == [KEPT]
        assert figures["volume"]["by_channel"] == {"site": 2}  # the counts stay
        assert figures["csat"] == {"alice": {"count": 1, "average": 5.0}}
        assert (await verify_archive(archive.read)).ok  # the chain keeps its hashes
        assert await purge_expired(archive.engine, now, YEAR, forget_redis=forget_redis) == Purged()
        assert forgotten == ["c_old"]
        if archive.engine.dialect.name == "sqlite":
            await archive.engine.dispose()  # as at rest: the files are all there is
            await archive.read.dispose()
            stored = b"".join(p.read_bytes() for p in Path(tmp_path).glob("archive.sqlite3*"))
            assert KEPT.encode() in stored  # the check can see text that is there
            for fragment in (SECRET, "purged-sentence-4711", "旧的秘密句子"):
                assert fragment.encode() not in stored, fragment
    finally:
        await redis.aclose()
        await blocking.aclose()
        server.stop()


async def test_the_wal_holds_no_purged_text_while_kefu_keeps_running(archive, tmp_path):
    if archive.engine.dialect.name != "sqlite":
        return
    t = Transcript("c_old")
    await archive.writer.apply(t.whole(3, prefix=SECRET) + [Transcript("c_new", opened=1_000_000 + YEAR).opened()])
    async with archive.read.connect():  # a reader stays connected, as the agent API does
        await purge_expired(archive.engine, 1_000_003 + YEAR + 1, YEAR)
        wal = Path(tmp_path / "archive.sqlite3-wal")
        assert not wal.exists() or SECRET.encode() not in wal.read_bytes()
        assert SECRET.encode() not in Path(tmp_path / "archive.sqlite3").read_bytes()
