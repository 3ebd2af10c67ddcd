"""The `shop:` section of config.yaml (aggregator/config.py composes it as `shop`)."""
from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator


class ShopConfig(BaseModel):
    """Where kefu reads orders, and how.

    kind http      the signed HTTP JSON contract of SPEC "The shop" at `url`, signed with `secret`.
    kind dujiaoka  read-only MySQL/MariaDB of 独角数卡 (and the hiouttime fork) at `dsn`.
    """
    model_config = ConfigDict(extra="forbid")

    kind: Literal["http", "dujiaoka"]
    # http: the base of the contract; kefu POSTs to {url}/orders/lookup, /orders/search,
    # /orders/card_keys.
    url: str | None = Field(None, validate_default=True)
    # Signs kefu's requests to the shop (kind http) and checks the shop's events
    # (POST /api/shop/events, any kind).  From the environment: "${SHOP_SECRET}".
    secret: SecretStr | None = Field(None, validate_default=True)
    # dujiaoka: mysql://user:password@host:3306/database (mariadb:// too;
    # ?unix_socket=/run/mysqld/mysqld.sock for a socket).  Give kefu a user with SELECT
    # on `orders` (and `order_items` for the hiouttime fork) and nothing else.
    dsn: SecretStr | None = Field(None, validate_default=True)
    # A regular expression: a token matching it anywhere in a message is an order
    # number (besides tokens after 订单/单号/order).  None: dujiaoka's 16 upper-case
    # letters and digits, or 10–24 digits with an optional letter prefix.
    order_pattern: str | None = None
    timeout: float = Field(3.0, gt=0, le=60)  # seconds any one call to the shop may take
    cache_ttl: float = Field(60.0, ge=0)  # seconds lookups, searches and profiles are reused (0 = never)
    # http: how many recent orders /orders/search is asked for to compute a customer's
    # profile (order count, spend) — the contract has no profile call.
    profile_limit: int = Field(100, ge=1, le=1000)
    # The currency of prices when the shop names none (dujiaoka stores none), and
    # dujiaoka's time zone, in which its timestamps are written (Laravel's
    # app.timezone; dujiaoka ships 'PRC').
    currency: str = Field("CNY", min_length=1, max_length=16)
    timezone: str = "Asia/Shanghai"
    pool_size: int = Field(4, ge=1, le=50)  # dujiaoka: connections kept to the database

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            if info.data.get("kind") == "http":
                raise ValueError("kind http needs url: the base address of the shop's contract, "
                                 "e.g. https://shop.example.com/kefu")
            return v
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", v):
            raise ValueError("must be an http:// or https:// address without query, "
                             "e.g. https://shop.example.com/kefu")
        return v.rstrip("/")

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("kind") == "http" and (v is None or not v.get_secret_value()):
            raise ValueError("kind http needs secret: the key both sides sign with "
                             "(from the environment, \"${SHOP_SECRET}\")")
        return v

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if v is None:
            if info.data.get("kind") == "dujiaoka":
                raise ValueError("kind dujiaoka needs dsn: mysql://user:password@host:3306/database")
            return v
        parts = urlsplit(v.get_secret_value())
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise ValueError("the port must be a number, e.g. mysql://user:password@host:3306/database") from None
        if parts.scheme not in ("mysql", "mariadb") or not parts.path.strip("/"):
            # The value may hold a password: never repeat it in the message.
            raise ValueError("must look like mysql://user:password@host:3306/database")
        return v

    @field_validator("order_pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (e.g. Asia/Shanghai)") from None
        return v
