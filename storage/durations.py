"""Durations in config.yaml: a plain number of seconds, or 500ms / 30s / 15m / 12h / 365d.

In the lowest layer so that every package's config models use the same parser."""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|[smhd]?)\s*")


def parse_duration(v: Any) -> Any:
    """'500ms', '90s', '15m', '12h', '90d' or a plain number of seconds -> seconds."""
    if isinstance(v, str):
        m = _DURATION.fullmatch(v)
        if not m:
            raise ValueError("must be a duration like 30s, 15m, 12h, 90d (or a number of seconds)")
        return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    return v


def _milliseconds(v: Any) -> Any:
    """A duration given in milliseconds when it is a plain number ('2s' = 2000)."""
    if isinstance(v, str) and not re.fullmatch(r"\s*\d+(\.\d+)?\s*", v):
        return round(parse_duration(v) * 1000)
    return v


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
# ... kept as whole seconds where Redis expiries use them.
WholeSeconds = Annotated[int, BeforeValidator(parse_duration)]
Milliseconds = Annotated[int, BeforeValidator(_milliseconds)]
