"""The settings of a `kind: discord` channel (SPEC "Channel settings that outside tests write")."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from connectors.addresses import HttpAddress, WsAddress


def _snowflake(v: object) -> object:
    """Discord ids are snowflake strings; YAML may hand over an unquoted number."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


Snowflake = Annotated[str, BeforeValidator(_snowflake), Field(pattern=r"^[0-9]{1,20}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DiscordAgents(_Section):
    """The agents' server: each conversation is a thread in `channel_id`."""
    guild_id: Snowflake
    channel_id: Snowflake


class DiscordChannel(_Section):
    """Customers write to the shop's bot in DMs (and, optionally, in a support channel of
    the shop's server, where each new post starts a conversation); agents answer in a
    thread per conversation of the agents' channel, or with slash commands."""
    kind: Literal["discord"]
    token: SecretStr  # the bot token (Developer Portal → Bot)
    api_base: HttpAddress = "https://discord.com/api/v10"  # REST base (a test fake locally)
    gateway_url: WsAddress = "wss://gateway.discord.gg"  # the gateway kefu connects to directly
    agents: DiscordAgents | None = None  # none: agents answer from the console only
    support_channel_id: Snowflake | None = None  # customers' posts in this channel open conversations
    customers: bool = True  # DMs to the bot are customer conversations
    role: str | None = None  # fixes the role of every conversation from this channel

