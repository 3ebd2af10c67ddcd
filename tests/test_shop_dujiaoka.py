"""`shop.kind: dujiaoka` against the machine's real MariaDB/MySQL (127.0.0.1:3306, root, no password).

Each run creates throwaway databases with dujiaoka's `orders` table — the same columns
and types as dujiaoka's install.sql (assimon/dujiaoka), and the hiouttime fork's
`orders` + `order_items` — and drops them afterwards.  Skipped, saying so, only when
no server answers."""
from __future__ import annotations

import asyncio
import secrets

import asyncmy
import pytest
from asyncmy.errors import MySQLError

from storage.shop import ShopConfig, ShopUnavailable, create_shop

SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

# dujiaoka (assimon/dujiaoka, database/sql/install.sql): title, type and info on the order.
CLASSIC_DDL = ["""
CREATE TABLE orders (
  id bigint NOT NULL AUTO_INCREMENT,
  order_sn varchar(150) CHARACTER SET utf8mb3 COLLATE utf8mb3_unicode_ci NOT NULL,
  goods_id int NOT NULL,
  coupon_id int DEFAULT '0',
  title varchar(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
  type tinyint(1) NOT NULL DEFAULT '1',
  goods_price decimal(10,2) NOT NULL DEFAULT '0.00',
  buy_amount int NOT NULL DEFAULT '1',
  coupon_discount_price decimal(10,2) NOT NULL DEFAULT '0.00',
  wholesale_discount_price decimal(10,2) NOT NULL DEFAULT '0.00',
  total_price decimal(10,2) NOT NULL DEFAULT '0.00',
  actual_price decimal(10,2) NOT NULL DEFAULT '0.00',
  search_pwd varchar(200) CHARACTER SET utf8mb3 COLLATE utf8mb3_unicode_ci DEFAULT '',
  email varchar(200) CHARACTER SET utf8mb3 COLLATE utf8mb3_unicode_ci NOT NULL,
  info text CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
  pay_id int DEFAULT NULL,
  buy_ip varchar(50) CHARACTER SET utf8mb3 COLLATE utf8mb3_unicode_ci NOT NULL,
  trade_no varchar(200) CHARACTER SET utf8mb3 COLLATE utf8mb3_unicode_ci DEFAULT '',
  status tinyint(1) NOT NULL DEFAULT '1',
  coupon_ret_back tinyint(1) NOT NULL DEFAULT '0',
  created_at timestamp NULL DEFAULT NULL,
  updated_at timestamp NULL DEFAULT NULL,
  deleted_at timestamp NULL DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY idx_order_sn (order_sn),
  KEY idx_goods_id (goods_id),
  KEY idex_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci
"""]

# The hiouttime/dujiaoka fork: an order's goods, and their card keys, in order_items.
ITEMS_DDL = ["""
CREATE TABLE orders (
  id bigint unsigned NOT NULL AUTO_INCREMENT,
  order_sn varchar(150) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL UNIQUE,
  user_id bigint unsigned DEFAULT NULL,
  email varchar(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
  total_price decimal(10,2) NOT NULL DEFAULT '0.00',
  actual_price decimal(10,2) NOT NULL DEFAULT '0.00',
  coupon_discount_price decimal(10,2) NOT NULL DEFAULT '0.00',
  user_discount_rate decimal(3,2) NOT NULL DEFAULT '1.00',
  user_discount_amount decimal(10,2) NOT NULL DEFAULT '0.00',
  status tinyint NOT NULL DEFAULT '1',
  pay_id int DEFAULT NULL,
  payment_method tinyint NOT NULL DEFAULT '1',
  balance_used decimal(10,2) NOT NULL DEFAULT '0.00',
  search_pwd varchar(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci DEFAULT '',
  buy_ip varchar(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
  trade_no varchar(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci DEFAULT NULL,
  created_at timestamp NULL DEFAULT NULL,
  updated_at timestamp NULL DEFAULT NULL,
  deleted_at timestamp NULL DEFAULT NULL,
  PRIMARY KEY (id),
  KEY orders_order_sn_index (order_sn),
  KEY orders_email_index (email),
  KEY orders_status_index (status),
  KEY orders_user_id_index (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_unicode_ci
""", """
CREATE TABLE order_items (
  id bigint unsigned NOT NULL AUTO_INCREMENT,
  order_id bigint unsigned NOT NULL,
  goods_id int NOT NULL,
  sub_id int DEFAULT NULL,
  goods_name varchar(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
  unit_price decimal(10,2) NOT NULL,
  quantity int NOT NULL,
  subtotal decimal(10,2) NOT NULL,
  info text CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
  type tinyint NOT NULL DEFAULT '1',
  created_at timestamp NULL DEFAULT NULL,
  updated_at timestamp NULL DEFAULT NULL,
  PRIMARY KEY (id),
  KEY order_items_order_id_foreign (order_id),
  KEY order_items_goods_id_index (goods_id),
  CONSTRAINT order_items_order_id_foreign FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""]

BUYER, OTHER, QQ = "buyer@example.com", "other@example.com", "10001@qq.com"
KEYS_INFO = "KEY-AAAA-1111\n\nKEY-BBBB-2222\r\n   \nKEY-CCCC-3333\n"
# order_sn, goods, quantity, type (1 automatic, 2 manual), email, actual_price, status, info,
# created_at, updated_at, deleted_at
ORDERS = [
    ("WAITPAY0000000A1", "Steam 100", 1, 1, BUYER, "100.00", 1, "", "2024-05-01 09:00:00", "2024-05-01 09:00:00", None),
    ("PAIDWAIT000000A2", "Steam 100", 1, 2, BUYER, "100.00", 2, "充值账号: gamer01", "2024-05-02 09:00:00",
     "2024-05-02 09:01:00", None),
    ("PROCESS0000000A3", "Steam 200", 1, 2, BUYER, "200.00", 3, "充值账号: gamer01", "2024-05-03 09:00:00",
     "2024-05-03 11:00:00", None),
    ("DELIVER0000000A4", "Steam 100", 3, 1, BUYER, "300.00", 4, KEYS_INFO, "2024-05-04 09:00:00",
     "2024-05-04 09:00:30", None),
    ("FAILED00000000A5", "Steam 100", 1, 1, BUYER, "100.00", 5, "", "2024-05-05 09:00:00", "2024-05-05 09:00:00", None),
    ("ABNORML0000000A6", "Steam 100", 1, 1, BUYER, "100.00", 6, "库存不足", "2024-05-06 09:00:00",
     "2024-05-06 09:01:00", None),
    ("EXPIRED0000000A7", "Steam 100", 1, 1, BUYER, "100.00", -1, "", "2024-05-07 09:00:00", "2024-05-07 09:10:00", None),
    ("MANUALD0000000A8", "代充 Q币", 1, 2, BUYER, "50.00", 4, "QQ: 123456", "2024-05-08 09:00:00",
     "2024-05-08 12:00:00", None),
    ("DELETED0000000A9", "Steam 100", 1, 1, BUYER, "100.00", 4, "KEY-GONE", "2024-05-09 09:00:00",
     "2024-05-09 09:00:00", "2024-05-10 09:00:00"),
    ("QQBUYER0000000B1", "Steam 50", 1, 1, QQ, "50.00", 4, "KEY-QQ", "2024-04-01 09:00:00", "2024-04-01 09:00:00", None),
    ("OTHERBU0000000C1", "Steam 50", 1, 1, OTHER, "50.00", 4, "KEY-OTHER", "2024-05-11 09:00:00",
     "2024-05-11 09:00:00", None),
]


async def _server():
    return await asyncmy.connect(**SERVER, autocommit=True, connect_timeout=3)


async def _create(variant: str) -> str:
    name = f"kefu_shop_{variant}_{secrets.token_hex(4)}"
    conn = await _server()
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE DATABASE {name}")
            await cur.execute(f"USE {name}")
            for ddl in CLASSIC_DDL if variant == "classic" else ITEMS_DDL:
                await cur.execute(ddl)
            for sn, goods, qty, kind, email, price, status, info, created, updated, deleted in ORDERS:
                if variant == "classic":
                    await cur.execute(
                        "INSERT INTO orders (order_sn, goods_id, title, type, buy_amount, total_price, actual_price, "
                        "email, info, buy_ip, status, created_at, updated_at, deleted_at) "
                        "VALUES (%s, 1, %s, %s, %s, %s, %s, %s, %s, '127.0.0.1', %s, %s, %s, %s)",
                        (sn, f"{goods} x {qty}", kind, qty, price, price, email, info, status, created, updated,
                         deleted))
                    continue
                await cur.execute(
                    "INSERT INTO orders (order_sn, email, total_price, actual_price, status, buy_ip, created_at, "
                    "updated_at, deleted_at) VALUES (%s, %s, %s, %s, %s, '127.0.0.1', %s, %s, %s)",
                    (sn, email, price, price, status, created, updated, deleted))
                order_id = cur.lastrowid
                await cur.execute(
                    "INSERT INTO order_items (order_id, goods_id, goods_name, unit_price, quantity, subtotal, info, "
                    "type) VALUES (%s, 1, %s, %s, %s, %s, %s, %s)", (order_id, goods, price, qty, price, info, kind))
                if sn == "DELIVER0000000A4":  # a second item of the same order, with its own key
                    await cur.execute(
                        "INSERT INTO order_items (order_id, goods_id, goods_name, unit_price, quantity, subtotal, "
                        "info, type) VALUES (%s, 2, 'Xbox 50', 0, 1, 0, 'KEY-XBOX-4444', 1)", (order_id,))
    finally:
        await conn.ensure_closed()
    return name


async def _drop(name: str) -> None:
    conn = await _server()
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        await conn.ensure_closed()


def _server_answers() -> str:
    async def probe() -> str:
        try:
            await (await _server()).ensure_closed()
        except (MySQLError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return ""
    return asyncio.run(probe())


@pytest.fixture(scope="module")
def server():
    problem = _server_answers()
    if problem:
        pytest.skip(f"no MariaDB/MySQL answers at 127.0.0.1:3306 as root without password ({problem})")


@pytest.fixture(scope="module", params=["classic", "items"])
def database(request, server):
    """(variant, database name): created once per variant for this module, dropped after."""
    name = asyncio.run(_create(request.param))
    yield request.param, name
    asyncio.run(_drop(name))


@pytest.fixture
async def shop(database):
    adapter = create_shop(ShopConfig(kind="dujiaoka", dsn=f"mysql://root:@127.0.0.1:3306/{database[1]}",
                                     timeout=3))
    yield adapter
    await adapter.close()


async def test_statuses_map_to_the_spec(shop):
    expected = {"WAITPAY0000000A1": "pending", "PAIDWAIT000000A2": "paid", "PROCESS0000000A3": "paid",
                "DELIVER0000000A4": "delivered", "FAILED00000000A5": "failed", "ABNORML0000000A6": "failed",
                "EXPIRED0000000A7": "expired", "MANUALD0000000A8": "delivered"}
    assert {sn: (await shop.order(sn)).status for sn in expected} == expected


async def test_an_order_card_has_title_amount_times_and_contact(shop, database):
    delivered = await shop.order("DELIVER0000000A4")
    title = "Steam 100 x 3" if database[0] == "classic" else "Steam 100 x 3, Xbox 50 x 1"
    assert delivered.public() == {
        "order_no": "DELIVER0000000A4", "status": "delivered", "title": title, "amount": 300.0,
        "currency": "CNY", "created_at": "2024-05-04T09:00:00+08:00", "contact": BUYER,
        "paid_at": "2024-05-04T09:00:30+08:00", "delivered_at": "2024-05-04T09:00:30+08:00"}
    waiting = (await shop.order("PAIDWAIT000000A2")).public()
    assert (waiting["paid_at"], "delivered_at" in waiting) == ("2024-05-02T09:01:00+08:00", False)
    manual = (await shop.order("MANUALD0000000A8")).public()
    assert ("paid_at" in manual, manual["delivered_at"]) == (False, "2024-05-08T12:00:00+08:00")
    assert "customer_id" not in delivered.public()  # dujiaoka knows buyers by e-mail only


async def test_unknown_and_deleted_orders_do_not_exist(shop):
    assert await shop.order("NOSUCHORDER00000") is None
    assert await shop.order("DELETED0000000A9") is None
    assert await shop.card_keys("DELETED0000000A9", "req-1") == []


async def test_a_customers_orders_by_email_newest_first(shop):
    mine = await shop.orders(contact=BUYER, limit=10)
    assert [o.order_no for o in mine] == ["MANUALD0000000A8", "EXPIRED0000000A7", "ABNORML0000000A6",
                                          "FAILED00000000A5", "DELIVER0000000A4", "PROCESS0000000A3",
                                          "PAIDWAIT000000A2", "WAITPAY0000000A1"]
    assert [o.order_no for o in await shop.orders(contact="BUYER@example.com", limit=2)] == [
        "MANUALD0000000A8", "EXPIRED0000000A7"]
    assert [o.order_no for o in await shop.orders(contact="10001")] == ["QQBUYER0000000B1"]
    assert await shop.orders(customer_id="42") == []
    assert [o.order_no for o in await shop.orders(customer_id="42", contact=OTHER)] == ["OTHERBU0000000C1"]


async def test_card_keys_are_the_lines_of_a_completed_automatic_order(shop, database):
    keys = ["KEY-AAAA-1111", "KEY-BBBB-2222", "KEY-CCCC-3333"]
    if database[0] == "items":
        keys.append("KEY-XBOX-4444")
    assert await shop.card_keys("DELIVER0000000A4", "req-1") == keys
    assert await shop.card_keys("QQBUYER0000000B1", "req-2") == ["KEY-QQ"]
    # Not delivered yet, or delivered by hand: `info` is what the buyer typed or an error text.
    for sn in ("PAIDWAIT000000A2", "ABNORML0000000A6", "MANUALD0000000A8", "NOSUCHORDER00000"):
        assert await shop.card_keys(sn, "req-3") == [], sn


async def test_a_profile_counts_paid_orders(shop):
    profile = await shop.profile(contact=BUYER)
    # paid (2), processing (3), delivered (4, automatic and manual); not the deleted one
    assert (profile.order_count, profile.total_spent, profile.currency) == (4, 650.0, "CNY")
    assert profile.last_order_at.isoformat() == "2024-05-08T09:00:00+08:00"
    nobody = await shop.profile(customer_id="42")
    assert (nobody.order_count, nobody.total_spent, nobody.last_order_at) == (0, 0.0, None)


async def test_the_session_is_read_only(shop):
    await shop.order("DELIVER0000000A4")
    async with shop._pool.acquire() as conn:  # the adapter's own connections
        async with conn.cursor() as cur:
            with pytest.raises(MySQLError) as refused:
                await cur.execute("UPDATE orders SET status = 1 WHERE order_sn = %s", ("DELIVER0000000A4",))
    assert refused.value.args[0] == 1792  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
    assert (await shop.order("DELIVER0000000A4")).status == "delivered"


async def test_a_locked_table_times_out_and_the_next_call_works(database):
    adapter = create_shop(ShopConfig(kind="dujiaoka", dsn=f"mysql://root@127.0.0.1/{database[1]}", timeout=0.5,
                                     cache_ttl=0))
    assert (await adapter.order("DELIVER0000000A4")).status == "delivered"
    locker = await _server()
    try:
        async with locker.cursor() as cur:
            await cur.execute(f"LOCK TABLES {database[1]}.orders WRITE")
            with pytest.raises(ShopUnavailable, match=r"no answer within 0\.5 s"):
                await adapter.order("DELIVER0000000A4")
            await cur.execute("UNLOCK TABLES")
        assert (await adapter.order("DELIVER0000000A4")).status == "delivered"
    finally:
        await locker.ensure_closed()
        await adapter.close()


@pytest.mark.parametrize("dsn, reason", [
    ("mysql://root@127.0.0.1:1/dujiaoka", r"MySQL error 2003: Can't connect"),
    ("mysql://root@127.0.0.1:3306/kefu_no_such_database_here", r"MySQL error 1049: Unknown database"),
    ("mysql://root@127.0.0.1:3306/information_schema", r"no `orders` table in the database of shop\.dsn"),
])
async def test_a_database_kefu_cannot_use_is_unavailable(server, dsn, reason):
    adapter = create_shop(ShopConfig(kind="dujiaoka", dsn=dsn, timeout=3))
    try:
        with pytest.raises(ShopUnavailable, match=reason):
            await adapter.order("DELIVER0000000A4")
    finally:
        await adapter.close()
