"""docs/shop.md's Python reference shop, run as printed, against dujiaoka's table in the real
MariaDB: kefu's `http` adapter reading through it sees what the `dujiaoka` adapter reads directly."""
from __future__ import annotations

import asyncio
import re
import types
from pathlib import Path

import pytest
from aiohttp import web

from storage.shop import ShopConfig, ShopUnavailable, create_shop
from tests.dujiaoka_db import BUYER, create_database, drop_database, skip_without_server

SECRET = "reference-shop-secret"
DOC = Path(__file__).parent.parent / "docs" / "shop.md"


def reference_code() -> str:
    section = DOC.read_text(encoding="utf-8").split("## Reference: the same in Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.fixture(scope="module")
def database():
    skip_without_server()
    name = asyncio.run(create_database("classic"))
    yield name
    asyncio.run(drop_database(name))


@pytest.fixture
async def shops(database, monkeypatch):
    """(through the reference shop over HTTP, straight from the database)."""
    for key, value in {"KEFU_SECRET": SECRET, "DB_USERNAME": "root", "DB_PASSWORD": "",
                       "DB_DATABASE": database}.items():
        monkeypatch.setenv(key, value)
    module = types.ModuleType("kefu_shop")
    exec(compile(reference_code(), str(DOC), "exec"), module.__dict__)
    runner = web.AppRunner(module.make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/kefu"
    made = {"http": create_shop(ShopConfig(kind="http", url=url, secret=SECRET, timeout=5)),
            "direct": create_shop(ShopConfig(kind="dujiaoka", dsn=f"mysql://root@127.0.0.1/{database}", timeout=5)),
            "wrong_secret": create_shop(ShopConfig(kind="http", url=url, secret="not-it", timeout=5))}
    yield made
    for shop in made.values():
        await shop.close()
    await runner.cleanup()


def without_times(order) -> dict:
    """The reference answers the contract's fields; paid/delivered times are the adapter's extras."""
    return {k: v for k, v in order.public().items() if k not in ("paid_at", "delivered_at")}


async def test_the_reference_shop_answers_what_the_database_holds(shops):
    http, direct = shops["http"], shops["direct"]
    for sn in ("DELIVER0000000A4", "PAIDWAIT000000A2", "EXPIRED0000000A7", "MANUALD0000000A8"):
        assert without_times(await http.order(sn)) == without_times(await direct.order(sn))
    assert await http.order("DELETED0000000A9") is None
    assert await http.order("NOSUCHORDER00000") is None

    recent = await http.orders(contact=BUYER, limit=3)
    assert [without_times(o) for o in recent] == [without_times(o) for o in await direct.orders(contact=BUYER, limit=3)]
    assert await http.orders(customer_id="42") == []

    for sn in ("DELIVER0000000A4", "PAIDWAIT000000A2", "MANUALD0000000A8"):
        assert await http.card_keys(sn, "req-1") == await direct.card_keys(sn, "req-1")
    assert await http.card_keys("DELIVER0000000A4", "req-1") == ["KEY-AAAA-1111", "KEY-BBBB-2222", "KEY-CCCC-3333"]
    assert await http.profile(contact=BUYER) == await direct.profile(contact=BUYER)


async def test_the_reference_shop_refuses_a_wrong_signature(shops):
    with pytest.raises(ShopUnavailable, match=r"HTTP 401"):
        await shops["wrong_secret"].order("DELIVER0000000A4")
