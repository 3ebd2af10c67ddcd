"""The archive under test: a fresh SQLite file, or the machine's real PostgreSQL.

`archive` runs a test once per backend.  PostgreSQL: a database of its own per
test run (created on first use, dropped at the end), emptied before each test;
skipped, saying why, only when nothing answers at KEFU_TEST_POSTGRES_URL.
`Transcript` writes change-log records the way storage/lua/ will: a conversation's
hash after each change, its messages as Event blobs.
"""
from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import changes as ch
from storage.archive import schema
from storage.archive.config import async_url
from storage.archive.db import open_engine
from storage.archive.migrate import migrate
from storage.archive.reader import ArchiveReader
from storage.archive.writer import CSAT, ArchiveWriter
from storage.changes import Change
from storage.events import Event

POSTGRES = os.environ.get("KEFU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _admin(sql: str) -> None:
    """Run one statement on the server's own database, from a thread of its own (the
    fixture may be asked for inside a running event loop)."""
    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def postgres_database():
    """URL of a database made for this test run (dropped afterwards)."""
    name = f"kefu_archive_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES} does not answer ({exc}); set KEFU_TEST_POSTGRES_URL")
    yield async_url(POSTGRES.rsplit("/", 1)[0] + f"/{name}")
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Archive:
    url: str
    engine: AsyncEngine  # the writer's
    read: AsyncEngine  # read-only, as the API and `kefu evidence` use it
    writer: ArchiveWriter
    reader: ArchiveReader

    async def count(self, table: sa.Table) -> int:
        async with self.read.connect() as conn:
            return (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()

    async def sql(self, statement: str, **params) -> None:
        """Change the archive behind kefu's back (what tampering does)."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(statement), params)


@pytest.fixture(params=["sqlite", "postgresql"])
async def archive(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'archive.sqlite3'}"
        await migrate(url)
    else:
        url = request.getfixturevalue("postgres_database")
        await migrate(url)
        engine = open_engine(url)
        async with engine.begin() as conn:
            names = ", ".join(t.name for t in schema.metadata.sorted_tables)
            await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        await engine.dispose()
    engine, read = open_engine(url), open_engine(url, readonly=True)
    yield Archive(url, engine, read, ArchiveWriter(engine), ArchiveReader(read))
    await engine.dispose()
    await read.dispose()


class Transcript:
    """Change records of one conversation, as the Lua scripts append them."""

    def __init__(self, cid: str, *, channel: str = "site", customer: str = "u1", role: str = "aftersales",
                 priority: str = "normal", opened: float = 1_000_000.0, name: str = "Buyer"):
        self.cid = cid
        self.conv = {"id": cid, "channel": channel, "channel_kind": "api", "customer_id": customer,
                     "customer_name": name, "status": "open", "role": role, "assignee": "", "tier": "new",
                     "priority": priority, "created_at": f"{opened:.6f}", "updated_at": f"{opened:.6f}"}
        self.opened_at = opened

    def _change(self, kind: str, ts: float, actor: str = "system", **data) -> Change:
        self.conv["updated_at"] = f"{ts:.6f}"
        return Change(kind=kind, cid=self.cid, ts=ts, actor=actor, conv=dict(self.conv), data=data)

    def opened(self) -> Change:
        return self._change(ch.OPENED, self.opened_at, "customer")

    def message(self, mid: str, text: str, ts: float, sender: str = "customer", sender_id: str = "",
                attachments: list | None = None) -> Change:
        ev = Event(id=mid, channel=self.conv["channel"], channel_kind="api",
                   direction="in" if sender == "customer" else "out", customer_id=self.conv["customer_id"],
                   text=text, sender_kind=sender, sender_id=sender_id or (self.conv["customer_id"]
                                                                          if sender == "customer" else sender),
                   sender_name=sender_id or sender, attachments=attachments or [], ts=ts)
        return Change(kind=ch.MESSAGE, cid=self.cid, ts=ts, actor=sender_id or sender, mid=mid, blob=ev.encode())

    def assigned(self, agent: str, ts: float) -> Change:
        self.conv["assignee"] = agent
        return self._change(ch.ASSIGNED, ts, "system", agent=agent)

    def sla(self, ts: float) -> Change:
        self.conv["sla_level"] = "1"
        return self._change(ch.SLA, ts, "system", reason="first_response", level=1)

    def closed(self, ts: float, by: str = "alice") -> Change:
        self.conv.update(status="closed", assignee="", closed_at=f"{ts:.6f}", closed_by=by)
        return self._change(ch.CLOSED, ts, by)

    def csat(self, score: int, ts: float) -> Change:
        return Change(kind=CSAT, cid=self.cid, ts=ts, actor="customer", data={"score": score})

    def whole(self, n: int = 3, start: float | None = None, agent: str = "alice", close: bool = True,
              prefix: str = "") -> list[Change]:
        """Opened, n customer/agent messages alternating a second apart, closed."""
        t = self.opened_at if start is None else start
        out = [self.opened(), self.assigned(agent, t)]
        for i in range(n):
            sender = "customer" if i % 2 == 0 else "agent"
            out.append(self.message(f"m_{self.cid}_{i}", f"{prefix}message {i} of {self.cid}", t + i,
                                    sender, agent if sender == "agent" else ""))
        if close:
            out.append(self.closed(t + n))
        return out
