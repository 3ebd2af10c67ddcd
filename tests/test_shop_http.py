"""`shop.kind: http` against a fake shop that checks every signature (tests/fakes/shop.py)."""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from storage.shop import ShopConfig, ShopUnavailable, TiersConfig, create_shop, sign, tier
from tests.fakes.shop import FakeShop
from tests.kefu_harness import wait_for

SECRET = "shop-secret-for-tests"


def order(no: str, status: str = "paid", created: str = "2024-05-01T10:00:00+08:00", **extra) -> dict:
    return {"order_no": no, "status": status, "title": "Steam 100 x 1", "amount": 100.0, "currency": "CNY",
            "created_at": created, **extra}


class Clock:
    """Monotonic time the test moves, to expire the cache without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake():
    shop = FakeShop(SECRET)
    await shop.start()
    yield shop
    await shop.stop()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def make_shop(fake, clock):
    made = []

    def make(secret: str = SECRET, **settings):
        adapter = create_shop(ShopConfig(kind="http", url=fake.url, secret=secret, **settings), clock=clock)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


async def test_lookup_answers_the_order_in_the_spec_shape_and_signs_every_request(fake, make_shop):
    fake.add_order(order("DJ7Q2M4K9P1X3Z5W", status="delivered", contact="buyer@example.com", customer_id=42,
                         paid_at="2024-05-01T10:01:00+08:00", delivered_at="2024-05-01T10:01:05+08:00",
                         coupon="ignored"))
    shop = make_shop()

    found = await shop.order("DJ7Q2M4K9P1X3Z5W")
    assert found is not None
    assert found.public() == {
        "order_no": "DJ7Q2M4K9P1X3Z5W", "status": "delivered", "title": "Steam 100 x 1", "amount": 100.0,
        "currency": "CNY", "created_at": "2024-05-01T10:00:00+08:00", "contact": "buyer@example.com",
        "customer_id": "42", "paid_at": "2024-05-01T10:01:00+08:00", "delivered_at": "2024-05-01T10:01:05+08:00"}
    assert await shop.order("NOSUCHORDER0001") is None

    assert fake.refused == []
    assert [c.body for c in fake.calls_to("/orders/lookup")] == [{"order_no": "DJ7Q2M4K9P1X3Z5W"},
                                                                 {"order_no": "NOSUCHORDER0001"}]
    for call in fake.calls:
        assert call.headers["X-Kefu-Timestamp"].isdigit()
        assert call.headers["Content-Type"] == "application/json"


async def test_search_by_customer_id_by_contact_or_either(fake, make_shop):
    fake.add_order(order("U1-OLD", customer_id="u1", created="2024-01-01T09:00:00+08:00"))
    fake.add_order(order("U1-MID", customer_id="u1", contact="u1@example.com", created="2024-02-01T09:00:00+08:00"))
    fake.add_order(order("U1-NEW", customer_id="u1", created="2024-03-01T09:00:00+08:00"))
    fake.add_order(order("GUEST", contact="guest@example.com", created="2024-02-15T09:00:00+08:00"))
    fake.add_order(order("OTHER", customer_id="u2", created="2024-04-01T09:00:00+08:00"))
    shop = make_shop()

    assert [o.order_no for o in await shop.orders(customer_id="u1")] == ["U1-NEW", "U1-MID", "U1-OLD"]
    assert [o.order_no for o in await shop.orders(contact="guest@example.com")] == ["GUEST"]
    both = await shop.orders(customer_id="u1", contact="guest@example.com", limit=3)
    assert [o.order_no for o in both] == ["U1-NEW", "GUEST", "U1-MID"]

    assert [c.body for c in fake.calls_to("/orders/search")] == [
        {"customer_id": "u1", "limit": 5}, {"contact": "guest@example.com", "limit": 5},
        {"customer_id": "u1", "contact": "guest@example.com", "limit": 3}]
    with pytest.raises(ValueError):
        await shop.orders()


async def test_card_keys_are_fetched_each_time_with_the_request_id(fake, make_shop):
    fake.add_order(order("DJ7Q2M4K9P1X3Z5W", status="delivered"), card_keys=["AAAA-1111", "BBBB-2222"])
    shop = make_shop()

    assert await shop.card_keys("DJ7Q2M4K9P1X3Z5W", "req-1") == ["AAAA-1111", "BBBB-2222"]
    assert await shop.card_keys("DJ7Q2M4K9P1X3Z5W", "req-1") == ["AAAA-1111", "BBBB-2222"]
    assert [c.body for c in fake.calls_to("/orders/card_keys")] == [
        {"order_no": "DJ7Q2M4K9P1X3Z5W", "request_id": "req-1"}] * 2


async def test_a_slow_shop_times_out_as_unavailable(fake, make_shop):
    fake.add_order(order("DJ7Q2M4K9P1X3Z5W"))
    shop = make_shop(timeout=0.2)
    fake.hold()
    with pytest.raises(ShopUnavailable, match=r"no answer within 0.2 s"):
        await shop.order("DJ7Q2M4K9P1X3Z5W")
    with pytest.raises(ShopUnavailable, match=r"no answer within 0.2 s"):
        await shop.card_keys("DJ7Q2M4K9P1X3Z5W", "req-1")
    fake.release()
    assert (await shop.order("DJ7Q2M4K9P1X3Z5W")).order_no == "DJ7Q2M4K9P1X3Z5W"


async def test_a_shop_that_errs_or_is_down_is_unavailable(fake, make_shop):
    shop = make_shop()
    fake.down = 503
    with pytest.raises(ShopUnavailable, match=r"/orders/lookup: the shop answered HTTP 503"):
        await shop.order("DJ7Q2M4K9P1X3Z5W")
    with pytest.raises(ShopUnavailable, match=r"/orders/search: the shop answered HTTP 503"):
        await shop.profile(customer_id="u1")
    await fake.stop()
    with pytest.raises(ShopUnavailable, match=r"cannot connect to 127\.0\.0\.1:\d+"):
        await shop.orders(contact="buyer@example.com")


async def test_a_shop_that_stays_down_is_logged_once_a_minute(fake, make_shop, clock, caplog):
    shop = make_shop()
    fake.down = 502
    for _ in range(3):
        with pytest.raises(ShopUnavailable):
            await shop.order("DJ7Q2M4K9P1X3Z5W")
    clock.now += 61
    with pytest.raises(ShopUnavailable):
        await shop.order("DJ7Q2M4K9P1X3Z5W")
    warnings = [r for r in caplog.records if r.name == "kefu.shop"]
    assert [(r.getMessage(), r.shop, r.call, r.reason) for r in warnings] == [
        ("shop unavailable", "http", "order", "/orders/lookup: the shop answered HTTP 502")] * 2


GOOD = order("DJ7Q2M4K9P1X3Z5W")


@pytest.mark.parametrize("call, answer, reason", [
    ("lookup", b"<html>502 Bad Gateway</html>", r"/orders/lookup: answer off the contract: Invalid JSON"),
    ("lookup", b"{}", r"order: Field required"),
    ("lookup", json.dumps({"order": {**GOOD, "status": "shipped"}}).encode(), r"order\.status: Input should be"),
    ("lookup", json.dumps({"order": {**GOOD, "amount": "100.00"}}).encode(), r"order\.amount: Input should be"),
    ("lookup", json.dumps({"order": {**GOOD, "created_at": "2024-05-01 10:00:00"}}).encode(),
     r"order\.created_at: Input should have timezone info"),
    ("lookup", json.dumps({"order": {**GOOD, "order_no": "SOMEONEELSES0001"}}).encode(),
     r"answered order 'SOMEONEELSES0001' for 'DJ7Q2M4K9P1X3Z5W'"),
    ("search", json.dumps({"orders": {"DJ7Q2M4K9P1X3Z5W": GOOD}}).encode(), r"/orders/search: answer off the contract: orders: Input should be a valid array"),
    ("search", json.dumps({"orders": [{**GOOD, "title": None}]}).encode(), r"orders\.0\.title"),
    ("card_keys", json.dumps({"card_keys": "AAAA-1111"}).encode(), r"card_keys: Input should be a valid array"),
    ("card_keys", json.dumps({"card_keys": [1111]}).encode(), r"card_keys\.0: Input should be a valid string"),
    ("card_keys", b"[" * 10 + b" " * (2 << 20), r"answer larger than 1 MiB"),
])
async def test_answers_off_the_contract_are_unavailable(fake, make_shop, call, answer, reason):
    shop = make_shop()
    fake.answer_next(200, answer)
    calls = {"lookup": lambda: shop.order("DJ7Q2M4K9P1X3Z5W"),
             "search": lambda: shop.orders(customer_id="u1"),
             "card_keys": lambda: shop.card_keys("DJ7Q2M4K9P1X3Z5W", "req-1")}
    with pytest.raises(ShopUnavailable, match=reason):
        await calls[call]()


async def test_lookups_are_cached_briefly_and_failures_not_at_all(fake, make_shop, clock):
    fake.add_order(order("DJ7Q2M4K9P1X3Z5W", customer_id="u1"))
    shop = make_shop(cache_ttl=60)

    await shop.order("DJ7Q2M4K9P1X3Z5W")
    await shop.order("DJ7Q2M4K9P1X3Z5W")
    assert await shop.order("NOSUCHORDER0001") is None
    assert await shop.order("NOSUCHORDER0001") is None
    assert len(fake.calls_to("/orders/lookup")) == 2

    clock.now += 61
    fake.orders["DJ7Q2M4K9P1X3Z5W"]["status"] = "delivered"
    assert (await shop.order("DJ7Q2M4K9P1X3Z5W")).status == "delivered"
    assert len(fake.calls_to("/orders/lookup")) == 3

    # A search's orders answer the next lookups of their numbers.
    clock.now += 61
    await shop.orders(customer_id="u1")
    await shop.order("DJ7Q2M4K9P1X3Z5W")
    assert len(fake.calls_to("/orders/lookup")) == 3

    fake.answer_next(500, b"{}")
    with pytest.raises(ShopUnavailable):
        await shop.profile(customer_id="u1")
    assert (await shop.profile(customer_id="u1")).order_count == 1
    assert len(fake.calls_to("/orders/search")) == 3


async def test_concurrent_identical_lookups_share_one_request(fake, make_shop):
    fake.add_order(order("DJ7Q2M4K9P1X3Z5W"))
    fake.add_order(order("DJ0000000000000B"))
    shop = make_shop()
    fake.hold()
    same = [asyncio.create_task(shop.order("DJ7Q2M4K9P1X3Z5W")) for _ in range(5)]
    other = asyncio.create_task(shop.order("DJ0000000000000B"))
    await wait_for(lambda: fake.waiting == 2, timeout=5, message="both lookups held at the shop")
    same[0].cancel()  # one caller giving up does not cancel the others' answer
    fake.release()

    answers = await asyncio.gather(*same[1:])
    assert {a.order_no for a in answers} == {"DJ7Q2M4K9P1X3Z5W"}
    assert (await other).order_no == "DJ0000000000000B"
    assert sorted(c.body["order_no"] for c in fake.calls_to("/orders/lookup")) == ["DJ0000000000000B",
                                                                                  "DJ7Q2M4K9P1X3Z5W"]


async def test_a_refused_signature_is_unavailable_and_says_why(fake, make_shop):
    fake.add_order(order("DJ7Q2M4K9P1X3Z5W"))
    shop = make_shop(secret="not-the-shops-secret")
    with pytest.raises(ShopUnavailable, match=r"refused kefu's signature \(HTTP 401\); check shop\.secret"):
        await shop.order("DJ7Q2M4K9P1X3Z5W")
    assert [r.reason for r in fake.refused] == ["bad X-Kefu-Signature"]
    assert fake.calls == []


@pytest.mark.parametrize("skew, status", [(-299, 200), (299, 200), (-301, 401), (301, 401)])
async def test_the_shop_may_refuse_a_timestamp_more_than_300_s_off(fake, skew, status):
    body = json.dumps({"order_no": "DJ7Q2M4K9P1X3Z5W"}).encode()
    headers = {"Content-Type": "application/json", **sign(SECRET, body, int(time.time()) + skew)}
    async with aiohttp.ClientSession() as http:
        async with http.post(fake.url + "/orders/lookup", data=body, headers=headers) as resp:
            assert resp.status == status
    assert len(fake.refused) == (status == 401)


async def test_a_profile_is_computed_from_a_larger_search(fake, make_shop):
    for i in range(25):
        status = "paid" if i % 5 else "expired"  # 20 paid, 5 expired
        fake.add_order(order(f"U1-{i:04d}", status=status, customer_id="u1",
                             created=f"2024-03-{i + 1:02d}T09:00:00+08:00"))
    shop = make_shop(profile_limit=50)

    profile = await shop.profile(customer_id="u1")
    assert (profile.order_count, profile.total_spent, profile.currency) == (20, 2000.0, "CNY")
    assert profile.last_order_at.isoformat() == "2024-03-25T09:00:00+08:00"
    assert fake.calls_to("/orders/search")[0].body == {"customer_id": "u1", "limit": 50}
    assert tier(profile, TiersConfig()) == "vip"


async def test_a_closed_adapter_is_unavailable(fake, make_shop):
    shop = make_shop()
    await shop.close()
    with pytest.raises(ShopUnavailable, match="closed"):
        await shop.order("DJ7Q2M4K9P1X3Z5W")
