"""Order numbers in customers' messages (SPEC "Order numbers"): what counts and what never does."""
from __future__ import annotations

import pytest

from storage.shop import find_order_numbers

DUJIAOKA = "XK3M9Q2P7L8N4R6T"  # strtoupper(Str::random(16))
ACG_FAKA = "240115093012345678"  # 18 digits
ACG_FAKA_24 = "240115123450123456789012"  # the newer 24-digit numbers


@pytest.mark.parametrize("text, expected", [
    # after a keyword, Chinese
    (f"订单号：{DUJIAOKA} 卡密没收到", [DUJIAOKA]),
    (f"我的订单号是{ACG_FAKA}，付款了没发货", [ACG_FAKA]),
    ("订单 A-1024 怎么还没到", ["A-1024"]),
    ("单号#abc_7788", ["abc_7788"]),
    ("订单编号: 88990011", ["88990011"]),
    ("订单号：abcd", ["abcd"]),
    # after a keyword, English
    ("Order No. 12345-AB never arrived", ["12345-AB"]),
    ("my order #A1B2C3 shows paid", ["A1B2C3"]),
    ("ORDER NUMBER: 99887766", ["99887766"]),
    ("order id 2024-0001", ["2024-0001"]),
    ("order: WXYZABCDEFGH please", ["WXYZABCDEFGH"]),
    # anywhere, by the default pattern
    (f"卡密没收到 {DUJIAOKA}", [DUJIAOKA]),
    (f"{ACG_FAKA}这个单付了钱", [ACG_FAKA]),
    (f"paid for {ACG_FAKA_24} yesterday", [ACG_FAKA_24]),
    ("TB20240115123456 还没发货", ["TB20240115123456"]),
    (f"https://shop.example.com/order/{DUJIAOKA}", [DUJIAOKA]),
    (f"两个单: {DUJIAOKA} 和 订单 {ACG_FAKA}，还有 {DUJIAOKA}", [DUJIAOKA, ACG_FAKA]),
    # never: words, phone numbers, prices, dates, contacts, addresses
    ("my order never arrived", []),
    ("I want to reorder 12345678", []),
    ("订单已付款但是没有卡密", []),
    ("手机 13812345678 联系我", []),
    ("+8613812345678", []),
    ("订单号是 13812345678", []),
    ("call 008613912345678", []),
    ("价格 1234567890.50 元", []),
    ("订单1999元", []),
    ("order 4999 USDT", []),
    ("付了 12345678901 元", []),
    ("订单2024-01-15付款的", []),
    ("下单时间 20240115093000", []),
    ("2024-01-15 09:30 付款", []),
    ("我的QQ 2847561234 加我", []),
    ("微信号：13312345678", []),
    ("邮箱 12345678901@qq.com", []),
    ("ABCDEFGHIJKLMNOP", []),  # 16 capitals without a digit
    ("XK3M9Q2P7L8N4R6T9", []),  # 17 characters
    ("abc1234567890123def", []),  # inside a longer word
])
def test_default_rules(text, expected):
    assert find_order_numbers(text) == expected


def test_a_configured_pattern_replaces_the_default_one():
    pattern = r"NO\d{6}"
    assert find_order_numbers("单子 NO123456 还没到", pattern) == ["NO123456"]
    assert find_order_numbers("NO1234567 XNO123456", pattern) == []  # whole tokens only
    assert find_order_numbers(f"卡密没收到 {DUJIAOKA}", pattern) == []
    assert find_order_numbers(f"订单号 {DUJIAOKA}", pattern) == [DUJIAOKA]  # keywords still count
    assert find_order_numbers("NO138123456780", r"NO\d+|1\d{10}") == ["NO138123456780"]
    assert find_order_numbers("13812345678", r"1\d{10}") == []  # never a mobile number
