"""The agent API's request bodies (SPEC "Agent API"), checked before any action.

Built of the same bounded types as the channels' payloads
(connectors/validation.py): a body that passes can be stored and sent on.
`checked_body` parses a body safely and validates it against the model of its
route (`BODIES`); the handlers read the plain dict it returns.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from connectors.validation import FreeText, Identifier, PayloadError, parse_json, problem

AgentId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Login(Body):
    agent: AgentId
    password: Annotated[str, StringConstraints(max_length=1024)]


class Presence(Body):
    status: Literal["online", "away", "offline"]


class Reply(Body):
    """`text` may be empty when files are sent; `attachments` are ids from POST /api/attachments."""
    text: FreeText = ""
    attachments: Annotated[list[Identifier], Field(max_length=10)] | None = None


class Transfer(Body):
    """To an agent (`agent`) or to a role's queue (`role`)."""
    agent: AgentId | None = None
    role: AgentId | None = None


BODIES: dict[str, type[Body]] = {
    "/api/login": Login,
    "/api/presence": Presence,
    "/api/conversations/{id}/messages": Reply,
    "/api/conversations/{id}/transfer": Transfer,
}


class BodyError(ValueError):
    """What is wrong with a body, as the sentence of a 400."""


def checked_body(raw: bytes, route: str) -> dict[str, Any]:
    """`raw` parsed (connectors.validation.parse_json) and, for a route in BODIES, validated:
    the fields its model knows, coerced and bounded (None left out)."""
    try:
        data = parse_json(raw)
    except PayloadError as exc:
        raise BodyError(str(exc)) from None
    if not isinstance(data, dict):
        raise BodyError("body must be a JSON object")
    model = BODIES.get(route)
    if model is None:
        return data
    try:
        return model.model_validate(data).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise BodyError(problem(exc)) from None
