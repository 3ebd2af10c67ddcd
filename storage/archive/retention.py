"""Retention: transcripts of conversations closed longer ago than `retention.transcripts`
are purged everywhere (SPEC "The record").

For each expired conversation, in this order:
1. its Redis keys (`forget_redis`, the caller's: the conversation's hash, history,
   indexes) and its files (`delete_files`: storage/attachments.py keys named in its
   messages' attachments);
2. in one transaction: its messages (the search indexes follow by trigger), the
   text-bearing fields of its row, ticket, CSAT comment and events; the row keeps
   what reports count (channel, role, times, SLA) and is marked purged (reads: not
   found); the daily report figures of its day are recomputed without its question;
3. SQLite: the search indexes are merged (FTS5 keeps deleted entries in old
   segments until then) and the WAL is checkpointed and truncated, so with
   `secure_delete` the text is gone from the database files.
Evidence links keep only hashes, so the chain still verifies.  A crash between 1
and 2 repeats 1 next time (deleting twice is harmless); a purged conversation is
never selected again, so a rerun does nothing.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.archive import schema
from storage.archive.reports import day_of, refresh_rollups
from storage.archive.writer import upsert

log = logging.getLogger("kefu.archive")

Forget = Callable[[list[str]], Awaitable[object]]
_c, _m = schema.conversations, schema.messages


@dataclass(slots=True)
class Purged:
    conversations: int = 0
    messages: int = 0
    files: int = 0


async def purge_expired(engine: AsyncEngine, now: float, keep: float, *, forget_redis: Forget | None = None,
                        delete_files: Forget | None = None, batch: int = 500) -> Purged:
    """Purge every transcript whose conversation closed before `now - keep`."""
    total = Purged()
    while True:
        async with engine.connect() as conn:
            expired = (await conn.execute(
                sa.select(_c.c.id, _c.c.opened_at)
                .where(_c.c.closed_at < now - keep, _c.c.purged_at.is_(None))
                .order_by(_c.c.closed_at).limit(batch))).all()
            cids = [r.id for r in expired]
            files = sorted({a["id"] for (atts,) in (await conn.execute(
                sa.select(_m.c.attachments).where(_m.c.conversation_id.in_(cids), _m.c.attachments != "[]")))
                for a in json.loads(atts) if isinstance(a.get("id"), str)}) if cids else []
        if not cids:
            break
        if forget_redis is not None:
            await forget_redis(cids)
        if files and delete_files is not None:
            await delete_files(files)
        async with engine.begin() as conn:
            gone = (await conn.execute(sa.delete(_m).where(_m.c.conversation_id.in_(cids)))).rowcount
            await conn.execute(sa.update(_c).where(_c.c.id.in_(cids)).values(
                purged_at=now, customer_id="", customer_name="", contact="", state="{}", question=None,
                question_key=None, last_message_id=None))
            await conn.execute(sa.update(schema.csat).where(schema.csat.c.conversation_id.in_(cids))
                               .values(comment=""))
            await conn.execute(sa.update(schema.tickets).where(schema.tickets.c.conversation_id.in_(cids))
                               .values(data="{}"))
            await conn.execute(sa.update(schema.conversation_events)
                               .where(schema.conversation_events.c.conversation_id.in_(cids)).values(data="{}"))
            await conn.execute(upsert(conn, schema.rollup_dirty).on_conflict_do_nothing(),
                               [{"day": d} for d in {day_of(r.opened_at) for r in expired}])
        total.conversations += len(cids)
        total.messages += max(gone, 0)
        total.files += len(files)
        if len(cids) < batch:
            break
    if total.conversations:
        await refresh_rollups(engine, limit=100000)
        await _scrub(engine)
        log.info("transcripts purged", extra={"conversations": total.conversations, "messages": total.messages,
                                              "files": total.files})
    return total


async def _scrub(engine: AsyncEngine) -> None:
    """SQLite: leave no copy of purged text in the search indexes' old segments or the WAL."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.begin() as conn:
        for fts in ("messages_trigram", "messages_grams"):
            await conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('optimize')")
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # a checkpoint runs outside transactions
        await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
