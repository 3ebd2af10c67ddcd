"""A fake Discord (REST + gateway) for tests (aiohttp.web, 127.0.0.1, random port).

It speaks what discord.py really sends and expects, so the real library runs against it::

    fake = FakeDiscord()
    await fake.start()
    fake.add_guild(GUILD, "Agents", channels={AGENTS_CHANNEL: "conversations"})
    config = DiscordChannel(kind="discord", token=fake.token, api_base=fake.api_base,
                            gateway_url=fake.gateway_url, agents=...)
    fake.inject_dm(USER, "hello")              # MESSAGE_CREATE on the gateway

REST (``/api/v10``), every call recorded in ``calls``:

* ``Authorization: Bot <token>`` (401 otherwise); a body that is not multipart must be
  sent with exactly ``Content-Type: application/json`` (400, code 50109 otherwise).
* ``GET /users/@me``, ``GET /oauth2/applications/@me``, ``GET /gateway``, ``GET /gateway/bot``,
  ``POST /users/@me/channels`` (DM channel), ``GET|PATCH /channels/{id}`` (threads:
  name, archived, locked), ``POST /channels/{id}/messages`` (JSON, or multipart with
  ``payload_json`` and ``files[n]``; content ≤ 2,000 characters else 400 code 50035;
  empty 50006; a user who does not accept DMs: 403 code 50007), ``POST
  /channels/{id}/threads``, ``POST /channels/{id}/messages/{mid}/threads``,
  ``PUT|GET /applications/{app}/guilds/{guild}/commands`` and ``…/commands`` (global),
  ``POST /interactions/{id}/{token}/callback``, attachments at ``/attachments/...``.
* Rate-limit headers on every answer (``X-RateLimit-Limit/Remaining/Reset/Reset-After/
  Bucket``); ``rate_limit_next(...)`` answers 429 with ``retry_after`` in the body,
  ``Retry-After``, ``X-RateLimit-Scope`` and ``Via`` (without ``Via`` discord.py takes a
  429 for a Cloudflare ban and gives up) — a request repeated before the deadline is
  recorded in ``rate_violations``.

Gateway (``ws://…/gateway``, ``?v=10&encoding=json[&compress=zlib-stream]``, frames
zlib-stream compressed with Z_SYNC_FLUSH like Discord's): HELLO → IDENTIFY (token
checked, close 4004 otherwise) → READY (guilds unavailable, ``resume_gateway_url``) →
GUILD_CREATE per guild; HEARTBEAT → HEARTBEAT_ACK; RESUME replays what the session
missed, then RESUMED (unknown session: INVALID_SESSION).  Dispatches MESSAGE_CREATE
(DMs, guild channels, threads; guild message content only with MESSAGE_CONTENT),
THREAD_CREATE / THREAD_UPDATE, INTERACTION_CREATE (slash commands), honouring intents.

Test controls: ``add_guild``, ``add_user``, ``inject_dm``, ``inject_channel_message``,
``inject_slash_command``, ``block_dms``, ``rate_limit_next``, ``drop_connection``;
observation: ``calls``, ``messages``, ``threads``, ``commands``, ``interaction_responses``,
``heartbeats``, ``identifies``, ``resumes``, ``rate_violations``, ``wait_for``.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import math
import secrets
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.changes import Changes
from tests.fakes.local_server import serve

__all__ = ["FakeDiscord", "DISCORD_EPOCH"]

DISCORD_EPOCH = 1420070400000
MAX_CONTENT = 2000
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
ALL_PERMISSIONS = "2251799813685247"


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def payload(self) -> dict:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


@dataclass
class _Session:
    session_id: str
    intents: int
    seq: int = 0
    sent: list[tuple[int, dict]] = field(default_factory=list)  # (seq, payload) for RESUME
    ws: Any = None
    compressor: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # frames leave in order


@dataclass
class _RateLimit:
    route: str | None  # "POST /channels/{id}/messages"-like prefix match on "METHOD path"
    retry_after: float
    is_global: bool
    times: int


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer with Discord's exact ``Content-Type: application/json`` (discord.py
    decodes a body as JSON only when the header is exactly that, no charset)."""
    return web.Response(body=json.dumps(body, ensure_ascii=False).encode(), status=status,
                        headers={**(headers or {}), "Content-Type": "application/json"})


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class FakeDiscord:
    def __init__(self, token: str = "FAKE.bot.token", *, heartbeat_interval_ms: int = 41250,
                 bot_name: str = "kefu"):
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._ids = itertools.count(1)
        self.app_id = self.snowflake()
        self.bot_user = self._user_obj(self.app_id, bot_name, bot=True)
        self.users: dict[str, dict] = {self.bot_user["id"]: self.bot_user}
        self.guilds: dict[str, dict] = {}
        self.channels: dict[str, dict] = {}  # every channel: text, DM, thread
        self.messages: dict[str, list[dict]] = {}  # channel id -> messages
        self.threads: dict[str, dict] = {}
        self.commands: dict[str, list[dict]] = {}  # guild id or "global" -> commands
        self.interaction_responses: list[dict] = []
        self.calls: list[dict] = []
        self.rate_violations: list[dict] = []
        self.blocked_dms: set[str] = set()
        self.attachments: dict[str, tuple[bytes, str]] = {}
        self.heartbeats = 0
        self.identifies: list[dict] = []
        self.resumes: list[dict] = []
        self._sessions: dict[str, _Session] = {}
        self._rate_limits: list[_RateLimit] = []
        self._retry_deadlines: dict[str, float] = {}
        self._sending: set[asyncio.Task] = set()
        self._changes: Changes | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> str:
        self._changes = Changes("FakeDiscord")
        app = web.Application(client_max_size=64 << 20)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{id}/{name}", self._attachment)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner, self.url = await serve(app)
        return self.url

    async def stop(self) -> None:
        for s in self._sessions.values():
            if s.ws is not None and not s.ws.closed:
                await s.ws.close(code=1001)
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_base(self) -> str:
        return self.url + "/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/gateway"

    def _notify(self) -> None:
        if self._changes:
            self._changes.notify()

    async def wait_for(self, predicate, timeout: float = 5.0) -> Any:
        return await self._changes.wait_for(predicate, timeout)

    # -- model ----------------------------------------------------------------------------
    def snowflake(self) -> str:
        return str(((int(time.time() * 1000) - DISCORD_EPOCH) << 22) | (next(self._ids) & 0x3FFFFF))

    @staticmethod
    def _user_obj(user_id: str, name: str, bot: bool = False) -> dict:
        user = {"id": str(user_id), "username": name, "discriminator": "0", "global_name": name,
                "avatar": None, "public_flags": 0, "flags": 0}
        if bot:
            user["bot"] = True
        return user

    def add_user(self, user_id: str, name: str | None = None) -> dict:
        return self.users.setdefault(str(user_id), self._user_obj(str(user_id), name or f"user{user_id}"))

    def add_guild(self, guild_id: str, name: str, channels: dict[str, str]) -> dict:
        """A server the bot is in, with text channels {id: name}."""
        guild = {"id": str(guild_id), "name": name, "owner_id": self.snowflake(), "channel_ids": []}
        self.guilds[guild["id"]] = guild
        for position, (cid, cname) in enumerate(channels.items()):
            self.channels[str(cid)] = {"id": str(cid), "type": 0, "guild_id": guild["id"], "name": cname,
                                       "position": position, "permission_overwrites": [], "nsfw": False,
                                       "parent_id": None, "topic": None, "last_message_id": None,
                                       "rate_limit_per_user": 0, "flags": 0}
            guild["channel_ids"].append(str(cid))
        return guild

    def _guild_payload(self, guild: dict) -> dict:
        gid = guild["id"]
        return {
            "id": gid, "name": guild["name"], "icon": None, "splash": None, "discovery_splash": None,
            "owner_id": guild["owner_id"], "afk_channel_id": None, "afk_timeout": 300,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "roles": [{"id": gid, "name": "@everyone", "permissions": ALL_PERMISSIONS, "position": 0,
                       "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
            "emojis": [], "features": [], "mfa_level": 0, "application_id": None,
            "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
            "vanity_url_code": None, "description": None, "banner": None, "premium_tier": 0,
            "preferred_locale": "en-US", "public_updates_channel_id": None, "nsfw_level": 0,
            "stickers": [], "premium_progress_bar_enabled": False, "joined_at": _now_iso(),
            "large": False, "unavailable": False, "member_count": 2, "voice_states": [],
            "members": [self._member(self.bot_user)], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [],
            "channels": [{k: v for k, v in self.channels[c].items() if k != "guild_id"}
                         for c in guild["channel_ids"]],
            "threads": [t for t in self.threads.values() if t["guild_id"] == gid
                        and not t["thread_metadata"]["archived"]],
        }

    @staticmethod
    def _member(user: dict) -> dict:
        return {"user": user, "roles": [], "joined_at": _now_iso(), "deaf": False, "mute": False,
                "flags": 0, "pending": False, "nick": None, "avatar": None}

    def _message(self, channel: dict, author: dict, content: str, attachments: list[dict]) -> dict:
        msg = {"id": self.snowflake(), "channel_id": channel["id"], "author": author, "content": content,
               "timestamp": _now_iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
               "mentions": [], "mention_roles": [], "attachments": attachments, "embeds": [],
               "pinned": False, "type": 0, "flags": 0, "components": []}
        if channel.get("guild_id"):
            msg["guild_id"] = channel["guild_id"]
            msg["member"] = {k: v for k, v in self._member(author).items() if k != "user"}
        self.messages.setdefault(channel["id"], []).append(msg)
        channel["last_message_id"] = msg["id"]
        if channel["type"] == 11:
            channel["message_count"] = channel["total_message_sent"] = channel.get("message_count", 0) + 1
        return msg

    def _attachment_obj(self, filename: str, data: bytes, content_type: str) -> dict:
        aid = self.snowflake()
        self.attachments[aid] = (data, content_type)
        url = f"{self.url}/attachments/{aid}/{filename}"
        return {"id": aid, "filename": filename, "size": len(data), "url": url, "proxy_url": url,
                "content_type": content_type}

    def _dm_channel(self, user_id: str) -> dict:
        for ch in self.channels.values():
            if ch["type"] == 1 and ch["recipients"][0]["id"] == str(user_id):
                return ch
        ch = {"id": self.snowflake(), "type": 1, "last_message_id": None, "flags": 0,
              "recipients": [self.add_user(user_id)]}
        self.channels[ch["id"]] = ch
        return ch

    # -- test controls ----------------------------------------------------------------------
    def inject_dm(self, user_id: str, content: str,
                  attachments: list[tuple[str, bytes, str]] = ()) -> dict:
        """The user writes to the bot in a DM."""
        channel = self._dm_channel(user_id)
        atts = [self._attachment_obj(*a) for a in attachments]
        msg = self._message(channel, self.add_user(user_id), content, atts)
        self._dispatch("MESSAGE_CREATE", msg)
        return msg

    def inject_channel_message(self, channel_id: str, user_id: str, content: str) -> dict:
        """A user writes in a guild channel or thread."""
        channel = self.channels[str(channel_id)]
        msg = self._message(channel, self.add_user(user_id), content, [])
        self._dispatch("MESSAGE_CREATE", msg)
        return msg

    def inject_slash_command(self, channel_id: str, user_id: str, name: str,
                             options: dict[str, str] | None = None) -> dict:
        """A user runs a registered slash command in a guild channel or thread."""
        channel = self.channels[str(channel_id)]
        gid = channel["guild_id"]
        command = next((c for c in self.commands.get(gid, []) + self.commands.get("global", [])
                        if c["name"] == name), None)
        if command is None:
            raise KeyError(f"/{name} is not registered in guild {gid}")
        interaction = {
            "id": self.snowflake(), "application_id": self.app_id, "type": 2,
            "data": {"id": command["id"], "name": name, "type": 1, "guild_id": gid,
                     "options": [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()]},
            "guild_id": gid, "channel_id": channel["id"], "channel": channel,
            "member": {**self._member(self.add_user(user_id)), "permissions": ALL_PERMISSIONS},
            "token": "itoken-" + secrets.token_urlsafe(24), "version": 1,
            "app_permissions": ALL_PERMISSIONS, "locale": "en-US", "guild_locale": "en-US",
            "entitlements": [], "authorizing_integration_owners": {"0": gid}, "context": 0,
            "attachment_size_limit": 26214400,
        }
        self._dispatch("INTERACTION_CREATE", interaction)
        return interaction

    def block_dms(self, user_id: str) -> None:
        """The user does not accept DMs from the bot: sends answer 403 code 50007."""
        self.blocked_dms.add(str(user_id))

    def rate_limit_next(self, route: str | None = "POST /channels/", retry_after: float = 0.05, *,
                        is_global: bool = False, times: int = 1) -> None:
        """The next `times` requests whose "METHOD path" starts with `route` answer 429."""
        self._rate_limits.append(_RateLimit(route, retry_after, is_global, times))

    async def drop_connection(self, code: int = 4000) -> None:
        """Close every gateway connection as Discord does on a hiccup (resumable codes)."""
        for s in self._sessions.values():
            if s.ws is not None and not s.ws.closed:
                await s.ws.close(code=code, message=b"fake drop")
            s.ws = None
        self._notify()

    @property
    def connected(self) -> int:
        return sum(1 for s in self._sessions.values() if s.ws is not None and not s.ws.closed)

    # -- gateway ------------------------------------------------------------------------------
    def _wants(self, session: _Session, event: str, data: dict) -> dict | None:
        """The payload `session` gets for `event`, per its intents (None: not at all)."""
        if event == "MESSAGE_CREATE":
            guild = data.get("guild_id")
            need = INTENT_GUILD_MESSAGES if guild else INTENT_DIRECT_MESSAGES
            if not session.intents & need:
                return None
            if guild and not session.intents & INTENT_MESSAGE_CONTENT and data["author"]["id"] != self.app_id:
                return {**data, "content": "", "attachments": [], "embeds": [], "components": []}
        elif event.startswith(("THREAD_", "GUILD_")) and not session.intents & INTENT_GUILDS:
            return None
        return data

    def _dispatch(self, event: str, data: dict) -> None:
        for session in self._sessions.values():
            payload = self._wants(session, event, data)
            if payload is None:
                continue
            session.seq += 1
            frame = {"op": 0, "t": event, "s": session.seq, "d": payload}
            session.sent.append((session.seq, frame))
            if session.ws is not None and not session.ws.closed:
                task = asyncio.get_running_loop().create_task(self._send(session, frame))
                self._sending.add(task)  # keep a reference until it is sent
                task.add_done_callback(self._sending.discard)
        self._notify()

    async def _send(self, session: _Session, frame: dict) -> None:
        async with session.lock:
            ws = session.ws
            if ws is None or ws.closed:
                return
            data = json.dumps(frame, ensure_ascii=False)
            if session.compressor is not None:
                c = session.compressor
                await ws.send_bytes(c.compress(data.encode()) + c.flush(zlib.Z_SYNC_FLUSH))
            else:
                await ws.send_str(data)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("encoding", "json") != "json":
            raise web.HTTPBadRequest(text="only encoding=json")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = _Session("", 0, ws=ws)  # not identified yet
        if request.query.get("compress") == "zlib-stream":
            conn.compressor = zlib.compressobj()
        elif request.query.get("compress"):
            await ws.close(code=4000, message=b"unsupported compression")
            return ws
        await self._send(conn, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                                "s": None, "t": None})
        session: _Session | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(msg.data)
            except ValueError:
                await ws.close(code=4002, message=b"Error while decoding payload.")
                break
            op, d = frame.get("op"), frame.get("d")
            target = session or conn
            if op == 1:
                self.heartbeats += 1
                await self._send(target, {"op": 11, "d": None, "s": None, "t": None})
                self._notify()
            elif op == 2:
                if d.get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                session = await self._identify(conn, d)
            elif op == 6:
                session = await self._resume(conn, d)
                if session is None:
                    break
        if session is not None and session.ws is ws:
            session.ws = None
        self._notify()
        return ws

    async def _identify(self, conn: _Session, d: dict) -> _Session:
        self.identifies.append(d)
        session = _Session(secrets.token_hex(16), int(d.get("intents") or 0), ws=conn.ws,
                           compressor=conn.compressor, lock=conn.lock)
        self._sessions[session.session_id] = session
        ready = {"v": 10, "user": self.bot_user, "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
                 "session_id": session.session_id, "resume_gateway_url": self.gateway_url,
                 "session_type": "normal", "private_channels": [], "relationships": [],
                 "presences": [], "geo_ordered_rtc_regions": ["fake"], "guild_join_requests": [],
                 "user_settings": {}, "application": {"id": self.app_id, "flags": 0}}
        for event, data in [("READY", ready)] + [("GUILD_CREATE", self._guild_payload(g))
                                                 for g in self.guilds.values()]:
            session.seq += 1
            frame = {"op": 0, "t": event, "s": session.seq, "d": data}
            session.sent.append((session.seq, frame))
            await self._send(session, frame)
        self._notify()
        return session

    async def _resume(self, conn: _Session, d: dict) -> _Session | None:
        self.resumes.append(d)
        session = self._sessions.get(str(d.get("session_id")))
        if session is None or d.get("token") != self.token:
            await self._send(conn, {"op": 9, "d": False, "s": None, "t": None})
            return None
        session.ws, session.compressor, session.lock = conn.ws, conn.compressor, conn.lock
        seq = int(d.get("seq") or 0)
        for s, frame in list(session.sent):
            if s > seq:
                await self._send(session, frame)
        session.seq += 1
        await self._send(session, {"op": 0, "t": "RESUMED", "s": session.seq, "d": {}})
        self._notify()
        return session

    # -- REST -------------------------------------------------------------------------------------
    async def _attachment(self, request: web.Request) -> web.Response:
        got = self.attachments.get(request.match_info["id"])
        if got is None:
            raise web.HTTPNotFound()
        return web.Response(body=got[0], content_type=got[1])

    def _ratelimit_headers(self, bucket: str, remaining: int = 4) -> dict[str, str]:
        reset_after = 1.0
        return {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}", "X-RateLimit-Bucket": bucket}

    def _maybe_429(self, key: str, bucket: str) -> web.Response | None:
        now = time.monotonic()
        deadline = self._retry_deadlines.get(key)
        if deadline is not None and now < deadline:
            self.rate_violations.append({"route": key, "early_by": deadline - now})
        for rl in self._rate_limits:
            if rl.times > 0 and (rl.route is None or key.startswith(rl.route)):
                rl.times -= 1
                self._retry_deadlines[key] = now + rl.retry_after
                headers = {**self._ratelimit_headers(bucket, 0),
                           "Retry-After": str(math.ceil(rl.retry_after)),
                           "X-RateLimit-Scope": "global" if rl.is_global else "user",
                           "Via": "1.1 google"}
                if rl.is_global:
                    headers["X-RateLimit-Global"] = "true"
                return _json({"message": "You are being rate limited.",
                                          "retry_after": rl.retry_after, "global": rl.is_global},
                                         status=429, headers=headers)
        return None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        key = f"{request.method} {path}"
        call: dict[str, Any] = {"method": request.method, "path": path, "headers": dict(request.headers),
                                "at": time.monotonic()}
        self.calls.append(call)
        bucket = "b" + str(abs(hash((request.method, path.split("/")[1] if "/" in path else path))) % 10**8)
        try:
            if not path.startswith("/interactions/") and request.headers.get("Authorization") != f"Bot {self.token}":
                raise ApiError(401, 0, "401: Unauthorized")
            limited = self._maybe_429(key, bucket)
            if limited is not None:
                call["status"] = 429
                return limited
            body, files = await self._read_body(request)
            call["json"], call["files"] = body, files
            status, result = await self._route(request.method, path, body, files)
        except ApiError as e:
            call["status"] = e.status
            self._notify()
            return _json(e.payload(), status=e.status, headers=self._ratelimit_headers(bucket))
        call["status"] = status
        self._notify()
        if status == 204:
            return web.Response(status=204, headers=self._ratelimit_headers(bucket))
        return _json(result, status=status, headers=self._ratelimit_headers(bucket))

    async def _read_body(self, request: web.Request) -> tuple[Any, list[dict]]:
        if request.method in ("GET", "DELETE") or not request.can_read_body:
            return None, []
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.post()
            payload = json.loads(form.get("payload_json") or "{}")
            files = [{"field": k, "filename": v.filename, "content_type": v.content_type, "data": v.file.read()}
                     for k, v in form.items() if isinstance(v, web.FileField)]
            return payload, files
        if ctype != "application/json":
            raise ApiError(400, 50109, "The request body contains invalid JSON.")
        try:
            return await request.json(), []
        except ValueError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None

    async def _route(self, method: str, path: str, body: Any, files: list[dict]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/users/@me":
            return 200, self.bot_user
        if method == "GET" and path == "/oauth2/applications/@me":
            return 200, {"id": self.app_id, "name": self.bot_user["username"], "icon": None, "description": "",
                         "rpc_origins": [], "bot_public": True, "bot_require_code_grant": False,
                         "owner": self._user_obj(self.snowflake(), "owner"), "team": None,
                         "verify_key": secrets.token_hex(32), "flags": 0, "summary": "",
                         "bot": self.bot_user, "interactions_endpoint_url": None}
        if method == "GET" and path in ("/gateway", "/gateway/bot"):
            out: dict[str, Any] = {"url": self.gateway_url}
            if path == "/gateway/bot":
                out.update(shards=1, session_start_limit={"total": 1000, "remaining": 999,
                                                          "reset_after": 0, "max_concurrency": 1})
            return 200, out
        if method == "POST" and path == "/users/@me/channels":
            return 200, self._dm_channel(str((body or {}).get("recipient_id")))
        if parts[0] == "channels" and len(parts) >= 2:
            channel = self.channels.get(parts[1])
            if channel is None:
                raise ApiError(404, 10003, "Unknown Channel")
            if len(parts) == 2 and method == "GET":
                return 200, channel
            if len(parts) == 2 and method == "PATCH":
                return 200, self._edit_channel(channel, body or {})
            if parts[2:] == ["messages"] and method == "POST":
                return 200, self._post_message(channel, body or {}, files)
            if parts[2:] == ["threads"] and method == "POST":
                return 201, self._create_thread(channel, body or {})
            if len(parts) == 5 and parts[2] == "messages" and parts[4] == "threads" and method == "POST":
                return 201, self._create_thread(channel, body or {}, message_id=parts[3])
        if parts[0] == "applications" and parts[-1] == "commands":
            scope = parts[3] if len(parts) == 5 and parts[2] == "guilds" else "global"
            if method == "PUT":
                self.commands[scope] = [{**c, "id": self.snowflake(), "application_id": self.app_id,
                                         "type": c.get("type", 1), "version": self.snowflake(),
                                         **({"guild_id": scope} if scope != "global" else {})}
                                        for c in body or []]
                return 200, self.commands[scope]
            if method == "GET":
                return 200, self.commands.get(scope, [])
        if parts[0] == "interactions" and len(parts) == 4 and parts[3] == "callback" and method == "POST":
            self.interaction_responses.append({"interaction_id": parts[1], "token": parts[2], **(body or {})})
            return 204, None
        raise ApiError(404, 0, "404: Not Found")

    def _post_message(self, channel: dict, body: dict, files: list[dict]) -> dict:
        content = body.get("content") or ""
        if not isinstance(content, str) or len(content) > MAX_CONTENT:
            raise ApiError(400, 50035, "Invalid Form Body", {"content": {"_errors": [
                {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}})
        if not content and not files and not body.get("embeds"):
            raise ApiError(400, 50006, "Cannot send an empty message")
        if channel["type"] == 1 and channel["recipients"][0]["id"] in self.blocked_dms:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        if channel["type"] == 11:
            meta = channel["thread_metadata"]
            if meta["locked"]:
                raise ApiError(403, 50083, "Thread is archived")
            meta["archived"] = False  # a message unarchives a thread
        atts = [self._attachment_obj(f["filename"], f["data"], f["content_type"] or "application/octet-stream")
                for f in files]
        msg = self._message(channel, self.bot_user, content, atts)
        self._dispatch("MESSAGE_CREATE", msg)
        return msg

    def _create_thread(self, parent: dict, body: dict, message_id: str | None = None) -> dict:
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise ApiError(400, 50035, "Invalid Form Body", {"name": {"_errors": [
                {"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 100 in length."}]}})
        if parent["type"] != 0:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        thread = {"id": message_id or self.snowflake(), "type": int(body.get("type") or 11),
                  "guild_id": parent["guild_id"], "parent_id": parent["id"], "owner_id": self.app_id,
                  "name": name, "last_message_id": None, "message_count": 0, "member_count": 1,
                  "rate_limit_per_user": 0, "flags": 0, "total_message_sent": 0,
                  "thread_metadata": {"archived": False, "locked": False,
                                      "auto_archive_duration": int(body.get("auto_archive_duration") or 4320),
                                      "archive_timestamp": _now_iso(), "create_timestamp": _now_iso()},
                  }
        thread["member"] = {"id": thread["id"], "user_id": self.app_id, "join_timestamp": _now_iso(), "flags": 0}
        self.channels[thread["id"]] = self.threads[thread["id"]] = thread
        self._dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return thread

    def _edit_channel(self, channel: dict, body: dict) -> dict:
        if channel["type"] != 11:
            if "name" in body:
                channel["name"] = str(body["name"])
            return channel
        meta = channel["thread_metadata"]
        if "name" in body:
            channel["name"] = str(body["name"])[:100]
        for flag in ("archived", "locked"):
            if flag in body:
                meta[flag] = bool(body[flag])
        if "auto_archive_duration" in body:
            meta["auto_archive_duration"] = int(body["auto_archive_duration"])
        meta["archive_timestamp"] = _now_iso()
        self._dispatch("THREAD_UPDATE", channel)
        return channel
