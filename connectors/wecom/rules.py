"""WeChat's reply window for customer-service accounts, as a pure function.

After a customer's message the business may send at most 5 messages within 48 hours; the
customer writing again opens a fresh window.  kefu's automatic messages count too.  The
console shows what is left; a reply that would break the rule is refused before it is
stored (HTTP 409 at the agent API, naming the rule).
"""
from __future__ import annotations

from dataclasses import dataclass

WINDOW_S = 48 * 3600
QUOTA = 5

RULE_WINDOW = "wecom_48h_window"
RULE_QUOTA = "wecom_5_messages"

EXPLANATIONS = {
    RULE_WINDOW: {
        "zh": "微信客服只能在客户最后一条消息后 48 小时内回复；请等客户再次来信，或改用其他渠道跟进（工单）。",
        "en": "WeChat allows replies only within 48 hours of the customer's last message; wait for "
              "the customer to write again, or follow up on another channel (ticket).",
    },
    RULE_QUOTA: {
        "zh": "客户回复前微信客服最多只能发送 5 条消息；请等客户再次来信，或改用其他渠道跟进（工单）。",
        "en": "WeChat allows at most 5 messages until the customer writes again; wait for the "
              "customer's reply, or follow up on another channel (ticket).",
    },
}


@dataclass(frozen=True, slots=True)
class ReplyWindow:
    allowed: bool
    rule: str | None  # the rule that refuses, when not allowed
    window_left_s: float  # seconds left in the 48-hour window (0 when closed)
    quota_left: int  # messages that may still be sent in it

    def explain(self, lang: str = "en") -> str:
        return EXPLANATIONS[self.rule]["zh" if lang == "zh" else "en"] if self.rule else ""

    def as_dict(self) -> dict:
        return {"allowed": self.allowed, "rule": self.rule, "window_left_s": round(self.window_left_s),
                "quota_left": self.quota_left}


def reply_window(last_customer_at: float | None, sent_since: int, now: float, *,
                 window_s: float = WINDOW_S, quota: int = QUOTA) -> ReplyWindow:
    """May one more message go to the customer now?

    `last_customer_at`: when the customer last wrote (None: never); `sent_since`:
    messages sent to them since then.  The window is checked before the quota, so a
    closed window is what an agent is told about even when the quota is spent too.
    """
    left_s = 0.0 if last_customer_at is None else max(0.0, last_customer_at + window_s - now)
    quota_left = max(0, quota - max(0, sent_since)) if left_s > 0 else 0
    if left_s <= 0:
        return ReplyWindow(False, RULE_WINDOW, 0.0, 0)
    if quota_left == 0:
        return ReplyWindow(False, RULE_QUOTA, left_s, 0)
    return ReplyWindow(True, None, left_s, quota_left)
