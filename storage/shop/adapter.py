"""What every shop adapter does the same way: timeouts, one error, a short cache, shared lookups.

A kind (storage/shop/http_shop.py, dujiaoka.py) implements the four `_fetch_*` methods
and names the library errors that mean "the shop cannot answer"; callers see only
Order / Profile values or ShopUnavailable."""
from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from storage.shop.config import ShopConfig
from storage.shop.order import ORDER_NO_MAX, Order, Profile

log = logging.getLogger("kefu.shop")

MAX_LIMIT = 1000  # orders one search may ask for
_WARN_EVERY = 60.0  # seconds between two warnings of the same reason
_MAX_CACHED = 10_000  # entries; the oldest go first (all share one TTL, so oldest = first to expire)


class ShopUnavailable(Exception):
    """The shop did not answer usefully: timeout, connection error, refusal, an answer off
    the contract.  `reason` is one line for operators and for "shop unreachable" in the
    console; it never holds a secret or a card key."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ShopAdapter(ABC):
    """Orders, card keys and profiles from one shop.  Safe to share between tasks."""

    # Exceptions of the kind's library that mean the shop cannot answer (-> ShopUnavailable).
    errors: ClassVar[tuple[type[BaseException], ...]] = (OSError,)

    def __init__(self, config: ShopConfig, *, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self._clock = clock  # monotonic seconds; tests move it to expire the cache
        # (call, *arguments) -> (expires at, answer) / the request under way
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._inflight: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        self._closed = False
        self._last_warning = ("", float("-inf"))  # a shop that stays down is logged once a minute

    # -- the interface ---------------------------------------------------------
    async def order(self, order_no: str) -> Order | None:
        """The order with this number, None if the shop has none."""
        order_no = order_no.strip()
        if not order_no or len(order_no) > ORDER_NO_MAX:
            return None
        return await self._call(("order", order_no), lambda: self._fetch_order(order_no))

    async def orders(self, customer_id: str | None = None, contact: str | None = None,
                     limit: int = 5) -> list[Order]:
        """A customer's most recent orders, newest first: those of `customer_id` or of
        `contact` (either matches when both are given)."""
        customer_id, contact = _clean(customer_id), _clean(contact)
        if not customer_id and not contact:
            raise ValueError("orders() needs customer_id or contact")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        found = await self._call(("orders", customer_id, contact, limit),
                                 lambda: self._searched(customer_id, contact, limit))
        return list(found)

    async def card_keys(self, order_no: str, request_id: str) -> list[str]:
        """The order's card keys, fetched afresh (never cached).  The same `request_id`
        lets the shop recognise a repeat; identical concurrent calls share one request."""
        keys = await self._call(("card_keys", order_no, request_id),
                                lambda: self._fetch_card_keys(order_no, request_id), cache=False)
        return list(keys)

    async def profile(self, customer_id: str | None = None, contact: str | None = None) -> Profile:
        """Paid orders, spend and last paid order of a customer (for the tier)."""
        customer_id, contact = _clean(customer_id), _clean(contact)
        if not customer_id and not contact:
            return Profile(0, 0.0, self.config.currency, None)
        return await self._call(("profile", customer_id, contact),
                                lambda: self._fetch_profile(customer_id, contact))

    async def close(self) -> None:
        """Stop: pending calls end with ShopUnavailable, connections are closed."""
        self._closed = True
        for pending in list(self._inflight.values()):
            pending.cancel()
        self._cache.clear()
        await self._close()

    # -- what a kind implements ------------------------------------------------
    @abstractmethod
    async def _fetch_order(self, order_no: str) -> Order | None: ...

    @abstractmethod
    async def _fetch_orders(self, customer_id: str | None, contact: str | None, limit: int) -> list[Order]: ...

    @abstractmethod
    async def _fetch_card_keys(self, order_no: str, request_id: str) -> list[str]: ...

    @abstractmethod
    async def _fetch_profile(self, customer_id: str | None, contact: str | None) -> Profile: ...

    @abstractmethod
    async def _close(self) -> None: ...

    def _describe(self, exc: BaseException) -> str:
        """One line for a library error, without addresses that could hold credentials."""
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    # -- machinery -------------------------------------------------------------
    async def _searched(self, customer_id: str | None, contact: str | None, limit: int) -> tuple[Order, ...]:
        found = sorted(await self._fetch_orders(customer_id, contact, limit),
                       key=lambda o: o.created_at, reverse=True)[:limit]
        for o in found:  # a listed order is looked up next (it is on the agent's screen)
            self._remember(("order", o.order_no), o)
        return tuple(found)

    async def _call(self, key: tuple[Any, ...], fetch: Callable[[], Awaitable[Any]], cache: bool = True) -> Any:
        if self._closed:
            raise ShopUnavailable("the shop adapter is closed")
        if cache and (hit := self._cache.get(key)) is not None and hit[0] > self._clock():
            return hit[1]
        shared = self._inflight.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._guarded(str(key[0]), fetch))
            self._inflight[key] = shared
            shared.add_done_callback(lambda done: self._settle(key, done, cache))
        try:
            # shield: a caller that gives up does not cancel the others' answer
            return await asyncio.shield(shared)
        except asyncio.CancelledError:
            if shared.cancelled() and self._closed:
                raise ShopUnavailable("the shop adapter is closed") from None
            raise

    async def _guarded(self, call: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        try:
            async with asyncio.timeout(self.config.timeout):
                return await fetch()
        except TimeoutError:
            reason = f"no answer within {self.config.timeout:g} s"
        except ShopUnavailable as exc:
            reason = exc.reason
        except self.errors as exc:
            reason = self._describe(exc)
        now = self._clock()
        if reason != self._last_warning[0] or now - self._last_warning[1] >= _WARN_EVERY:
            log.warning("shop unavailable", extra={"shop": self.config.kind, "call": call, "reason": reason})
            self._last_warning = (reason, now)
        raise ShopUnavailable(reason)

    def _settle(self, key: tuple[Any, ...], done: asyncio.Future[Any], cache: bool) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if done.cancelled() or done.exception() is not None:  # failures are not kept: next call retries
            return
        if cache:
            self._remember(key, done.result())

    def _remember(self, key: tuple[Any, ...], value: Any) -> None:
        if self.config.cache_ttl <= 0 or self._closed:
            return
        now = self._clock()
        self._cache.pop(key, None)
        self._cache[key] = (now + self.config.cache_ttl, value)
        while len(self._cache) > _MAX_CACHED or next(iter(self._cache.values()))[0] <= now:
            del self._cache[next(iter(self._cache))]


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None
