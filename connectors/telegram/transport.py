"""The bot client: Bot API calls, every send paced.

Telegram allows about one message a second per chat, 30 a second per bot and 20 a
minute per group; a message sent faster is answered 429.  Every send reserves its
slot in the scopes it falls in (connectors/kit/pacing.py, shared by every kefu
process through Redis) before it goes, so messages to one chat leave a second
apart instead of bursting into 429s.  When Telegram still answers 429, the chat
cools down for its retry_after and the send is tried again after it (a wait longer
than INLINE_RETRY_AFTER is left to the supervisor's retry).
"""
from __future__ import annotations

import datetime as dtm
import logging
from typing import Any, Awaitable, Callable

from telegram import Bot, Message, ReplyParameters
from telegram.error import RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from connectors.kit.pacing import Pacer, Scope
from connectors.kit.text import split_text, utf16_units
from connectors.validation import PayloadError, parse_json

MAX_LEN = 4096  # UTF-16 units of one message
BOT_API_DEPTH = 64  # nesting of a Bot API answer (a message quoting a message ... stays far below)
POLL_TIMEOUT = 20  # s a getUpdates long poll waits
PER_CHAT = 1.05  # s between messages to one chat (Telegram: about 1/s), a little inside
PER_BOT = 1 / 30  # s between messages of the bot (Telegram: 30/s)
GROUP_COUNT, GROUP_PERIOD = 20, 61.0  # messages to a group in any minute (Telegram: 20), a little inside
INLINE_RETRY_AFTER = 30.0  # s of a 429 a send waits out itself
INLINE_429S = 3  # 429s one send rides out before it gives up


def retry_seconds(exc: RetryAfter) -> float:
    ra = exc._retry_after if hasattr(exc, "_retry_after") else exc.retry_after
    return ra.total_seconds() if isinstance(ra, dtm.timedelta) else float(ra)


class CheckedRequest(HTTPXRequest):
    """Bot API answers read like every other inbound (connectors/validation.py): lone
    surrogates replaced, numbers finite; an answer that is not that is a TelegramError."""

    @staticmethod
    def parse_json_payload(payload: bytes) -> dict:
        try:
            return parse_json(payload.decode("utf-8", "replace"), "Bot API answer", surrogates="replace",
                              max_depth=BOT_API_DEPTH)
        except PayloadError as exc:
            raise TelegramError(f"Invalid server response: {exc}") from None


class BotClient:
    def __init__(self, token: str, api_base: str, pacer: Pacer, log: logging.Logger, channel: str):
        self.token = token
        self.api_base = api_base.rstrip("/")
        self.bot_id = token.split(":", 1)[0] or "bot"
        self.pacer = pacer
        self.log = log
        self.channel = channel
        self.bot: Bot | None = None
        self.username = ""

    async def start(self) -> Bot:
        """Connect (getMe: a wrong token fails here)."""
        self.bot = Bot(self.token, base_url=f"{self.api_base}/bot", base_file_url=f"{self.api_base}/file/bot",
                       request=CheckedRequest(connection_pool_size=16, read_timeout=30, write_timeout=30,
                                              connect_timeout=10, media_write_timeout=60),
                       get_updates_request=CheckedRequest(connection_pool_size=2, read_timeout=POLL_TIMEOUT + 10))
        await self.bot.initialize()
        self.username = self.bot.username or ""
        return self.bot

    async def stop(self) -> None:
        if self.bot is not None:
            try:
                await self.bot.shutdown()
            except Exception:
                pass
            self.bot = None

    def chat_scope(self, chat_id: int | str) -> Scope:
        return self.pacer.every(f"chat:{chat_id}", PER_CHAT)

    def scopes(self, chat_id: int | str) -> tuple[Scope, ...]:
        """Where a message to `chat_id` counts: the chat, the bot, and a group's minute."""
        scopes = [self.chat_scope(chat_id), self.pacer.every("bot", PER_BOT)]
        if int(chat_id) < 0:
            scopes.append(self.pacer.at_most(f"group:{chat_id}", GROUP_COUNT, GROUP_PERIOD))
        return tuple(scopes)

    async def pace(self, chat_id: int | str) -> None:
        """Wait for the next slot of a message to `chat_id` (then send with `paced=True`)."""
        await self.pacer.wait(*self.scopes(chat_id))

    async def call(self, chat_id: int | str, do: Callable[[], Awaitable[Any]], *, paced: bool = False) -> Any:
        """One Bot API send to `chat_id` in its slot; a 429 cools the chat down and is
        retried after its retry_after.  TelegramError for what cannot be sent now.
        `paced`: the caller already waited for the first attempt's slot."""
        too_many = 0
        while True:
            if not paced:
                await self.pace(chat_id)
            paced = False
            try:
                return await do()
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                await self.pacer.cool_down(self.chat_scope(chat_id), wait)
                too_many += 1
                self.log.info("telegram asked to slow down", extra={
                    "channel": self.channel, "retry_after": wait, "chat": chat_id})
                if too_many >= INLINE_429S or wait > INLINE_RETRY_AFTER:
                    raise

    async def send_text(self, chat_id: int, text: str, *, thread_id: int | None = None,
                        reply_to: int | None = None, paced: bool = False) -> list[Message]:
        """Send `text` (split if long); the messages sent."""
        assert self.bot is not None
        kw: dict[str, Any] = {}
        if thread_id is not None:
            kw["message_thread_id"] = thread_id
        if reply_to is not None:
            kw["reply_parameters"] = ReplyParameters(reply_to, allow_sending_without_reply=True)
        out = []
        for n, part in enumerate(split_text(text, MAX_LEN, utf16_units)):
            out.append(await self.call(chat_id, lambda p=part: self.bot.send_message(chat_id, p, **kw),
                                       paced=paced and n == 0))
        return out
