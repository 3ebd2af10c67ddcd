"""Split a text into parts a platform accepts, measured the way the platform measures.

Discord counts characters (2,000), WeCom counts UTF-8 bytes (2,048).  A part ends, in
order of preference, after a paragraph, a line, a sentence or a word in the second half
of the window, else at the last character that fits — never inside a character.
"""
from __future__ import annotations

import re
from collections.abc import Callable

_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"\n"), re.compile(r"(?<=[.!?。！？;；])\s*"),
           re.compile(r"\s+"))


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def split_text(text: str, limit: int, size: Callable[[str], int] = len) -> list[str]:
    """`text` as consecutive parts of at most `limit` by `size`; their concatenation,
    apart from whitespace at the cuts, is `text`."""
    if limit < 1:
        raise ValueError("limit must be positive")
    parts: list[str] = []
    rest = text
    while size(rest) > limit:
        fit = _longest_prefix(rest, limit, size)
        cut = _preferred_cut(rest[:fit]) or fit
        head = rest[:cut].rstrip()
        parts.append(head if head else rest[:cut])
        rest = rest[cut:].lstrip() if head else rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts


def _longest_prefix(text: str, limit: int, size: Callable[[str], int]) -> int:
    """Number of characters of the longest prefix whose size is within limit (≥ 1)."""
    lo, hi = 1, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(text[:mid]) <= limit:
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
