"""/metrics: the counters of storage/metrics.py, the gauges read at each scrape,
and the count of HTTP requests.

Gauges read from Redis (queues, open conversations, agents online, stream
lengths) show the same shared state in every process; `kefu_connector_up` is
this process's connector, 0 while it is not running or — QQ — while its
OneBot connection is down and no other process holds one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from aiohttp import web
from prometheus_client import Gauge, generate_latest

from aggregator.config import Rate, Settings
from storage.metrics import (http_requests, inbound_duplicates, inbound_messages, logins_refused, parked,
                             outbound_delivered, outbound_failed, rate_limited, registry)

if TYPE_CHECKING:
    from aggregator.app import Kefu

connector_up = Gauge("kefu_connector_up", "1 while the connector runs and is connected to its platform",
                     ["channel", "kind"], registry=registry)
stream_length = Gauge("kefu_stream_length", "Entries in a stream", ["stream"], registry=registry)
queue_length = Gauge("kefu_queue_length", "Conversations waiting for an agent", registry=registry)
open_conversations = Gauge("kefu_open_conversations", "Open conversations", registry=registry)
agents_online = Gauge("kefu_agents_online", "Agents online", registry=registry)

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


@web.middleware
async def count_requests(request: web.Request, handler):
    """kefu_http_requests_total{route, method, status}: the route's pattern
    (/api/conversations/{id}), never the raw path; "unmatched" for no route."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _count(request, exc.status)
        raise
    except Exception:
        _count(request, 500)
        raise
    _count(request, response.status)  # (a request the client gave up on is not counted)
    return response


def _count(request: web.Request, status: int) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in _METHODS else "other"
    http_requests.labels(route, method, str(status)).inc()


def start_series(channels: Iterable[str], settings: Settings) -> None:
    """Every channel's and every limit's series, at 0 from the start: a dashboard then
    sees "nothing happened" rather than "no data"."""
    for name in channels:
        for counter in (inbound_messages, inbound_duplicates, outbound_delivered, outbound_failed):
            counter.labels(name)
    for section, limits in settings.limits:
        for key, value in limits:
            if isinstance(value, Rate) or key.startswith("attempts_per_"):
                rate_limited.labels(f"{section}.{key}")
    for reason in ("wrong_password", "locked_out"):
        logins_refused.labels(reason)
    for stage in ("router", "delivery", "archive"):
        parked.labels(stage)


def connected(health: dict) -> bool:
    """A connector's health says it is running and, where it has a connection to keep
    (QQ's OneBot), that this process or another holds it."""
    return health["state"] == "running" and (health.get("connected", True) or
                                             health.get("via_other_process", False))


async def refresh(kefu: "Kefu") -> None:
    """Set the gauges for a scrape."""
    for n, c in kefu.connectors.items():
        connector_up.labels(n, c.kind).set(1 if connected(c.health()) else 0)
    keys = kefu.core.keys
    streams = [keys.inbound, *(keys.outbound(n) for n in kefu.connectors)]
    try:
        pipe = kefu.redis.pipeline(transaction=False)
        for st in streams:
            pipe.xlen(st)
        for role in [*kefu.settings.roles, ""]:
            pipe.zcard(keys.queue(role))
        pipe.zcard(keys.open_conversations)
        pipe.scard(keys.agents_online)
        res = await pipe.execute()
    except Exception:
        return  # Redis away: /healthz says so; the counters are still worth serving
    for st, n in zip(streams, res):
        stream_length.labels(st).set(n)
    queue_length.set(sum(res[len(streams):-2]))
    open_conversations.set(res[-2])
    agents_online.set(res[-1])


def render() -> bytes:
    return generate_latest(registry)
