"""Checks for the server addresses channels take from config (tests point them at fakes)."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator


def http_address(v: str) -> str:
    """An http(s):// base address, without a trailing slash."""
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
        raise ValueError("must be an http:// or https:// address")
    return v.rstrip("/")


def ws_address(v: str) -> str:
    if not re.fullmatch(r"wss?://[^\s/]+(/\S*)?", v):
        raise ValueError("must be a ws:// or wss:// address")
    return v


HttpAddress = Annotated[str, AfterValidator(http_address)]
WsAddress = Annotated[str, AfterValidator(ws_address)]
