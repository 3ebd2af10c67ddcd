"""`shop.kind: http` — the signed JSON contract of SPEC "The shop", exactly.

Every call is a POST with a JSON body and X-Kefu-Timestamp / X-Kefu-Signature
(storage/shop/signing.py).  Answers are validated; a non-2xx status, a body that is
not JSON or not the contract's shape, a lookup answering another order: ShopUnavailable
naming what was wrong.  Redirects are not followed (a signed POST must reach the url
configured).  The contract has no profile call: a profile is computed from
/orders/search with `shop.profile_limit` orders."""
from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storage.shop.adapter import ShopAdapter, ShopUnavailable
from storage.shop.config import ShopConfig
from storage.shop.order import Order, Profile
from storage.shop.signing import sign

MAX_ANSWER_BYTES = 1 << 20
_Answer = TypeVar("_Answer", bound=BaseModel)


class _Contract(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LookupAnswer(_Contract):
    order: Order | None  # the key is required: {"order": null} for an unknown number


class SearchAnswer(_Contract):
    orders: list[Order]


class CardKeysAnswer(_Contract):
    card_keys: list[Annotated[str, Field(strict=True)]]


class HttpShop(ShopAdapter):
    errors = (aiohttp.ClientError, OSError)

    def __init__(self, config: ShopConfig, **kw: Any):
        if not config.url or config.secret is None:
            raise ValueError("kind http needs url and secret")
        super().__init__(config, **kw)
        self._url = config.url
        self._secret = config.secret.get_secret_value()
        self._session: aiohttp.ClientSession | None = None

    async def _fetch_order(self, order_no: str) -> Order | None:
        found = (await self._post("/orders/lookup", {"order_no": order_no}, LookupAnswer)).order
        if found is not None and found.order_no.casefold() != order_no.casefold():
            raise ShopUnavailable(f"/orders/lookup answered order {found.order_no!r} for {order_no!r}")
        return found

    async def _fetch_orders(self, customer_id: str | None, contact: str | None, limit: int) -> list[Order]:
        query: dict[str, Any] = {"customer_id": customer_id, "contact": contact}
        body = {k: v for k, v in query.items() if v is not None} | {"limit": limit}
        return (await self._post("/orders/search", body, SearchAnswer)).orders

    async def _fetch_card_keys(self, order_no: str, request_id: str) -> list[str]:
        body = {"order_no": order_no, "request_id": request_id}
        return (await self._post("/orders/card_keys", body, CardKeysAnswer)).card_keys

    async def _fetch_profile(self, customer_id: str | None, contact: str | None) -> Profile:
        recent = await self._fetch_orders(customer_id, contact, self.config.profile_limit)
        return Profile.of(recent, self.config.currency)

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, aiohttp.ClientConnectorError):
            return f"cannot connect to {exc.host}:{exc.port} ({exc.strerror or type(exc.os_error).__name__})"
        return f"{type(exc).__name__} talking to the shop"  # aiohttp's texts may repeat the url

    async def _post(self, path: str, payload: dict[str, Any], answer: type[_Answer]) -> _Answer:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **sign(self._secret, body)}
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(self._url + path, data=body, headers=headers,
                                      allow_redirects=False) as resp:
            if resp.status == 401:
                raise ShopUnavailable(f"{path}: the shop refused kefu's signature (HTTP 401); "
                                      "check shop.secret on both sides and both clocks")
            if not 200 <= resp.status < 300:
                raise ShopUnavailable(f"{path}: the shop answered HTTP {resp.status}")
            raw = bytearray()
            async for chunk in resp.content.iter_chunked(64 << 10):
                raw += chunk
                if len(raw) > MAX_ANSWER_BYTES:
                    raise ShopUnavailable(f"{path}: answer larger than {MAX_ANSWER_BYTES >> 20} MiB")
        try:
            return answer.model_validate_json(bytes(raw))
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ShopUnavailable(f"{path}: answer off the contract: {where + ': ' if where else ''}"
                                  f"{first['msg']}") from None
