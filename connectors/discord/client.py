"""How kefu uses discord.py: one `KefuDiscordClient` per channel, pointed at the channel's
REST base and gateway.

discord.py builds every REST URL from the class attribute ``discord.http.Route.BASE`` and
connects to ``DiscordWebSocket.DEFAULT_GATEWAY`` (a plain `Client` never asks
``/gateway/bot``).  Changing those would move every client in the process, so instead each
client gets its own `RoutedHTTPClient`, which rewrites the URLs of its own requests and of
its gateway connection: two channels with different bases work side by side.  Interaction
answers are sent through that client too (discord.py's ``interaction.response`` goes by
its webhook adapter, which knows only ``Route.BASE``).

Intents: guilds, DMs, guild messages and MESSAGE_CONTENT (privileged: enable it under
Developer Portal → Bot).  DM content arrives without it; agents' thread messages need it
(without it agents can still use the slash commands).  See docs/discord.md.

Refusals a person must see are `DiscordRefusal`s with a rule name: 403 code 50007 (the
user does not accept DMs from the bot).
"""
from __future__ import annotations

import io
from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient, Route

from connectors.discord.config import DiscordChannel
from connectors.kit.text import split_text

MAX_MESSAGE = 2000  # characters per message
MAX_FILES = 10  # attachments per message
MAX_THREAD_NAME = 100
THREAD_ARCHIVE_MINUTES = 10080  # a week without activity
CANNOT_DM = 50007

RULE_DM_CLOSED = "discord_dm_closed"
EXPLANATIONS = {
    RULE_DM_CLOSED: {
        "zh": "该 Discord 用户不接收来自本机器人的私信（已关闭私信或屏蔽了机器人）；请改用其他渠道联系。",
        "en": "This Discord user does not accept direct messages from the bot (DMs closed or the bot "
              "blocked); reach them on another channel.",
    },
}

# Slash commands for agents, as on Telegram and QQ (registered in the agents' server).
_STRING = 3  # application command option type
AGENT_COMMANDS: list[dict[str, Any]] = [
    {"name": "claim", "description": "Take this conversation",
     "description_localizations": {"zh-CN": "接手这个会话"}},
    {"name": "close", "description": "Close this conversation",
     "description_localizations": {"zh-CN": "结束这个会话"}},
    {"name": "transfer", "description": "Hand this conversation to a role or an agent",
     "description_localizations": {"zh-CN": "把会话转给某个角色或客服"},
     "options": [{"type": _STRING, "name": "to", "description": "role or agent id",
                  "description_localizations": {"zh-CN": "角色或客服 ID"}, "required": True}]},
    {"name": "q", "description": "Send a quick reply",
     "description_localizations": {"zh-CN": "发送快捷回复"},
     "options": [{"type": _STRING, "name": "name", "description": "quick reply name",
                  "description_localizations": {"zh-CN": "快捷回复名称"}, "required": True}]},
    {"name": "who", "description": "Show the customer and the owner of this conversation",
     "description_localizations": {"zh-CN": "显示客户与当前负责人"}},
]


class DiscordRefusal(Exception):
    """Discord refuses this message for a reason a person must be told; `rule` names it."""

    def __init__(self, rule: str, code: int, message: str):
        super().__init__(message)
        self.rule = rule
        self.code = code

    def explain(self, lang: str = "en") -> str:
        return EXPLANATIONS[self.rule]["zh" if lang == "zh" else "en"]


def kefu_intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True  # channels and threads of the agents' server
    intents.dm_messages = True  # customers' DMs
    intents.guild_messages = True  # agents' thread messages, the support channel
    intents.message_content = True  # privileged: the text of guild messages
    return intents


def message_parts(text: str) -> list[str]:
    """A text as the messages Discord accepts (≤ 2,000 characters each)."""
    return split_text(text, MAX_MESSAGE) if text else []


class RoutedHTTPClient(HTTPClient):
    """discord.py's HTTP client with its own REST base and gateway address."""

    def __init__(self, *args: Any, api_base: str, gateway_url: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.api_base = api_base.rstrip("/")
        self.gateway_url = yarl.URL(gateway_url)

    async def request(self, route: Route, **kwargs: Any) -> Any:
        if route.url.startswith(Route.BASE):
            route.url = self.api_base + route.url[len(Route.BASE):]
        return await super().request(route, **kwargs)

    async def ws_connect(self, url: str, *, compress: int = 0):
        asked = yarl.URL(url)
        if asked.host == DiscordWebSocket.DEFAULT_GATEWAY.host:  # not a resume URL Discord gave
            url = str(self.gateway_url.with_query(asked.query))
        return await super().ws_connect(url, compress=compress)


class DiscordEvents:
    """What the connector does with what arrives; each default ignores it."""

    async def customer_message(self, message: discord.Message, where: str) -> None:
        """A customer wrote: `where` is "dm" or "support" (the support channel)."""

    async def agent_message(self, message: discord.Message) -> None:
        """An agent wrote in a conversation's thread of the agents' channel."""

    async def command(self, interaction: discord.Interaction, name: str, options: dict[str, str]) -> str:
        """An agent's slash command; the text answered to them only."""
        return ""


class KefuDiscordClient(discord.Client):
    def __init__(self, config: DiscordChannel, events: DiscordEvents | None = None, **options: Any):
        options.setdefault("chunk_guilds_at_startup", False)
        super().__init__(intents=kefu_intents(), **options)
        self.config = config
        self.events = events or DiscordEvents()
        self.http = RoutedHTTPClient(self.loop, options.get("connector"), api_base=config.api_base,
                                     gateway_url=config.gateway_url)
        self._connection.http = self.http

    async def start_with_config_token(self) -> None:
        await self.start(self.config.token.get_secret_value())

    # -- receiving ---------------------------------------------------------------------
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or (self.user is not None and message.author.id == self.user.id):
            return
        channel = message.channel
        agents = self.config.agents
        if message.guild is None:
            if self.config.customers:
                await self.events.customer_message(message, "dm")
        elif self.config.support_channel_id and str(channel.id) == self.config.support_channel_id:
            await self.events.customer_message(message, "support")
        elif (agents and isinstance(channel, discord.Thread) and str(channel.parent_id) == agents.channel_id):
            await self.events.agent_message(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        data = interaction.data or {}
        if interaction.type is not discord.InteractionType.application_command:
            return
        name = str(data.get("name") or "")
        options = {str(o.get("name")): str(o.get("value")) for o in data.get("options") or []
                   if isinstance(o, dict)}
        answer = await self.events.command(interaction, name, options)
        await self.answer_interaction(interaction, answer or "OK")

    async def answer_interaction(self, interaction: discord.Interaction, text: str, *,
                                 ephemeral: bool = True) -> None:
        route = Route("POST", "/interactions/{interaction_id}/{interaction_token}/callback",
                      interaction_id=interaction.id, interaction_token=interaction.token)
        data = {"content": message_parts(text)[0] if text else "OK", "flags": 64 if ephemeral else 0}
        await self.http.request(route, json={"type": 4, "data": data})

    # -- sending -----------------------------------------------------------------------
    async def send_parts(self, channel: discord.abc.Messageable, text: str,
                         files: list[tuple[str, bytes]] = (), *, first_part: int = 0) -> list[int]:
        """Send `text` split at 2,000 characters, the files with the last part; parts
        before `first_part` were sent already (a re-send after a crash).  The ids sent."""
        parts: list[str | None] = message_parts(text) or [None]
        sent: list[int] = []
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                if i < first_part:
                    continue
                attach = [discord.File(io.BytesIO(data), filename=name) for name, data in files] if last else []
                for start in range(0, max(len(attach), 1), MAX_FILES):
                    batch = attach[start:start + MAX_FILES]
                    kwargs: dict[str, Any] = {"content": part if start == 0 else None}
                    if batch:
                        kwargs["files"] = batch
                    msg = await channel.send(**kwargs)
                    sent.append(msg.id)
        except discord.Forbidden as exc:
            if exc.code == CANNOT_DM:
                raise DiscordRefusal(RULE_DM_CLOSED, exc.code, exc.text) from None
            raise
        return sent

    async def send_dm(self, user_id: str, text: str, files: list[tuple[str, bytes]] = (),
                      *, first_part: int = 0) -> list[int]:
        channel = await self.create_dm(discord.Object(int(user_id)))
        return await self.send_parts(channel, text, files, first_part=first_part)

    async def channel_by_id(self, channel_id: str | int) -> Any:
        return self.get_channel(int(channel_id)) or await self.fetch_channel(int(channel_id))

    async def create_thread(self, name: str) -> discord.Thread:
        """A public thread for a conversation in the agents' channel."""
        if self.config.agents is None:
            raise RuntimeError("this Discord channel has no agents' channel configured")
        parent = await self.channel_by_id(self.config.agents.channel_id)
        return await parent.create_thread(name=name[:MAX_THREAD_NAME] or "conversation",
                                          type=discord.ChannelType.public_thread,
                                          auto_archive_duration=THREAD_ARCHIVE_MINUTES)

    async def post_in_thread(self, thread_id: str | int, text: str, files: list[tuple[str, bytes]] = (),
                             *, first_part: int = 0) -> list[int]:
        return await self.send_parts(await self.channel_by_id(thread_id), text, files, first_part=first_part)

    async def rename_thread(self, thread_id: str | int, name: str) -> None:
        thread = await self.channel_by_id(thread_id)
        await thread.edit(name=name[:MAX_THREAD_NAME])

    async def archive_thread(self, thread_id: str | int, name: str | None = None) -> None:
        """Close a conversation's thread (renamed first when `name` is given)."""
        thread = await self.channel_by_id(thread_id)
        changes: dict[str, Any] = {"archived": True}
        if name:
            changes["name"] = name[:MAX_THREAD_NAME]
        await thread.edit(**changes)

    async def register_commands(self) -> list[dict[str, Any]]:
        """Put kefu's agent commands in the agents' server (replacing what was there)."""
        if self.config.agents is None or self.application_id is None:
            return []
        return await self.http.bulk_upsert_guild_commands(self.application_id, self.config.agents.guild_id,
                                                          AGENT_COMMANDS)
