"""`kefu run | check-config | version` (also `python -m aggregator ...`)."""
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
    parked = sub.add_parser("parked", help="list the latest entries kefu could not process")
    parked.add_argument("-c", "--config", help="config file (default: ./config.yaml if present)")
    parked.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")
    check = sub.add_parser("check-config", help="validate a config file and exit (2 = problems)")
    check.add_argument("path", nargs="?", help="config file (default: ./config.yaml)")
    sub.add_parser("version", help="print the version")
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
        print("kefu: refusing to start with this config", file=sys.stderr)
        return 2
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
