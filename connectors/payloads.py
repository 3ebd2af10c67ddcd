"""The inbound payloads of the channels, as far as kefu reads them.

Each edge parses with `connectors.validation.parse_json` and validates with one
of these models before anything reaches the stream: what a model lets through is
what the router and the scripts can take (SPEC field names kept).  Fields kefu
does not read are ignored, so a platform adding some breaks nothing.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from connectors.validation import Attributes, FreeText, Identifier, Int64, Name

Short = Annotated[str, StringConstraints(max_length=64)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ApiInbound(Payload):
    """`POST /api/channels/{name}/inbound` (SPEC "API channel")."""
    customer_id: Identifier
    message_id: Identifier
    text: FreeText
    name: Name | None = None
    contact: Name | None = None
    attributes: Attributes | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is required (non-empty string)")
        return v


class WebchatMessage(Payload):
    """A visitor's ``{"type": "message", ...}`` frame (SPEC "Web chat")."""
    type: Literal["message"]
    text: FreeText = ""
    client_msg_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    attachments: Annotated[list[Identifier], Field(max_length=10)] | None = None
    name: Name | None = None


# -- platforms: what kefu reads of a Telegram update and a OneBot event ----------------
class TelegramUser(Payload):
    id: Int64
    is_bot: bool = False
    first_name: Name = ""
    last_name: Name | None = None
    username: Short | None = None
    language_code: Short | None = None


class TelegramChat(Payload):
    id: Int64
    type: Short


class TelegramMessage(Payload):
    message_id: Int64
    date: Int64 = 0
    chat: TelegramChat
    from_user: TelegramUser | None = Field(None, alias="from")
    text: FreeText | None = None
    caption: FreeText | None = None
    message_thread_id: Int64 | None = None


class TelegramUpdate(Payload):
    """The update kinds kefu asks for (``message``); others pass as ignored."""
    update_id: Annotated[Int64, Field(ge=0)]
    message: TelegramMessage | None = None


OneBotId = Int64 | Annotated[str, StringConstraints(max_length=32, pattern=r"^-?\d+$")]


class OneBotSender(Payload):
    user_id: OneBotId | None = None
    nickname: Name = ""
    card: Name = ""
    group_id: OneBotId | None = None


class OneBotSegment(Payload):
    type: Short
    data: dict[str, Any] | None = None


class OneBotEvent(Payload):
    """A OneBot v11 event frame: messages, requests, notices, meta events."""
    post_type: Short
    self_id: OneBotId | None = None
    time: Int64 | float | None = None
    message_type: Short | None = None
    sub_type: Short | None = None
    meta_event_type: Short | None = None
    request_type: Short | None = None
    user_id: OneBotId | None = None
    group_id: OneBotId | None = None
    message_id: OneBotId | None = None
    message: FreeText | Annotated[list[OneBotSegment], Field(max_length=200)] | OneBotSegment | None = None
    raw_message: FreeText | None = None
    sender: OneBotSender | None = None
    flag: Name | None = None
