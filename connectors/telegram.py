"""Telegram through the Bot API (python-telegram-bot), for customers and agents.

Customer side
-------------
- Updates come by long polling (``getUpdates``) or by webhook
  (``POST /telegram/{channel}/webhook``, ``X-Telegram-Bot-Api-Secret-Token``
  checked; 401 and nothing stored on a mismatch).
- Only one kefu process polls a bot: a Redis lease (``SET NX PX``, renewed
  every third of its lifetime, taken over at once when the holder's process
  heartbeat is gone).  The lease holder is also the one process that relays
  conversations to agents (connectors/telegram_agents.py).
- An update is confirmed to Telegram (the next ``getUpdates`` offset, or the
  webhook's 200) only after its message is durably in the stream; a message
  seen twice is stored once (``platform_msg_id`` = ``"{chat_id}:{message_id}"``).
- Private chats only.  Text, photos and documents (also voice, audio, video,
  animations): files are downloaded through ``getFile`` and kept under
  ``state_dir/attachments/telegram/<channel>/`` with a name derived from the
  bot token and Telegram's file_unique_id (unguessable, stable), and served at
  ``GET /telegram/{channel}/files/{name}`` (images inline, anything else as a
  download; the unguessable name is the capability, like a signed URL, so the
  console's <img> tags work without a bearer token).  A process that does not have the file fetches it from Telegram
  again (its file_id is kept in Redis), so several processes need no shared disk.
- ``/start`` (the button a new customer presses) is stored as the customer's
  first message like any other text, so the router opens the conversation and
  sends its welcome (routing/automation.py templates) through this channel.
- ``send()``: text over 4096 characters is split at a paragraph, else line,
  else sentence, else word boundary, else hard; parts already taken are
  remembered, so a re-send after a crash does not repeat them.  429
  ``retry_after`` is honoured (shared with every process through Redis) and the
  send retried; sending stays within ≈1 msg/s per chat (3 in 3 s), 30 msg/s per
  bot and 20 msg/min per group thanks to a sliding-window limiter in Redis that
  every kefu process shares.
"""
from __future__ import annotations

import asyncio
import datetime as dtm
import hashlib
import hmac
import mimetypes
import os
import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError
from telegram import Bot, InputFile, Message, ReplyParameters, Update
from telegram.error import (BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter,
                            TelegramError, TimedOut)
from telegram.request import HTTPXRequest

from connectors.base import Connector, DeliveryError
from connectors.channels import TelegramChannel
from connectors.http import json_error
from connectors.payloads import TelegramUpdate
from connectors.validation import PayloadError, parse_json, problem
from storage.attachments import human_size
from storage.events import Event

MAX_LEN = 4096
BOT_API_DEPTH = 64  # nesting of a Bot API answer (a message quoting a message ... stays far below)
MAX_CAPTION = 1024
POLL_TIMEOUT = 20  # s a getUpdates long poll waits
LEASE_TTL = 10.0  # s the poll/relay lease lives without renewal
MAX_DOWNLOAD = 20 * 1024 * 1024
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message"]
DONE_TTL = 3 * 86400
SENT_PARTS_TTL = 7 * 86400

# Sliding windows (count, milliseconds), kept a little inside Telegram's limits.
RATE_PRIVATE = (3, 3000)  # ≈1 msg/s per chat, bursts of 3
RATE_GROUP = (20, 61000)  # 20 msg/min per group
RATE_BOT = (30, 1000)  # 30 msg/s per bot

_LEASE = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, ARGV[1]}
end
if ARGV[3] == '1' or redis.call('EXISTS', ARGV[4] .. cur) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {2, ARGV[1]}
end
return {0, cur}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] cooldown key, KEYS[2..] window keys; ARGV: member, then (limit, window ms) per window key.
_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = redis.call('PTTL', KEYS[1])
if wait < 0 then wait = 0 end
for i = 2, #KEYS do
  local limit, win = tonumber(ARGV[2 * i - 2]), tonumber(ARGV[2 * i - 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - win)
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + win - now + 1
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2 * i - 1])
end
return 0
"""


def retry_seconds(exc: RetryAfter) -> float:
    ra = exc._retry_after if hasattr(exc, "_retry_after") else exc.retry_after
    return ra.total_seconds() if isinstance(ra, dtm.timedelta) else float(ra)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _prefix_within(text: str, limit: int) -> int:
    """Largest n such that text[:n] is at most `limit` UTF-16 code units."""
    if utf16_len(text) <= limit:
        return len(text)
    n, units = 0, 0
    for ch in text:
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            break
        n += 1
    return n


_SENTENCE_END = "。！？；!?;…"


def _best_cut(window: str) -> int:
    """Where to end a part inside `window`: the latest paragraph break in its second
    half, else line break, else sentence end, else space, else the window's end."""
    half = len(window) // 2
    for pos in (window.rfind("\n\n"), window.rfind("\n")):
        if pos >= half:
            return pos
    for i in range(len(window) - 1, half - 1, -1):
        ch = window[i]
        if ch in _SENTENCE_END or (ch == "." and i + 1 < len(window) and window[i + 1].isspace()):
            return i + 1
    pos = max(window.rfind(" "), window.rfind("\u3000"), window.rfind("\t"))
    if pos >= half:
        return pos
    return len(window)


def split_text(text: str, limit: int = MAX_LEN) -> list[str]:
    """Split `text` into parts Telegram accepts (at most `limit` UTF-16 units each), at the
    most sensible boundary: paragraph, line, sentence, word, else hard."""
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        window = rest[:_prefix_within(rest, limit)]
        cut = _best_cut(window) or len(window)
        head, rest = window[:cut].rstrip(), rest[cut:].lstrip()
        if head:
            parts.append(head)
    if rest or not parts:
        parts.append(rest)
    return parts


def display_name(user: Any) -> str:
    if user is None:
        return ""
    name = " ".join(p for p in (user.first_name, user.last_name) if p).strip()
    return name or (f"@{user.username}" if user.username else str(user.id))


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


class RateLimiter:
    """Telegram's send limits, shared by every kefu process through Redis."""

    def __init__(self, redis, keys, bot_id: str):
        self.redis, self.keys, self.bot = redis, keys, bot_id
        self._script = redis.register_script(_RATE)

    async def acquire(self, chat_id: int | str, group: bool = False) -> None:
        chat = str(chat_id)
        limit, win = RATE_GROUP if group else RATE_PRIVATE
        keys = [self.keys.tg_cooldown(self.bot, chat), self.keys.tg_rate(self.bot, f"chat:{chat}"),
                self.keys.tg_rate(self.bot, "bot")]
        args = [os.urandom(8).hex(), limit, win, *RATE_BOT]
        while True:
            wait = int(await self._script(keys=keys, args=args))
            if wait <= 0:
                return
            await asyncio.sleep(wait / 1000)

    async def cooldown(self, chat_id: int | str, seconds: float) -> None:
        await self.redis.set(self.keys.tg_cooldown(self.bot, str(chat_id)), "1",
                             px=max(1, int(seconds * 1000)))


class TelegramConnector(Connector):
    kind = "telegram"
    config: TelegramChannel

    def __init__(self, ctx):
        super().__init__(ctx)
        self.keys = ctx.bus.keys
        self.redis = ctx.bus.redis
        token = self.config.token.get_secret_value()
        self._token = token
        self.bot_id = token.split(":", 1)[0] or "bot"
        self.bot: Bot | None = None
        self.username = ""
        self.limiter = RateLimiter(self.redis, self.keys, self.bot_id)
        self._lease_script = self.redis.register_script(_LEASE)
        self._release_script = self.redis.register_script(_RELEASE)
        self.me_id = ctx.bus.consumer  # the process id other processes see in the lease
        self.leader = False
        self.lease_holder: str | None = None
        self._tasks: list[asyncio.Task] = []
        self._poll_task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.offset: int | None = None
        self.last_poll: float | None = None
        self.conflicts = 0
        self.files_dir = Path(ctx.settings.state_dir) / "attachments" / "telegram" / self.name
        from connectors.telegram_agents import TelegramAgentBridge
        self.agents = TelegramAgentBridge(self)

    # -- lifecycle --------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"/telegram/{self.name}/webhook", self.webhook),
                web.get(f"/telegram/{self.name}/files/{{file}}", self.serve_file)]

    def _make_bot(self) -> Bot:
        base = self.config.api_base.rstrip("/")
        return Bot(self._token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot",
                   request=CheckedRequest(connection_pool_size=16, read_timeout=30, write_timeout=30,
                                          connect_timeout=10, media_write_timeout=60),
                   get_updates_request=CheckedRequest(connection_pool_size=2,
                                                      read_timeout=POLL_TIMEOUT + 10))

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self.bot = self._make_bot()
        await self.bot.initialize()  # getMe: a wrong token fails here
        self.username = self.bot.username or ""
        if self.config.mode == "webhook":
            url = f"{self.config.public_url.rstrip('/')}/telegram/{self.name}/webhook"
            await self.bot.set_webhook(url, secret_token=self.config.webhook_secret.get_secret_value(),
                                       allowed_updates=ALLOWED_UPDATES)
        else:
            await self.bot.delete_webhook()  # getUpdates is refused while a webhook is set
        stored = await self.redis.get(self.keys.tg_offset(self.bot_id))
        self.offset = int(stored) if stored else None
        self._tasks = [asyncio.create_task(self._lease_loop(), name=f"tg-lease-{self.name}")]

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [t for t in [*self._tasks, self._poll_task] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._poll_task = [], None
        await self.agents.stop()
        if self.leader:
            self.leader = False
            try:
                await self._release_script(keys=[self.keys.tg_lease(self.bot_id)], args=[self.me_id])
            except Exception:
                pass
        if self.bot is not None:
            try:
                await self.bot.shutdown()
            except Exception:
                pass
            self.bot = None

    def health(self) -> dict[str, Any]:
        out = super().health()
        out.update({"mode": self.config.mode, "leader": self.leader, "lease_holder": self.lease_holder,
                    "agents": self.config.agents.mode, "bot": self.username or None})
        if self.config.mode == "polling":
            out["polling"] = self._poll_task is not None and not self._poll_task.done()
            out["last_poll"] = self.last_poll
            out["conflicts"] = self.conflicts
        return out

    # -- the lease: one poller / relayer per bot ----------------------------------
    async def _lease_loop(self) -> None:
        keys = self.ctx.bus.keys
        while not self._stopping.is_set():
            try:
                if not self.leader:
                    # our own heartbeat first, so nobody takes the lease from us as "dead"
                    await self.ctx.bus.heartbeat(self.ctx.settings.bus.heartbeat_ttl)
                got, holder = await self._lease_script(
                    keys=[keys.tg_lease(self.bot_id)],
                    args=[self.me_id, int(LEASE_TTL * 1000), "1" if self.ctx.bus.exclusive else "0",
                          keys.consumer_alive("")])
                self.lease_holder = holder.decode() if isinstance(holder, bytes) else holder
                if self.last_error and self.last_error.startswith("lease:"):
                    self.last_error = None
                if got and not self.leader:
                    self.leader = True
                    self.log.info("telegram lease taken", extra={"channel": self.name})
                    if self.config.mode == "polling":
                        self._poll_task = asyncio.create_task(self._poll_loop(), name=f"tg-poll-{self.name}")
                    self.agents.became_leader()
                elif not got and self.leader:
                    self.log.warning("telegram lease lost", extra={"channel": self.name,
                                                                   "holder": self.lease_holder})
                    await self._lose_lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis away: we cannot renew, so we must assume the lease is lost.
                self.last_error = f"lease: {type(exc).__name__}: {exc}"[:300]
                if self.leader:
                    await self._lose_lead()
            await _sleep_or(self._stopping, LEASE_TTL / 3 if self.leader else 1.0)

    async def _lose_lead(self) -> None:
        self.leader = False
        if self._poll_task is not None:
            self._poll_task.cancel()
            await asyncio.gather(self._poll_task, return_exceptions=True)
            self._poll_task = None
        self.agents.lost_leadership()

    # -- polling -----------------------------------------------------------------
    async def _poll_loop(self) -> None:
        delay = 0.5
        while self.leader and not self._stopping.is_set():
            try:
                updates = await self.bot.get_updates(offset=self.offset, timeout=POLL_TIMEOUT,
                                                     allowed_updates=ALLOWED_UPDATES,
                                                     read_timeout=POLL_TIMEOUT + 10)
                self.last_poll = time.time()
                for update in updates:
                    await self.process(update)
                    self.offset = update.update_id + 1
                    await self.redis.set(self.keys.tg_offset(self.bot_id), self.offset)
                delay = 0.5
                if self.state == "running":
                    self.last_error = None
            except asyncio.CancelledError:
                raise
            except Conflict as exc:
                self.conflicts += 1
                self.last_error = f"getUpdates conflict: {exc}"[:300]
                self.log.warning("telegram answered 409 to getUpdates", extra={"channel": self.name})
                await _sleep_or(self._stopping, 2.0)
            except RetryAfter as exc:
                await _sleep_or(self._stopping, retry_seconds(exc))
            except InvalidToken as exc:
                self.last_error = f"invalid token: {exc}"[:300]
                await _sleep_or(self._stopping, 30.0)
            except Exception as exc:  # network, Redis: keep polling after a pause
                self.last_error = f"poll: {type(exc).__name__}: {exc}"[:300]
                self.log.warning("telegram poll failed", extra={"channel": self.name, "error": self.last_error})
                await _sleep_or(self._stopping, delay)
                delay = min(delay * 2, 10.0)

    # -- webhook -----------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        secret = self.config.webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if self.config.mode != "webhook" or secret is None or not hmac.compare_digest(
                given.encode(), secret.get_secret_value().encode()):
            return json_error(401, "invalid or missing X-Telegram-Bot-Api-Secret-Token")
        if self.bot is None or self.state != "running":
            return json_error(503, "telegram channel is restarting")
        try:
            data = parse_json(await request.read(), surrogates="replace", max_depth=BOT_API_DEPTH)
            TelegramUpdate.model_validate(data)
            update = Update.de_json(data, self.bot)
        except PayloadError as exc:
            return json_error(400, str(exc))
        except ValidationError as exc:
            return json_error(400, f"not a Telegram update ({problem(exc)})")
        except Exception:
            return json_error(400, "not a Telegram update")
        await self.process(update)  # on an error Telegram re-delivers (no 2xx)
        return web.json_response({"ok": True})

    # -- inbound -----------------------------------------------------------------
    async def process(self, update: Update) -> None:
        """Handle one update.  Redis or network trouble propagates, so the update is not
        confirmed and comes again; an update that cannot be handled at all is logged and
        skipped, so it cannot block every later customer."""
        try:
            TelegramUpdate.model_validate(update.to_dict())
        except ValidationError as exc:
            self.log.warning("telegram update ignored", extra={"channel": self.name, "update": update.update_id,
                                                               "problem": problem(exc)})
            return
        try:
            await self.handle_update(update)
        except (RedisError, OSError, asyncio.TimeoutError, TimedOut):
            raise
        except NetworkError as exc:
            if not isinstance(exc, BadRequest):
                raise
            self.log.exception("telegram update skipped", extra={"channel": self.name, "update": update.update_id})
        except Exception:
            self.log.exception("telegram update skipped", extra={"channel": self.name, "update": update.update_id})

    async def handle_update(self, update: Update) -> None:
        msg = update.message
        if msg is None or msg.chat is None:
            return
        agents = self.config.agents
        if msg.chat.type == "private":
            user = msg.from_user
            if user is None or user.is_bot:
                return
            if agents.mode != "off" or (msg.text or "").startswith("/link"):
                agent = await self.ctx.actions.linked_agent("telegram", user.id)
                if agent is not None or (msg.text or "").startswith("/link"):
                    await self.agents.handle(update, msg, agent)
                    return
            if self.config.customers:
                await self._customer_message(msg)
            return
        if agents.mode == "team" and msg.chat.id == agents.group_id:
            await self.agents.handle(update, msg, None)

    async def _customer_message(self, msg: Message) -> None:
        user = msg.from_user
        chat_id = msg.chat.id
        pid = f"{chat_id}:{msg.message_id}"
        text = msg.text or msg.caption or ""
        attachments = await self._attachments(msg)
        if not text and not attachments:
            text = _describe_other(msg)
            if not text:
                return
        meta: dict[str, Any] = {"telegram": {"chat_id": chat_id, "message_id": msg.message_id}}
        if user.username:
            meta["telegram"]["username"] = user.username
        if user.language_code:
            meta["language"] = "zh" if user.language_code.lower().startswith("zh") else user.language_code[:2]
        limit = self.ctx.settings.web.max_text_length
        if len(text) > limit:
            text = text[:limit]
        event = self.inbound_event(str(chat_id), text, platform_msg_id=pid, sender_name=display_name(user),
                                   attachments=attachments, meta=meta,
                                   platform_ts=msg.date.timestamp() if msg.date else None)
        await self.receive(event)

    # -- attachments ---------------------------------------------------------------
    @staticmethod
    def _files_of(msg: Message) -> list[tuple[Any, str, str | None]]:
        """(file object, mime, file name) of each file a message carries."""
        found: list[tuple[Any, str, str | None]] = []
        if msg.photo:
            found.append((msg.photo[-1], "image/jpeg", None))
        for attr, default_mime in (("document", "application/octet-stream"), ("video", "video/mp4"),
                                   ("audio", "audio/mpeg"), ("voice", "audio/ogg"),
                                   ("animation", "video/mp4"), ("video_note", "video/mp4")):
            obj = getattr(msg, attr, None)
            if obj is not None and not (attr == "document" and msg.animation is not None):
                found.append((obj, getattr(obj, "mime_type", None) or default_mime,
                              getattr(obj, "file_name", None)))
        return found

    async def _attachments(self, msg: Message) -> list[dict[str, Any]]:
        out = []
        for obj, mime, fname in self._files_of(msg):
            out.append(await self._store_file(obj.file_id, obj.file_unique_id, mime, fname,
                                              getattr(obj, "file_size", None)))
        return out

    async def keep_files(self, msg: Message) -> tuple[list[dict[str, Any]], str | None]:
        """An agent's files, kept by kefu (storage/attachments.py) so they can go to a
        customer on any channel; or a sentence for the agent saying why not."""
        out = []
        limit = min(MAX_DOWNLOAD, self.ctx.settings.web.max_upload_bytes)
        for obj, mime, fname in self._files_of(msg):
            if (getattr(obj, "file_size", None) or 0) > limit:
                return [], f"that file is larger than {human_size(limit)}"
            try:
                data = bytes(await (await self.bot.get_file(obj.file_id)).download_as_bytearray())
            except TelegramError as exc:
                return [], f"could not fetch the file from Telegram ({exc})"
            kept = await self.ctx.files.put(data, fname or ("photo.jpg" if msg.photo else "file"), mime)
            out.append({**kept.public(), "telegram_file_id": obj.file_id, "telegram_bot": self.bot_id})
        return out, None

    def _file_name(self, unique_id: str, mime: str, fname: str | None) -> str:
        digest = hashlib.sha256(f"{self._token}:{unique_id}".encode()).hexdigest()[:32]
        ext = Path(fname).suffix.lower() if fname else (mimetypes.guess_extension(mime) or "")
        if not re.fullmatch(r"\.[a-z0-9]{1,8}", ext or ""):
            ext = ""
        return digest + ext

    async def _store_file(self, file_id: str, unique_id: str, mime: str, fname: str | None,
                          size: int | None) -> dict[str, Any]:
        name = self._file_name(unique_id, mime, fname)
        display = fname or ("photo" + (Path(name).suffix or ".jpg") if mime.startswith("image/") else name)
        att: dict[str, Any] = {"type": mime, "name": display, "url": f"/telegram/{self.name}/files/{name}",
                               "size": size, "telegram_file_id": file_id, "telegram_bot": self.bot_id}
        await self.redis.hset(self.keys.tg_file(self.name, name),
                              mapping={"file_id": file_id, "mime": mime, "name": display})
        if size is not None and size > MAX_DOWNLOAD:
            att["error"] = "file larger than 20 MB: Telegram does not let bots download it"
            return att
        try:
            await self._download(file_id, name)
        except TelegramError as exc:
            att["error"] = f"download failed: {exc}"[:200]
        return att

    async def _download(self, file_id: str, name: str) -> Path:
        path = self.files_dir / name
        if path.exists():
            return path
        f = await self.bot.get_file(file_id)
        data = await f.download_as_bytearray()
        self.files_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
        await asyncio.to_thread(_write_file, tmp, bytes(data))
        os.replace(tmp, path)
        return path

    async def serve_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if not re.fullmatch(r"[0-9a-f]{32}(\.[a-z0-9]{1,8})?", name):
            return json_error(404, "no such file")
        info = {k.decode(): v.decode() for k, v in
                (await self.redis.hgetall(self.keys.tg_file(self.name, name))).items()}
        if not info:
            return json_error(404, "no such file")
        path = self.files_dir / name
        if not path.exists():
            if self.bot is None:
                return json_error(503, "telegram channel is restarting")
            try:
                await self._download(info["file_id"], name)
            except TelegramError:
                return json_error(404, "file no longer available from Telegram")
        mime = info.get("mime") or "application/octet-stream"
        headers = {"Cache-Control": "private, max-age=86400", "Content-Security-Policy": "sandbox",
                   "X-Content-Type-Options": "nosniff"}
        if not mime.startswith("image/") or mime == "image/svg+xml":
            mime = "application/octet-stream"
            safe = re.sub(r'[^\w.\- ]', "_", info.get("name") or name)
            headers["Content-Disposition"] = f'attachment; filename="{safe}"'
        return web.FileResponse(path, headers={**headers, "Content-Type": mime})

    # -- outbound ------------------------------------------------------------------
    async def send(self, event: Event) -> None:
        if self.bot is None:
            raise RuntimeError("connector not started")
        try:
            chat_id = int(event.customer_id)
        except ValueError:
            raise DeliveryError(f"not a Telegram chat id: {event.customer_id!r}", permanent=True) from None
        text = event.text or ""
        files = []
        for a, link in zip(event.attachments or [], self.file_links(event.attachments or [])):
            if (file := await self.sendable_file(a)) is not None:
                files.append(file)
            else:
                text += f"\n📎 {link['name']}" + (f": {link['url']}" if link["url"] else "")
        parts: list[tuple[str, Any]] = [("text", p) for p in split_text(text.strip())] if text.strip() else []
        parts += [("file", f) for f in files]
        done_key = self.keys.tg_parts_sent(self.name, event.id)
        already = int(await self.redis.get(done_key) or 0)
        for i, (what, part) in enumerate(parts):
            if i < already:
                continue  # taken before a crash or a failed later part
            if what == "text":
                await self._call(chat_id, lambda p=part: self.bot.send_message(chat_id, p))
            else:
                await self._call(chat_id, lambda f=part: f[0](chat_id, f[1]))
            await self.redis.set(done_key, i + 1, ex=SENT_PARTS_TTL)

    async def sendable_file(self, a: dict) -> tuple[Any, InputFile | str] | None:
        """(send_photo or send_document, the file) for an attachment this bot can send: one
        of its own files (by file id) or one kefu keeps (uploaded); None otherwise."""
        if a.get("telegram_file_id") and a.get("telegram_bot") == self.bot_id:
            file: InputFile | str = a["telegram_file_id"]
        elif a.get("id") and (kept := await self.ctx.files.get(a["id"])) is not None:
            file = InputFile(kept.data, filename=kept.name)
        else:
            return None
        return (self.bot.send_photo if str(a.get("type") or "").startswith("image/") else self.bot.send_document,
                file)

    async def send_text(self, chat_id: int, text: str, *, thread_id: int | None = None,
                        reply_to: int | None = None, group: bool = False,
                        acquired: bool = False) -> list[Message]:
        """Send `text` (split if long) within the rate limits; returns the messages sent."""
        out = []
        for n, part in enumerate(split_text(text)):
            kw: dict[str, Any] = {}
            if thread_id is not None:
                kw["message_thread_id"] = thread_id
            if reply_to is not None:
                kw["reply_parameters"] = ReplyParameters(reply_to, allow_sending_without_reply=True)
            out.append(await self._call(chat_id, lambda p=part, k=kw: self.bot.send_message(chat_id, p, **k),
                                        group=group, for_agents=True, acquired=acquired and n == 0))
        return out

    async def _call(self, chat_id: int, do, *, group: bool = False, for_agents: bool = False,
                    acquired: bool = False):
        """One Bot API send within the limits; 429 waits and retries; errors become DeliveryError
        (or propagate as TelegramError for agent-side sends, which handle them).
        `acquired`: the caller already took the rate slot for the first attempt."""
        attempts = 0
        while True:
            if not acquired:
                await self.limiter.acquire(chat_id, group=group or chat_id < 0)
            acquired = False
            try:
                return await do()
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                await self.limiter.cooldown(chat_id, wait)
                attempts += 1
                self.log.info("telegram asked to slow down", extra={"channel": self.name, "retry_after": wait})
                if attempts > 5:
                    if for_agents:
                        raise
                    raise DeliveryError(f"flood control: retry after {wait}s", retry_after=wait) from None
                await asyncio.sleep(wait)
            except (Forbidden, BadRequest) as exc:
                if for_agents:
                    raise
                raise DeliveryError(f"telegram refused: {exc}", permanent=True) from None
            except (TimedOut, NetworkError) as exc:
                if for_agents:
                    raise
                raise DeliveryError(f"telegram unreachable: {exc}") from None


def _describe_other(msg: Message) -> str:
    if msg.sticker is not None:
        return f"[sticker {msg.sticker.emoji or ''}]".replace(" ]", "]")
    if msg.location is not None:
        return f"[location {msg.location.latitude:.5f},{msg.location.longitude:.5f}]"
    if msg.contact is not None:
        return f"[contact {msg.contact.first_name or ''} {msg.contact.phone_number or ''}]".strip()
    return ""


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
