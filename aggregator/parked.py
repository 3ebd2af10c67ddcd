"""`kefu parked`: the latest entries kefu could not process, for an operator.

Reads the shared ``parked`` stream (storage/bus.py) of the Redis in config.yaml —
the embedded one through its socket while `kefu run` holds it — and prints when,
which stage and stream, why, and which event; never the customer's text.
"""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from aggregator import config as config_mod
from aggregator.config import Settings
from storage.bus import Bus
from storage.keys import Keys
from storage.redis_server import EmbeddedRedis


class NoRedis(Exception):
    """The Redis of this config cannot be reached (message for the operator)."""


async def latest(settings: Settings, limit: int) -> list[dict[str, Any]]:
    url = settings.redis.url
    if url is None:
        embedded = EmbeddedRedis(Path(settings.state_dir))
        if not embedded.socket.exists():
            raise NoRedis(f"no embedded Redis at {embedded.socket}: is `kefu run` running with this config?")
        url = embedded.url
    client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        bus = Bus(client, client, Keys(settings.redis.prefix), settings.bus.dedupe_ttl, exclusive=False)
        return await bus.parked(limit)
    except (OSError, aioredis.RedisError) as exc:
        raise NoRedis(f"cannot read Redis at {url}: {exc}") from None
    finally:
        await client.aclose()


def render(items: list[dict[str, Any]]) -> str:
    if not items:
        return "nothing parked"
    lines = []
    for p in items:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(p["at"]))
        ev = p["event"]
        what = (f"{ev['type']} {ev['id']} on {ev['channel']} ({ev['text_length']} characters of text)"
                if ev else "undecodable entry")
        lines.append(f"{when}  {p['stage'] or '-':8}  {p['stream']} {p['entry']}  {what}\n    {p['reason']}")
    return "\n".join(lines)


def command(path: str | None, limit: int) -> int:
    """`kefu parked`: 0 listed, 1 Redis unreachable, 2 bad config."""
    try:
        settings = config_mod.load(path)
        print(render(asyncio.run(latest(settings, max(1, limit)))))
    except config_mod.ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 2
    except NoRedis as exc:
        print(f"kefu parked: {exc}", file=sys.stderr)
        return 1
    return 0
