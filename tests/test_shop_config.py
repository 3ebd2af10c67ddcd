"""The `shop:` section as config.yaml gives it, and the tier a shop profile earns."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.config import ConfigError, load, parse
from storage.shop import Profile, TiersConfig, tier


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        parse(text)
    return refused.value.problems


def test_the_spec_example_loads(monkeypatch):
    monkeypatch.setenv("SHOP_SECRET", "s3cret")
    shop = parse('shop:\n  kind: http\n  url: https://shop.example.com/kefu/\n  secret: "${SHOP_SECRET}"\n'
                 "  order_pattern: '[A-Z0-9]{16}'\n").shop
    assert (shop.kind, shop.url, shop.secret.get_secret_value()) == ("http", "https://shop.example.com/kefu", "s3cret")
    assert (shop.timeout, shop.cache_ttl) == (3.0, 60.0)
    dujiaoka = parse("shop:\n  kind: dujiaoka\n  dsn: mysql://kefu:pw@127.0.0.1:3306/dujiaoka\n").shop
    assert dujiaoka.kind == "dujiaoka" and "pw" not in repr(dujiaoka)
    assert parse("state_dir: ./data\n").shop is None


def test_the_shipped_config_yaml_still_loads():
    assert load(Path(__file__).parent.parent / "config.yaml").shop is None  # its shop: is a commented example


@pytest.mark.parametrize("section, line, expected", [
    ("shop:\n  kind: http\n  secret: x\n", 2, "shop.url: Value error, kind http needs url"),
    ("shop:\n  kind: http\n  url: https://shop.example.com/kefu\n", 2, "shop.secret: Value error, kind http needs secret"),
    ("shop:\n  kind: dujiaoka\n", 2, "shop.dsn: Value error, kind dujiaoka needs dsn"),
    ("shop:\n  kind: dujiaoka\n  dsn: postgres://u:hunter2@db/shop\n", 4, "shop.dsn: Value error, must look like mysql://"),
    ("shop:\n  kind: dujiaoka\n  dsn: mysql://u:hunter2@db:port/shop\n", 4, "shop.dsn: Value error, the port must be a number"),
    ("shop:\n  kind: http\n  url: ftp://shop\n  secret: x\n", 4, "shop.url: Value error, must be an http:// or https://"),
    ("shop:\n  kind: http\n  url: https://s.example\n  secret: x\n  order_pattern: '[A-Z'\n", 6,
     "shop.order_pattern: Value error, not a regular expression"),
    ("shop:\n  kind: dujiaoka\n  dsn: mysql://u@h/d\n  timezone: Mars/Olympus\n", 5, "shop.timezone: Value error, unknown time zone"),
    ("shop:\n  kind: shopify\n", 3, "shop.kind: Input should be 'http' or 'dujiaoka'"),
    ("shop:\n  kind: dujiaoka\n  dsn: mysql://u@h/d\n  cache: 5\n", 5, "shop.cache: unknown key `cache` — did you mean `cache_ttl`?"),
])
def test_a_bad_shop_section_names_the_key_and_line(section, line, expected):
    found = problems("state_dir: ./data\n" + section)
    assert any(p.startswith(f"config.yaml:{line}: {expected}") for p in found), found
    assert not any("hunter2" in p for p in found)  # a password in the dsn is never repeated


def test_tier_thresholds_stay_configurable_under_tiers():
    tiers = parse("tiers:\n  regular: {min_orders: 3}\n  vip: {min_spent: 500}\n").tiers
    assert (tiers.regular.min_orders, tiers.vip.min_orders, tiers.vip.min_spent) == (3, 0, 500)
    assert problems("tiers:\n  vip: {min_orderz: 3}\n") == [
        "config.yaml:2: tiers.vip.min_orderz: unknown key `min_orderz` — did you mean `min_orders`?"]


def profile(orders: int, spent: float) -> Profile:
    return Profile(order_count=orders, total_spent=spent, currency="CNY", last_order_at=datetime(2024, 5, 1, tzinfo=UTC))


@pytest.mark.parametrize("orders, spent, expected", [
    (0, 0, "new"), (1, 1999.99, "new"), (2, 10, "regular"), (19, 1999, "regular"),
    (20, 0, "vip"), (1, 2000, "vip"), (0, 5000, "vip"),
])
def test_the_tier_a_profile_earns(orders, spent, expected):
    assert tier(profile(orders, spent), TiersConfig()) == expected
