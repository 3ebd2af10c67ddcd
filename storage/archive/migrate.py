"""`migrate(url)`: bring an archive database to the current schema (`kefu run`, `kefu migrate`).

A new database gets schema.py's tables, indexes and search indexes at once and is
stamped with the newest alembic revision; an existing one is upgraded through
migrations/versions/.  Concurrent callers (several `kefu run` starting together)
are serialised: a PostgreSQL advisory lock, SQLite's write lock (BEGIN IMMEDIATE).
"""
from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.archive import schema
from storage.archive.db import is_sqlite, open_engine

log = logging.getLogger("kefu.archive")

_LOCK_KEY = 0x6B656675  # "kefu": the advisory lock serialising migrations on PostgreSQL


def _alembic_config(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return ScriptDirectory.from_config(cfg).get_current_head() or ""


def _upgrade(connection: sa.Connection) -> tuple[str | None, str]:
    before = MigrationContext.configure(connection).get_current_revision()
    cfg = _alembic_config(connection)
    if before is None:
        schema.metadata.create_all(connection)
        command.stamp(cfg, "head")
    else:
        command.upgrade(cfg, "head")
    return before, MigrationContext.configure(connection).get_current_revision() or ""


async def migrate(url: str) -> str:
    """Create or upgrade the archive at `url` (an async SQLAlchemy URL); returns the revision."""
    engine = open_engine(url)
    try:
        async with engine.begin() as conn:
            if not is_sqlite(url):
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            before, after = await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()
    if before != after:
        log.info("archive migrated", extra={"from_revision": before or "empty", "to_revision": after})
    return after
