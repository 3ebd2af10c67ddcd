"""A fake Telegram Bot API server for tests (aiohttp.web, 127.0.0.1, random port).

It speaks the wire protocol of https://core.telegram.org/bots/api closely enough that
the real python-telegram-bot (PTB) client works against it unchanged::

    fake = FakeTelegram(token="123456:TEST")
    url = await fake.start()                      # "http://127.0.0.1:PORT"
    bot = telegram.Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url)
    # fake.base_url == f"{url}/bot", fake.base_file_url == f"{url}/file/bot";
    # PTB appends the token itself ("…/bot" + token + "/" + method).
    app = Application.builder().token(fake.token).base_url(fake.base_url) \
        .base_file_url(fake.base_file_url).build()

Wire details reproduced (they matter to a real client):

* ``POST|GET /bot<token>/<method>``; method names are case-insensitive, like Telegram.
  Bodies may be JSON, ``application/x-www-form-urlencoded`` (what PTB sends when there
  is no file: every non-string value JSON-encoded into a form field) or
  ``multipart/form-data`` (what PTB sends with files; the file part is named after the
  parameter, e.g. ``photo``/``document``, or referenced as ``attach://<name>``).
  Query-string parameters are merged in.
* Every answer is ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error_code": N, "description": "...", ["parameters": {...}]}`` with
  the HTTP status equal to ``error_code`` (PTB maps the *HTTP status* to its exception
  classes: 400 BadRequest, 401/404 InvalidToken, 403 Forbidden, 409 Conflict, and
  ``parameters.retry_after`` to RetryAfter).
* Unknown token -> 401 "Unauthorized" (only when ``tokens`` is restricted); unknown
  method -> 404 "Not Found".
* Updates: private messages, photos, documents, forum-topic messages (with the
  Telegram quirk that a topic message that is not an explicit reply carries
  ``reply_to_message`` = the topic's ``forum_topic_created`` service message),
  callback queries, raw updates.  Delivered by ``getUpdates`` (long poll, ``offset``
  confirms, negative offsets, ``limit``, ``allowed_updates``) or, once ``setWebhook``
  is called, POSTed to the webhook with ``X-Telegram-Bot-Api-Secret-Token``; retried
  until the receiver answers 2xx, exactly like Telegram keeps pending updates.

Test controls (see the ``FakeTelegram`` docstring for the full list): ``inject_*``,
``sent``, ``requests``, ``fail_next``, ``block_user``, ``delete_topic``,
``rate_violations``, ``wait_for``, ``wait_for_sent``.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

__all__ = [
    "MAX_CAPTION_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "ApiError",
    "BotState",
    "FakeTelegram",
    "RateViolation",
    "SentMessage",
    "make_user",
]

MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024
DEFAULT_TOPIC_COLOR = 7322096
CONFLICT_POLL = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)

# Parameters whose form-encoded value must stay a string even if it looks like JSON.
_STRING_PARAMS = {
    "text", "caption", "parse_mode", "url", "secret_token", "name", "callback_query_id",
    "file_id", "icon_custom_emoji_id", "data", "language_code", "ip_address",
    "business_connection_id", "message_effect_id", "action", "photo", "document", "video",
    "audio", "voice", "animation", "sticker", "thumbnail", "description",
    "short_description", "title", "inline_message_id", "emoji", "query",
    "switch_inline_query", "certificate",
}
_SEND_METHODS = {
    "sendmessage": "text", "sendphoto": "photo", "senddocument": "document",
    "copymessage": None, "forwardmessage": None,
    "sendvideo": "video", "sendaudio": "audio", "sendvoice": "voice",
    "sendanimation": "animation", "sendsticker": "sticker",
}
_UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post", "callback_query",
    "inline_query", "chosen_inline_result", "my_chat_member", "chat_member",
    "chat_join_request", "message_reaction", "business_message",
)


class ApiError(Exception):
    """Raised inside a handler; turned into ``{"ok": false, ...}``."""

    def __init__(self, code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict:
        body: dict[str, Any] = {"ok": False, "error_code": self.code,
                                "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class SentMessage:
    """One message the bot successfully sent (or edited) through the fake.

    Also readable like a dict: ``m["text"]``.
    """

    method: str                      # canonical Bot API name, e.g. "sendMessage"
    chat_id: int | str
    text: str | None                 # text, or caption for media
    message_id: int
    thread_id: int | None = None     # message_thread_id (forum topic)
    reply_to_message_id: int | None = None
    caption: str | None = None
    parse_mode: str | None = None
    reply_markup: Any = None
    files: list[dict] = field(default_factory=list)   # {field, filename, mime_type, data, file_id}
    params: dict = field(default_factory=dict)        # every parameter as decoded
    message: dict = field(default_factory=dict)       # the Message object returned
    token: str = ""
    at: float = 0.0                  # loop.time() when accepted

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclass
class RateViolation:
    chat_id: int | str
    kind: str          # "private" (>1 msg/s sustained), "group" (>20/min), "retry_after"
    at: float
    detail: str
    token: str = ""


@dataclass
class _Failure:
    method: str | None
    status: int
    description: str | None
    retry_after: int | None
    chat_id: Any
    times: int


def make_user(user_id: int, first_name: str | None = None, *, username: str | None = None,
              last_name: str | None = None, is_bot: bool = False,
              language_code: str | None = "zh-hans") -> dict:
    """A Telegram ``User`` object."""
    u: dict[str, Any] = {"id": int(user_id), "is_bot": is_bot,
                         "first_name": first_name or f"User{user_id}"}
    if last_name:
        u["last_name"] = last_name
    if username:
        u["username"] = username
    if language_code and not is_bot:
        u["language_code"] = language_code
    return u


class _Topic:
    def __init__(self, thread_id: int, name: str, icon_color: int, created: dict):
        self.thread_id = thread_id
        self.name = name
        self.icon_color = icon_color
        self.created_message = created
        self.deleted = False
        self.closed = False


class _Chat:
    def __init__(self, chat_id: int | str, obj: dict):
        self.id = chat_id
        self.obj = obj                       # the Chat object
        # message_thread_id 1 is a forum's "General" topic: group ids start higher
        self.next_message_id = 1 if obj.get("type") == "private" else 101
        self.topics: dict[int, _Topic] = {}
        self.messages: dict[int, dict] = {}  # message_id -> Message
        self.blocked = False                 # private: user blocked the bot
        self.send_times: deque[float] = deque()
        self.bucket = 0.0
        self.bucket_at: float | None = None
        self.cooldown_until = 0.0

    @property
    def type(self) -> str:
        return self.obj["type"]

    @property
    def is_forum(self) -> bool:
        return bool(self.obj.get("is_forum"))

    def new_message_id(self) -> int:
        mid = self.next_message_id
        self.next_message_id += 1
        return mid


class BotState:
    """Everything the fake knows about one bot token."""

    def __init__(self, fake: FakeTelegram, token: str, username: str | None = None):
        self.fake = fake
        self.token = token
        head = token.split(":", 1)[0]
        bot_id = int(head) if head.isdigit() else 10_000 + len(fake._bots)
        self.user = {
            "id": bot_id, "is_bot": True, "first_name": "Kefu Test Bot",
            "username": username or f"kefu_test_{bot_id}_bot", "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
            "can_connect_to_business": False, "has_main_web_app": False,
        }
        self.pending: list[dict] = []             # not yet confirmed updates
        self.next_update_id = 100_000
        self.allowed_updates: list[str] | None = None
        self.poller: asyncio.Future | None = None # the running getUpdates, if any
        self.webhook: dict | None = None          # {"url", "secret_token", ...}
        self.webhook_task: asyncio.Task | None = None
        self.webhook_deliveries: list[dict] = []  # {"update", "status", "headers"}
        self.webhook_last_error: tuple[int, str] | None = None
        self.commands: dict[str, list] = {}
        self.callback_answers: list[dict] = []
        self.deleted: list[tuple[Any, int]] = []


class FakeTelegram:
    """Fake Telegram Bot API.

    Constructor: ``FakeTelegram(token="123456:TEST-TOKEN", *, tokens=None,
    enforce_rate_limits=False, private_rate=1.0, private_burst=3, group_per_minute=20,
    topic_reply_quirk=True, service_messages=False, webhook_retry_delay=0.05)``.
    ``tokens`` restricts the accepted tokens (others get 401); by default any token is
    a bot of its own.

    Lifecycle: ``await start() -> url``, ``await stop()``; ``url``, ``base_url``
    (``url + "/bot"``), ``base_file_url`` (``url + "/file/bot"``), ``token``;
    ``ptb_bot(token=None, **kw)`` builds a ``telegram.Bot`` pointed at the fake.

    Injection (each returns the Update dict queued, ``token=`` picks the bot):
    ``inject_private_message(chat_id, text, from_user=None, reply_to=None)``,
    ``inject_photo(chat_id, data=b"...", caption=None, thread_id=None, from_user=None)``,
    ``inject_document(chat_id, data, file_name="file.bin", mime_type=..., caption=None,
    thread_id=None, from_user=None)``,
    ``inject_topic_message(chat_id, thread_id, text, from_user=None, reply_to=None)``,
    ``inject_group_message(chat_id, text, from_user=None)``,
    ``inject_callback_query(from_user, data, message=None)``, ``inject_update(dict)``.
    A user posting into a topic the fake never saw created adopts that topic.
    API methods: getMe, getUpdates, sendMessage, sendPhoto, sendDocument, copyMessage,
    forwardMessage, getFile (+ download), createForumTopic, editForumTopic,
    closeForumTopic, reopenForumTopic, deleteForumTopic, setWebhook, deleteWebhook,
    getWebhookInfo, answerCallbackQuery, set/get/deleteMyCommands, deleteMessage,
    editMessageText, sendChatAction, getChat, setMyDescription, logOut, close.
    Chats: ``add_forum(chat_id, title)``, ``create_topic(chat_id, name)``,
    ``delete_topic(chat_id, thread_id)``, ``block_user(chat_id)``, ``topics(chat_id)``,
    ``chat_messages(chat_id)``, ``upload(data, kind, file_name, mime_type) -> file dict``.

    Observation: ``sent`` (list[SentMessage], only accepted messages, edits included
    with method "editMessageText"), ``requests`` (every API call: dict method, params,
    status, token, at), ``rate_violations`` (list[RateViolation]), ``files``
    (file_id -> {"data", "file_path", ...}), ``bot(token).webhook``,
    ``bot(token).webhook_deliveries``, ``bot(token).pending``, ``bot(token).commands``,
    ``bot(token).callback_answers``; ``await wait_for(predicate, timeout=5)`` with a
    zero-argument predicate, ``await wait_for_sent(predicate=None, count=1, timeout=5)``.

    Faults: ``fail_next(method=None, status=429, retry_after=1, description=None,
    times=1, chat_id=None)``; after a 429 carrying ``retry_after`` a further request
    to the same method/chat before the deadline is answered 429 again and recorded in
    ``rate_violations`` (kind "retry_after").
    """

    def __init__(self, token: str = "123456:TEST-TOKEN", *, tokens: list[str] | None = None,
                 enforce_rate_limits: bool = False, private_rate: float = 1.0,
                 private_burst: int = 3, group_per_minute: int = 20,
                 topic_reply_quirk: bool = True, service_messages: bool = False,
                 webhook_retry_delay: float = 0.05):
        self.token = token
        self._allowed_tokens = set(tokens) if tokens else None
        if self._allowed_tokens is not None:
            self._allowed_tokens.add(token)
        self.enforce_rate_limits = enforce_rate_limits
        self.private_rate = private_rate
        self.private_burst = private_burst
        self.group_per_minute = group_per_minute
        self.topic_reply_quirk = topic_reply_quirk
        self.service_messages = service_messages
        self.webhook_retry_delay = webhook_retry_delay

        self._bots: dict[str, BotState] = {}
        self._chats: dict[Any, _Chat] = {}
        self.files: dict[str, dict] = {}
        self._file_seq = itertools.count(1)
        self.sent: list[SentMessage] = []
        self.requests: list[dict] = []
        self.rate_violations: list[RateViolation] = []
        self._failures: list[_Failure] = []
        self._cooldowns: dict[tuple, float] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.url = ""
        self.bot(token)

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                    handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        for b in self._bots.values():
            if b.webhook_task:
                b.webhook_task.cancel()
            if b.poller and not b.poller.done():
                b.poller.cancel()
        for b in self._bots.values():
            if b.webhook_task:
                try:
                    await b.webhook_task
                except (asyncio.CancelledError, Exception):
                    pass
                b.webhook_task = None
        if self._session:
            await self._session.close()
            self._session = None
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def ptb_bot(self, token: str | None = None, **kwargs: Any):
        """A ``telegram.Bot`` wired to this fake (not yet initialized)."""
        import telegram

        return telegram.Bot(token or self.token, base_url=self.base_url,
                            base_file_url=self.base_file_url, **kwargs)

    # ------------------------------------------------------------------ helpers
    def bot(self, token: str | None = None) -> BotState:
        token = token or self.token
        state = self._bots.get(token)
        if state is None:
            state = self._bots[token] = BotState(self, token)
        return state

    def _now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    def _notify(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every state change)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ev = self._changed
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"FakeTelegram.wait_for: condition not met in {timeout}s")
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_for_sent(self, predicate: Callable[[SentMessage], bool] | None = None,
                            count: int = 1, timeout: float = 5.0) -> SentMessage:
        """Wait until ``count`` sent messages match; return the last matching one."""
        def check():
            hits = [m for m in self.sent if predicate is None or predicate(m)]
            return hits[count - 1] if len(hits) >= count else None
        return await self.wait_for(check, timeout)

    def fail_next(self, method: str | None = "sendMessage", status: int = 429,
                  retry_after: int | None = 1, description: str | None = None,
                  times: int = 1, chat_id: Any = None) -> None:
        """Make the next ``times`` calls of ``method`` (None = any) fail.

        ``status=429`` answers ``Too Many Requests: retry after N`` with
        ``parameters.retry_after``; other statuses use ``description`` (default the
        usual Telegram text for that code).
        """
        self._failures.append(_Failure(method.lower() if method else None, status,
                                       description, retry_after if status == 429 else None,
                                       _norm_chat_id(chat_id), times))

    def block_user(self, chat_id: int, blocked: bool = True) -> None:
        """The user blocked the bot: sends answer 403 'Forbidden: bot was blocked by the user'."""
        self._chat(chat_id).blocked = blocked

    def add_forum(self, chat_id: int, title: str = "Agents", *, is_forum: bool = True) -> dict:
        chat = self._chat(chat_id, title=title)
        chat.obj["type"] = "supergroup"
        if is_forum:
            chat.obj["is_forum"] = True
        else:
            chat.obj.pop("is_forum", None)
        return chat.obj

    def create_topic(self, chat_id: int, name: str, icon_color: int = DEFAULT_TOPIC_COLOR,
                     *, creator: dict | None = None, token: str | None = None) -> dict:
        """Create a forum topic as a user would; returns the ForumTopic object."""
        chat = self._chat(chat_id)
        if not chat.is_forum:
            self.add_forum(chat_id, chat.obj.get("title", "Agents"))
        return self._create_topic(chat, name, icon_color, creator or make_user(1, "Admin"),
                                  self.bot(token))

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """Mark a topic deleted (as if an admin deleted it in the app)."""
        topic = self._chat(chat_id).topics.get(int(thread_id))
        if topic is None:
            raise KeyError(f"no topic {thread_id} in chat {chat_id}")
        topic.deleted = True
        self._notify()

    def topics(self, chat_id: int) -> dict[int, dict]:
        return {t.thread_id: {"message_thread_id": t.thread_id, "name": t.name,
                              "icon_color": t.icon_color, "deleted": t.deleted,
                              "closed": t.closed}
                for t in self._chat(chat_id).topics.values()}

    def chat_messages(self, chat_id: Any) -> dict[int, dict]:
        return dict(self._chat(chat_id).messages)

    def upload(self, data: bytes, kind: str = "documents", file_name: str | None = None,
               mime_type: str | None = None) -> dict:
        """Store bytes as a Telegram file; returns {"file_id", "file_unique_id", ...}."""
        n = next(self._file_seq)
        ext = _ext(file_name, mime_type, kind)
        file_id = f"FAKE{kind[:3].upper()}{n:06d}AgADxyz"
        rec = {
            "file_id": file_id, "file_unique_id": f"AQAD{n:06d}", "file_size": len(data),
            "file_path": f"{kind}/file_{n}{ext}", "data": bytes(data),
            "file_name": file_name, "mime_type": mime_type,
        }
        self.files[file_id] = rec
        return rec

    # ------------------------------------------------------------------ chats
    def _chat(self, chat_id: Any, *, user: dict | None = None, title: str | None = None) -> _Chat:
        chat_id = _norm_chat_id(chat_id)
        chat = self._chats.get(chat_id)
        if chat is None:
            if isinstance(chat_id, str):        # "@channelusername"
                obj = {"id": -1001000000000 - len(self._chats), "title": chat_id[1:],
                       "username": chat_id[1:], "type": "channel"}
            elif chat_id > 0:
                u = user or make_user(chat_id)
                obj = {"id": chat_id, "first_name": u.get("first_name", f"User{chat_id}"),
                       "type": "private"}
                if u.get("last_name"):
                    obj["last_name"] = u["last_name"]
                if u.get("username"):
                    obj["username"] = u["username"]
            elif str(chat_id).startswith("-100"):
                obj = {"id": chat_id, "title": title or f"Supergroup {chat_id}",
                       "type": "supergroup"}
            else:
                obj = {"id": chat_id, "title": title or f"Group {chat_id}", "type": "group"}
            chat = self._chats[chat_id] = _Chat(chat_id, obj)
        elif title and chat.type != "private":
            chat.obj["title"] = title
        return chat

    def _create_topic(self, chat: _Chat, name: str, icon_color: int, creator: dict,
                      bot: BotState) -> dict:
        if not name or len(name) > 128:
            raise _bad("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_TOO_LONG")
        thread_id = chat.new_message_id()
        service = {
            "message_id": thread_id, "from": creator, "chat": dict(chat.obj),
            "date": int(time.time()), "message_thread_id": thread_id,
            "forum_topic_created": {"name": name, "icon_color": icon_color},
            "is_topic_message": True,
        }
        chat.messages[thread_id] = service
        chat.topics[thread_id] = _Topic(thread_id, name, icon_color, service)
        if self.service_messages:
            self._queue_update(bot, {"message": service})
        self._notify()
        return {"message_thread_id": thread_id, "name": name, "icon_color": icon_color}

    def _adopt_topic(self, chat: _Chat, thread_id: int, creator: dict) -> _Topic:
        name = f"Topic {thread_id}"
        service = {
            "message_id": thread_id, "from": creator, "chat": dict(chat.obj),
            "date": int(time.time()), "message_thread_id": thread_id,
            "forum_topic_created": {"name": name, "icon_color": DEFAULT_TOPIC_COLOR},
            "is_topic_message": True,
        }
        chat.messages.setdefault(thread_id, service)
        topic = chat.topics[thread_id] = _Topic(thread_id, name, DEFAULT_TOPIC_COLOR, service)
        chat.next_message_id = max(chat.next_message_id, thread_id + 1)
        return topic

    # ------------------------------------------------------------------ injection
    def _queue_update(self, bot: BotState, body: dict) -> dict:
        update = {"update_id": bot.next_update_id, **body}
        bot.next_update_id += 1
        bot.pending.append(update)
        if bot.webhook and (bot.webhook_task is None or bot.webhook_task.done()):
            bot.webhook_task = asyncio.get_running_loop().create_task(self._deliver(bot))
        self._notify()
        return update

    def inject_update(self, update: dict, *, token: str | None = None) -> dict:
        """Queue a raw update body (``update_id`` is assigned if missing)."""
        bot = self.bot(token)
        body = {k: v for k, v in update.items() if k != "update_id"}
        return self._queue_update(bot, body)

    def _user_message(self, chat: _Chat, from_user: dict, *, thread_id: int | None = None,
                      reply_to: Any = None, **content: Any) -> dict:
        msg: dict[str, Any] = {"message_id": chat.new_message_id(), "from": from_user,
                               "chat": dict(chat.obj), "date": int(time.time())}
        if thread_id is not None and chat.is_forum:
            topic = chat.topics.get(int(thread_id))
            if topic is None and int(thread_id) != 1:
                # a user can only post into an existing topic: adopt it
                topic = self._adopt_topic(chat, int(thread_id), from_user)
            msg["message_thread_id"] = int(thread_id)
            msg["is_topic_message"] = True
            if reply_to is None and topic is not None and self.topic_reply_quirk:
                msg["reply_to_message"] = topic.created_message
        if reply_to is not None:
            if isinstance(reply_to, dict):
                msg["reply_to_message"] = reply_to
            else:
                target = chat.messages.get(int(reply_to))
                msg["reply_to_message"] = target or {
                    "message_id": int(reply_to), "chat": dict(chat.obj),
                    "date": int(time.time())}
        msg.update({k: v for k, v in content.items() if v is not None})
        chat.messages[msg["message_id"]] = msg
        return msg

    def _resolve_user(self, chat_id: int, from_user: Any) -> dict:
        if isinstance(from_user, dict):
            return from_user
        if isinstance(from_user, int):
            return make_user(from_user)
        if chat_id > 0:
            chat = self._chats.get(chat_id)
            if chat is not None:
                return make_user(chat_id, chat.obj.get("first_name"),
                                 username=chat.obj.get("username"))
            return make_user(chat_id)
        return make_user(424242, "Agent")

    def inject_private_message(self, chat_id: int, text: str, from_user: Any = None, *,
                               reply_to: Any = None, entities: list | None = None,
                               token: str | None = None) -> dict:
        """A user writes ``text`` to the bot in a private chat (chat id == user id)."""
        user = self._resolve_user(chat_id, from_user)
        chat = self._chat(chat_id, user=user)
        msg = self._user_message(chat, user, reply_to=reply_to, text=text, entities=entities)
        return self._queue_update(self.bot(token), {"message": msg})

    def inject_group_message(self, chat_id: int, text: str, from_user: Any = None, *,
                             reply_to: Any = None, token: str | None = None) -> dict:
        user = self._resolve_user(chat_id, from_user)
        chat = self._chat(chat_id)
        msg = self._user_message(chat, user, reply_to=reply_to, text=text)
        return self._queue_update(self.bot(token), {"message": msg})

    def inject_topic_message(self, chat_id: int, thread_id: int, text: str,
                             from_user: Any = None, reply_to: Any = None, *,
                             token: str | None = None) -> dict:
        """An agent writes in forum topic ``thread_id`` of supergroup ``chat_id``.

        ``reply_to`` is a message id of that chat (e.g. a message the bot sent into the
        topic) or a Message dict.  Without it, like real Telegram, the message still has
        ``reply_to_message`` = the topic-creation service message.
        """
        chat = self._chat(chat_id)
        if not chat.is_forum:
            self.add_forum(chat_id, chat.obj.get("title", "Agents"))
        user = self._resolve_user(chat_id, from_user)
        msg = self._user_message(chat, user, thread_id=thread_id, reply_to=reply_to, text=text)
        return self._queue_update(self.bot(token), {"message": msg})

    def inject_photo(self, chat_id: int, data: bytes = b"\xff\xd8\xff\xe0fakejpeg",
                     caption: str | None = None, from_user: Any = None, *,
                     thread_id: int | None = None, width: int = 800, height: int = 600,
                     token: str | None = None) -> dict:
        """A user sends a photo; ``message.photo`` lists sizes (all backed by ``data``)."""
        user = self._resolve_user(chat_id, from_user)
        chat = self._chat(chat_id, user=user)
        sizes = self._photo_sizes(data, width, height)
        msg = self._user_message(chat, user, thread_id=thread_id, photo=sizes, caption=caption)
        return self._queue_update(self.bot(token), {"message": msg})

    def inject_document(self, chat_id: int, data: bytes, file_name: str = "file.bin",
                        mime_type: str = "application/octet-stream",
                        caption: str | None = None, from_user: Any = None, *,
                        thread_id: int | None = None, token: str | None = None) -> dict:
        user = self._resolve_user(chat_id, from_user)
        chat = self._chat(chat_id, user=user)
        doc = self._document(data, file_name, mime_type)
        msg = self._user_message(chat, user, thread_id=thread_id, document=doc, caption=caption)
        return self._queue_update(self.bot(token), {"message": msg})

    def inject_callback_query(self, from_user: Any, data: str, message: dict | None = None,
                              *, token: str | None = None) -> dict:
        user = from_user if isinstance(from_user, dict) else make_user(int(from_user))
        cq: dict[str, Any] = {"id": str(next(self._file_seq) * 7919 + 10**15),
                              "from": user, "chat_instance": f"-{user['id']}77", "data": data}
        if message is not None:
            cq["message"] = message
        return self._queue_update(self.bot(token), {"callback_query": cq})

    def _photo_sizes(self, data: bytes, width: int, height: int) -> list[dict]:
        rec = self.upload(data, "photos", None, "image/jpeg")
        small_w, small_h = _scale(width, height, 90)
        mid_w, mid_h = _scale(width, height, 320)
        sizes = []
        for i, (w, h) in enumerate([(small_w, small_h), (mid_w, mid_h), (width, height)]):
            if i < 2:
                alias = dict(rec, file_id=f"{rec['file_id']}s{i}",
                             file_unique_id=f"{rec['file_unique_id']}s{i}")
                self.files[alias["file_id"]] = alias
                sizes.append({"file_id": alias["file_id"],
                              "file_unique_id": alias["file_unique_id"],
                              "file_size": len(data), "width": w, "height": h})
            else:
                sizes.append({"file_id": rec["file_id"], "file_unique_id": rec["file_unique_id"],
                              "file_size": len(data), "width": w, "height": h})
        return sizes

    def _document(self, data: bytes, file_name: str | None, mime_type: str | None) -> dict:
        rec = self.upload(data, "documents", file_name, mime_type)
        doc = {"file_id": rec["file_id"], "file_unique_id": rec["file_unique_id"],
               "file_size": len(data)}
        if file_name:
            doc["file_name"] = file_name
        if mime_type:
            doc["mime_type"] = mime_type
        return doc

    # ------------------------------------------------------------------ HTTP layer
    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        token, path = request.match_info["token"], request.match_info["path"]
        if self._allowed_tokens is not None and token not in self._allowed_tokens:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        for rec in self.files.values():
            if rec["file_path"] == path:
                return web.Response(body=rec["data"],
                                    content_type=rec.get("mime_type") or "application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404,
                                  "description": "Not Found"}, status=404)

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        entry: dict[str, Any] = {"method": method, "token": token, "params": {},
                                 "at": self._now(), "status": None,
                                 "content_type": request.content_type}
        self.requests.append(entry)
        try:
            if self._allowed_tokens is not None and token not in self._allowed_tokens:
                raise ApiError(401, "Unauthorized")
            params, files = await _read_params(request)
            entry["params"] = params
            bot = self.bot(token)
            handler = _HANDLERS.get(method.lower())
            if handler is None:
                raise ApiError(404, "Not Found")
            self._check_failures(method, params)
            result = await handler(self, bot, params, files)
            entry["status"] = 200
            self._notify()
            return web.json_response({"ok": True, "result": result})
        except ApiError as err:
            entry["status"] = err.code
            entry["error"] = err.description
            self._notify()
            return web.json_response(err.payload(), status=err.code)

    def _check_failures(self, method: str, params: dict) -> None:
        m = method.lower()
        chat_id = _norm_chat_id(params.get("chat_id"))
        # Flood waits apply to the chat across all sending methods, like Telegram's.
        scope = "send" if (m in _SEND_METHODS or m.startswith("edit")) else m
        now = self._now()
        until = self._cooldowns.get((scope, chat_id))
        if until is not None and now < until:
            wait = max(1, math.ceil(until - now))
            self.rate_violations.append(RateViolation(
                chat_id, "retry_after", now,
                f"{method} to {chat_id} sent {until - now:.2f}s before retry_after expired"))
            raise ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        for f in self._failures:
            if f.method not in (None, m):
                continue
            if f.chat_id is not None and f.chat_id != chat_id:
                continue
            f.times -= 1
            if f.times <= 0:
                self._failures.remove(f)
            if f.status == 429:
                ra = f.retry_after if f.retry_after is not None else 1
                self._cooldowns[(scope, chat_id)] = now + ra
                raise ApiError(429, f.description or f"Too Many Requests: retry after {ra}",
                               {"retry_after": ra})
            raise ApiError(f.status, f.description or _default_description(f.status))

    # ------------------------------------------------------------------ webhook
    async def _deliver(self, bot: BotState) -> None:
        """Webhook delivery loop: POST pending updates in order until each gets a 2xx."""
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=10))
        while bot.webhook and bot.pending:
            hook = bot.webhook
            update = bot.pending[0]
            kind = next((k for k in _UPDATE_TYPES if k in update), None)
            if bot.allowed_updates and kind not in bot.allowed_updates:
                bot.pending.pop(0)
                continue
            headers = {"Content-Type": "application/json"}
            if hook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            record: dict[str, Any] = {"update": update, "url": hook["url"], "headers": headers,
                                      "status": None}
            bot.webhook_deliveries.append(record)
            try:
                async with self._session.post(hook["url"], data=json.dumps(update),
                                              headers=headers) as resp:
                    record["status"] = resp.status
                    await resp.read()
                    ok = 200 <= resp.status < 300
                    if not ok:
                        bot.webhook_last_error = (int(time.time()),
                                                  f"Wrong response from the webhook: "
                                                  f"{resp.status} {resp.reason}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection refused, timeout ...
                record["error"] = repr(exc)
                bot.webhook_last_error = (int(time.time()), f"Connection error: {exc}")
                ok = False
            if ok and bot.pending and bot.pending[0] is update:
                bot.pending.pop(0)
            self._notify()
            if not ok:
                await asyncio.sleep(self.webhook_retry_delay)

    # ------------------------------------------------------------------ rate limits
    def _rate_check(self, bot: BotState, chat: _Chat) -> None:
        now = self._now()
        if chat.type == "private":
            if chat.bucket_at is None:
                chat.bucket, chat.bucket_at = float(self.private_burst), now
            chat.bucket = min(float(self.private_burst),
                              chat.bucket + (now - chat.bucket_at) * self.private_rate)
            chat.bucket_at = now
            if chat.bucket < 1.0:
                detail = (f"more than {self.private_rate:g} msg/s sustained to private chat "
                          f"{chat.id} (burst {self.private_burst})")
                self._violation(bot, chat, "private", now, detail)
            else:
                chat.bucket -= 1.0
        else:
            window = chat.send_times
            while window and now - window[0] >= 60.0:
                window.popleft()
            if len(window) >= self.group_per_minute:
                detail = f"more than {self.group_per_minute} msgs/min to group {chat.id}"
                self._violation(bot, chat, "group", now, detail)
            else:
                window.append(now)

    def _violation(self, bot: BotState, chat: _Chat, kind: str, now: float, detail: str):
        self.rate_violations.append(RateViolation(chat.id, kind, now, detail, bot.token))
        if self.enforce_rate_limits:
            wait = 1 if kind == "private" else 3
            raise ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})

    # ------------------------------------------------------------------ sending
    def _target(self, params: dict) -> tuple[_Chat, int | None]:
        if "chat_id" not in params or params["chat_id"] in (None, ""):
            raise _bad("chat_id is empty")
        chat = self._chat(params["chat_id"])
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        thread_id = params.get("message_thread_id")
        if thread_id is not None:
            thread_id = int(thread_id)
            if chat.type == "private":
                thread_id = None   # ignored outside forums (private topics are opt-in)
            elif chat.is_forum and thread_id != 1:
                topic = chat.topics.get(thread_id)
                if topic is None or topic.deleted:
                    raise _bad("message thread not found")
                if topic.closed:
                    raise _bad("TOPIC_CLOSED")
            elif not chat.is_forum:
                thread_id = None
        return chat, thread_id

    def _reply_target(self, chat: _Chat, params: dict) -> dict | None:
        rp = params.get("reply_parameters")
        reply_id = None
        allow_missing = bool(params.get("allow_sending_without_reply"))
        if isinstance(rp, dict):
            reply_id = rp.get("message_id")
            allow_missing = bool(rp.get("allow_sending_without_reply", allow_missing))
        elif params.get("reply_to_message_id") is not None:
            reply_id = params["reply_to_message_id"]
        if reply_id is None:
            return None
        target = chat.messages.get(int(reply_id))
        if target is None:
            if allow_missing:
                return None
            raise _bad("message to be replied not found")
        return target

    async def _send(self, bot: BotState, method: str, params: dict, files: dict,
                    content: dict, text: str | None, sent_files: list[dict]) -> dict:
        chat, thread_id = self._target(params)
        reply_to = self._reply_target(chat, params)
        self._rate_check(bot, chat)
        msg: dict[str, Any] = {"message_id": chat.new_message_id(), "from": bot.user,
                               "chat": dict(chat.obj), "date": int(time.time())}
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        elif thread_id is not None and self.topic_reply_quirk and thread_id in chat.topics:
            msg["reply_to_message"] = chat.topics[thread_id].created_message
        msg.update(content)
        if params.get("reply_markup") is not None:
            msg["reply_markup"] = params["reply_markup"]
        chat.messages[msg["message_id"]] = msg
        self.sent.append(SentMessage(
            method=_canonical(method), chat_id=chat.id, text=text,
            message_id=msg["message_id"], thread_id=thread_id,
            reply_to_message_id=reply_to["message_id"] if reply_to else None,
            caption=content.get("caption"), parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"), files=sent_files, params=params,
            message=msg, token=bot.token, at=self._now()))
        return msg

    def _file_param(self, params: dict, files: dict, name: str) -> tuple[dict | None, str | None]:
        """Resolve a file parameter: upload part, attach://x, known file_id, or URL."""
        part = files.get(name)
        value = params.get(name)
        if part is None and isinstance(value, str) and value.startswith("attach://"):
            part = files.get(value[len("attach://"):])
        if part is not None:
            return part, None
        if value in (None, ""):
            raise _bad(f"there is no {name} in the request")
        if isinstance(value, str) and value in self.files:
            return None, value
        if isinstance(value, str) and re.match(r"https?://", value):
            return {"filename": value.rsplit("/", 1)[-1] or "file", "data": b"",
                    "content_type": None, "url": value}, None
        raise _bad("wrong file identifier/HTTP URL specified")


# ---------------------------------------------------------------------- handlers
async def _get_me(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> dict:
    return bot.user


async def _get_updates(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> list:
    if bot.webhook:
        raise ApiError(409, CONFLICT_WEBHOOK)
    if bot.poller is not None and not bot.poller.done():
        raise ApiError(409, CONFLICT_POLL)
    offset = p.get("offset")
    limit = int(p.get("limit") or 100)
    limit = min(max(limit, 1), 100)
    timeout = float(p.get("timeout") or 0)
    if p.get("allowed_updates") is not None:
        allowed = p["allowed_updates"]
        bot.allowed_updates = list(allowed) if allowed else None
    if offset is not None:
        offset = int(offset)
        if offset < 0:
            bot.pending = bot.pending[offset:] if -offset < len(bot.pending) else bot.pending
        else:
            bot.pending = [u for u in bot.pending if u["update_id"] >= offset]

    def ready() -> list:
        allowed = bot.allowed_updates
        out = []
        for u in bot.pending:
            kind = next((k for k in _UPDATE_TYPES if k in u), None)
            if allowed and kind not in allowed:
                continue
            out.append(u)
            if len(out) >= limit:
                break
        return out

    me = asyncio.get_running_loop().create_future()
    bot.poller = me
    waiter: asyncio.Future | None = None
    try:
        result = ready()
        if result or timeout <= 0:
            return result
        fake._notify()   # a long poll is now waiting (tests may wait for this)
        waiter = asyncio.ensure_future(fake.wait_for(ready, timeout))
        done, _ = await asyncio.wait({waiter, me}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            try:
                return waiter.result()
            except TimeoutError:
                return []
        if isinstance(me.result(), ApiError):
            raise me.result()
        return []
    finally:
        if waiter is not None and not waiter.done():
            waiter.cancel()
        if not me.done():
            me.set_result(None)
        if bot.poller is me:
            bot.poller = None
        fake._notify()


async def _send_message(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> dict:
    text = p.get("text")
    if text is None or str(text) == "":
        raise _bad("message text is empty")
    text = str(text)
    length = _visible_length(text, p.get("parse_mode"))
    if length > MAX_MESSAGE_LENGTH:
        raise _bad("message is too long")
    content: dict[str, Any] = {"text": _visible_text(text, p.get("parse_mode"))}
    if p.get("entities"):
        content["entities"] = p["entities"]
    return await fake._send(bot, "sendMessage", p, f, content, content["text"], [])


def _media_sender(kind: str):
    async def handler(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> dict:
        caption = p.get("caption")
        if caption is not None and _visible_length(str(caption), p.get("parse_mode")) \
                > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        part, file_id = fake._file_param(p, f, kind)
        sent_files = []
        if part is not None:
            data = part["data"]
            if kind == "photo":
                if len(data) > 10 * 1024 * 1024:
                    raise _bad("PHOTO_INVALID_DIMENSIONS")
                obj: Any = fake._photo_sizes(data, 1280, 960)
                file_id = obj[-1]["file_id"]
            else:
                if len(data) > 50 * 1024 * 1024:
                    raise ApiError(413, "Request Entity Too Large")
                obj = fake._document(data, part.get("filename"), part.get("content_type"))
                file_id = obj["file_id"]
            sent_files.append({"field": kind, "filename": part.get("filename"),
                               "mime_type": part.get("content_type"), "data": data,
                               "file_id": file_id, "url": part.get("url")})
        else:
            rec = fake.files[file_id]
            if kind == "photo":
                obj = [{"file_id": rec["file_id"], "file_unique_id": rec["file_unique_id"],
                        "file_size": rec["file_size"], "width": 1280, "height": 960}]
            else:
                obj = {"file_id": rec["file_id"], "file_unique_id": rec["file_unique_id"],
                       "file_size": rec["file_size"]}
                if rec.get("file_name"):
                    obj["file_name"] = rec["file_name"]
                if rec.get("mime_type"):
                    obj["mime_type"] = rec["mime_type"]
            sent_files.append({"field": kind, "filename": rec.get("file_name"),
                               "mime_type": rec.get("mime_type"), "data": rec["data"],
                               "file_id": file_id, "url": None})
        content: dict[str, Any] = {kind: obj}
        if caption:
            content["caption"] = _visible_text(str(caption), p.get("parse_mode"))
        method = "send" + kind.capitalize()
        return await fake._send(bot, method, p, f, content, content.get("caption"), sent_files)
    return handler


async def _copy_or_forward(fake: FakeTelegram, bot: BotState, p: dict, f: dict,
                           method: str) -> dict:
    src_chat = fake._chat(p.get("from_chat_id"))
    src = src_chat.messages.get(int(p.get("message_id") or 0))
    if src is None:
        raise _bad("message to copy not found" if method == "copyMessage"
                   else "message to forward not found")
    content = {k: v for k, v in src.items()
               if k in ("text", "entities", "photo", "document", "caption",
                        "caption_entities", "video", "audio", "voice", "sticker")}
    if method == "copyMessage" and p.get("caption") is not None:
        content["caption"] = str(p["caption"])
    if method == "forwardMessage":
        origin_user = src.get("from") or {}
        content["forward_origin"] = {"type": "user", "date": src["date"],
                                     "sender_user": origin_user}
    files = []
    for kind in ("photo", "document"):
        if kind in content:
            obj = content[kind][-1] if kind == "photo" else content[kind]
            rec = fake.files.get(obj["file_id"], {})
            files.append({"field": kind, "filename": rec.get("file_name"),
                          "mime_type": rec.get("mime_type"), "data": rec.get("data"),
                          "file_id": obj["file_id"], "url": None})
    text = content.get("text", content.get("caption"))
    msg = await fake._send(bot, method, p, f, content, text, files)
    return {"message_id": msg["message_id"]} if method == "copyMessage" else msg


async def _copy_message(fake, bot, p, f) -> dict:
    return await _copy_or_forward(fake, bot, p, f, "copyMessage")


async def _forward_message(fake, bot, p, f) -> dict:
    return await _copy_or_forward(fake, bot, p, f, "forwardMessage")


async def _get_file(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> dict:
    file_id = p.get("file_id")
    rec = fake.files.get(file_id) if file_id else None
    if rec is None:
        raise _bad("invalid file_id")
    if rec["file_size"] > MAX_DOWNLOAD_SIZE:
        raise _bad("file is too big")
    return {"file_id": rec["file_id"], "file_unique_id": rec["file_unique_id"],
            "file_size": rec["file_size"], "file_path": rec["file_path"]}


def _forum(fake: FakeTelegram, p: dict) -> _Chat:
    if p.get("chat_id") in (None, ""):
        raise _bad("chat_id is empty")
    chat = fake._chat(p["chat_id"])
    if not chat.is_forum:
        raise _bad("the chat is not a forum")
    return chat


async def _create_forum_topic(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> dict:
    chat = _forum(fake, p)
    return fake._create_topic(chat, str(p.get("name") or ""),
                              int(p.get("icon_color") or DEFAULT_TOPIC_COLOR), bot.user, bot)


def _topic_of(fake: FakeTelegram, p: dict) -> _Topic:
    chat = _forum(fake, p)
    topic = chat.topics.get(int(p.get("message_thread_id") or 0))
    if topic is None or topic.deleted:
        raise _bad("message thread not found")
    return topic


async def _delete_forum_topic(fake, bot, p, f) -> bool:
    _topic_of(fake, p).deleted = True
    return True


async def _close_forum_topic(fake, bot, p, f) -> bool:
    topic = _topic_of(fake, p)
    if topic.closed:
        raise _bad("TOPIC_NOT_MODIFIED")
    topic.closed = True
    return True


async def _reopen_forum_topic(fake, bot, p, f) -> bool:
    topic = _topic_of(fake, p)
    if not topic.closed:
        raise _bad("TOPIC_NOT_MODIFIED")
    topic.closed = False
    return True


async def _edit_forum_topic(fake, bot, p, f) -> bool:
    topic = _topic_of(fake, p)
    if p.get("name"):
        topic.name = str(p["name"])
    return True


async def _set_webhook(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> bool:
    url = p.get("url") or ""
    secret = p.get("secret_token")
    if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
        raise _bad("secret token contains unallowed characters")
    if p.get("drop_pending_updates"):
        bot.pending.clear()
    if p.get("allowed_updates") is not None:
        bot.allowed_updates = list(p["allowed_updates"]) or None
    if not url:
        _remove_webhook(bot)
        return True
    if not re.match(r"https?://", url):
        raise _bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
    if bot.poller is not None and not bot.poller.done():
        bot.poller.set_result(None)   # a running long poll is terminated
    bot.webhook = {"url": url, "secret_token": secret,
                   "max_connections": int(p.get("max_connections") or 40),
                   "ip_address": p.get("ip_address"), "allowed_updates": bot.allowed_updates}
    bot.webhook_last_error = None
    if bot.pending and (bot.webhook_task is None or bot.webhook_task.done()):
        bot.webhook_task = asyncio.get_running_loop().create_task(fake._deliver(bot))
    return True


def _remove_webhook(bot: BotState) -> None:
    bot.webhook = None
    if bot.webhook_task and not bot.webhook_task.done():
        bot.webhook_task.cancel()
    bot.webhook_task = None


async def _delete_webhook(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> bool:
    _remove_webhook(bot)
    if p.get("drop_pending_updates"):
        bot.pending.clear()
    return True


async def _get_webhook_info(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> dict:
    info: dict[str, Any] = {"url": bot.webhook["url"] if bot.webhook else "",
                            "has_custom_certificate": False,
                            "pending_update_count": len(bot.pending)}
    if bot.webhook:
        info["max_connections"] = bot.webhook["max_connections"]
        if bot.webhook.get("ip_address"):
            info["ip_address"] = bot.webhook["ip_address"]
        if bot.allowed_updates:
            info["allowed_updates"] = bot.allowed_updates
        if bot.webhook_last_error:
            info["last_error_date"], info["last_error_message"] = bot.webhook_last_error
    return info


async def _answer_callback_query(fake, bot: BotState, p, f) -> bool:
    if not p.get("callback_query_id"):
        raise _bad("query is too old and response timeout expired or query ID is invalid")
    bot.callback_answers.append(p)
    return True


async def _set_my_commands(fake, bot: BotState, p, f) -> bool:
    commands = p.get("commands")
    if not isinstance(commands, list):
        raise _bad("can't parse BotCommand array")
    scope = json.dumps(p.get("scope") or {"type": "default"}, sort_keys=True)
    bot.commands[scope + (p.get("language_code") or "")] = commands
    return True


async def _get_my_commands(fake, bot: BotState, p, f) -> list:
    scope = json.dumps(p.get("scope") or {"type": "default"}, sort_keys=True)
    return bot.commands.get(scope + (p.get("language_code") or ""), [])


async def _delete_my_commands(fake, bot: BotState, p, f) -> bool:
    scope = json.dumps(p.get("scope") or {"type": "default"}, sort_keys=True)
    bot.commands.pop(scope + (p.get("language_code") or ""), None)
    return True


async def _delete_message(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> bool:
    chat = fake._chat(p.get("chat_id"))
    mid = int(p.get("message_id") or 0)
    if chat.messages.pop(mid, None) is None:
        raise _bad("message to delete not found")
    bot.deleted.append((chat.id, mid))
    return True


async def _edit_message_text(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> dict:
    chat = fake._chat(p.get("chat_id"))
    mid = int(p.get("message_id") or 0)
    msg = chat.messages.get(mid)
    if msg is None:
        raise _bad("message to edit not found")
    if msg.get("from", {}).get("id") != bot.user["id"]:
        raise _bad("message can't be edited")
    text = str(p.get("text") or "")
    if not text:
        raise _bad("message text is empty")
    if _visible_length(text, p.get("parse_mode")) > MAX_MESSAGE_LENGTH:
        raise _bad("MESSAGE_TOO_LONG")
    new_text = _visible_text(text, p.get("parse_mode"))
    if new_text == msg.get("text") and p.get("reply_markup") == msg.get("reply_markup"):
        raise _bad("message is not modified: specified new message content and reply "
                   "markup are exactly the same as a current content and reply markup "
                   "of the message")
    msg["text"] = new_text
    msg["edit_date"] = int(time.time())
    if p.get("reply_markup") is not None:
        msg["reply_markup"] = p["reply_markup"]
    fake.sent.append(SentMessage(
        method="editMessageText", chat_id=chat.id, text=new_text, message_id=mid,
        thread_id=msg.get("message_thread_id"), parse_mode=p.get("parse_mode"),
        reply_markup=p.get("reply_markup"), params=p, message=msg, token=bot.token,
        at=fake._now()))
    return msg


async def _send_chat_action(fake, bot, p, f) -> bool:
    fake._target(p)
    return True


async def _get_chat(fake: FakeTelegram, bot: BotState, p: dict, f: dict) -> dict:
    chat = fake._chats.get(_norm_chat_id(p.get("chat_id")))
    if chat is None:
        raise _bad("chat not found")
    full = dict(chat.obj)
    full.setdefault("accent_color_id", 0)
    full.setdefault("max_reaction_count", 11)
    full.setdefault("accepted_gift_types", {"unlimited_gifts": False, "limited_gifts": False,
                                            "unique_gifts": False,
                                            "premium_subscription": False,
                                            "gifts_from_channels": False})
    return full


async def _simple_true(fake, bot, p, f) -> bool:
    return True


async def _log_out(fake, bot, p, f) -> bool:
    return True


_HANDLERS: dict[str, Callable] = {
    "getme": _get_me,
    "getupdates": _get_updates,
    "sendmessage": _send_message,
    "sendphoto": _media_sender("photo"),
    "senddocument": _media_sender("document"),
    "getfile": _get_file,
    "copymessage": _copy_message,
    "forwardmessage": _forward_message,
    "createforumtopic": _create_forum_topic,
    "deleteforumtopic": _delete_forum_topic,
    "closeforumtopic": _close_forum_topic,
    "reopenforumtopic": _reopen_forum_topic,
    "editforumtopic": _edit_forum_topic,
    "setwebhook": _set_webhook,
    "deletewebhook": _delete_webhook,
    "getwebhookinfo": _get_webhook_info,
    "answercallbackquery": _answer_callback_query,
    "setmycommands": _set_my_commands,
    "getmycommands": _get_my_commands,
    "deletemycommands": _delete_my_commands,
    "deletemessage": _delete_message,
    "editmessagetext": _edit_message_text,
    "sendchataction": _send_chat_action,
    "getchat": _get_chat,
    "setmydescription": _simple_true,
    "setmyshortdescription": _simple_true,
    "setchatmenubutton": _simple_true,
    "logout": _log_out,
    "close": _log_out,
}




# ---------------------------------------------------------------------- parsing helpers
async def _read_params(request: web.Request) -> tuple[dict, dict]:
    """Merge query + body into (params, files) with Bot-API value decoding."""
    params: dict[str, Any] = {}
    files: dict[str, dict] = {}
    for k, v in request.query.items():
        params[k] = _decode_form_value(k, v)
    ctype = request.content_type
    if request.method in ("POST", "PUT") and request.can_read_body:
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON") from None
            if not isinstance(body, dict):
                raise _bad("can't parse JSON")
            for k, v in body.items():
                params[k] = v
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for k, v in form.items():
                if isinstance(v, web.FileField):
                    files[k] = {"filename": v.filename, "content_type": v.content_type,
                                "data": v.file.read()}
                else:
                    params[k] = _decode_form_value(k, v)
    if "chat_id" in params:
        params["chat_id"] = _norm_chat_id(params["chat_id"])
    return params, files


def _decode_form_value(key: str, value: str) -> Any:
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _norm_chat_id(chat_id: Any) -> Any:
    if isinstance(chat_id, str) and re.fullmatch(r"-?\d+", chat_id):
        return int(chat_id)
    return chat_id


def _canonical(method: str) -> str:
    for name in ("sendMessage", "sendPhoto", "sendDocument", "editMessageText",
                 "copyMessage", "forwardMessage"):
        if name.lower() == method.lower():
            return name
    return method


def _default_description(status: int) -> str:
    return {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden: bot was blocked by the user",
            404: "Not Found", 409: CONFLICT_POLL, 500: "Internal Server Error",
            502: "Bad Gateway"}.get(status, f"Error {status}")


_TAG_RE = re.compile(r"<[^>]+>")


def _visible_text(text: str, parse_mode: Any) -> str:
    """Text as Telegram stores it after entity parsing (HTML tags removed)."""
    if isinstance(parse_mode, str) and parse_mode.lower() == "html":
        return html.unescape(_TAG_RE.sub("", text))
    if isinstance(parse_mode, str) and parse_mode.lower() == "markdownv2":
        return re.sub(r"\\(.)", r"\1", text)
    return text


def _visible_length(text: str, parse_mode: Any) -> int:
    return len(_visible_text(text, parse_mode))


def _ext(file_name: str | None, mime_type: str | None, kind: str) -> str:
    if file_name and "." in file_name:
        return "." + file_name.rsplit(".", 1)[1]
    if kind == "photos" or (mime_type or "").startswith("image/jpeg"):
        return ".jpg"
    return ""


def _scale(width: int, height: int, box: int) -> tuple[int, int]:
    big = max(width, height, 1)
    if big <= box:
        return width, height
    return max(1, width * box // big), max(1, height * box // big)
