"""Updates in: long polling (only by the process holding the bot's lease) or the webhook.

An update is confirmed to Telegram — the next getUpdates offset, or the webhook's
200 — only after its message is durably in the stream; a message seen twice is
stored once (platform id "{chat_id}:{message_id}").  Private chats are customers
(``/start``, the button a new customer presses, is their first message like any
other, so the router sends its welcome), unless the account is a linked agent's;
the agents' group goes to the agents' bridge.
"""
from __future__ import annotations

import asyncio
import hmac
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError
from telegram import Message, Update
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter, TimedOut

from connectors.http import json_error
from connectors.payloads import TelegramUpdate
from connectors.telegram.codec import describe_other, display_name, language, platform_id
from connectors.telegram.transport import BOT_API_DEPTH, POLL_TIMEOUT, retry_seconds
from connectors.validation import PayloadError, parse_json, problem

if TYPE_CHECKING:
    from connectors.telegram.connector import TelegramConnector

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message"]


class TelegramInbound:
    def __init__(self, conn: "TelegramConnector"):
        self.conn = conn
        self.client = conn.client
        self.ctx = conn.ctx
        self.log = conn.log
        self.offset: int | None = None
        self.last_poll: float | None = None
        self.conflicts = 0

    # -- polling -----------------------------------------------------------------
    async def load_offset(self) -> None:
        stored = await self.ctx.redis.get(self.ctx.keys.tg_offset(self.client.bot_id))
        self.offset = int(stored) if stored else None

    async def poll(self, stopping: asyncio.Event) -> None:
        """getUpdates until `stopping` (or the lease is lost and this task cancelled)."""
        conn, delay = self.conn, 0.5
        while not stopping.is_set():
            try:
                updates = await self.client.bot.get_updates(offset=self.offset, timeout=POLL_TIMEOUT,
                                                            allowed_updates=ALLOWED_UPDATES,
                                                            read_timeout=POLL_TIMEOUT + 10)
                self.last_poll = time.time()
                for update in updates:
                    await self.process(update)
                    self.offset = update.update_id + 1
                    await self.ctx.redis.set(self.ctx.keys.tg_offset(self.client.bot_id), self.offset)
                delay = 0.5
                if conn.state == "running":
                    conn.last_error = None
            except asyncio.CancelledError:
                raise
            except Conflict as exc:
                self.conflicts += 1
                conn.last_error = f"getUpdates conflict: {exc}"[:300]
                self.log.warning("telegram answered 409 to getUpdates", extra={"channel": conn.name})
                await _sleep_or(stopping, 2.0)
            except RetryAfter as exc:
                await _sleep_or(stopping, retry_seconds(exc))
            except InvalidToken as exc:
                conn.last_error = f"invalid token: {exc}"[:300]
                await _sleep_or(stopping, 30.0)
            except Exception as exc:  # network, Redis: keep polling after a pause
                conn.last_error = f"poll: {type(exc).__name__}: {exc}"[:300]
                self.log.warning("telegram poll failed", extra={"channel": conn.name, "error": conn.last_error})
                await _sleep_or(stopping, delay)
                delay = min(delay * 2, 10.0)

    # -- webhook -----------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        config = self.conn.config
        secret = config.webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if config.mode != "webhook" or secret is None or not hmac.compare_digest(
                given.encode(), secret.get_secret_value().encode()):
            return json_error(401, "invalid or missing X-Telegram-Bot-Api-Secret-Token")
        if self.client.bot is None or self.conn.state != "running":
            return json_error(503, "telegram channel is restarting")
        try:
            data = parse_json(await request.read(), surrogates="replace", max_depth=BOT_API_DEPTH)
            TelegramUpdate.model_validate(data)
            update = Update.de_json(data, self.client.bot)
        except PayloadError as exc:
            return json_error(400, str(exc))
        except ValidationError as exc:
            return json_error(400, f"not a Telegram update ({problem(exc)})")
        except Exception:
            return json_error(400, "not a Telegram update")
        await self.process(update)  # on an error Telegram re-delivers (no 2xx)
        return web.json_response({"ok": True})

    # -- one update ----------------------------------------------------------------
    async def process(self, update: Update) -> None:
        """Handle one update.  Redis or network trouble propagates, so the update is not
        confirmed and comes again; an update that cannot be handled at all is logged and
        skipped, so it cannot block every later customer."""
        name = self.conn.name
        try:
            TelegramUpdate.model_validate(update.to_dict())
        except ValidationError as exc:
            self.log.warning("telegram update ignored", extra={"channel": name, "update": update.update_id,
                                                               "problem": problem(exc)})
            return
        try:
            await self.handle(update)
        except (RedisError, OSError, asyncio.TimeoutError, TimedOut):
            raise
        except NetworkError as exc:
            if not isinstance(exc, BadRequest):
                raise
            self.log.exception("telegram update skipped", extra={"channel": name, "update": update.update_id})
        except Exception:
            self.log.exception("telegram update skipped", extra={"channel": name, "update": update.update_id})

    async def handle(self, update: Update) -> None:
        msg = update.message
        if msg is None or msg.chat is None:
            return
        config, agents = self.conn.config, self.conn.agents
        if msg.chat.type == "private":
            user = msg.from_user
            if user is None or user.is_bot:
                return
            linking = (msg.text or "").startswith("/link")
            if config.agents.mode != "off" or linking:
                agent = await agents.linked_agent(user.id)
                if agent is not None or linking:
                    await agents.handle(update, msg, agent)
                    return
            if config.customers:
                await self.customer_message(msg)
            return
        if config.agents.mode == "team" and msg.chat.id == config.agents.group_id:
            await agents.handle(update, msg, None)

    async def customer_message(self, msg: Message) -> None:
        user = msg.from_user
        chat_id = msg.chat.id
        text = msg.text or msg.caption or ""
        attachments = await self.conn.files.attachments(msg)
        if not text and not attachments:
            text = describe_other(msg)
            if not text:
                return
        meta: dict[str, Any] = {"telegram": {"chat_id": chat_id, "message_id": msg.message_id}}
        if user.username:
            meta["telegram"]["username"] = user.username
        if lang := language(user):
            meta["language"] = lang
        if msg.reply_to_message is not None:  # the customer quotes a reply of ours
            quoted = await self.ctx.refs.recall(platform_id(chat_id, msg.reply_to_message.message_id))
            if quoted and quoted.get("id"):
                meta["reply_to_message"] = quoted["id"]
        text = text[:self.ctx.settings.web.max_text_length]
        event = self.conn.inbound_event(str(chat_id), text, platform_msg_id=platform_id(chat_id, msg.message_id),
                                        sender_name=display_name(user), attachments=attachments, meta=meta,
                                        platform_ts=msg.date.timestamp() if msg.date else None)
        await self.conn.receive(event)


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
