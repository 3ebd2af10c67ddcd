"""Redis clients: one pool for commands, one for blocking stream reads.

redis-py's default socket timeout would cut a blocking XREADGROUP short
(redis-py issue 2807), so blocking readers get their own pool whose socket
timeout is well above the block time.  Both retry transient connection errors
with exponential backoff, which is how kefu rides out a Redis restart, and
both are blocking pools: a burst of requests waits for a free connection
instead of failing with "too many connections".
"""
from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

POOL_SIZE = 64


def connect(url: str, *, block_ms: int) -> tuple[aioredis.Redis, aioredis.Redis]:
    def client(socket_timeout: float) -> aioredis.Redis:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=20, socket_timeout=socket_timeout,
            socket_connect_timeout=2, health_check_interval=30,
            # A blip (failover, restart) is retried here; an outage surfaces after
            # about 3 s so a web request can answer 503 and the caller retry.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[ConnectionError, TimeoutError, ConnectionRefusedError, OSError],
        )
        return aioredis.Redis(connection_pool=pool)

    return client(10.0), client(block_ms / 1000 + 10.0)
