"""`shop.kind: dujiaoka` — orders read straight from 独角数卡's MySQL/MariaDB, read-only.

dujiaoka has no order API, no resend and no webhook, so kefu reads its `orders`
table (SPEC "The shop"): `order_sn` is the order number, `email` the contact (there
are no customer ids: a search by customer id alone finds nothing), `actual_price` the
amount, status 1 → pending, 2 and 3 → paid, 4 → delivered, 5 and 6 → failed,
-1 → expired; soft-deleted orders (`deleted_at`) do not exist.  A QQ number as
contact also finds orders placed with <number>@qq.com, as buyers here often do.

Card keys are `info` split on newlines (blank lines dropped) — only for a completed
(4) order of automatic delivery (`type` 1): before that, and for manual orders, `info`
holds what the buyer typed or an error text, not keys.  dujiaoka cannot resend by
itself; kefu sends what it reads.

Schema variants, detected once from information_schema on the first call:
- dujiaoka (assimon): title, info and type on `orders`;
- the hiouttime fork: an order's goods in `order_items` (goods_name, quantity, type,
  info — the card keys there), title built from them.

dujiaoka keeps no payment or delivery time: for an automatic order that is complete,
payment and delivery were one step and `updated_at` is both; for status 2 (paid, waiting
for a person) `updated_at` is the payment.  Timestamps are written by Laravel in the
shop's time zone (`shop.timezone`); the session keeps the server's time zone so they
read back as written.

Every query has parameters only; the session is read-only (SET SESSION TRANSACTION
READ ONLY, where the server allows it) — still, give kefu a user with SELECT on
`orders` (and `order_items`) only."""
from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import asyncmy
from asyncmy.cursors import DictCursor
from asyncmy.errors import MySQLError, NotSupportedError, ProgrammingError
from pydantic import ValidationError

from storage.shop.adapter import ShopAdapter, ShopUnavailable
from storage.shop.config import ShopConfig
from storage.shop.order import ORDER_NO_MAX, TITLE_MAX, Order, Profile

log = logging.getLogger("kefu.shop")

STATUSES = {1: "pending", 2: "paid", 3: "paid", 4: "delivered", 5: "failed", 6: "failed", -1: "expired"}
_COMPLETED, _PAID_WAITING, _AUTOMATIC = 4, 2, 1
_PAID_CODES = "2, 3, 4"
READ_ONLY = "SET SESSION TRANSACTION READ ONLY"
_QQ_NUMBER = re.compile(r"[1-9]\d{4,11}")
_CLASSIC = {"orders": {"id", "order_sn", "title", "email", "actual_price", "status", "type", "info",
                       "created_at", "updated_at"}}
_ITEMS = {"orders": {"id", "order_sn", "email", "actual_price", "status", "created_at", "updated_at"},
          "order_items": {"order_id", "goods_name", "quantity", "type", "info"}}


def _connect_args(dsn: str) -> dict[str, Any]:
    """asyncmy's connection arguments from mysql://user:password@host:port/database[?unix_socket=...]."""
    parts = urlsplit(dsn)
    args: dict[str, Any] = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
                            "user": unquote(parts.username or ""), "password": unquote(parts.password or ""),
                            "database": unquote(parts.path.strip("/"))}
    if socket := parse_qs(parts.query).get("unix_socket"):
        args["unix_socket"] = socket[0]
    return args


class _Schema:
    """The queries for the variant found in the database."""

    def __init__(self, columns: dict[str, set[str]]):
        def has(wanted: dict[str, set[str]]) -> bool:
            return all(cols <= columns.get(table, set()) for table, cols in wanted.items())
        if "orders" not in columns:
            raise ShopUnavailable("no `orders` table in the database of shop.dsn (is it dujiaoka's?)")
        if has(_CLASSIC):
            self.items = False
        elif has(_ITEMS):
            self.items = True
        else:
            missing = sorted(_CLASSIC["orders"] - columns["orders"])
            raise ShopUnavailable(f"`orders` lacks {', '.join(missing)}: not a dujiaoka schema kefu knows")
        live = " AND o.deleted_at IS NULL" if "deleted_at" in columns["orders"] else ""
        fields = "o.id, o.order_sn, o.email, o.actual_price, o.status, o.created_at, o.updated_at"
        if not self.items:
            fields += ", o.title, o.type"
        self.lookup = f"SELECT {fields} FROM orders o WHERE o.order_sn = %s{live}"
        self.search = (f"SELECT {fields} FROM orders o WHERE o.email IN %s{live} "
                       "ORDER BY o.created_at DESC, o.id DESC LIMIT %s")
        self.goods = ("SELECT i.order_id, i.goods_name, i.quantity, i.type FROM order_items i "
                      "WHERE i.order_id IN %s ORDER BY i.id")
        keys_from = "order_items i JOIN orders o ON i.order_id = o.id" if self.items else "orders o"
        keys_of = "i" if self.items else "o"
        self.card_keys = (f"SELECT o.status, {keys_of}.type, {keys_of}.info FROM {keys_from} "
                          f"WHERE o.order_sn = %s{live}" + (" ORDER BY i.id" if self.items else ""))
        self.profile = ("SELECT COUNT(*) AS n, COALESCE(SUM(o.actual_price), 0) AS spent, "
                        f"MAX(o.created_at) AS last FROM orders o WHERE o.email IN %s "
                        f"AND o.status IN ({_PAID_CODES}){live}")


class DujiaokaShop(ShopAdapter):
    errors = (MySQLError, OSError)

    def __init__(self, config: ShopConfig, **kw: Any):
        if config.dsn is None:
            raise ValueError("kind dujiaoka needs dsn")
        super().__init__(config, **kw)
        self._connect = _connect_args(config.dsn.get_secret_value())
        self._zone = ZoneInfo(config.timezone)
        self._pool: Any = None
        self._schema: _Schema | None = None
        self._opening = asyncio.Lock()

    # -- the four calls ----------------------------------------------------------
    async def _fetch_order(self, order_no: str) -> Order | None:
        schema = await self._ready()
        rows = await self._query(schema.lookup, (order_no,))
        found = await self._orders(schema, rows)
        return found[0] if found else None

    async def _fetch_orders(self, customer_id: str | None, contact: str | None, limit: int) -> list[Order]:
        emails = _emails(contact)
        if not emails:  # dujiaoka knows buyers only by e-mail
            return []
        schema = await self._ready()
        return await self._orders(schema, await self._query(schema.search, (emails, limit)))

    async def _fetch_card_keys(self, order_no: str, request_id: str) -> list[str]:
        schema = await self._ready()
        keys: list[str] = []
        for row in await self._query(schema.card_keys, (order_no,)):
            if row["status"] == _COMPLETED and row["type"] == _AUTOMATIC:
                keys += [line.strip() for line in (row["info"] or "").splitlines() if line.strip()]
        return keys

    async def _fetch_profile(self, customer_id: str | None, contact: str | None) -> Profile:
        emails = _emails(contact)
        if not emails:
            return Profile(0, 0.0, self.config.currency, None)
        schema = await self._ready()
        row = (await self._query(schema.profile, (emails,)))[0]
        return Profile(order_count=int(row["n"]), total_spent=round(float(row["spent"]), 2),
                       currency=self.config.currency,
                       last_order_at=self._aware(row["last"]) if row["last"] else None)

    async def _close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, MySQLError) and len(exc.args) >= 2:
            return f"MySQL error {exc.args[0]}: {exc.args[1]}"
        return super()._describe(exc)

    # -- rows to orders ----------------------------------------------------------
    async def _orders(self, schema: _Schema, rows: Sequence[dict[str, Any]]) -> list[Order]:
        goods: dict[int, list[dict[str, Any]]] = {}
        if schema.items and rows:
            for item in await self._query(schema.goods, (tuple(r["id"] for r in rows),)):
                goods.setdefault(item["order_id"], []).append(item)
        out = []
        for row in rows:
            if schema.items:
                items = goods.get(row["id"], [])
                title = ", ".join(f"{i['goods_name']} x {i['quantity']}" for i in items)
                automatic = bool(items) and all(i["type"] == _AUTOMATIC for i in items)
            else:
                title, automatic = row["title"], row["type"] == _AUTOMATIC
            out.append(self._order(row, title, automatic))
        return out

    def _order(self, row: dict[str, Any], title: str, automatic: bool) -> Order:
        code = int(row["status"])
        if code not in STATUSES:
            raise ShopUnavailable(f"order {row['order_sn']} has status {code}, not one of dujiaoka's")
        updated = self._aware(row["updated_at"]) if row["updated_at"] else None
        created = self._aware(row["created_at"]) if row["created_at"] else updated
        paid_at = delivered_at = None
        if code == _COMPLETED:
            delivered_at = updated
            paid_at = updated if automatic else None
        elif code == _PAID_WAITING:
            paid_at = updated
        try:
            return Order(order_no=row["order_sn"], status=STATUSES[code], title=(title or "")[:TITLE_MAX],
                         amount=float(row["actual_price"]), currency=self.config.currency,
                         created_at=created or datetime.fromtimestamp(0, UTC), contact=row["email"] or None,
                         paid_at=paid_at, delivered_at=delivered_at)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            raise ShopUnavailable(f"order {row['order_sn'][:ORDER_NO_MAX]!r} does not fit: "
                                  f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    def _aware(self, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=self._zone)

    # -- the database ------------------------------------------------------------
    async def _ready(self) -> _Schema:
        """The pool and the schema variant, made on first use (and again after a failure)."""
        if self._schema is None:
            async with self._opening:
                if self._schema is None:
                    await self._open()
        assert self._schema is not None
        return self._schema

    async def _open(self) -> None:
        base = {**self._connect, "minsize": 0, "maxsize": self.config.pool_size, "autocommit": True,
                "charset": "utf8mb4", "connect_timeout": math.ceil(self.config.timeout), "pool_recycle": 600}
        pool = await asyncmy.create_pool(init_command=READ_ONLY, **base)
        try:
            columns = await self._columns(pool)
        except (ProgrammingError, NotSupportedError) as exc:
            # A server without read-only sessions: stay with SELECTs (and the user's grants).
            log.warning("shop database refuses read-only sessions",
                        extra={"shop": "dujiaoka", "reason": self._describe(exc)})
            pool.terminate()
            pool = await asyncmy.create_pool(**base)
            columns = await self._columns(pool)
        except BaseException:
            pool.terminate()
            raise
        try:
            self._schema = _Schema(columns)
        except ShopUnavailable:
            pool.close()
            await pool.wait_closed()
            raise
        self._pool = pool
        log.info("shop database ready", extra={"shop": "dujiaoka",
                                               "variant": "order_items" if self._schema.items else "orders"})

    @staticmethod
    async def _columns(pool: Any) -> dict[str, set[str]]:
        rows = await _select(pool, "SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.COLUMNS "
                                   "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('orders', 'order_items')", ())
        columns: dict[str, set[str]] = {}
        for row in rows:
            columns.setdefault(row["t"], set()).add(row["c"])
        return columns

    async def _query(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        return await _select(self._pool, sql, args)


async def _select(pool: Any, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    conn = await pool.acquire()
    try:
        async with conn.cursor(DictCursor) as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())
    except BaseException:
        conn.close()  # interrupted mid-answer (timeout, error): never handed out again
        raise
    finally:
        pool.release(conn)


def _emails(contact: str | None) -> tuple[str, ...]:
    """The addresses a contact may have ordered with (a tuple: the driver writes it as a SQL list)."""
    if not contact:
        return ()
    return (contact, f"{contact}@qq.com") if _QQ_NUMBER.fullmatch(contact) else (contact,)
