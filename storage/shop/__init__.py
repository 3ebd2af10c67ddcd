"""The shop: where kefu reads orders, card keys and what a customer has bought.

The shop is a data source beside Redis, so this package sits in storage/ and imports
nothing above it; the router, the agent API, the bot and the shop-events endpoint use
it.  Everything here is async and never blocks the event loop.

Use::

    from storage.shop import create_shop, ShopUnavailable, find_order_numbers, tier

    shop = create_shop(settings.shop)          # no I/O yet; one per process
    try:
        order = await shop.order("XK3M9Q2P7L8N4R6T")        # Order | None
        recent = await shop.orders(customer_id="u42", contact="a@b.example", limit=5)
        profile = await shop.profile(customer_id="u42")      # Profile, for the tier
        keys = await shop.card_keys(order.order_no, request_id)   # never cached
    except ShopUnavailable as exc:
        ...  # exc.reason: show "shop unreachable", never an error to the customer
    await shop.close()                          # on stop (and before replacing it on reload)

- `Order` (order.py): order_no, status (pending|paid|delivered|failed|expired|refunded),
  title, amount, currency, created_at (aware), contact?, customer_id?, paid_at?,
  delivered_at?; `order.public()` is SPEC's JSON shape.  `Profile`: order_count,
  total_spent, currency, last_order_at — paid and delivered orders only.
- `ShopAdapter` (adapter.py): `order`, `orders` (newest first; customer_id or contact,
  either matches when both are given), `card_keys`, `profile`, `close`.  Each call
  is bounded by `shop.timeout` (3 s) and fails only with `ShopUnavailable(reason)`:
  timeouts, connection errors, non-2xx, refusals, answers off the contract.
  Lookups, searches and profiles are cached for `shop.cache_ttl` (60 s; orders found
  by a search also answer the next lookup of their number); identical concurrent calls
  share one request; failures are not cached.
- Kinds: `http` (http_shop.py, SPEC's signed contract; a profile comes from
  /orders/search with `shop.profile_limit` orders, since the contract has no profile
  call) and `dujiaoka` (dujiaoka.py, read-only MySQL of 独角数卡 and the hiouttime fork).
- `ShopConfig` (config.py): the `shop:` section.
- `find_order_numbers(text, order_pattern)` (order_numbers.py): SPEC "Order numbers".
- `tier(profile, tiers)` / `TiersConfig` (tiers.py): new / regular / vip.
- `sign(secret, body)` / `verify(secret, body, headers)` (signing.py): the contract's
  signature; `verify` raises `SignatureError` (→ 401) for POST /api/shop/events.
docs/shop.md is the contract for shop operators, with reference implementations.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from storage.shop.adapter import ShopAdapter, ShopUnavailable
from storage.shop.config import ShopConfig
from storage.shop.dujiaoka import DujiaokaShop
from storage.shop.http_shop import HttpShop
from storage.shop.order import Order, Profile
from storage.shop.order_numbers import find_order_numbers
from storage.shop.signing import SignatureError, sign, verify
from storage.shop.tiers import Tier, TiersConfig, tier

__all__ = ["Order", "Profile", "ShopAdapter", "ShopConfig", "ShopUnavailable", "SignatureError", "Tier",
           "TiersConfig", "create_shop", "find_order_numbers", "sign", "tier", "verify"]


def create_shop(config: ShopConfig, *, clock: Callable[[], float] = time.monotonic) -> ShopAdapter:
    """The adapter of `config.kind`.  It connects on its first call, so a shop that is
    down when kefu starts only makes calls fail until it is back."""
    if config.kind == "http":
        return HttpShop(config, clock=clock)
    return DujiaokaShop(config, clock=clock)
