"""`kefu run | check-config | migrate | evidence | audit | parked | faq test | version` (also `python -m aggregator ...`)."""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import time
from pathlib import Path

from aggregator import __version__
from aggregator import config as config_mod
from aggregator import logs


def _default_config() -> str | None:
    return "config.yaml" if os.path.exists("config.yaml") else None


def _faq_test(settings: config_mod.Settings, message: str) -> int:
    """Print the entry a message matches, its score and whether the bot would answer."""
    from routing.faq import FaqIndex

    try:
        index = FaqIndex.from_entries(settings.faq)
    except ValueError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    m = index.match(message)
    print(f"entry: {m.entry_id or '-'}")
    print(f"score: {m.score:.3f} (answers at {index.threshold} or above)")
    print(f"would answer: {'yes' if m.confident else 'no'}" + (f" ({m.reason})" if m.reason else ""))
    if m.confident:
        print(f"answer ({m.language}): {m.answer}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kefu", description="Omnichannel customer service for digital-goods shops")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("-c", "--config", help="config file (default: ./config.yaml if present, else built-in defaults)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="overrides log.level")
    parked = sub.add_parser("parked", help="list the latest entries kefu could not process")
    parked.add_argument("-c", "--config", help="config file (default: ./config.yaml if present)")
    parked.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")
    check = sub.add_parser("check-config", help="validate a config file and exit (2 = problems)")
    check.add_argument("path", nargs="?", help="config file (default: ./config.yaml)")
    audit = sub.add_parser("audit", help="print recent agent actions (newest first) from the audit stream")
    audit.add_argument("-c", "--config", help="config file (default: ./config.yaml if present)")
    audit.add_argument("--agent", help="only this agent's actions")
    audit.add_argument("--conversation", help="only actions on this conversation")
    audit.add_argument("-n", type=int, default=20, help="how many entries (default 20)")
    sub.add_parser("version", help="print the version")
    faq = sub.add_parser("faq", help="the FAQ bot").add_subparsers(dest="faq_command", required=True)
    faq_test = faq.add_parser("test", help="which FAQ entry a message matches, and whether the bot would answer")
    faq_test.add_argument("message")
    faq_test.add_argument("-c", "--config", help="config file (default: ./config.yaml if present)")
    mig = sub.add_parser("migrate", help="create or upgrade the archive database and exit")
    mig.add_argument("-c", "--config", help="config file (default: ./config.yaml if present)")
    evidence = sub.add_parser("evidence", help="export or verify the tamper-evident transcript log")
    ev_sub = evidence.add_subparsers(dest="evidence_command", required=True)
    export = ev_sub.add_parser("export", help="write a conversation's evidence bundle (JSON)")
    export.add_argument("conversation_id")
    export.add_argument("-o", "--output", required=True, help="the bundle file to write")
    export.add_argument("-c", "--config", help="config file (default: ./config.yaml if present)")
    verify = ev_sub.add_parser("verify", help="check a bundle, or without FILE the whole archive (exit 1: broken)")
    verify.add_argument("file", nargs="?", help="a bundle written by `kefu evidence export`")
    verify.add_argument("-c", "--config", help="config file (default: ./config.yaml if present)")
    args = parser.parse_args(argv)

    if args.command == "version":
        print(f"kefu {__version__}")
        return 0
    if args.command == "check-config":
        path = args.path or _default_config()
        if path is None:
            print("no config file given and no ./config.yaml here", file=sys.stderr)
            return 2
        try:
            settings = config_mod.load(path)
        except config_mod.ConfigError as exc:
            for p in exc.problems:
                print(p, file=sys.stderr)
            return 2
        print(f"{path}: OK ({len(settings.channels)} channels, {len(settings.agents)} agents)")
        return 0

    if args.command == "parked":
        from aggregator import parked as parked_cmd

        return parked_cmd.command(args.config or _default_config(), args.limit)
    path = args.config or _default_config()
    try:
        settings = config_mod.load(path)
    except config_mod.ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print("kefu: refusing to start with this config" if args.command == "run" else "kefu: bad config",
              file=sys.stderr)
        return 2
    if args.command == "audit":
        for entry in asyncio.run(_audit_entries(settings, args.agent, args.conversation, max(1, args.n))):
            print(_audit_line(entry))
        return 0
    if args.command == "faq":
        return _faq_test(settings, args.message)
    if args.command in ("migrate", "evidence"):
        from aggregator import archive_commands as archive  # database drivers only when needed

        if args.command == "migrate":
            return archive.run_migrate(settings)
        if args.evidence_command == "export":
            return archive.run_export(settings, args.conversation_id, args.output)
        return archive.run_verify(settings, args.file)
    logs.setup(args.log_level or settings.log.level, settings.log.format)
    from aggregator.app import Kefu, StartupError  # heavy imports only when running

    try:
        asyncio.run(Kefu(settings, path).run())
    except StartupError as exc:
        logging.getLogger("kefu").error(str(exc))
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        gc.freeze()  # everything dies with the process: no last collection to sit through on exit
    return 0


async def _audit_entries(settings: config_mod.Settings, agent: str | None, conversation: str | None,
                         n: int) -> list[dict[str, str]]:
    """Read the audit stream of the Redis in config: the running kefu's embedded one,
    or, when no kefu runs on this state_dir, the embedded one started for the look."""
    import redis.asyncio as aioredis

    from aggregator.state_lock import try_lock
    from storage.audit import AuditLog
    from storage.keys import Keys
    from storage.redis_server import EmbeddedRedis

    embedded, lock = None, None
    url = settings.redis.url
    if url is None:
        embedded = EmbeddedRedis(Path(settings.state_dir))
        lock = try_lock(Path(settings.state_dir))  # held: no kefu runs, keep one from starting meanwhile
        await embedded.start()  # reuses the running kefu's server
        url = embedded.url
    client = aioredis.from_url(url)
    try:
        return await AuditLog(client, Keys(settings.redis.prefix)).recent(n, agent=agent, conversation=conversation)
    finally:
        await client.aclose()
        if lock is not None:
            await embedded.stop()
            os.close(lock)


def _audit_line(e: dict[str, str]) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(e.get("ts") or 0)))
    outcome = e.get("outcome", "ok") + (f" ({e['reason']})" if e.get("reason") else "")
    where = " ".join(f"{k}={e[k]}" for k in ("conversation", "message", "detail") if e.get(k))
    return f"{when}  {e.get('agent', '?'):<12} {e.get('action', '?'):<9} via={e.get('via', '?'):<8} {outcome}" + (
        f"  {where}" if where else "")
