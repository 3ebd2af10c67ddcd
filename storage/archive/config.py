"""config.yaml's `archive:` and `retention:` sections (aggregator/config.py composes them).

```yaml
archive: {url: null, redis_keep_closed: 7d}   # null = SQLite under state_dir; or postgresql://...
retention: {transcripts: 365d}
```
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from storage.durations import Duration

SQLITE_FILE = "archive.sqlite3"


class ArchiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # null: an SQLite file under state_dir (archive.sqlite3, WAL); or a PostgreSQL URL
    # (postgresql://user:pass@host:5432/db) shared by every kefu process.  Several
    # processes on several machines need PostgreSQL: an SQLite file is one machine's.
    url: str | None = None
    # A closed conversation leaves Redis this long after it closed; the agent API then
    # reads it from the archive.
    redis_keep_closed: Duration = 7 * 86400
    batch: int = Field(1000, ge=1, le=10000)  # change-log entries written per transaction
    heads_interval: Duration = 3600  # how often the evidence chain heads are logged (to anchor them)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://",
                                               "sqlite:///", "sqlite+aiosqlite:///")):
            raise ValueError("must be null (SQLite under state_dir), postgresql://... or sqlite:///PATH")
        return v

    def database_url(self, state_dir: Path | str) -> str:
        """The SQLAlchemy URL: the async driver of each backend."""
        if self.url is None:
            return f"sqlite+aiosqlite:///{Path(state_dir).resolve() / SQLITE_FILE}"
        return async_url(self.url)


def async_url(url: str) -> str:
    """postgresql://... -> postgresql+asyncpg://..., sqlite:///... -> sqlite+aiosqlite:///..."""
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("postgres://", "postgresql+asyncpg://"),
                          ("sqlite:///", "sqlite+aiosqlite:///")):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Transcripts of conversations closed longer ago than this are purged everywhere
    # (Redis, archive, search index, files); the evidence chain keeps their hashes.
    transcripts: Duration = 365 * 86400
    interval: Duration = 60  # how often the purge runs
