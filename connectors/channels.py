"""The settings of each channel kind kefu ships (`channels:` in config.yaml).

connectors/config.py gathers them into the `ChannelConfig` union; a kind's
model moves into its own folder (connectors/<kind>/config.py) with its code.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, HttpUrl, SecretStr, model_validator

from storage.config import Localized, Section
from storage.durations import PositiveDuration


class WebchatChannel(Section):
    kind: Literal["webchat"]
    role: str | None = None  # fixes the role of every conversation from this channel
    # Widget defaults (a shop's <script data-title= data-color= ...> overrides them):
    title: "Localized | None" = None
    color: str = Field("#1677ff", pattern=r"^#[0-9a-fA-F]{6}$")
    language: Literal["zh", "en"] | None = None  # none = the visitor's browser language
    position: Literal["right", "left"] = "right"


class ApiChannel(Section):
    """站内信: the shop's own site messages, signed HTTP in, signed webhook out."""
    kind: Literal["api"]
    secret: SecretStr  # HMAC-SHA256 key for X-Kefu-Signature, both directions
    callback_url: HttpUrl | None = None  # replies are POSTed here
    role: str | None = None
    callback_timeout: PositiveDuration = 10.0
    retries: int = Field(5, ge=0)  # attempts per delivery before it waits for the next round


class TelegramAgents(Section):
    """Agents answering from Telegram through this bot."""
    # private: each assigned conversation is pushed into the agent's private chat
    #   with the bot; the agent answers by replying to any of those messages.
    #   Suits teams of 1–5 agents.
    # team: an agents' forum supergroup, one topic per conversation; a message
    #   in the topic is the reply.  Suits larger teams (group limit ≈20 msg/min:
    #   relayed customer messages are merged when the group is busy).
    mode: Literal["off", "private", "team"] = "off"
    group_id: int | None = None  # the forum supergroup (team mode)
    # team mode: the roles whose conversations the group gets (none = all).  Everyone
    # in the group reads them, so list only roles every member may see.
    roles: list[str] | None = None


class TelegramChannel(Section):
    kind: Literal["telegram"]
    token: SecretStr  # bot token from @BotFather
    api_base: str = "https://api.telegram.org"  # Bot API server (a local one, or a test fake)
    mode: Literal["polling", "webhook"] = "polling"
    # webhook mode: Telegram POSTs to {public_url}/telegram/{channel}/webhook with this secret
    public_url: str | None = None
    webhook_secret: SecretStr | None = None
    role: str | None = None
    customers: bool = True  # private chats with the bot are customer conversations
    agents: TelegramAgents = TelegramAgents()

    @model_validator(mode="after")
    def _webhook(self) -> "TelegramChannel":
        if self.mode == "webhook" and (not self.public_url or not self.webhook_secret):
            raise ValueError("webhook mode needs public_url and webhook_secret")
        if self.agents.mode == "team" and self.agents.group_id is None:
            raise ValueError("agents.mode team needs agents.group_id (the forum supergroup)")
        return self


class QQAgents(Section):
    """Agents answering from QQ: conversations relayed to their private QQ or a group."""
    mode: Literal["off", "private", "group"] = "off"
    group_id: int | None = None  # agents' QQ group (group mode)
    # group mode: the roles whose conversations the group gets (none = all).  Everyone
    # in the group reads them, so list only roles every member may see.
    roles: list[str] | None = None


class QQChannel(Section):
    """QQ through OneBot v11 (NapCat, Lagrange.OneBot, go-cqhttp)."""
    kind: Literal["qq"]
    # reverse: the OneBot implementation connects to ws://<web.listen>/onebot/{channel}/ws
    # forward: kefu connects to `url`
    mode: Literal["reverse", "forward"] = "reverse"
    url: str | None = None  # forward mode: ws://127.0.0.1:3001
    access_token: SecretStr | None = None  # checked as "Authorization: Bearer ..." both ways
    self_id: int | None = None  # the bot's QQ number; other X-Self-ID values are refused
    auto_accept_friends: bool = False
    send_rate: float = Field(1.0, gt=0)  # messages per second the bot sends
    role: str | None = None
    customers: bool = True
    agents: QQAgents = QQAgents()

    @model_validator(mode="after")
    def _forward(self) -> "QQChannel":
        if self.mode == "forward" and not self.url:
            raise ValueError("forward mode needs url (ws://host:port of the OneBot server)")
        if self.agents.mode == "group" and self.agents.group_id is None:
            raise ValueError("agents.mode group needs agents.group_id")
        return self


class PluginChannel(Section):
    """A connector class of your own: ``class: "package.module:ClassName"``."""
    kind: Literal["plugin"]
    class_: str = Field(alias="class", pattern=r"^[\w.]+:\w+$")
    role: str | None = None
    options: dict[str, Any] = {}
