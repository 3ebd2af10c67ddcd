"""Order numbers in what a customer writes (SPEC "Order numbers").

Two ways a token counts:
- after 订单 / 订单号 / 单号 / order / order no (":", "：", "#", "是", spaces between):
  4–32 letters, digits, ``-`` or ``_``.  After the English words it must hold a digit
  (or be 10+ capitals): "my order never came" names no order;
- anywhere, as a whole token, when it matches ``shop.order_pattern`` — by default
  dujiaoka's 16 capitals and digits (at least one digit) or 10–24 digits with an
  optional letter prefix (acg-faka's, most shops').  Not there: a number right after
  QQ / 微信 / 手机 / phone (a contact, not an order), a date-time written as digits
  (20240115093000), part of an e-mail address or of a decimal number.
Never a date (2024-01-15), a price (1999 元, 25 USDT) or a mainland mobile number
(1[3-9] and 9 digits, with or without 86)."""
from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

_TOKEN_CHARS = "A-Za-z0-9_-"
_AFTER_KEYWORD = re.compile(rf"""
    (?:
        (?:订单号码|订单编号|订单号|订单|单号)[\s:：\#＃=是为]*
        (?P<zh>[{_TOKEN_CHARS}]{{4,32}})
    |
        (?<![A-Za-z])(?i:order)(?:\s*(?i:no\b\.?|number|num|id)|\s*[\#＃])?[\s:：\#＃=]*
        (?P<en>(?=[A-Za-z_-]*\d)[{_TOKEN_CHARS}]{{4,32}}|[A-Z]{{10,32}})
    )
    (?![{_TOKEN_CHARS}])
    """, re.VERBOSE)
# Every token after a keyword, and every default-pattern match, has 4 of these in a row:
# most messages (Chinese, no codes) are done after this one scan.
_CANDIDATE = re.compile(rf"[{_TOKEN_CHARS}]{{4}}")
DEFAULT_ORDER_PATTERN = r"(?=[A-Z]*\d)[A-Z0-9]{16}|[A-Za-z]{0,4}\d{10,24}"
_MOBILE = re.compile(r"(?:\+?86|0086)?1[3-9]\d{9}")
_CONTACT_BEFORE = re.compile(r"(?i:qq|微信|wechat|wx|vx|电话|手机|phone|tel|mobile)[\s:：号码是为]*$")
_DATE = re.compile(r"(?:19|20)\d\d[-_]\d{1,2}[-_]\d{1,2}")
_PRICE_AFTER = re.compile(r"\s*(?:元|块|圆|(?i:rmb|cny|usdt?|dollars?)(?![A-Za-z]))")
_DECIMAL_BEFORE = re.compile(r"\d[.,]$")
_DECIMAL_AFTER = re.compile(r"[.,]\d")


@lru_cache(maxsize=8)
def _anywhere(order_pattern: str | None) -> re.Pattern[str]:
    """The pattern as whole tokens: never the middle of a longer word, number or address."""
    return re.compile(rf"(?<![A-Za-z0-9_@])(?:{order_pattern or DEFAULT_ORDER_PATTERN})(?![A-Za-z0-9_@])")


def _datetime_digits(token: str) -> bool:
    formats = {12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    if not token.isdigit() or len(token) not in formats:
        return False
    try:
        datetime.strptime(token, formats[len(token)])
    except ValueError:
        return False
    return True


def find_order_numbers(text: str, order_pattern: str | None = None) -> list[str]:
    """The order numbers in `text`, each once, in the order they appear."""
    found: dict[str, int] = {}
    if _CANDIDATE.search(text):
        keyword = "单号" in text or "订单" in text or "order" in text.lower()
        for m in _AFTER_KEYWORD.finditer(text) if keyword else ():
            token = m.group("zh") or m.group("en")
            if not (_MOBILE.fullmatch(token) or _DATE.fullmatch(token) or _PRICE_AFTER.match(text, m.end())):
                found.setdefault(token, m.start())
    elif order_pattern is None:
        return []
    for m in _anywhere(order_pattern).finditer(text):
        token, start, end = m.group(), m.start(), m.end()
        if (token in found or _MOBILE.fullmatch(token) or _datetime_digits(token)
                or _CONTACT_BEFORE.search(text, max(0, start - 12), start)
                or _DECIMAL_BEFORE.search(text, max(0, start - 2), start)
                or _DECIMAL_AFTER.match(text, end) or _PRICE_AFTER.match(text, end)):
            continue
        found[token] = start
    return sorted(found, key=found.__getitem__)
