"""Web chat: the widget's WebSocket (SPEC "Web chat") and its static files.

A visitor is identified by a random `visitor_token` kept in the browser; the
customer id is a hash of it, so the token itself is never stored.  A reply
may be consumed by any kefu process, so `send()` publishes it on pub/sub and
the process holding the visitor's socket writes it; a reply nobody could
write yet waits in a short per-visitor list and is written on reconnect
(the full history is sent on every resume too, and ids let the widget drop
what it already shows).

Whether a human can answer follows presence live.  The hello frame says it
(`online`, `offline_note`); after that every process listens to the agents'
live events and, when the answer for this channel changes (an agent goes
online, away or offline; a role's working hours begin or end), pushes
`{"type": "presence", "online": ..., "offline_note": {...}}` to the widgets
it holds whose answer it changes — a push rather than widgets polling, so
thousands of open shop pages cost nothing while nobody's presence changes,
and a frame only when something changed.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import uuid
from collections import defaultdict
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.base import Connector
from connectors.client_address import client_ip
from connectors.files import upload
from connectors.http import json_error, too_many_requests
from connectors.payloads import WebchatMessage
from connectors.validation import PayloadError, parse_json, problem
from storage.events import Event
from storage.limits import RateLimiter, retry_after

PENDING_TTL = 7 * 86400
VISITOR_TTL = 90 * 86400  # a token unused this long counts as a new visitor again
# Shown by the widget when a limit refuses (error frames carry `text` in both languages).
TOO_FAST = {"zh": "您发送得太快了，请 {s} 秒后再试。", "en": "You are sending too fast. Please try again in {s} s."}
TOO_MANY_VISITORS = {"zh": "来自您网络的新访客过多，请 {s} 秒后再试。",
                     "en": "Too many new visitors from your network. Please try again in {s} s."}
PRESENCE_RECHECK = 30.0  # s: working hours begin and end without any event
_CORS = {"Access-Control-Allow-Origin": "*"}
STATIC = resources.files("connectors") / "webchat_static"


def customer_id_for(token: str) -> str:
    return "v_" + hashlib.sha256(token.encode()).hexdigest()[:24]


def _valid_token(token: str | None) -> bool:
    return bool(token) and 20 <= len(token) <= 128 and all(c.isalnum() or c in "-_" for c in token)


class WebchatConnector(Connector):
    kind = "webchat"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self.keys = ctx.keys
        self.limiter = RateLimiter(ctx.redis, self.keys)
        self._presence_task: asyncio.Task | None = None
        ctx.on_live(self._on_live_event)
        ctx.on_push(self.keys.webchat_push(self.name), self.on_push)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/webchat/ws", self.websocket),
            web.get("/webchat/", self.static_file("index.html", "text/html")),
            web.get("/webchat/widget.js", self.static_file("widget.js", "application/javascript")),
            web.get("/webchat/config.json", self.widget_config),
            web.post("/webchat/upload", self.upload),
            web.options("/webchat/upload", self.upload_preflight),
        ]

    async def upload(self, request: web.Request) -> web.Response:
        """A visitor's file (?token=<visitor token>&name=..., the file as the body), from
        any shop domain, within `limits.webchat.uploads_per_visitor` and `uploads_per_ip`.
        The widget then sends a message naming it."""
        token = request.query.get("token")
        if not _valid_token(token):
            response = json_error(401, "a visitor token is required")
        else:
            limits = self.ctx.settings.limits.webchat
            wait = await self.limiter.hit(
                ("webchat.uploads_per_visitor", f"{self.name}:{customer_id_for(token)}", limits.uploads_per_visitor),
                ("webchat.uploads_per_ip", f"{self.name}:{self._client(request)}", limits.uploads_per_ip))
            if wait:
                response = too_many_requests(wait, "too many files")
            else:
                response = await upload(request, self.ctx.files, self.ctx.settings.web.max_upload_bytes)
        response.headers.update(_CORS)
        return response

    async def upload_preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers={**_CORS, "Access-Control-Allow-Methods": "POST",
                                                 "Access-Control-Allow-Headers": "Content-Type",
                                                 "Access-Control-Max-Age": "86400"})

    async def widget_config(self, request: web.Request) -> web.Response:
        """What the widget shows before the first message: title, colour, greeting, whether
        anyone is online.  Readable from any shop domain (CORS)."""
        s, cfg = self.ctx.settings, self.config
        body = {"title": cfg.title.model_dump() if cfg.title else None, "color": cfg.color,
                "lang": cfg.language, "position": cfg.position,
                "bot_name": s.bot_name.model_dump(),
                "welcome": _localized(s, "greeting", self.name),  # the greeting before the first message
                **await self.availability(),
                "max_upload_bytes": s.web.max_upload_bytes}
        return web.json_response({k: v for k, v in body.items() if v is not None},
                                 headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=30"})

    async def availability(self) -> dict[str, Any]:
        """{"online": can a human answer now, "offline_note": what to tell the visitor if not}.
        A channel with a fixed role needs someone of that role (or its fallback) online;
        otherwise anyone; outside the role's working hours nobody is."""
        s = self.ctx.settings
        role = self.config.role or ""
        desk = self.ctx.desk
        closed = {lang: desk.off_hours_text(role or s.router.default_role, lang, self.name) for lang in ("zh", "en")}
        if closed["zh"]:  # outside working hours: say when a human will answer
            return {"online": False, "offline_note": closed}
        online = await desk.online_agents()
        if role:
            roles = {role, s.roles[role].fallback if role in s.roles else None}
            online = {a.id for a in s.agents if a.id in online and roles & set(a.roles)}
        return {"online": bool(online), "offline_note": _localized(s, "nobody_online", self.name)}

    async def _on_live_event(self, data: bytes) -> None:
        if b'"type": "agent"' in data and self.sockets:
            await self._push_availability()

    async def _push_availability(self) -> None:
        """Tell this process's widgets that were told otherwise whether a human can answer."""
        now = await self.availability()
        told = [ws for group in list(self.sockets.values()) for ws in group if ws.get("availability") != now]
        for ws in told:
            ws["availability"] = now
        await asyncio.gather(*(_send_json(ws, {"type": "presence", **now}) for ws in told))

    async def start(self) -> None:
        self._presence_task = asyncio.create_task(self._watch_availability(), name=f"{self.name}-presence")

    async def _watch_availability(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_RECHECK)
            if self.sockets:
                try:
                    await self._push_availability()
                except (RedisConnectionError, RedisTimeoutError):
                    pass  # Redis away: the next round tells the widgets

    def static_file(self, name: str, content_type: str):
        async def handler(request: web.Request) -> web.Response:
            try:
                body = (STATIC / name).read_bytes()
            except FileNotFoundError:
                raise web.HTTPNotFound()
            return web.Response(body=body, content_type=content_type, charset="utf-8",
                                headers={"Cache-Control": "no-cache"})
        return handler

    async def stop(self) -> None:
        """Close visitors' sockets (1001): their widgets reconnect to a running kefu."""
        if self._presence_task is not None:
            self._presence_task.cancel()
        sockets = [ws for group in self.sockets.values() for ws in group]
        await asyncio.gather(*(ws.close(code=1001, message=b"server restarting") for ws in sockets),
                             return_exceptions=True)

    async def on_push(self, data: bytes) -> None:
        """A reply published by whichever process consumed it."""
        msg = json.loads(data)
        customer = msg.pop("customer_id")
        delivered = False
        for ws in list(self.sockets.get(customer, ())):
            delivered = await _send_json(ws, msg) or delivered
        if delivered:  # a socket that was closing does not count: the reply waits for the next one
            await self.ctx.redis.lrem(self.keys.webchat_pending(self.name, customer), 0, msg["id"])

    async def send(self, event: Event) -> list[str]:
        frame = {"type": "message", "id": event.id, "text": event.text,
                 "sender": {"kind": event.sender_kind, "name": event.sender_name}, "ts": event.ts,
                 "attachments": event.attachments}
        pending = self.keys.webchat_pending(self.name, event.customer_id)
        pipe = self.ctx.redis.pipeline(transaction=True)
        pipe.rpush(pending, event.id)
        pipe.expire(pending, PENDING_TTL)
        pipe.publish(self.keys.webchat_push(self.name),
                     json.dumps({**frame, "customer_id": event.customer_id}, ensure_ascii=False))
        await pipe.execute()
        return [event.id]  # the widget knows a message by kefu's id

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if self.state != "running":
            raise web.HTTPServiceUnavailable(reason="web chat is restarting, try again shortly")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
        await ws.prepare(request)
        token = request.query.get("token")
        resumed = _valid_token(token)
        if not resumed:
            token = secrets.token_urlsafe(24)
        customer = customer_id_for(token)
        ip = self._client(request)
        wait = await self._admit(customer, ip)
        if wait:
            await _send_json(ws, _limited_frame(wait, TOO_MANY_VISITORS, "too many new visitors from your address"))
            await ws.close(code=1013, message=b"try again later")
            return ws
        cid = await self.ctx.history.current(customer) if resumed else None
        ws["availability"] = await self.availability()
        await _send_json(ws, {"type": "hello", "visitor_token": token, "conversation_id": cid, **ws["availability"]})
        try:
            if cid:
                await self._resume(ws, customer, cid)
            else:
                self.sockets[customer].add(ws)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._frame_guarded(ws, customer, ip, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await _send_json(ws, {"type": "error", "error": "binary frames are not supported"})
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets[customer].discard(ws)
            if not self.sockets[customer]:
                del self.sockets[customer]
        return ws

    def _client(self, request: web.Request) -> str:
        return client_ip(request, self.ctx.settings.web.trusted_proxies)

    async def _admit(self, customer: str, ip: str) -> float:
        """A visitor token kefu knows comes in; a new one (issued now, or made up by
        the client) only within `limits.webchat.new_visitors_per_ip`: seconds to wait."""
        r, known = self.ctx.redis, self.keys.webchat_visitor(self.name, customer)
        if await r.set(known, 1, ex=VISITOR_TTL, xx=True):
            return 0.0
        wait = await self.limiter.hit(("webchat.new_visitors_per_ip", f"{self.name}:{ip}",
                                       self.ctx.settings.limits.webchat.new_visitors_per_ip))
        if not wait:
            await r.set(known, 1, ex=VISITOR_TTL)
        return wait

    async def _resume(self, ws: web.WebSocketResponse, customer: str, cid: str) -> None:
        """History first, then live pushes, then replies that never reached a socket —
        in that order, so a client can take the history as its baseline."""
        history = await self._history(cid)
        await _send_json(ws, {"type": "history", "conversation_id": cid, "messages": history})
        self.sockets[customer].add(ws)
        r, pending_key = self.ctx.redis, self.keys.webchat_pending(self.name, customer)
        pending = [mid.decode() for mid in await r.lrange(pending_key, 0, -1)]
        by_id = {m["id"]: m for m in history}
        if any(mid not in by_id for mid in pending):  # stored after the history was read
            by_id = {m["id"]: m for m in await self._history(cid)}
        for mid in pending:
            if mid in by_id and await _send_json(ws, {"type": "message", **by_id[mid]}):
                await r.lrem(pending_key, 0, mid)

    async def _history(self, cid: str) -> list[dict[str, Any]]:
        return [{"id": m["id"], "text": m["text"], "ts": m["ts"], "attachments": m["attachments"],
                 "sender": {"kind": m["sender"]["kind"], "name": m["sender"]["name"]}}
                for m in await self.ctx.history.messages(cid)]

    async def _on_frame(self, ws: web.WebSocketResponse, customer: str, ip: str, data: str) -> None:
        try:
            raw = parse_json(data, "frame")
        except PayloadError as exc:
            await _send_json(ws, {"type": "error", "error": str(exc)})
            return
        if not isinstance(raw, dict) or raw.get("type") != "message":
            await _send_json(ws, {"type": "error", "error": "expected {\"type\": \"message\", ...}"})
            return
        try:
            frame = WebchatMessage.model_validate(raw)
        except ValidationError as exc:
            cmid = raw.get("client_msg_id")
            await _send_json(ws, {"type": "error", "error": problem(exc),
                                  **({"client_msg_id": cmid} if isinstance(cmid, str) and len(cmid) <= 128 else {})})
            return
        text, cmid = frame.text, frame.client_msg_id or str(uuid.uuid4())
        attachments = await self.ctx.files.describe(list(frame.attachments or []))
        if attachments is None:
            await _send_json(ws, {"type": "error", "client_msg_id": cmid,
                                  "error": "attachments must name at most 10 uploaded files"})
            return
        if not (text.strip() or attachments):
            await _send_json(ws, {"type": "error", "client_msg_id": cmid, "error": "text is required"})
            return
        limit = self.ctx.settings.web.max_text_length
        if len(text) > limit:
            await _send_json(ws, {"type": "error", "client_msg_id": cmid,
                                  "error": f"text longer than {limit} characters"})
            return
        name = frame.name or ""
        event = self.inbound_event(customer, text, platform_msg_id=f"{customer}:{cmid}",
                                   sender_name=name[:100], platform_ts=time.time(), attachments=attachments)
        limits = self.ctx.settings.limits.webchat
        try:
            wait = await self.limiter.hit(
                ("webchat.messages_per_visitor", f"{self.name}:{customer}", limits.messages_per_visitor),
                ("webchat.messages_per_ip", f"{self.name}:{ip}", limits.messages_per_ip))
            if wait:  # not stored; the visitor may send it again after `retry_after`
                await _send_json(ws, {**_limited_frame(wait, TOO_FAST, "too many messages"), "client_msg_id": cmid})
                return
            published = await self.receive(event)
        except (RedisConnectionError, RedisTimeoutError):  # not stored, not acknowledged: the widget retries
            await _send_json(ws, {"type": "error", "client_msg_id": cmid, "retry": True,
                                  "error": "temporarily unavailable, retrying"})
            return
        await _send_json(ws, {"type": "ack", "client_msg_id": cmid, "id": published.id})

    async def _frame_guarded(self, ws: web.WebSocketResponse, *frame: Any) -> None:
        """`_on_frame`; whatever still goes wrong with a frame is answered on the socket,
        which stays open (an exception here would write an HTTP 500 into it)."""
        try:
            await self._on_frame(ws, *frame)
        except (RedisConnectionError, RedisTimeoutError):
            await _send_json(ws, {"type": "error", "retry": True, "error": "temporarily unavailable, retrying"})
        except Exception:
            self.log.exception("web chat frame failed", extra={"channel": self.name})
            await _send_json(ws, {"type": "error", "error": "this message could not be taken"})


async def _send_json(ws: web.WebSocketResponse, data: dict[str, Any]) -> bool:
    """Write one frame; False if the socket is closing or gone."""
    if ws.closed:
        return False
    try:
        await ws.send_str(json.dumps(data, ensure_ascii=False))
    except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
        return False
    return True


def _limited_frame(wait: float, text: dict[str, str], error: str) -> dict[str, Any]:
    """The error frame of a limit: when to retry, and a sentence in zh and en."""
    s = retry_after(wait)
    return {"type": "error", "error": f"{error}, try again in {s} s", "retry_after": s,
            "text": {lang: t.format(s=s) for lang, t in text.items()}}


def _localized(settings, name: str, channel: str) -> dict[str, str]:
    from routing.automation import Templates

    t = Templates(settings)
    return {lang: t.text(name, lang, channel=channel, customer_name="") for lang in ("zh", "en")}
