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
    for d in daemons:
        assert_log_keeps_secrets(d)


# Numbers tests send through kefu: agents and operators only ever see them masked.
CLEAR_NUMBERS = ("6222021234567890128", "13812345678", "11010519491231002X")
_SECRET_KEYS = {"password", "secret", "token", "access_token", "webhook_secret", "identity_secret", "aes_key"}


def _secrets(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k in _SECRET_KEYS and isinstance(v, str) and len(v) >= 6] + \
               [x for v in node.values() for x in _secrets(v)]
    if isinstance(node, list):
        return [x for v in node for x in _secrets(v)]
    return []


def assert_log_keeps_secrets(d: Daemon) -> None:
    """Every daemon a test ran: its log holds no password, channel secret or token from its
    config, and no card, mobile or ID number in clear (SPEC: masked wherever an operator reads)."""
    if not d.log_path.exists():
        return
    text = d.log_path.read_text(errors="replace")
    leaked = [s for s in (*_secrets(d.config), *CLEAR_NUMBERS) if s in text]
    assert not leaked, f"{d.log_path} contains secrets or clear numbers: {[x[:4] + '…' for x in leaked]}"
