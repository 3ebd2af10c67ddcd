"""The agent API's request bodies (SPEC "Agent API"), checked before any action.

Built of the same bounded types as the channels' payloads
(connectors/validation.py): a body that passes can be stored and sent on.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from connectors.validation import FreeText, Identifier

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
