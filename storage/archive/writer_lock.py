"""One archive writer across processes.

Several `kefu run` processes may share a Redis, and all read the change log; only
one may write the archive, because a conversation's evidence chain and its
message order are built by appending in log order.  The lock is the database's
own, not a Redis lease:
- SQLite: an exclusive flock(2) on `<database>.lock`.  The file can only be
  written by processes of the machine it lives on, which is exactly the scope a
  file lock has; and the kernel releases it the instant its holder dies (kill -9),
  so the next writer takes over at once instead of waiting out a lease's TTL.
- PostgreSQL: a session-level advisory lock on a connection kept open for it;
  the server releases it when that connection ends (process dead, network cut),
  and `held()` notices a lost connection before the next batch is written.
Both are scoped to the database being written — the thing to protect — where a
Redis lease would be scoped to a key prefix that says nothing about which
database it guards.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.archive.db import sqlite_path

_PG_KEY = 0x6B656675_61726368 & 0x7FFFFFFFFFFFFFFF  # "kefuarch"


class WriterLock:
    def __init__(self, fd: int | None = None, conn: AsyncConnection | None = None):
        self._fd = fd
        self._conn = conn

    @classmethod
    async def try_acquire(cls, engine: AsyncEngine) -> "WriterLock | None":
        """The lock if no other process holds it, else None (never waits)."""
        path = sqlite_path(engine.url.render_as_string(hide_password=False))
        if path is not None:
            lock_file = Path(f"{path}.lock")
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            return cls(fd=fd)
        conn = await engine.connect()
        try:
            got = (await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_KEY})).scalar_one()
            await conn.commit()  # the lock is the session's; no transaction stays open
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return None
        return cls(conn=conn)

    async def held(self) -> bool:
        """False once the lock may have been lost (PostgreSQL connection gone)."""
        if self._conn is None:
            return self._fd is not None
        try:
            await self._conn.execute(sa.text("SELECT 1"))
            await self._conn.commit()
            return True
        except (DBAPIError, OSError):
            return False

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_KEY})
                await conn.commit()
            except (DBAPIError, OSError):
                pass  # the connection is gone, and the lock with it
            finally:
                await conn.close()
