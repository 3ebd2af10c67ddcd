"""The address a request comes from, as the abuse limits count it.

It is the peer's address; X-Forwarded-For is believed only from the proxies
`web.trusted_proxies` lists, and then the client is the right-most address in
it that is not such a proxy (whatever a client writes to the left of that is
its own claim).  IPv6 clients are counted by their /64, the block one
subscriber gets, so a new address from it is not a new client.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in trusted)


def _address(text: str | None) -> Address | None:
    try:
        addr = ipaddress.ip_address((text or "").strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def client_ip(request: web.Request, trusted_proxies: Iterable[str]) -> str:
    """The client's address (an IPv6 client's /64), or "unknown" (e.g. a unix socket)."""
    networks = _networks(tuple(trusted_proxies))
    addr = _address(request.remote)
    if addr is None:
        return "unknown"
    hops = [h for value in request.headers.getall("X-Forwarded-For", ()) for h in value.split(",")]
    while hops and any(addr in net for net in networks):
        hop = _address(hops.pop())
        if hop is None:
            break
        addr = hop
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)
