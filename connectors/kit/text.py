"""Split a text into the parts a platform accepts, measured the way the platform measures.

Discord and QQ count characters, Telegram UTF-16 code units (an emoji is two), WeCom
UTF-8 bytes.  A part ends, in order of preference, after a paragraph, a line, a
sentence or a word in the second half of the window, else at the last character that
fits — never inside a character.
"""
from __future__ import annotations

import re
from collections.abc import Callable

Measure = Callable[[str], int]

characters: Measure = len


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"\n"),
           re.compile(r"(?<=[。！？；…])\s*|(?<=[.!?;])\s+"), re.compile(r"[ \t\u3000]+"))


def split_text(text: str, limit: int, measure: Measure = characters) -> list[str]:
    """`text` as consecutive parts of at most `limit` by `measure`; their concatenation,
    apart from whitespace at the cuts, is `text`."""
    if limit < 1:
        raise ValueError("limit must be positive")
    parts: list[str] = []
    rest = text
    while measure(rest) > limit:
        fit = _longest_prefix(rest, limit, measure)
        cut = _preferred_cut(rest[:fit]) or fit
        head = rest[:cut].rstrip()
        parts.append(head if head else rest[:cut])
        rest = rest[cut:].lstrip() if head else rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts


def _longest_prefix(text: str, limit: int, measure: Measure) -> int:
    """Number of characters of the longest prefix whose measure is within limit (≥ 1)."""
    if measure is characters:
        return min(len(text), limit)
    lo, hi = 1, min(len(text), limit)  # no measure here counts a character as less than 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _preferred_cut(window: str) -> int | None:
    half = len(window) // 2
    for pattern in _BREAKS:
        ends = [m.end() for m in pattern.finditer(window) if m.end() > half]
        if ends:
            return ends[-1]
    return None
