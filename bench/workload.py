"""The traffic every phase sends: one API channel, 1,000 customers writing the
kinds of messages a card shop gets, in Chinese and English."""
from __future__ import annotations

import random

from storage.events import Event, new_id

SECRET = "bench-secret-0123456789"
CHANNEL = "site"

TEXTS = [
    "我的卡密没收到，订单号 {order}，付款已经成功了",
    "支付失败了怎么办？扣款了但是订单显示未支付 {order}",
    "卡密无效，提示已被使用，请帮忙处理一下 {order}",
    "请问怎么充值？Steam 钱包 100 元的卡什么时候补货",
    "I paid for order {order} but the license key never arrived, please help",
    "The key for order {order} says invalid, can I get a refund?",
    "我要退款，订单 {order}，买错区服了",
    "在吗？转人工",
    "How do I top up my account? The payment page keeps failing.",
    "订单 {order} 的卡密能重新发一下吗，邮件里找不到了",
]
NAMES = ["张三", "李四", "王五", "赵六", "Alex", "Maria", "陈晨", "刘洋", "Kenji", "Olga"]

def text_for(rng: random.Random) -> str:
    return rng.choice(TEXTS).format(order=f"D{rng.randrange(10**11, 10**12)}")


def make_events(n: int, customers: int, seed: int = 7) -> list[Event]:
    """N inbound API-channel events from `customers` customers, interleaved as
    real traffic is (each customer writes several messages over time)."""
    rng = random.Random(seed)
    order = [i % customers for i in range(n)]
    rng.shuffle(order)
    out = []
    for i, c in enumerate(order):
        out.append(Event(
            id=new_id("m"), channel=CHANNEL, channel_kind="api", direction="in",
            customer_id=f"u{100000 + c}", text=text_for(rng), platform_msg_id=f"sm-{i}",
            sender_kind="customer", sender_id=f"u{100000 + c}", sender_name=NAMES[c % len(NAMES)],
        ))
    return out
