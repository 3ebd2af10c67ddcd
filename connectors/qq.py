"""QQ through OneBot v11 (NapCat, Lagrange.OneBot, go-cqhttp).

Transport (``mode`` in config.yaml):

* reverse — the OneBot implementation dials ``ws://<web.listen>/onebot/{channel}/ws``
  with ``Authorization: Bearer <access_token>`` (or ``?access_token=``; wrong or
  missing → 401) and ``X-Self-ID`` (other than the configured ``self_id`` → 403).
  ``X-Client-Role`` Universal, Event and API connections are all understood.
* forward — kefu dials ``url`` (Universal) with the token and keeps reconnecting
  with an exponential backoff.

Actions go out as ``{"action", "params", "echo"}``; each waits for the response
carrying its echo (with a timeout).

Customer side: private messages (friends and temporary sessions) become
inbound events — text, faces (``[表情]``), images and files (kept as attachments
with their URLs), reply segments (``meta.reply_to``), in array or CQ-string
format.  ``{self_id}:{message_id}`` is the platform id, so an event OneBot
re-sends is stored once.  The bot's own messages (``message_sent``, or
``user_id == self_id``) are never taken as customer messages.  Friend requests
are accepted when ``auto_accept_friends`` is on.

Replies leave through ``send_private_msg``, split at ``MAX_PART`` characters
(parts already sent are remembered, so a retry never repeats one), paced by a
limiter in Redis that every kefu process shares (``send_rate`` per second per
bot) and retried a few times.  While the account is offline (a heartbeat says
``online: false``) or no OneBot connection is up, `send()` raises
`DeliveryError`: the reply waits in the outbound stream and goes out once the
account is back, and no other channel notices.

Lifecycle and heartbeat meta events feed `/healthz`: ``connected``, ``online``,
``self_id``.

Agents answering from QQ (``agents.mode`` private / group) live in
connectors/qq_agents.py.

Several kefu processes: in reverse mode OneBot dials one of them.  That process
advertises itself in Redis (``qq_holder``) and runs the actions the others push
to a Redis list (``qq_rpc``), so a reply any process consumes goes out at once.
In forward mode every process dials OneBot itself; platform ids and Redis
markers keep events and relays single.  Replies to one customer consumed by two
processes at the same moment may leave in either order (as on every channel).
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import itertools
import json
import re
import time
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from pydantic import ValidationError
from redis.exceptions import RedisError

from connectors.base import Connector, DeliveryError
from connectors.channels import QQChannel
from connectors.http import json_error
from connectors.payloads import OneBotEvent
from connectors.validation import PayloadError, parse_json, problem
from storage.attachments import human_size
from storage.events import Event, new_id

FRAME_DEPTH = 32  # nesting of a OneBot frame (a message's segments stay far below)
ACTION_TIMEOUT = 10.0  # s an action may wait for its response
MAX_PART = 3000  # characters per QQ message (QQ refuses very long ones)
SEND_ATTEMPTS = 3  # tries per part within one delivery round
PERMANENT_AFTER = 4  # rounds of a reply refused by an online account before it is parked
MAP_TTL = 30 * 86400  # how long a sent message id stays quotable
RECONNECT_INITIAL, RECONNECT_MAX = 0.2, 10.0
HOLDER_TTL = 5.0  # s the "this process holds the connection" mark lives without refresh
RPC_TTL = 60.0

# One slot per message: the next free send time of the bot, shared by every process.
_RATE = """
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local gap = tonumber(ARGV[2])
local slot = math.max(nxt, now)
redis.call('SET', KEYS[1], string.format('%.6f', slot + gap), 'PX', math.ceil(gap * 1000) + 60000)
return string.format('%.6f', slot - now)
"""


class ActionFailed(Exception):
    def __init__(self, action: str, retcode: Any, message: str):
        super().__init__(f"{action} failed (retcode {retcode}): {message}")
        self.retcode = retcode
        self.message = message


class NotConnected(Exception):
    pass


# ---------------------------------------------------------------- message parsing
_CQ_RE = re.compile(r"\[CQ:([a-zA-Z0-9_.-]+)((?:,[^,\]]*)*)\]")


def cq_unescape(text: str) -> str:
    return (text.replace("&#44;", ",").replace("&#91;", "[").replace("&#93;", "]")
            .replace("&amp;", "&"))


def cq_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("[", "&#91;").replace("]", "&#93;")


def parse_cq(message: str) -> list[dict]:
    """A CQ-code string as an array of segments."""
    segs: list[dict] = []
    pos = 0
    for m in _CQ_RE.finditer(message):
        if m.start() > pos:
            segs.append({"type": "text", "data": {"text": cq_unescape(message[pos:m.start()])}})
        data = {}
        for kv in filter(None, m.group(2).split(",")):
            k, _, v = kv.partition("=")
            data[k] = cq_unescape(v)
        segs.append({"type": m.group(1), "data": data})
        pos = m.end()
    if pos < len(message):
        segs.append({"type": "text", "data": {"text": cq_unescape(message[pos:])}})
    return segs


def segments(message: Any) -> list[dict]:
    if isinstance(message, str):
        return parse_cq(message)
    if isinstance(message, dict):
        return [message]
    if isinstance(message, list):
        return [s for s in message if isinstance(s, dict)]
    return []


_PLACEHOLDER = {"image": "[图片]", "file": "[文件]", "audio": "[语音]", "video": "[视频]"}


def normalise(message: Any, self_id: Any = None) -> dict[str, Any]:
    """Text, attachments, the quoted message id and @-mentions of a OneBot message."""
    text: list[str] = []
    attachments: list[dict[str, Any]] = []
    reply_to: str | None = None
    at: list[str] = []
    for seg in segments(message):
        kind = str(seg.get("type", ""))
        data = seg.get("data") or {}
        if kind == "text":
            text.append(str(data.get("text", "")))
        elif kind in ("face", "mface", "marketface", "bface", "sface", "dice", "rps"):
            text.append("[表情]")
        elif kind == "reply":
            reply_to = str(data.get("id", "")) or None
        elif kind == "at":
            qq = str(data.get("qq", ""))
            at.append(qq)
            if self_id is None or qq != str(self_id):
                text.append("@全体成员" if qq == "all" else f"@{data.get('name') or qq}")
        elif kind in ("image", "file", "record", "video"):
            ref = str(data.get("file", ""))
            url = str(data.get("url") or (ref if ref.startswith(("http://", "https://")) else ""))
            att: dict[str, Any] = {"type": {"record": "audio"}.get(kind, kind),
                                   "name": str(data.get("name") or ref), "url": url or None}
            size = data.get("file_size")
            if size is not None and str(size).isdigit():
                att["size"] = int(size)
            if data.get("file_id"):
                att["file_id"] = str(data["file_id"])
            attachments.append(att)
        elif kind:
            text.append(f"[{kind}]")
    body = "".join(text).strip()
    placeholder = not body and bool(attachments)
    if placeholder:
        body = " ".join(f"[文件] {a['name']}" if a["type"] == "file" and a["name"]
                        else _PLACEHOLDER.get(a["type"], "[附件]") for a in attachments)
    return {"text": body, "attachments": attachments, "reply_to": reply_to, "at": at, "placeholder": placeholder}


def split_text(text: str, limit: int = MAX_PART) -> list[str]:
    """Split at paragraph, line or sentence boundaries, never inside a surrogate pair."""
    parts: list[str] = []
    while len(text) > limit:
        cut = -1
        for sep in ("\n\n", "\n", "。", ". ", "！", "？", "! ", "? ", " "):
            i = text.rfind(sep, limit // 2, limit)
            if i != -1:
                cut = i + len(sep)
                break
        if cut == -1:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip("\n")
    if text or not parts:
        parts.append(text)
    return parts


def _token_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "token") else None
    return request.query.get("access_token")


class _Conn:
    __slots__ = ("opened", "role", "self_id", "ws")

    def __init__(self, ws: Any, role: str, self_id: str | None):
        self.ws = ws
        self.role = role
        self.self_id = self_id
        self.opened = time.monotonic()


# ---------------------------------------------------------------- the connector
class QQConnector(Connector):
    kind = "qq"
    config: QQChannel

    def __init__(self, ctx):
        super().__init__(ctx)
        self.token = self.config.access_token.get_secret_value() if self.config.access_token else None
        self.keys = ctx.bus.keys
        self.redis = ctx.bus.redis
        self.self_id: str | None = str(self.config.self_id) if self.config.self_id is not None else None
        self.conns: list[_Conn] = []
        self.online: bool | None = None  # None: not reported yet (counts as online once connected)
        self.last_heartbeat: float | None = None
        self._pending: dict[str, tuple[asyncio.Future, _Conn]] = {}
        self._echo = itertools.count(1)
        self._events: asyncio.Queue = asyncio.Queue(maxsize=10000)
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        self._changed = asyncio.Event()
        self._round_failures: dict[str, int] = {}
        self._unsettled = 0  # sends whose message id is not yet remembered
        self._remote_online: bool | None = None  # another process holds the connection: its state
        self._rate = self.redis.register_script(_RATE)
        from connectors.qq_agents import AgentBridge
        self.agents = AgentBridge(self) if self.config.agents.mode != "off" else None
        if self.agents is not None:
            ctx.fanout.subscribe(self.keys.agent_events, self.agents.on_live_event)

    # -- lifecycle ---------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get(f"/onebot/{self.name}/ws", self.reverse_ws)]

    async def start(self) -> None:
        self._stopping = False
        self._spawn(self._event_worker(), "events")
        if self.agents is not None:
            self._spawn(self.agents.worker(), "agent-relay")
        self._spawn(self._rpc_server(), "rpc-server")
        self._session = aiohttp.ClientSession()  # forward mode's socket; agents' files from QQ
        if self.config.mode == "forward":
            self._spawn(self._forward_loop(), "forward")

    async def stop(self) -> None:
        self._stopping = True
        conns = list(self.conns)
        try:  # OneBot reconnects (reverse) or we do (forward) once running again
            await asyncio.wait_for(asyncio.gather(
                *(c.ws.close(code=1001, message=b"kefu connector restarting") for c in conns),
                return_exceptions=True), 2.0)
        except TimeoutError:
            pass
        try:  # events already read are stored before the worker goes
            await asyncio.wait_for(self._events.join(), 2.0)
        except TimeoutError:
            self.log.warning("QQ events left unprocessed at stop", extra={"count": self._events.qsize()})
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(NotConnected("connector stopped"))
        self._pending.clear()
        self.conns.clear()
        self.online = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"qq:{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def connected(self) -> bool:
        return any(not c.ws.closed and c.role in ("Universal", "API") for c in self.conns)

    @property
    def ready(self) -> bool:
        return self.connected and self.online is not False

    def health(self) -> dict[str, Any]:
        out = super().health()
        out.update({"mode": self.config.mode, "connected": self.connected,
                    "online": self.ready, "self_id": self.self_id})
        if not self.connected and self._remote_online is not None:
            out["via_other_process"] = True  # another kefu process holds the connection
            out["online"] = self._remote_online
        if self.last_heartbeat is not None:
            out["last_heartbeat_age"] = round(time.time() - self.last_heartbeat, 1)
        if self.agents is not None:
            out["agents"] = self.config.agents.mode
        return out

    def _notify(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    # -- transports --------------------------------------------------------------
    async def reverse_ws(self, request: web.Request) -> web.StreamResponse:
        if self.config.mode != "reverse":
            return json_error(404, "this QQ channel uses a forward WebSocket")
        if self.token is not None:
            got = _token_of(request)
            if got is None or not hmac.compare_digest(got.encode(), self.token.encode()):
                self.log.warning("OneBot connection refused: bad access token",
                                 extra={"remote": request.remote})
                return json_error(401, "invalid or missing access token")
        self_id = request.headers.get("X-Self-ID")
        if self.config.self_id is not None and self_id != str(self.config.self_id):
            self.log.warning("OneBot connection refused: unexpected X-Self-ID",
                             extra={"self_id": self_id})
            return json_error(403, "X-Self-ID is not this channel's QQ account")
        if self.state != "running":
            return json_error(503, "QQ connector is restarting, try again shortly")
        role = request.headers.get("X-Client-Role", "Universal").capitalize()
        if role == "Api":
            role = "API"
        if role not in ("Universal", "Event", "API"):
            return json_error(400, "X-Client-Role must be Universal, Event or API")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=32 * 1024 * 1024)
        await ws.prepare(request)
        await self._serve(ws, role, self_id)
        return ws

    async def _forward_loop(self) -> None:
        delay = RECONNECT_INITIAL
        url = str(self.config.url)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        while not self._stopping:
            try:
                assert self._session is not None
                ws = await self._session.ws_connect(url, headers=headers, heartbeat=30,
                                                    max_msg_size=32 * 1024 * 1024)
            except aiohttp.WSServerHandshakeError as exc:
                self.last_error = (f"OneBot refused the connection (HTTP {exc.status})"
                                   + (": check access_token" if exc.status in (401, 403) else ""))
                self.log.error("OneBot refused the connection", extra={"status": exc.status, "url": url})
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                self.last_error = f"cannot reach OneBot at {url}: {type(exc).__name__}"
                self.log.warning("cannot reach OneBot", extra={"url": url, "error": str(exc),
                                                               "retry_in": delay})
            else:
                self.last_error = None
                delay = RECONNECT_INITIAL
                await self._serve(ws, "Universal", None)
                if self._stopping:
                    return
                self.log.warning("OneBot connection lost, reconnecting", extra={"url": url})
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _serve(self, ws: Any, role: str, self_id: str | None) -> None:
        conn = _Conn(ws, role, self_id)
        self.conns.append(conn)
        if self_id and self.self_id is None:
            self.self_id = self_id
        self.log.info("OneBot connected", extra={"role": role, "self_id": self_id or self.self_id})
        self._notify()
        if role in ("Universal", "API"):
            self._spawn(self._probe(), "probe")
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_frame(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._on_frame(conn, msg.data.decode("utf-8", "replace"))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.conns = [c for c in self.conns if c is not conn]
            for echo, (fut, c) in list(self._pending.items()):
                if c is conn and not fut.done():
                    fut.set_exception(NotConnected("OneBot connection closed"))
            if not ws.closed:
                await ws.close()
            if not self.connected:
                self.online = None  # the next connection reports it afresh
                self._spawn(self._release_holder(), "release")
            self.log.info("OneBot disconnected", extra={"role": role})
            self._notify()

    async def _probe(self) -> None:
        """On a new connection: learn the account and whether it is online."""
        try:
            info = await self.call("get_login_info", {})
            if isinstance(info, dict) and info.get("user_id") is not None:
                uid = str(info["user_id"])
                if self.config.self_id is not None and uid != str(self.config.self_id):
                    self.log.error("OneBot is logged in as another QQ account",
                                   extra={"expected": self.config.self_id, "got": uid})
                elif self.self_id is None:
                    self.self_id = uid
            status = await self.call("get_status", {})
            if isinstance(status, dict) and "online" in status:
                self._set_online(bool(status["online"]))
        except (TimeoutError, ActionFailed, NotConnected) as exc:
            self.log.info("OneBot probe incomplete", extra={"error": str(exc)})

    def _set_online(self, online: bool) -> None:
        if online != self.online:
            self.log.info("QQ account " + ("online" if online else "offline"),
                          extra={"self_id": self.self_id})
        self.online = online
        self._notify()

    def _on_frame(self, conn: _Conn, raw: str) -> None:
        try:
            frame = parse_json(raw, "frame", surrogates="replace", max_depth=FRAME_DEPTH)
        except PayloadError as exc:
            self.log.warning("OneBot frame ignored", extra={"problem": str(exc)})
            return
        if not isinstance(frame, dict):
            return
        if "post_type" not in frame:
            echo = frame.get("echo")
            item = self._pending.pop(str(echo), None) if echo is not None else None
            if item is not None and not item[0].done():
                item[0].set_result(frame)
            return
        try:
            OneBotEvent.model_validate(frame)
        except ValidationError as exc:
            self.log.warning("OneBot event ignored", extra={"problem": problem(exc)})
            return
        if frame["post_type"] == "meta_event":
            self._on_meta(frame)
            return
        try:
            self._events.put_nowait(frame)
        except asyncio.QueueFull:
            self.log.error("QQ event queue full, event dropped", extra={"post_type": frame["post_type"]})

    def _on_meta(self, frame: dict) -> None:
        kind = frame.get("meta_event_type")
        if frame.get("self_id") is not None and self.self_id is None:
            self.self_id = str(frame["self_id"])
        if kind == "lifecycle":
            sub = frame.get("sub_type")
            if sub in ("connect", "enable"):
                if self.online is None:
                    self._set_online(True)
            elif sub == "disable":
                self._set_online(False)
        elif kind == "heartbeat":
            self.last_heartbeat = time.time()
            status = frame.get("status") or {}
            if isinstance(status, dict):
                online = status.get("online", status.get("good"))
                if online is not None:
                    self._set_online(bool(online))

    # -- actions -----------------------------------------------------------------
    def _action_conn(self) -> _Conn:
        live = [c for c in self.conns if not c.ws.closed and c.role in ("Universal", "API")]
        if not live:
            raise NotConnected("no OneBot connection")
        return max(live, key=lambda c: c.opened)

    async def call(self, action: str, params: dict, timeout: float = ACTION_TIMEOUT) -> Any:
        """Run one OneBot action; its `data`, or ActionFailed / NotConnected / TimeoutError.

        Without a connection of its own, the process asks the one holding it (reverse
        mode: OneBot dials one kefu process) through Redis."""
        if not self.connected:
            return await self._remote_call(action, params, timeout)
        return await self._local_call(action, params, timeout)

    async def _local_call(self, action: str, params: dict, timeout: float = ACTION_TIMEOUT) -> Any:
        conn = self._action_conn()
        echo = f"kefu-{self.name}-{next(self._echo)}"
        fut = asyncio.get_running_loop().create_future()
        self._pending[echo] = (fut, conn)
        try:
            await conn.ws.send_str(json.dumps({"action": action, "params": params, "echo": echo},
                                              ensure_ascii=False))
            resp = await asyncio.wait_for(fut, timeout)
        except (ConnectionError, RuntimeError) as exc:
            raise NotConnected(f"OneBot connection broke: {exc}") from None
        finally:
            self._pending.pop(echo, None)
        if resp.get("status") in ("ok", "async") or resp.get("retcode") in (0, 1):
            return resp.get("data")
        raise ActionFailed(action, resp.get("retcode"),
                           str(resp.get("wording") or resp.get("message") or resp.get("msg") or ""))

    async def pace(self) -> None:
        """Wait for this bot's next send slot (shared by every kefu process)."""
        gap = 1.0 / self.config.send_rate
        try:
            wait = float(await self._rate(keys=[self.keys.qq_rate(self.name)], args=[f"{time.time():.6f}", gap]))
        except (RedisError, OSError) as exc:  # Redis away: pace locally rather than not at all
            self.log.warning("shared rate limiter unavailable", extra={"error": str(exc)})
            wait = gap
        if wait > 0:
            await asyncio.sleep(min(wait, 60.0))

    async def send_message(self, target: tuple[str, int], segs: list[dict],
                           attempts: int = SEND_ATTEMPTS) -> str | None:
        """Send one QQ message to ("private", user) or ("group", group); its message id.

        Raises DeliveryError when the account is offline, the connection is down, or
        every attempt failed."""
        kind, to = target
        action = "send_private_msg" if kind == "private" else "send_group_msg"
        params = {"user_id" if kind == "private" else "group_id": int(to), "message": segs}
        delay, last, refused = 0.5, "", False
        for attempt in range(attempts):
            problem = await self.unavailable()
            if problem:
                raise DeliveryError(problem)
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            await self.pace()
            try:
                data = await self.call(action, params)
                mid = data.get("message_id") if isinstance(data, dict) else None
                return str(mid) if mid is not None else None
            except NotConnected as exc:
                raise DeliveryError(str(exc)) from None
            except TimeoutError:
                last, refused = f"{action}: no response in {ACTION_TIMEOUT:.0f}s", False
            except ActionFailed as exc:
                last, refused = str(exc), True
                if not await self._still_online():
                    raise DeliveryError("QQ account offline: " + exc.message) from None
        err = DeliveryError(last)
        err.refused = refused  # type: ignore[attr-defined]  # OneBot answered "failed" while online
        raise err

    async def _still_online(self) -> bool:
        try:
            status = await self.call("get_status", {}, timeout=5)
        except (ActionFailed, NotConnected, TimeoutError):
            return not await self.unavailable()
        if isinstance(status, dict) and "online" in status:
            if self.connected:
                self._set_online(bool(status["online"]))
            return bool(status["online"])
        return not await self.unavailable()

    async def unavailable(self) -> str | None:
        """Why nothing can be sent now (None: it can), here or through the holder."""
        if self.connected:
            return None if self.online is not False else "QQ account offline"
        holder = await self._holder()
        if holder is None:
            return "no OneBot connection"
        return None if holder.get("online") else "QQ account offline"

    async def _holder(self) -> dict | None:
        """Another process's live connection to OneBot, if any."""
        try:
            raw = await self.redis.get(self.keys.qq_holder(self.name))
            holder = json.loads(raw) if raw else None
        except (RedisError, OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) and holder.get("by") != self.ctx.bus.consumer else None

    # -- actions for other processes -------------------------------------------------
    async def _remote_call(self, action: str, params: dict, timeout: float) -> Any:
        if await self._holder() is None:
            raise NotConnected("no OneBot connection")
        rid = new_id("rpc")
        reply_key = self.keys.qq_rpc_reply(self.name, rid)
        request = {"id": rid, "action": action, "params": params, "reply": reply_key,
                   "deadline": time.time() + timeout}
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(self.keys.qq_rpc(self.name), json.dumps(request, ensure_ascii=False))
        pipe.expire(self.keys.qq_rpc(self.name), int(RPC_TTL))
        await pipe.execute()
        res = await self.ctx.bus.blocking.blpop([reply_key], timeout=max(1, int(timeout + 0.999)))
        if res is None:
            raise TimeoutError(f"{action}: the process holding the OneBot connection did not answer")
        resp = json.loads(res[1])
        if resp.get("error") == "not_connected":
            raise NotConnected(resp.get("message") or "no OneBot connection")
        if resp.get("error") == "timeout":
            raise TimeoutError(resp.get("message") or f"{action}: no response")
        if resp.get("error"):
            raise ActionFailed(action, resp.get("retcode"), resp.get("message") or "")
        return resp.get("data")

    async def _rpc_server(self) -> None:
        """While this process holds the connection: advertise it, run others' actions."""
        key = self.keys.qq_holder(self.name)
        while True:
            if not self.connected:
                changed = self._changed
                holder = await self._holder()
                self._remote_online = bool(holder.get("online")) if holder else None
                try:
                    await asyncio.wait_for(changed.wait(), 1.0)
                except TimeoutError:
                    pass
                continue
            self._remote_online = None
            try:
                await self.redis.set(key, json.dumps({"by": self.ctx.bus.consumer, "online": self.online is not False,
                                                      "self_id": self.self_id}), px=int(HOLDER_TTL * 1000))
                item = await self.ctx.bus.blocking.blpop([self.keys.qq_rpc(self.name)], timeout=1)
            except (RedisError, OSError) as exc:
                self.log.warning("cannot serve other processes' QQ actions", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
                continue
            if item is not None:
                self._spawn(self._serve_rpc(item[1]), "rpc")

    async def _release_holder(self) -> None:
        key = self.keys.qq_holder(self.name)
        try:
            raw = await self.redis.get(key)
            if raw and json.loads(raw).get("by") == self.ctx.bus.consumer and not self.connected:
                await self.redis.delete(key)
        except (RedisError, OSError, ValueError):
            pass

    async def _serve_rpc(self, raw: bytes) -> None:
        try:
            req = json.loads(raw)
        except ValueError:
            return
        if float(req.get("deadline") or 0) < time.time():
            return  # the asking process has given up: running it now could send twice
        try:
            data = await self._local_call(str(req["action"]), req.get("params") or {},
                                          max(1.0, float(req["deadline"]) - time.time()))
            resp: dict[str, Any] = {"data": data}
        except NotConnected as exc:
            resp = {"error": "not_connected", "message": str(exc)}
        except TimeoutError as exc:
            resp = {"error": "timeout", "message": str(exc)}
        except ActionFailed as exc:
            resp = {"error": "failed", "retcode": exc.retcode, "message": exc.message}
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(req["reply"], json.dumps(resp, ensure_ascii=False))
        pipe.expire(req["reply"], int(RPC_TTL))
        await pipe.execute()

    async def send_remembered(self, target: tuple[str, int], segs: list[dict], data: dict,
                              attempts: int = SEND_ATTEMPTS) -> str | None:
        """send_message, then remember what the sent message belongs to (for quotes)."""
        self._unsettled += 1
        try:
            mid = await self.send_message(target, segs, attempts)
            if mid and data:
                await self.redis.set(self.keys.qq_msg(self.name, mid),
                                      json.dumps(data, ensure_ascii=False), ex=MAP_TTL)
            return mid
        finally:
            self._unsettled -= 1
            self._notify()

    async def recall(self, qq_message_id: str | None) -> dict | None:
        """What a quoted message of the bot belongs to.  A quote can race the bookkeeping of
        a message just sent: wait (briefly) for sends in flight before giving up."""
        if not qq_message_id:
            return None
        key = self.keys.qq_msg(self.name, qq_message_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while True:
            changed = self._changed
            # Counted before the read: a send that settles while the read is on its way
            # may have remembered the id just after it; then read again (it notified).
            in_flight = self._unsettled
            raw = await self.redis.get(key)
            if raw or not in_flight or loop.time() >= deadline:
                break
            try:
                await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                pass
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    # -- outbound (customer replies) ---------------------------------------------
    async def media_segments(self, attachments: list[dict], sep: str = "") -> list[dict]:
        """A segment per file: images as images — inline when kefu keeps them (so the QQ
        implementation needs no way to reach kefu), else by address — other files as a
        `sep`-prefixed "name: link" text."""
        segs: list[dict] = []
        for att, link in zip(attachments, self.file_links(attachments)):
            image = str(att.get("type") or "").startswith("image")
            kept = await self.ctx.files.get(att["id"]) if image and att.get("id") else None
            if kept is not None:
                segs.append({"type": "image", "data": {"file": "base64://" + base64.b64encode(kept.data).decode()}})
            elif image and link["url"]:
                segs.append({"type": "image", "data": {"file": link["url"]}})
            elif link["url"]:
                segs.append({"type": "text", "data": {"text": f"{sep}{link['name']}: {link['url']}"}})
        return segs

    async def keep_files(self, attachments: list[dict]) -> tuple[list[dict], str | None]:
        """An agent's QQ images and files, fetched from QQ's servers and kept by kefu
        (storage/attachments.py) so they can go to a customer on any channel; or a
        sentence for the agent saying why not."""
        out = []
        limit = self.ctx.settings.web.max_upload_bytes
        for att in attachments:
            if not att.get("url") or self._session is None:
                return [], f"{att.get('name') or 'the file'} cannot be fetched from QQ (no address)"
            try:
                async with self._session.get(att["url"], timeout=aiohttp.ClientTimeout(total=60)) as resp:
                    if resp.status != 200:
                        return [], f"QQ answered {resp.status} for {att.get('name') or 'the file'}"
                    data = await resp.content.read(limit + 1)
                    mime = resp.headers.get("Content-Type", "").partition(";")[0]
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                return [], f"could not fetch {att.get('name') or 'the file'} from QQ ({type(exc).__name__})"
            if len(data) > limit:
                return [], f"that file is larger than {human_size(limit)}"
            name = att.get("name") if att.get("type") == "file" else "image"
            out.append((await self.ctx.files.put(data, name or "file", mime)).public())
        return out, None

    async def send(self, event: Event) -> None:
        if not event.customer_id.isdigit():
            raise DeliveryError(f"{event.customer_id!r} is not a QQ number", permanent=True)
        # text parts, then each file as a message of its own
        parts = [[{"type": "text", "data": {"text": t}}] for t in split_text(event.text) if t]
        parts += [[seg] for seg in await self.media_segments(event.attachments)]
        if not parts:
            return
        problem = await self.unavailable()
        if problem:
            raise DeliveryError(problem)
        done_key = self.keys.qq_parts(self.name, event.id)
        done = int(await self.redis.get(done_key) or 0)
        try:
            for i in range(done, len(parts)):
                await self.send_remembered(("private", int(event.customer_id)), parts[i], {
                    "cid": event.conversation_id, "id": event.id, "text": event.text[:60], "to": "customer"})
                if len(parts) > 1:
                    await self.redis.set(done_key, i + 1, ex=7 * 86400)
        except DeliveryError as exc:
            if getattr(exc, "refused", False) and not exc.permanent and not await self.unavailable():
                n = self._round_failures[event.id] = self._round_failures.get(event.id, 0) + 1
                if n >= PERMANENT_AFTER:
                    self._round_failures.pop(event.id, None)
                    raise DeliveryError(f"{exc} (refused {n} times while online)", permanent=True) from None
            raise
        self._round_failures.pop(event.id, None)

    # -- inbound -------------------------------------------------------------------
    async def _event_worker(self) -> None:
        while True:
            frame = await self._events.get()
            try:
                await self._on_event(frame)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("QQ event handling failed", extra={"post_type": frame.get("post_type")})
            finally:
                self._events.task_done()

    async def _on_event(self, ev: dict) -> None:
        post = ev.get("post_type")
        if post == "message_sent":
            return  # the bot's own message, reported back: never a customer message
        if ev.get("self_id") is not None and self.self_id is None:
            self.self_id = str(ev["self_id"])
        if post == "request":
            await self._on_request(ev)
        elif post == "message":
            await self._on_message(ev)

    async def _on_request(self, ev: dict) -> None:
        if ev.get("request_type") != "friend":
            return
        if not self.config.auto_accept_friends:
            self.log.info("friend request left for a human", extra={"user_id": ev.get("user_id")})
            return
        try:
            await self.call("set_friend_add_request", {"flag": ev.get("flag"), "approve": True})
            self.log.info("friend request accepted", extra={"user_id": ev.get("user_id")})
        except (TimeoutError, ActionFailed, NotConnected) as exc:
            self.log.warning("friend request not accepted", extra={"user_id": ev.get("user_id"),
                                                                   "error": str(exc)})

    async def _on_message(self, ev: dict) -> None:
        user_id = ev.get("user_id")
        self_id = ev.get("self_id", self.self_id)
        if user_id is None or str(user_id) == str(self_id) or str(user_id) == str(self.self_id):
            return  # our own message: never looped back
        msg = normalise(ev.get("message") if ev.get("message") is not None else ev.get("raw_message", ""),
                        self_id)
        pmid = f"{self_id}:{ev.get('message_id')}"
        sender = ev.get("sender") or {}
        if ev.get("message_type") == "group":
            if self.agents is not None:
                await self.agents.on_group_message(ev, msg, pmid)
            return
        if ev.get("message_type") != "private":
            return
        if self.agents is not None and await self.agents.on_private_message(ev, msg, pmid):
            return
        if not self.config.customers:
            return
        if not msg["text"] and not msg["attachments"]:
            return
        meta: dict[str, Any] = {}
        text = msg["text"]
        if msg["reply_to"]:
            meta["reply_to"] = f"{self_id}:{msg['reply_to']}"
            quoted = await self.recall(msg["reply_to"])
            if quoted and quoted.get("id"):
                meta["reply_to_message"] = quoted["id"]
                if quoted.get("text"):
                    text = f"「{quoted['text']}」\n{text}"
        if sender.get("group_id") or ev.get("sub_type") == "group":
            meta["temp_source_group"] = sender.get("group_id")
        event = self.inbound_event(
            str(user_id), text, platform_msg_id=pmid,
            sender_name=str(sender.get("nickname") or sender.get("card") or "")[:100],
            attachments=msg["attachments"], platform_ts=float(ev.get("time") or time.time()), meta=meta)
        await self._receive_durably(event)

    async def _receive_durably(self, event: Event) -> None:
        """OneBot never re-delivers: keep trying a while if Redis is briefly away."""
        delay = 0.2
        for attempt in range(8):
            try:
                await self.receive(event)
                return
            except (TimeoutError, OSError, RedisError) as exc:
                err = exc
            self.log.warning("cannot store QQ message yet", extra={"error": str(err), "retry_in": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        self.log.error("QQ message lost: Redis unavailable", extra={"platform_msg_id": event.platform_msg_id})
