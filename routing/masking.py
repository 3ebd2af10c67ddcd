"""Masking of personal numbers wherever an agent or an operator reads (SPEC part 2).

What is masked, and how:

- bank card numbers: 13–19 digits, in one run or in groups split by single
  spaces or dashes, Luhn-valid (python-stdnum) → first 4 and last 4 digits, 8 stars
  between (``6222********0128``: the length is not shown either);
- mainland mobile numbers: 1[3-9]x and 11 digits (3-4-4 groups may be split
  by a space or a dash, an optional +86 / 0086 / 86 in front) →
  ``138****5678``;
- resident ID numbers: 18 characters with a valid check digit and a real
  birth date (stdnum.cn.ric; the place code is not checked, as the library's
  list of counties is not complete) → first 6 and last 4 kept,
  ``110105********002X``.

A number is masked only when it stands on its own: digits inside a longer
run of digits or touching letters (an order number like
``D20261201123456789012``) are left alone, and so is a Luhn-invalid 16-digit
order number or a 10-digit number.

Used by the agent API and /api/events (aggregator/agent_api.py), the chat-app
relays (connectors/telegram_agents.py, connectors/qq_agents.py) and the logs
(aggregator/logs.py) — never for the customer's own view.  Card keys fetched
from a shop are masked with mask_card_keys for agents without
``view_card_keys``.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

# Not after a letter/digit (nor "X-" as in D2026-...), not before one (nor "-X").
_START = r"(?<![A-Za-z0-9_+])(?<![A-Za-z0-9_]-)"
_END = r"(?![A-Za-z0-9_])(?!-[A-Za-z0-9_])"
_ID = re.compile(_START + r"([0-9]{17}[0-9Xx])" + _END)
# Cards: one run of digits, or groups of 3 or more split by single spaces or dashes
# (4-4-4-4-3, 4-6-5, 6-13), so that "1764612345123-0" (a stream id) is not one.
_CARD = re.compile(_START + r"([0-9]{13,19}|[0-9]{3,13}(?:[ -][0-9]{3,13}){1,5})" + _END)
_MOBILE = re.compile(_START + r"((?:\+|00)?86[ -]?)?(1[3-9][0-9](?:[ -]?[0-9]{4}){2})" + _END)
_WORTH_A_LOOK = re.compile(r"[0-9][0-9 -]{9,}")  # nothing shorter can hold any of them


def _is_resident_id(number: str) -> bool:
    number = number.upper()
    try:
        ric.get_birth_date(number)
    except ValidationError:
        return False
    return ric.calc_check_digit(number) == number[-1]


def _id(m: re.Match) -> str:
    number = m.group(1)
    return number[:6] + "*" * 8 + number[-4:] if _is_resident_id(number) else number


def _card(m: re.Match) -> str:
    digits = re.sub(r"[ -]", "", m.group(1))
    if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
        return digits[:4] + "*" * 8 + digits[-4:]
    return m.group(0)


def _mobile(m: re.Match) -> str:
    digits = re.sub(r"[ -]", "", m.group(2))
    return (m.group(1) or "") + digits[:3] + "****" + digits[-4:]


def mask_text(text: str) -> str:
    """`text` with card, mobile and resident ID numbers masked."""
    if not text or not _WORTH_A_LOOK.search(text):
        return text
    return _MOBILE.sub(_mobile, _CARD.sub(_card, _ID.sub(_id, text)))


def mask_card_keys(text: str, keys: Iterable[str]) -> str:
    """`text` with each card key shown only by its last 4 characters (keys of 4
    characters or fewer are hidden whole), for agents without view_card_keys."""
    for key in sorted({k for k in keys if k}, key=len, reverse=True):
        hidden = "*" * (len(key) - 4) + key[-4:] if len(key) > 4 else "*" * len(key)
        text = text.replace(key, hidden)
    return text


def _mask_values(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_values(v) for v in value]
    return value


def mask_message(message: dict) -> dict:
    """A message as the agent API shows it (storage/events.py:Event.public), masked."""
    out = dict(message)
    out["text"] = mask_text(message.get("text") or "")
    if message.get("attachments"):
        out["attachments"] = [{**a, "name": mask_text(a["name"])} if isinstance(a, dict) and
                              isinstance(a.get("name"), str) else a for a in message["attachments"]]
    return out


def mask_conversation(view: dict) -> dict:
    """A conversation view (storage/conversations.py:conversation_view), masked:
    the customer's name and attributes, the last message and the messages."""
    out = dict(view)
    customer = view.get("customer")
    if isinstance(customer, dict):
        out["customer"] = {**customer, "name": mask_text(customer.get("name") or ""),
                           "attributes": _mask_values(customer.get("attributes") or {})}
    if isinstance(view.get("last_message"), dict):
        out["last_message"] = mask_message(view["last_message"])
    if isinstance(view.get("messages"), list):
        out["messages"] = [mask_message(m) for m in view["messages"]]
    return out


def mask_event(payload: dict) -> dict:
    """A live event (/api/events, relays) with what it shows of people masked."""
    out = dict(payload)
    if isinstance(payload.get("message"), dict):
        out["message"] = mask_message(payload["message"])
    if isinstance(payload.get("conversation"), dict):
        out["conversation"] = mask_conversation(payload["conversation"])
    return out
