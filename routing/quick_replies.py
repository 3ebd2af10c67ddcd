"""Quick replies filled from the conversation — the one place templates are expanded.

A template's variables (`{customer_name}`, `{order_no}` — the last order
number seen in the conversation —, `{agent_name}`, `{channel}` and any
customer attribute) are filled from the conversation.  A variable with no
value is never sent as raw braces or as a blank: it is reported as missing,
and the agent gives it (the console highlights it in the reply box; in a chat
app `/q name order_no=...`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from routing.config import AgentConfig, QuickReply

if TYPE_CHECKING:
    from aggregator.config import Settings

VARIABLE = re.compile(r"\{(\w+)\}")
BUILT_IN = ("customer_name", "order_no", "agent_name", "channel")
_GIVEN = re.compile(r"(\w+)=(\"[^\"]*\"|\S+)")


@dataclass(slots=True)
class Filled:
    name: str
    text: str  # every variable with a value filled in; the missing ones still read {name}
    missing: list[str] = field(default_factory=list)


def values(conv: dict, agent: AgentConfig) -> dict[str, str]:
    """What the conversation knows, by variable name; blanks left out."""
    customer = conv.get("customer") or {}
    attrs = customer.get("attributes") or {}
    out = {k: str(v) for k, v in attrs.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    out.update(customer_name=customer.get("name") or "", agent_name=agent.name, channel=conv.get("channel") or "",
               order_no=conv.get("order_no") or out.get("order_no", ""))
    return {k: v.strip() for k, v in out.items() if v and v.strip()}


def template(qr: QuickReply, conv: dict) -> str:
    """The template in the customer's language (zh unless they write English)."""
    if isinstance(qr.text, str):
        return qr.text
    language = (conv.get("customer") or {}).get("language") or "zh"
    return qr.text.en if language.startswith("en") else qr.text.zh


def fill(name: str, text: str, known: dict[str, str]) -> Filled:
    missing: list[str] = []

    def sub(m: re.Match) -> str:
        if m.group(1) in known:
            return known[m.group(1)]
        if m.group(1) not in missing:
            missing.append(m.group(1))
        return m.group(0)
    return Filled(name, VARIABLE.sub(sub, text), missing)


def for_conversation(settings: Settings, conv: dict, agent: AgentConfig) -> list[Filled]:
    """Every quick reply as it would be sent in this conversation now."""
    known = values(conv, agent)
    return [fill(qr.name, template(qr, conv), known) for qr in settings.quick_replies]


def parse_command(arg: str) -> tuple[str, dict[str, str]]:
    """`resend order_no=D2026 customer_name="Li Hua"` → ("resend", {...}): values an agent
    gives in a chat app for what the conversation does not know."""
    name, _, rest = arg.strip().partition(" ")
    return name, {k: v.strip('"').strip() for k, v in _GIVEN.findall(rest) if v.strip('"').strip()}


def expand(settings: Settings, name: str, conv: dict, agent: AgentConfig,
           given: dict[str, str] | None = None) -> Filled | None:
    """The quick reply `name` filled for this conversation (None if there is none)."""
    qr = next((q for q in settings.quick_replies if q.name == name), None)
    if qr is None:
        return None
    return fill(name, template(qr, conv), {**values(conv, agent), **(given or {})})


def unfilled(settings: Settings, text: str) -> list[str]:
    """Placeholders of quick-reply variables left in a text an agent is about to send."""
    names = set(BUILT_IN)
    for qr in settings.quick_replies:
        for t in ([qr.text] if isinstance(qr.text, str) else [qr.text.zh, qr.text.en]):
            names.update(VARIABLE.findall(t))
    return list(dict.fromkeys(v for v in VARIABLE.findall(text) if v in names))
