"""`kefu run | check-config | migrate | evidence | version` (also `python -m aggregator ...`)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from aggregator import __version__
from aggregator import config as config_mod
from aggregator import logs


def _default_config() -> str | None:
    return "config.yaml" if os.path.exists("config.yaml") else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kefu", description="Omnichannel customer service for digital-goods shops")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("-c", "--config", help="config file (default: ./config.yaml if present, else built-in defaults)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="overrides log.level")
    check = sub.add_parser("check-config", help="validate a config file and exit (2 = problems)")
    check.add_argument("path", nargs="?", help="config file (default: ./config.yaml)")
    sub.add_parser("version", help="print the version")
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

    path = args.config or _default_config()
    try:
        settings = config_mod.load(path)
    except config_mod.ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print("kefu: refusing to start with this config", file=sys.stderr)
        return 2
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
    return 0
