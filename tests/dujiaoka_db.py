"""Throwaway dujiaoka databases on the machine's MariaDB/MySQL (127.0.0.1:3306, root, no password).

The tables have the same columns and types as dujiaoka's install.sql (assimon/dujiaoka)
and, for the hiouttime fork, its `orders` + `order_items`; ORDERS fills them with one
order of every status and the cases kefu must get right."""
from __future__ import annotations

import asyncio
import secrets

import asyncmy
import pytest
from asyncmy.errors import MySQLError

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
    # rows kefu cannot show: a status dujiaoka does not have, an empty order number
    ("ODDSTAT0000000D1", "Steam 50", 1, 1, "odd@example.com", "50.00", 9, "", "2024-05-12 09:00:00",
     "2024-05-12 09:00:00", None),
    ("", "Steam 50", 1, 1, "broken@example.com", "50.00", 1, "", "2024-05-12 09:00:00", "2024-05-12 09:00:00", None),
]


async def connect_server():
    return await asyncmy.connect(**SERVER, autocommit=True, connect_timeout=3)


async def create_database(variant: str) -> str:
    """A new database with `variant` ("classic" or "items") tables and ORDERS in them; its name."""
    name = f"kefu_shop_{variant}_{secrets.token_hex(4)}"
    conn = await connect_server()
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


async def drop_database(name: str) -> None:
    conn = await connect_server()
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        await conn.ensure_closed()


def skip_without_server() -> None:
    """pytest.skip, saying why, when no MariaDB/MySQL answers."""
    async def probe() -> str:
        try:
            await (await connect_server()).ensure_closed()
        except (MySQLError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return ""
    if problem := asyncio.run(probe()):
        pytest.skip(f"no MariaDB/MySQL answers at 127.0.0.1:3306 as root without password ({problem})")
