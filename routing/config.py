"""The sections of config.yaml that routing owns: router rules, roles, SLA, agents,
quick replies (aggregator/config.py composes them into `Settings`)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from routing.permissions import Permission
from storage.config import ID_PATTERN, Localized, Section
from storage.durations import Duration, PositiveDuration


DEFAULT_KEYWORDS = {
    "finance": ["退款", "退钱", "支付失败", "付款失败", "扣款", "充值失败", "发票", "refund", "payment failed",
                "charged twice", "invoice"],
    "aftersales": ["卡密", "没收到", "未收到", "没到", "激活失败", "无法激活", "不能用", "无效", "补发",
                   "card key", "license key", "not received", "never received", "didn't receive", "didn’t receive",
                   "did not receive", "haven't received", "haven’t received", "never arrived", "not arrived",
                   "didn't arrive", "didn’t arrive", "hasn't arrived", "hasn’t arrived", "not delivered",
                   "activation failed", "invalid key", "doesn't work", "doesn’t work", "not working", "resend"],
    "presales": ["价格", "多少钱", "批发", "优惠", "有货", "库存", "price", "how much", "wholesale", "discount",
                 "in stock"],
    "dispute": ["投诉", "纠纷", "骗子", "报警", "举报", "chargeback", "scam", "fraud", "complaint", "dispute"],
}


class RouterConfig(Section):
    # Role of a new conversation, decided in this order: the channel's `role`;
    # the customer's answer to the welcome menu (roles' `menu` numbers);
    # `keywords` (first role whose word appears, checked in dispute, finance,
    # aftersales, presales order); else `default_role` ("" = any agent).
    default_role: str = "presales"
    keywords: dict[str, list[str]] = DEFAULT_KEYWORDS
    # A customer writing one of these is put first in line for a human.
    human_words: list[str] = ["人工", "转人工", "人工客服", "真人", "human", "real person", "agent please"]
    default_capacity: int = Field(5, ge=1)  # open conversations per agent unless set per agent
    sticky: bool = True  # prefer the agent who served this customer last
    vip_agents: list[str] = []  # when set, VIP conversations go only to these agents
    auto_away_after: Duration = 900.0  # online agents idle this long become away (0 = never)
    drain_interval: PositiveDuration = 1.0  # between sweeps that assign waiting conversations
    position_updates: Duration = 60.0  # at most one queue-position message per conversation per this


class RoleConfig(Section):
    name: "Localized"  # shown to customers and agents
    hours: str | None = None  # a calendar under `hours:`; none = always open (7×24)
    menu: int | None = Field(None, ge=1, le=9)  # number in the welcome menu
    fallback: str | None = None  # role that takes conversations nobody of this role can
    # What agents of the role may do beyond answering (routing/permissions.py):
    # view_orders, resend_card_key, view_card_keys, reveal_pii, view_reports,
    # export_evidence.  An agent holds the union of their roles'.  Not set: the
    # built-in ones (presales, finance, dispute: [view_orders]; aftersales:
    # [view_orders, resend_card_key]; supervisor: all; roles of your own: none).
    permissions: list[Permission] | None = None


def default_roles() -> dict[str, "RoleConfig"]:
    return {
        "presales": RoleConfig(name=Localized(zh="售前咨询", en="Pre-sales"), menu=1),
        "aftersales": RoleConfig(name=Localized(zh="售后处理", en="After-sales"), menu=2),
        "finance": RoleConfig(name=Localized(zh="财务查询", en="Billing"), menu=3),
        "dispute": RoleConfig(name=Localized(zh="争议处理", en="Disputes"), menu=4, fallback="supervisor"),
        "supervisor": RoleConfig(name=Localized(zh="主管", en="Supervisor")),
    }


class SlaTarget(Section):
    first_response: Duration  # 0 = immediately
    resolution: Duration


class SlaConfig(Section):
    """Targets per priority (normal, urgent, dispute); VIP raises one level."""
    normal: SlaTarget = SlaTarget(first_response=1800, resolution=86400)
    urgent: SlaTarget = SlaTarget(first_response=300, resolution=7200)
    dispute: SlaTarget = SlaTarget(first_response=0, resolution=7200)
    working_time: bool = True  # count targets in the role's working hours (roles with `hours`)
    remind_after: Duration = 300.0  # one reminder to the owner when a customer waits this long
    holding_reply: bool = True  # ... and one "your question is noted" message to the customer
    # What each successive breach does: notify supervisors, then hand the
    # conversation to another agent of the role.
    escalation: list[Literal["notify_supervisors", "reassign"]] = ["notify_supervisors", "reassign"]


class AgentConfig(Section):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    roles: list[str] = []
    # Clear text from the environment ("${ALICE_PASSWORD}") or an argon2 hash
    # ("$argon2id$..."); kept only as a hash in memory, never logged.
    password: SecretStr
    max_concurrent: int | None = Field(None, ge=1)  # default: router.default_capacity
    # Chat-app accounts the agent answers from (see the telegram / qq channels'
    # `agents` settings).  Also linkable at run time with a one-time code.
    hours: str | None = None  # personal hours: a calendar under `hours:`; outside it no new assignments
    telegram_id: int | None = None  # Telegram user id
    qq_id: int | None = None  # QQ number


class QuickReply(Section):
    """A template an agent sends with `/q name` (console, Telegram, QQ).

    Variables in braces are filled from the conversation: {customer_name},
    {agent_name}, {order_no} (the last order number seen), {channel}, and any
    customer attribute; one without a value is asked of the agent, never sent
    (routing/quick_replies.py)."""
    name: str = Field(pattern=r"^[\w-]{1,32}$")
    text: str | Localized
