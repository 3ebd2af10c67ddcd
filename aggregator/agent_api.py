"""The agent API (SPEC "Agent API"), used by the console and by scripts.

Every action is checked against the acting agent: replying to, transferring
or closing a conversation another agent owns is refused (409) unless the
agent holds the supervisor role.
"""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from aiohttp import WSMsgType, web

from aggregator import files
from aggregator.agent_payloads import BodyError, checked_body
from aggregator.agent_actions import AgentActions, refusal
from aggregator.auth import Auth
from aggregator.config import AgentConfig, Settings
from aggregator.http_errors import json_error
from storage.attachments import AttachmentStore
from storage.conversations import ConversationError, ConversationStore

log = logging.getLogger("kefu.api")

PUBLIC = {"/api/login"}


def _refusal(exc: ConversationError) -> web.Response:
    return json_error(*refusal(exc))


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The body, as its route's model (aggregator/agent_payloads.py) lets it through."""
    try:
        return checked_body(await request.read(), request.match_info.route.resource.canonical)
    except BodyError as exc:
        raise web.HTTPBadRequest(reason=str(exc))


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query.get("token")


class AgentApi:
    def __init__(self, settings: Settings, auth: Auth, store: ConversationStore, actions: AgentActions,
                 files: AttachmentStore):
        self.settings = settings
        self.auth = auth
        self.store = store
        self.actions = actions
        self.files = files
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self._touched: dict[str, float] = {}

    def routes(self) -> list[web.RouteDef]:
        c = "/api/conversations/{id}"
        return [
            web.post("/api/login", self.login),
            web.post("/api/logout", self.logout),
            web.get("/api/me", self.me),
            web.put("/api/presence", self.presence),
            web.get("/api/agents", self.agents),
            web.get("/api/conversations", self.list_conversations),
            web.get(c, self.get_conversation),
            web.post(c + "/messages", self.reply),
            web.post("/api/attachments", self.upload),
            web.post(c + "/claim", self.claim),
            web.post(c + "/transfer", self.transfer),
            web.post(c + "/close", self.close),
            web.get("/api/events", self.events),
            web.get("/api/quick_replies", self.quick_replies),
            web.get("/api/roles", self.roles),
            web.post("/api/link_code", self.link_code),
        ]

    @web.middleware
    async def require_agent(self, request: web.Request, handler):
        """Every /api/ route but login and the channels' own endpoints needs a valid token."""
        path = request.path
        if path.startswith("/api/") and path not in PUBLIC and not path.startswith("/api/channels/"):
            agent = await self.auth.agent_for(bearer(request))
            if agent is None:
                return json_error(401, "missing, invalid or expired token")
            request["agent"] = agent
            now = time.time()
            if now - self._touched.get(agent.id, 0) > 30:  # presence activity, not on every call
                self._touched[agent.id] = now
                await self.store.touch(agent.id, now)
        return await handler(request)

    # -- session ---------------------------------------------------------------
    async def login(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        agent, password = data.get("agent"), data.get("password")
        if not isinstance(agent, str) or not isinstance(password, str):
            return json_error(400, "agent and password are required")
        token = await self.auth.login(agent, password)
        if token is None:
            log.info("login refused", extra={"agent": agent[:64]})
            return json_error(401, "wrong agent or password")
        a = self.auth.agents[agent]
        log.info("login", extra={"agent": agent})
        return web.json_response({"token": token, "agent": {"id": a.id, "name": a.name, "roles": a.roles},
                                  "expires_in": self.auth.ttl})

    async def logout(self, request: web.Request) -> web.Response:
        await self.auth.logout(bearer(request) or "")
        return web.json_response({"ok": True})

    async def me(self, request: web.Request) -> web.Response:
        a: AgentConfig = request["agent"]
        info = await self.store.agent(a.id)
        return web.json_response({"id": a.id, "name": a.name, "roles": a.roles,
                                  "status": info.get("status", "offline"),
                                  "capacity": self.settings.capacity(a)})

    async def presence(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        status = data.get("status")
        if status not in ("online", "away", "offline"):
            return json_error(400, "status must be online, away or offline")
        a: AgentConfig = request["agent"]
        await self.store.set_presence(a.id, status)
        await self.store.publish({"type": "agent", "agent": {"id": a.id, "name": a.name, "status": status}})
        if status == "online":
            await self.actions.router.drain()
        return web.json_response({"id": a.id, "status": status})

    async def agents(self, request: web.Request) -> web.Response:
        out = []
        for a in self.settings.agents:
            info = await self.store.agent(a.id)
            out.append({"id": a.id, "name": a.name, "roles": a.roles,
                        "status": info.get("status", "offline")})
        return web.json_response({"agents": out})

    # -- conversations ---------------------------------------------------------
    async def list_conversations(self, request: web.Request) -> web.Response:
        status = request.query.get("status", "open")
        if status not in ("open", "closed", "all"):
            return json_error(400, "status must be open, closed or all")
        try:
            limit = max(1, min(int(request.query.get("limit", "200")), 1000))
        except ValueError:
            return json_error(400, "limit must be a number")
        convs = await self.store.list(status, limit if "customer" not in request.query else 1000)
        if "customer" in request.query:  # the customer's earlier conversations
            convs = [c for c in convs if c["customer"]["id"] == request.query["customer"]][:limit]
        return web.json_response({"conversations": convs})

    async def get_conversation(self, request: web.Request) -> web.Response:
        conv = await self.store.get(request.match_info["id"])
        if conv is None:
            return json_error(404, "conversation not found")
        if conv["unread"] and conv["assignee"] == request["agent"].id:  # the owner has now seen it
            await self.store.set_fields(conv["id"], unread="0")
        return web.json_response(conv)

    async def reply(self, request: web.Request) -> web.Response:
        """{"text": "...", "attachments"?: [ids from POST /api/attachments]}; text may be
        empty when files are sent."""
        data = await _json_body(request)
        text, ids = data.get("text", ""), data.get("attachments") or []
        if not isinstance(text, str) or not isinstance(ids, list) or len(ids) > 10:
            return json_error(400, "text must be a string and attachments a list of at most 10 file ids")
        if not text.strip() and not ids:
            return json_error(400, "text is required")
        if len(text) > self.settings.web.max_text_length:
            return json_error(413, f"text longer than {self.settings.web.max_text_length} characters")
        attachments = await self.files.describe(ids)
        if attachments is None:
            return json_error(400, "unknown or expired file id in attachments (upload with POST /api/attachments)")
        try:
            msg = await self.actions.reply(request["agent"], request.match_info["id"], text,
                                           attachments=attachments)
        except ConversationError as exc:
            return _refusal(exc)
        return web.json_response(msg, status=201)

    async def upload(self, request: web.Request) -> web.Response:
        """POST /api/attachments?name=guide.pdf, the file as the body → 201 its description."""
        return await files.upload(request, self.files, self.settings.web.max_upload_bytes)

    async def claim(self, request: web.Request) -> web.Response:
        return await self._act(self.actions.claim(request["agent"], request.match_info["id"]))

    async def transfer(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        if isinstance(data.get("agent"), str) and data["agent"]:
            action = self.actions.transfer(request["agent"], request.match_info["id"], to_agent=data["agent"])
        elif isinstance(data.get("role"), str):
            action = self.actions.transfer(request["agent"], request.match_info["id"], role=data["role"])
        else:
            return json_error(400, "give {\"role\": ...} or {\"agent\": ...}")
        return await self._act(action)

    async def close(self, request: web.Request) -> web.Response:
        return await self._act(self.actions.close(request["agent"], request.match_info["id"]))

    async def _act(self, action) -> web.Response:
        try:
            return web.json_response(await action)
        except ConversationError as exc:
            return _refusal(exc)

    async def roles(self, request: web.Request) -> web.Response:
        out = [{"id": r, "name": rc.name.model_dump(), "menu": rc.menu, "hours": rc.hours, "fallback": rc.fallback}
               for r, rc in self.settings.roles.items()]
        return web.json_response({"roles": out})

    async def quick_replies(self, request: web.Request) -> web.Response:
        """Templates with `text` in ?lang= (zh default) and `texts` in both languages."""
        lang = "en" if request.query.get("lang") == "en" else "zh"
        out = []
        for q in self.settings.quick_replies:
            texts = {"zh": q.text, "en": q.text} if isinstance(q.text, str) else q.text.model_dump()
            out.append({"name": q.name, "text": texts[lang], "texts": texts})
        return web.json_response({"quick_replies": out})

    async def link_code(self, request: web.Request) -> web.Response:
        """A one-time code the agent sends to the Telegram / QQ bot (`/link CODE`) to link that account."""
        code = await self.actions.create_link_code(request["agent"])
        return web.json_response({"code": code, "expires_in": 600,
                                  "how": f"send '/link {code}' to the shop's Telegram or QQ bot"})

    # -- live events -----------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        self.sockets.add(ws)
        await ws.send_json({"type": "hello", "agent": request["agent"].id})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str("pong")
        return ws

    async def on_event(self, data: bytes) -> None:
        text = data.decode()
        for ws in list(self.sockets):
            if not ws.closed:
                try:
                    await ws.send_str(text)
                except (ConnectionResetError, RuntimeError):
                    pass

    async def close_sockets(self) -> None:
        await asyncio.gather(*(ws.close(code=1001, message=b"server stopping")
                               for ws in list(self.sockets)), return_exceptions=True)
