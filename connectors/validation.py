"""What every inbound edge checks before anything is stored (issue 8: one crafted
message in the stream stopped the router for every customer, across restarts).

`parse_json` reads a body or frame: finite numbers only (no NaN, Infinity, 1e999),
64-bit integers, a nesting limit, and lone UTF-16 surrogates (``"\\ud800"``, which
msgpack and Redis cannot encode) refused where a client is told (HTTP, web chat)
or replaced by U+FFFD where the platform already took the message (Telegram, QQ).
The bounded types below are what the payload models are built of
(connectors/payloads.py, aggregator/agent_payloads.py); `problem` turns a
pydantic error into the sentence of a 400 answer.
"""
from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StrictFloat, StrictInt, StringConstraints
from pydantic import ValidationError

MAX_DEPTH = 16  # nesting of a whole body or frame
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class PayloadError(ValueError):
    """Input the sender must be told is wrong (400 / an error frame)."""


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def clean_text(text: str) -> str:
    """Lone surrogates replaced by U+FFFD: text a platform already accepted is kept."""
    return _SURROGATE.sub("\ufffd", text)


def parse_json(raw: bytes | str, what: str = "body", *,
               surrogates: Literal["refuse", "replace"] = "refuse", max_depth: int = MAX_DEPTH) -> Any:
    """`raw` as JSON within the limits above, or PayloadError naming `what` was wrong."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_int64)
    except PayloadError as exc:
        raise PayloadError(f"{what} {exc}") from None
    except RecursionError:
        raise PayloadError(f"{what} is nested too deeply (at most {max_depth} levels)") from None
    except (ValueError, UnicodeDecodeError):
        raise PayloadError(f"{what} is not valid JSON") from None
    return _checked(value, what, surrogates, max_depth)


def _no_constant(name: str) -> float:
    raise PayloadError(f"has a number that is not finite ({name})")


def _finite_float(s: str) -> float:
    value = float(s)
    if not math.isfinite(value):
        raise PayloadError(f"has a number that is not finite ({s[:20]})")
    return value


def _int64(s: str) -> int:
    if len(s) > 20 or not INT64_MIN <= (value := int(s)) <= INT64_MAX:
        raise PayloadError("has an integer out of the 64-bit range")
    return value


def _checked(value: Any, what: str, surrogates: str, max_depth: int) -> Any:
    """Depth and strings of a parsed value, walked without recursion."""
    replace = surrogates == "replace"

    def text(s: str) -> str:
        if _SURROGATE.search(s) is None:
            return s
        if replace:
            return clean_text(s)
        raise PayloadError(f"{what} has text with a lone UTF-16 surrogate (invalid Unicode)")

    if isinstance(value, str):
        return text(value)
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise PayloadError(f"{what} is nested too deeply (at most {max_depth} levels)")
        if isinstance(node, dict):
            for k in list(node):
                v = node[k]
                if isinstance(v, str):
                    v = node[k] = text(v)
                elif isinstance(v, (dict, list)):
                    stack.append((v, depth + 1))
                if _SURROGATE.search(k) is not None:
                    node[text(k)] = node.pop(k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, str):
                    node[i] = text(v)
                elif isinstance(v, (dict, list)):
                    stack.append((v, depth + 1))
    return value


def problem(exc: ValidationError) -> str:
    """The first thing wrong with a payload, as one sentence: ``text: Field required``."""
    err = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    return f"{where}: {err['msg']}" if where else err["msg"]


# -- bounded types the payload models are made of --------------------------------
def _id_text(v: Any) -> Any:
    """Platform ids come as strings or integers; kefu keeps them as strings."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return v


def _printable(v: str) -> str:
    if _CONTROL.search(v):
        raise ValueError("must not contain control characters")
    return v


Identifier = Annotated[str, BeforeValidator(_id_text), StringConstraints(min_length=1, max_length=256),
                       AfterValidator(_printable)]
"""A customer, message or file id: a non-empty string (or an integer), at most 256 characters."""
FreeText = Annotated[str, StringConstraints(max_length=100_000)]
"""What a person wrote; the configured `web.max_text_length` (413) is checked by the edge."""
Name = Annotated[str, StringConstraints(max_length=200)]
"""A display name or a short label."""
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]

Float = Annotated[StrictFloat, Field(allow_inf_nan=False)]

_Scalar = StrictBool | Int64 | Float | Annotated[str, StringConstraints(max_length=2000)] | None
AttributeValue = _Scalar | list[_Scalar] | dict[Annotated[str, StringConstraints(max_length=64)], _Scalar]
Attributes = Annotated[dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], AttributeValue],
                       Field(max_length=100)]
"""What a shop passes about its customer (order count, total spent, ...): at most 100 keys,
values scalar or one level of list/object, numbers finite and 64-bit."""
