"""`shop.kind: dujiaoka` against the machine's real MariaDB/MySQL (127.0.0.1:3306, root, no password).

Each run creates throwaway databases (tests/dujiaoka_db.py: dujiaoka's `orders` table, and
the hiouttime fork's `orders` + `order_items`) and drops them afterwards.  Skipped, saying
so, only when no server answers."""
from __future__ import annotations

import asyncio

import pytest
from asyncmy.errors import MySQLError

from storage.shop import ShopConfig, ShopUnavailable, create_shop
from tests.dujiaoka_db import BUYER, OTHER, connect_server, create_database, drop_database, skip_without_server


@pytest.fixture(scope="module")
def server():
    skip_without_server()


@pytest.fixture(scope="module", params=["classic", "items"])
def database(request, server):
    """(variant, database name): created once per variant for this module, dropped after."""
    name = asyncio.run(create_database(request.param))
    yield request.param, name
    asyncio.run(drop_database(name))


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


async def test_rows_kefu_cannot_show_are_unavailable_not_errors(shop):
    with pytest.raises(ShopUnavailable, match=r"order ODDSTAT0000000D1 has status 9, not one of dujiaoka's"):
        await shop.order("ODDSTAT0000000D1")
    with pytest.raises(ShopUnavailable, match=r"order '' does not fit: order_no: String should have at least 1"):
        await shop.orders(contact="broken@example.com")


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
    locker = await connect_server()
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
