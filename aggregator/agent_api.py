"""The agent API (SPEC "Agent API"), used by the console and by scripts.

Every read and action is checked against the acting agent
(routing/permissions.py through AgentActions): a conversation outside the
agent's roles and not assigned to them is left out of lists and refused with
403; replying to, transferring or closing a conversation another agent owns
is refused (409) unless the agent holds the supervisor role.  Everything an
agent reads is masked (routing/masking.py); `reveal` shows one message in
clear to agents with `reveal_pii`.  Actions are written to the audit stream.

/api/events sockets end with their session: a socket whose token was revoked
(logout, in any process; the agent removed from config) or expired is closed
with code 4401 within SESSION_CHECK seconds.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from aggregator.agent_payloads import BodyError, checked_body
from aggregator.auth import Auth, token_hash
from aggregator.config import AgentConfig, Settings
from connectors import files
from connectors.client_address import client_ip
from connectors.http import json_error, too_many_requests
from routing import permissions, quick_replies
from routing.actions import AgentActions, refusal
from routing.masking import mask_conversation, mask_event, mask_message
from storage import metrics
from storage.attachments import AttachmentStore
from storage.conversations import ConversationError, ConversationStore
from storage.limits import LoginGuard

log = logging.getLogger("kefu.api")

PUBLIC = {"/api/login"}
SESSION_CHECK = 1.0  # s between checks that the sessions of open /api/events sockets still live
SESSION_ENDED = 4401  # WebSocket close code: the session ended (log in again)


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


def via(request: web.Request) -> str:
    """Where an agent acts from, for the audit stream: the console (a browser on this
    origin sends Sec-Fetch-Site) or a script using the API."""
    return "console" if request.headers.get("Sec-Fetch-Site") == "same-origin" else "api"


@dataclass(slots=True)
class Session:
    """Whose /api/events socket it is: the agent and the hash of the token it opened with."""
    agent_id: str
    token_hash: str


class AgentApi:
    def __init__(self, settings: Settings, auth: Auth, store: ConversationStore, actions: AgentActions,
                 files: AttachmentStore):
        self.settings = settings
        self.auth = auth
        self.login_guard = LoginGuard(store.redis, store.keys)
        self.store = store
        self.actions = actions
        self.files = files
        self.sockets: dict[web.WebSocketResponse, Session] = {}
        self._session_watch: asyncio.Task | None = None
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
            web.post(c + "/messages/{mid}/reveal", self.reveal),
            web.post("/api/attachments", self.upload),
            web.post(c + "/claim", self.claim),
            web.post(c + "/transfer", self.transfer),
            web.post(c + "/close", self.close),
            web.get("/api/events", self.events),
            web.get("/api/quick_replies", self.quick_replies),
            web.get(c + "/quick_replies", self.conversation_quick_replies),
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
        # The same steps whether or not `agent` exists: answers and timing tell nothing.
        policy, ip = self.settings.limits.login, client_ip(request, self.settings.web.trusted_proxies)
        if wait := await self.login_guard.attempt(agent, ip, policy):
            metrics.logins_refused.labels("locked_out").inc()
            await self.actions.audit.record(self._loggable(agent), "login", via=via(request), reason="locked_out")
            return too_many_requests(wait, "too many failed logins")
        token = await self.auth.login(agent, password)
        if token is None:
            metrics.logins_refused.labels("wrong_password").inc()
            log.info("login refused", extra={"agent": self._loggable(agent)})
            await self.actions.audit.record(self._loggable(agent), "login", via=via(request), reason="wrong_password")
            if wait := await self.login_guard.failed(agent, ip, policy):
                log.warning("logins locked out", extra={"ip": ip, "seconds": round(wait)})
                return too_many_requests(wait, "wrong agent or password; too many failed logins")
            return json_error(401, "wrong agent or password")
        await self.login_guard.succeeded(agent, ip, policy)
        a = self.auth.agents[agent]
        log.info("login", extra={"agent": agent})
        await self.actions.audit.record(a.id, "login", via=via(request))
        return web.json_response({"token": token, "agent": {"id": a.id, "name": a.name, "roles": a.roles},
                                  "expires_in": self.auth.ttl})

    def _loggable(self, agent: str) -> str:
        """Someone may type a password into the name field: a name no agent has is never
        logged or audited."""
        return agent if agent in self.auth.agents else "unknown"

    async def logout(self, request: web.Request) -> web.Response:
        """End this session: the token is revoked and its /api/events sockets closed."""
        token = bearer(request) or ""
        agent_id = await self.auth.logout(token)
        if agent_id is not None:
            await self.actions.audit.record(agent_id, "logout", via=via(request))
            await self._end_sessions({token_hash(token)}, "logged out")
        return web.json_response({"ok": True})

    async def me(self, request: web.Request) -> web.Response:
        a: AgentConfig = request["agent"]
        info = await self.store.agent(a.id)
        return web.json_response({"id": a.id, "name": a.name, "roles": a.roles,
                                  "permissions": self.actions.permissions(a),
                                  "status": info.get("status", "offline"),
                                  "capacity": self.settings.capacity(a)})

    async def presence(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        status = data.get("status")
        if status not in ("online", "away", "offline"):
            return json_error(400, "status must be online, away or offline")
        a: AgentConfig = request["agent"]
        await self.store.set_presence(a.id, status)
        await self.actions.audit.record(a.id, "presence", via=via(request), detail=status)
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
        agent: AgentConfig = request["agent"]
        everything = permissions.SUPERVISOR in agent.roles and "customer" not in request.query
        convs = [c for c in await self.store.list(status, limit if everything else 1000)
                 if permissions.may_see(agent, c)]
        if "customer" in request.query:  # the customer's earlier conversations
            convs = [c for c in convs if c["customer"]["id"] == request.query["customer"]]
        return web.json_response({"conversations": [mask_conversation(c) for c in convs[:limit]]})

    async def get_conversation(self, request: web.Request) -> web.Response:
        agent: AgentConfig = request["agent"]
        try:
            conv = await self.actions.view(agent, request.match_info["id"], via=via(request))
        except ConversationError as exc:
            return _refusal(exc)
        if conv["unread"] and conv["assignee"] == agent.id:  # the owner has now seen it
            await self.store.set_fields(conv["id"], unread="0")
        return web.json_response(mask_conversation(conv))

    async def reveal(self, request: web.Request) -> web.Response:
        """One message in clear (permission reveal_pii), recorded in the audit stream."""
        agent: AgentConfig = request["agent"]
        cid, mid = request.match_info["id"], request.match_info["mid"]
        try:
            await self.actions.view(agent, cid, via=via(request), messages=False, action="reveal")
        except ConversationError as exc:
            return _refusal(exc)
        if not self.actions.holds(agent, "reveal_pii"):
            await self.actions.audit.record(agent.id, "reveal", via=via(request), conversation=cid, message=mid,
                                            reason="not_permitted")
            return json_error(403, "revealing masked numbers needs the reveal_pii permission")
        msg = await self.store.message(cid, mid)
        if msg is None:
            return json_error(404, "message not found")
        await self.actions.audit.record(agent.id, "reveal", via=via(request), conversation=cid, message=mid)
        return web.json_response({"id": mid, "text": msg["text"]})

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
                                           via=via(request), attachments=attachments)
        except ConversationError as exc:
            return _refusal(exc)
        return web.json_response(mask_message(msg), status=201)

    async def upload(self, request: web.Request) -> web.Response:
        """POST /api/attachments?name=guide.pdf, the file as the body → 201 its description."""
        return await files.upload(request, self.files, self.settings.web.max_upload_bytes)

    async def claim(self, request: web.Request) -> web.Response:
        return await self._act(self.actions.claim(request["agent"], request.match_info["id"], via=via(request)))

    async def transfer(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        agent, cid = request["agent"], request.match_info["id"]
        if isinstance(data.get("agent"), str) and data["agent"]:
            action = self.actions.transfer(agent, cid, to_agent=data["agent"], via=via(request))
        elif isinstance(data.get("role"), str):
            action = self.actions.transfer(agent, cid, role=data["role"], via=via(request))
        else:
            return json_error(400, "give {\"role\": ...} or {\"agent\": ...}")
        return await self._act(action)

    async def close(self, request: web.Request) -> web.Response:
        return await self._act(self.actions.close(request["agent"], request.match_info["id"], via=via(request)))

    async def _act(self, action) -> web.Response:
        try:
            return web.json_response(mask_conversation(await action))
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

    async def conversation_quick_replies(self, request: web.Request) -> web.Response:
        """Each quick reply filled for this conversation: {"quick_replies": [{name, text,
        missing}]} — `missing` names the variables the agent must give before sending."""
        try:
            conv = await self.actions.view(request["agent"], request.match_info["id"], via=via(request),
                                           messages=False)
        except ConversationError as exc:
            return _refusal(exc)
        filled = quick_replies.for_conversation(self.settings, conv, request["agent"])
        return web.json_response({"quick_replies": [{"name": f.name, "text": f.text, "missing": f.missing}
                                                    for f in filled]})

    async def link_code(self, request: web.Request) -> web.Response:
        """A one-time code the agent sends to the Telegram / QQ bot (`/link CODE`) to link that account."""
        code = await self.actions.create_link_code(request["agent"])
        return web.json_response({"code": code, "expires_in": 600,
                                  "how": f"send '/link {code}' to the shop's Telegram or QQ bot"})

    # -- live events -----------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        agent: AgentConfig = request["agent"]
        self.sockets[ws] = Session(agent.id, token_hash(bearer(request) or ""))
        if self._session_watch is None or self._session_watch.done():
            self._session_watch = asyncio.create_task(self._watch_sessions(), name="session-watch")
        try:
            await ws.send_json({"type": "hello", "agent": agent.id})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str("pong")
        finally:
            self.sockets.pop(ws, None)
        return ws

    async def on_event(self, data: bytes) -> None:
        """A live event to the sockets whose agent may see its conversation, masked."""
        if not self.sockets:
            return
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        scope = await self._scope(payload)
        masked = mask_event(payload)
        text = data.decode() if masked == payload else json.dumps(masked, ensure_ascii=False)
        for ws, session in list(self.sockets.items()):
            agent = self.auth.agents.get(session.agent_id)
            if ws.closed or agent is None or (scope is not None and not permissions.may_see(agent, scope)):
                continue
            try:
                await ws.send_str(text)
            except (ConnectionResetError, RuntimeError):
                pass

    async def _scope(self, payload: dict) -> dict | None:
        """The role and assignee of the conversation an event is about (None: about none)."""
        conv = payload.get("conversation")
        if isinstance(conv, dict):
            return conv
        cid = payload.get("conversation_id")
        if not isinstance(cid, str) or not cid:
            return None
        if all(permissions.SUPERVISOR in (a.roles if (a := self.auth.agents.get(s.agent_id)) else ())
               for s in self.sockets.values()):
            return None  # everyone listening sees everything
        role, assignee = await self.store.redis.hmget(self.store.keys.conversation(cid), "role", "assignee")
        if role is None and assignee is None:
            return {"role": "-", "assignee": ""}  # no such conversation (any more): supervisors only
        return {"role": (role or b"").decode(), "assignee": (assignee or b"").decode()}

    async def _watch_sessions(self) -> None:
        """Close sockets whose session ended anywhere (logout in another process, expiry,
        the agent removed from config), while any socket is open."""
        while self.sockets:
            await asyncio.sleep(SESSION_CHECK)
            digests = sorted({s.token_hash for s in self.sockets.values()})
            try:
                agents = await self.auth.live(digests)
            except Exception as exc:  # Redis away: sessions are checked again next round
                log.warning("session check failed", extra={"error": str(exc)})
                continue
            await self._end_sessions({d for d, a in zip(digests, agents) if a is None},
                                     "session ended (logged out, expired or revoked)")

    async def _end_sessions(self, digests: set[str], reason: str) -> None:
        ended = [ws for ws, s in list(self.sockets.items()) if s.token_hash in digests]
        for ws in ended:
            self.sockets.pop(ws, None)
        await asyncio.gather(*(ws.close(code=SESSION_ENDED, message=reason.encode()) for ws in ended),
                             return_exceptions=True)

    async def close_sockets(self) -> None:
        await asyncio.gather(*(ws.close(code=1001, message=b"server stopping")
                               for ws in list(self.sockets)), return_exceptions=True)
        if self._session_watch is not None:
            self._session_watch.cancel()
