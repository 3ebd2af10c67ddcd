"""Automatic messages to customers: the templates and the language they are in.

Every template exists in Chinese and English; Chinese text uses full-width
punctuation (，！？：).  config.yaml's `messages:` may
override one by name for everyone, or as `name@channel` / `name@role` for one
channel or role (checked in that order).  Unknown variables stay visible as
{name} rather than failing.
"""
from __future__ import annotations

import re
import string
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregator.config import Settings

DEFAULTS: dict[str, dict[str, str]] = {
    "greeting": {  # the web chat widget, before the visitor has written
        "zh": "您好！请问有什么可以帮您？",
        "en": "Hi! How can we help you?",
    },
    "welcome": {
        "zh": "您好{customer_name_suffix}，欢迎咨询！我们已收到您的消息。",
        "en": "Hello{customer_name_suffix}, thanks for contacting us! We have your message.",
    },
    "menu": {
        "zh": "请回复数字选择服务：\n{menu}",
        "en": "Reply with a number to choose:\n{menu}",
    },
    "ask_order": {
        "zh": "如果是订单问题，请发送订单号，方便我们更快为您处理。",
        "en": "If this is about an order, please send the order number so we can help faster.",
    },
    "routed": {
        "zh": "已为您转接{role_name}，请稍候。",
        "en": "You are now with {role_name}; please hold on.",
    },
    "off_hours": {
        "zh": "现在是非工作时间，人工客服将于 {next_open} 上线回复您。您可以先留言，我们会按顺序处理。",
        "en": "We are outside working hours; an agent will reply from {next_open}. "
              "Leave your message and we will handle it in order.",
    },
    "nobody_online": {
        "zh": "目前暂无客服在线。请直接留言，您的留言已记录为工单，客服上线后会优先处理。",
        "en": "No agent is online right now. Please leave a message: it is recorded as a ticket "
              "and will be handled first when an agent is back.",
    },
    "queue_position": {
        "zh": "客服正在忙，您当前排在第 {position} 位，请稍候。",
        "en": "All agents are busy; you are number {position} in line.",
    },
    "human": {
        "zh": "正在为您转接人工客服，请稍候。",
        "en": "Connecting you to a human agent, please hold on.",
    },
    "holding": {
        "zh": "您的问题已记录，请稍等，客服正在处理中。",
        "en": "Your question is noted; please wait a moment, an agent is on it.",
    },
    "closed": {
        "zh": "本次会话已结束，感谢您的咨询！如有其他问题，欢迎随时联系我们。",
        "en": "This conversation is now closed. Thank you for contacting us!",
    },
}

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]{2,}")


def detect_language(text: str) -> str:
    """'zh' for text with Chinese characters, 'en' for Latin words, '' when unsure."""
    if _CJK.search(text):
        return "zh"
    if _LATIN.search(text):
        return "en"
    return ""


class _Defaulting(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Templates:
    def __init__(self, settings: Settings):
        self.settings = settings

    def text(self, name: str, lang: str, *, channel: str = "", role: str = "", **values: Any) -> str:
        lang = "en" if lang == "en" else "zh"
        overrides = self.settings.messages
        for key in (f"{name}@{channel}", f"{name}@{role}", name):
            if key in overrides:
                template = getattr(overrides[key], lang)
                break
        else:
            template = DEFAULTS[name][lang]
        name_value = values.get("customer_name") or ""
        values.setdefault("customer_name_suffix", (" " if lang == "en" else "") + name_value if name_value else "")
        return string.Formatter().vformat(template, (), _Defaulting({k: str(v) for k, v in values.items()}))

    def role_name(self, role: str, lang: str) -> str:
        rc = self.settings.roles.get(role)
        if rc is None:
            return role or ("客服" if lang != "en" else "an agent")
        return rc.name.en if lang == "en" else rc.name.zh

    def menu(self, lang: str) -> str:
        items = sorted((rc.menu, name) for name, rc in self.settings.roles.items() if rc.menu)
        return "\n".join(f"{n}. {self.role_name(r, lang)}" for n, r in items)
