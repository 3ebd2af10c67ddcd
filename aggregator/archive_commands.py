"""`kefu migrate` and `kefu evidence export|verify`: the archive from the command line.

They read config.yaml for where the archive is and work while the daemon runs:
migrate is serialised with other migrations, and evidence reads through a
read-only connection (SQLite's WAL lets it read beside the writer).
"""
from __future__ import annotations

import asyncio
import json
import sys

from aggregator.config import Settings
from storage.archive.db import open_engine, sqlite_path
from storage.archive.evidence import Verdict, export_bundle, verify_archive, verify_bundle
from storage.archive.migrate import migrate


def run_migrate(settings: Settings) -> int:
    revision = asyncio.run(migrate(settings.archive.database_url(settings.state_dir)))
    print(f"archive at revision {revision}")
    return 0


def _readonly_url(settings: Settings) -> str | None:
    url = settings.archive.database_url(settings.state_dir)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        print(f"no archive at {path} (kefu run or kefu migrate creates it)", file=sys.stderr)
        return None
    return url


async def _with_engine(url: str, work):
    engine = open_engine(url, readonly=True)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


def run_export(settings: Settings, cid: str, output: str) -> int:
    url = _readonly_url(settings)
    if url is None:
        return 2
    bundle = asyncio.run(_with_engine(url, lambda e: export_bundle(e, cid)))
    if bundle is None:
        print(f"no conversation {cid} in the archive", file=sys.stderr)
        return 1
    with open(output, "w", encoding="utf-8") as f:
        json.dump(bundle, f, ensure_ascii=False, indent=1)
    print(f"{output}: {len(bundle['links'])} links, head {bundle['head']}")
    return 0


def _report(verdict: Verdict, what: str) -> int:
    if verdict.ok:
        print(f"{what}: intact ({verdict.links} links)")
        return 0
    where = f"message {verdict.message_id}" if verdict.message_id else "the chain"
    print(f"{what}: BROKEN at {where} (conversation {verdict.conversation_id}): {verdict.reason}")
    return 1


def run_verify(settings: Settings | None, path: str | None) -> int:
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                bundle = json.load(f)
        except (OSError, ValueError) as exc:
            print(f"{path}: cannot read the bundle: {exc}", file=sys.stderr)
            return 2
        return _report(verify_bundle(bundle), path)
    assert settings is not None
    url = _readonly_url(settings)
    if url is None:
        return 2
    return _report(asyncio.run(_with_engine(url, verify_archive)), "archive")
