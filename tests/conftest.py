"""Fixtures: real kefu daemons on real Redis servers (see tests/kefu_harness.py).

`redis_url` runs a test against the embedded binary (Redis 6.2) and, when
KEFU_TEST_REDIS_URL is set (CI sets the machine's Redis 7), against that too.
"""
from __future__ import annotations

import os

import aiohttp
import pytest

from storage.connection import connect
from tests.kefu_harness import Daemon, RedisServer, base_config

EXTERNAL = os.environ.get("KEFU_TEST_REDIS_URL")


@pytest.fixture(params=["embedded"] + (["external"] if EXTERNAL else []))
def redis_url(request, tmp_path):
    """None = kefu's own embedded Redis; else a URL of a Redis shared by the test."""
    if request.param == "external":
        yield EXTERNAL
    else:
        yield None


@pytest.fixture(params=["embedded-binary"] + (["external"] if EXTERNAL else []))
def shared_redis(request, tmp_path):
    """A Redis several kefu processes can share: the embedded binary run by the test, or CI's Redis 7."""
    if request.param == "external":
        yield EXTERNAL
        return
    server = RedisServer(tmp_path / "shared-redis").start()
    yield server.url
    server.stop()


@pytest.fixture
async def redis_client(tmp_path):
    """A redis-py client (kefu's own pools) on a throwaway redis-server, for parts run in-process."""
    server = RedisServer(tmp_path / "redis").start()
    client, blocking = connect(server.url, block_ms=200)
    yield client
    await client.aclose()
    await blocking.aclose()
    server.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def make_daemon(tmp_path):
    """make_daemon(name, **config overrides) -> Daemon (not started); all stopped at the end."""
    daemons: list[Daemon] = []

    def make(name: str = "kefu", redis_url: str | None = None, **overrides) -> Daemon:
        d = Daemon(tmp_path / name, base_config(tmp_path / name / "data", redis_url, **overrides))
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        d.kill(15)
        if d.proc and d.proc.poll() is None:
            d.kill()
