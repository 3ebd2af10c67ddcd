"""Connections to the archive database: SQLite (embedded default) or PostgreSQL.

SQLite is opened the way the archive needs it on every connection:
- WAL, so the daemon writes while `kefu evidence` and the agent API read;
- `secure_delete=ON`, so a purged transcript's bytes are overwritten, not just
  unlinked from the b-tree (retention.py then truncates the WAL too);
- foreign keys on; a busy timeout, so a second writer waits instead of failing;
- the writer's transactions start with BEGIN IMMEDIATE: it takes the write lock
  up front instead of failing halfway with "database is locked" on upgrade.
A read-only engine opens the file with `mode=ro`: it can never write, whatever
runs through it.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

BUSY_TIMEOUT_MS = 10000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite URL (None for PostgreSQL)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database:
        return None
    return Path(u.database.removeprefix("file:"))


def open_engine(url: str, *, readonly: bool = False) -> AsyncEngine:
    """An async engine for `url` (sqlite+aiosqlite:///... or postgresql+asyncpg://...)."""
    if not is_sqlite(url):
        return create_async_engine(url, pool_size=4, max_overflow=4, pool_pre_ping=True)
    path = sqlite_path(url)
    if path is None:
        raise ValueError("the archive needs an SQLite file, not an in-memory database")
    if readonly:
        url = f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        if not readonly:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across a kill -9 in WAL mode
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine
