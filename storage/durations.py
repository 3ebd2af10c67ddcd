"""Durations in config.yaml: 30s, 15m, 12h, 365d (or a number of seconds)."""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(v: Any) -> Any:
    """'30s', '15m', '12h', '365d' or a number of seconds -> seconds."""
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", v)
        if not m:
            raise ValueError("must be a duration like 30s, 15m, 12h, 365d")
        return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    return v


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
