"""The OneBot connection: WebSockets, actions, the account's state, the holder.

``mode`` in config.yaml:

* reverse — the OneBot implementation dials ``ws://<web.listen>/onebot/{channel}/ws``
  with ``Authorization: Bearer <access_token>`` (or ``?access_token=``; wrong or
  missing → 401) and ``X-Self-ID`` (other than the configured ``self_id`` → 403).
  ``X-Client-Role`` Universal, Event and API connections are all understood.
* forward — kefu dials ``url`` (Universal) with the token and keeps reconnecting
  with an exponential backoff.

Actions go out as ``{"action", "params", "echo"}``; each waits for the response
carrying its echo (with a timeout).  Lifecycle and heartbeat meta events say whether
the account is online.

Several kefu processes: in reverse mode OneBot dials one of them.  A process with a
connection holds the channel's lease (connectors/kit/lease.py; its info says whether
the account is online) and runs the actions the others push to a Redis list, so a
reply any process consumes goes out at once.  In forward mode every process dials
OneBot itself.  Stopping never cancels a blocking read of that list (redis-py may
then hang for seconds): the loop sees the stop within RPC_POLL.
"""
from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import time
from typing import TYPE_CHECKING, Any, Callable

import aiohttp
from aiohttp import WSMsgType, web
from pydantic import ValidationError
from redis.exceptions import RedisError

from connectors.http import json_error
from connectors.kit.delivery import DeliveryError
from connectors.payloads import OneBotEvent
from connectors.validation import PayloadError, parse_json, problem
from storage.events import new_id

if TYPE_CHECKING:
    from connectors.context import ConnectorContext

FRAME_DEPTH = 32  # nesting of a OneBot frame (a message's segments stay far below)
ACTION_TIMEOUT = 10.0  # s an action may wait for its response
RECONNECT_INITIAL, RECONNECT_MAX = 0.2, 10.0
HOLDER_TTL = 5.0  # s the holder's lease lives without renewal
RPC_POLL = 0.5  # s a holder waits for other processes' actions at a time
RPC_TTL = 60.0

Target = tuple[str, int]  # ("private", qq) or ("group", group id)


class ActionFailed(Exception):
    def __init__(self, action: str, retcode: Any, message: str):
        super().__init__(f"{action} failed (retcode {retcode}): {message}")
        self.retcode = retcode
        self.message = message


class NotConnected(Exception):
    pass


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


class OneBotTransport:
    def __init__(self, ctx: "ConnectorContext", on_event: Callable[[dict], None]):
        self.ctx = ctx
        self.config = ctx.config
        self.name = ctx.name
        self.log = ctx.log
        self.on_event = on_event  # message, request and notice events (not meta)
        self.token = self.config.access_token.get_secret_value() if self.config.access_token else None
        self.self_id: str | None = str(self.config.self_id) if self.config.self_id is not None else None
        self.conns: list[_Conn] = []
        self.online: bool | None = None  # None: not reported yet (counts as online once connected)
        self.last_heartbeat: float | None = None
        self.last_error: str | None = None
        self.accepting = False  # the connector runs: reverse connections are taken
        self.session: aiohttp.ClientSession | None = None  # forward mode's socket; files from QQ
        self.remote_online: bool | None = None  # another process holds the connection: its state
        self.lease = ctx.lease(f"qq:{self.name}", HOLDER_TTL)
        self.pacer = ctx.pacer(f"qq:{self.name}")
        self._pending: dict[str, tuple[asyncio.Future, _Conn]] = {}
        self._echo = itertools.count(1)
        self._stopping = False
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._holder_task: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self.session = aiohttp.ClientSession()
        self._holder_task = self.spawn(self._hold_and_serve(), "holder")
        if self.config.mode == "forward":
            self.spawn(self._forward_loop(), "forward")

    async def close_connections(self) -> None:
        """Close the WebSockets: OneBot reconnects (reverse) or we do (forward) once running again."""
        self._stopping = True
        self.notify()
        try:
            await asyncio.wait_for(asyncio.gather(
                *(c.ws.close(code=1001, message=b"kefu connector restarting") for c in list(self.conns)),
                return_exceptions=True), 2.0)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        await self.close_connections()
        holder = self._holder_task
        others = [t for t in self._tasks if t is not holder]
        for t in others:
            t.cancel()
        if holder is not None:  # it ends by itself within RPC_POLL (see the module's docstring)
            _, late = await asyncio.wait([holder], timeout=RPC_POLL + 1.0)
            for t in late:
                t.cancel()
            others += late
        await asyncio.gather(*others, return_exceptions=True)
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(NotConnected("connector stopped"))
        self._pending.clear()
        self.conns.clear()
        self.online = None
        if self.lease.held:
            try:
                await self.lease.release()
            except (RedisError, OSError):
                pass
        if self.session is not None:
            await self.session.close()
            self.session = None

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"qq:{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def notify(self) -> None:
        """Wake whoever waits for a change (connection, online state, a send settled)."""
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    def watch(self) -> asyncio.Event:
        """What the next change sets (take it before reading the state it is about)."""
        return self._changed

    async def changed(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    @property
    def connected(self) -> bool:
        return any(not c.ws.closed and c.role in ("Universal", "API") for c in self.conns)

    @property
    def ready(self) -> bool:
        return self.connected and self.online is not False

    # -- the WebSockets ------------------------------------------------------------
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
        if not self.accepting:
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
                assert self.session is not None
                ws = await self.session.ws_connect(url, headers=headers, heartbeat=30,
                                                   max_msg_size=32 * 1024 * 1024)
            except aiohttp.WSServerHandshakeError as exc:
                self.last_error = (f"OneBot refused the connection (HTTP {exc.status})"
                                   + (": check access_token" if exc.status in (401, 403) else ""))
                self.log.error("OneBot refused the connection", extra={"status": exc.status, "url": url})
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                self.last_error = f"cannot reach OneBot at {url}: {type(exc).__name__}"
                self.log.warning("cannot reach OneBot", extra={"url": url, "error": str(exc), "retry_in": delay})
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
        self.notify()
        if role in ("Universal", "API"):
            self.spawn(self._probe(), "probe")
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_frame(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._on_frame(msg.data.decode("utf-8", "replace"))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.conns = [c for c in self.conns if c is not conn]
            for fut, c in list(self._pending.values()):
                if c is conn and not fut.done():
                    fut.set_exception(NotConnected("OneBot connection closed"))
            if not ws.closed:
                await ws.close()
            if not self.connected:
                self.online = None  # the next connection reports it afresh
            self.log.info("OneBot disconnected", extra={"role": role})
            self.notify()

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
            self.log.info("QQ account " + ("online" if online else "offline"), extra={"self_id": self.self_id})
        self.online = online
        self.notify()

    def _on_frame(self, raw: str) -> None:
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
        if frame.get("self_id") is not None and self.self_id is None:
            self.self_id = str(frame["self_id"])
        if frame["post_type"] == "meta_event":
            self._on_meta(frame)
        else:
            self.on_event(frame)

    def _on_meta(self, frame: dict) -> None:
        kind = frame.get("meta_event_type")
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

    # -- actions -------------------------------------------------------------------
    async def call(self, action: str, params: dict, timeout: float = ACTION_TIMEOUT) -> Any:
        """Run one OneBot action; its `data`, or ActionFailed / NotConnected / TimeoutError.

        Without a connection of its own, the process asks the one holding it."""
        if not self.connected:
            return await self._remote_call(action, params, timeout)
        return await self._local_call(action, params, timeout)

    def _action_conn(self) -> _Conn:
        live = [c for c in self.conns if not c.ws.closed and c.role in ("Universal", "API")]
        if not live:
            raise NotConnected("no OneBot connection")
        return max(live, key=lambda c: c.opened)

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

    async def send_message(self, target: Target, segs: list[dict], attempts: int = 1) -> str | None:
        """Send one QQ message to ("private", user) or ("group", group) in the bot's next
        slot; its message id.  DeliveryError when it cannot go now (`unavailable`: no
        connection, the account offline) or OneBot refused it every attempt."""
        kind, to = target
        action = "send_private_msg" if kind == "private" else "send_group_msg"
        params = {"user_id" if kind == "private" else "group_id": int(to), "message": segs}
        delay, last = 0.5, ""
        for attempt in range(attempts):
            problem = await self.unavailable()
            if problem:
                raise DeliveryError(problem, unavailable=True)
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            await self.pacer.wait(self.pacer.every("bot", 1.0 / self.config.send_rate))
            try:
                data = await self.call(action, params)
                mid = data.get("message_id") if isinstance(data, dict) else None
                return str(mid) if mid is not None else None
            except NotConnected as exc:
                raise DeliveryError(str(exc), unavailable=True) from None
            except TimeoutError:
                raise DeliveryError(f"{action}: no answer from OneBot in {ACTION_TIMEOUT:.0f}s",
                                    unavailable=True) from None
            except ActionFailed as exc:
                last = str(exc)
                if not await self._still_online():
                    raise DeliveryError("QQ account offline: " + exc.message, unavailable=True) from None
        raise DeliveryError(last)  # OneBot answered "failed" while online: a refusal

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
        """Another process's live connection to OneBot (its lease's info), if any."""
        try:
            holder, info = await self.lease.current()
        except (RedisError, OSError):
            return None
        return info if holder is not None and holder != self.ctx.process else None

    # -- other processes' actions -------------------------------------------------
    async def _remote_call(self, action: str, params: dict, timeout: float) -> Any:
        if await self._holder() is None:
            raise NotConnected("no OneBot connection")
        redis, keys = self.ctx.redis, self.ctx.keys
        rid = new_id("rpc")
        reply_key = keys.qq_rpc_reply(self.name, rid)
        request = {"id": rid, "action": action, "params": params, "reply": reply_key,
                   "deadline": time.time() + timeout}
        pipe = redis.pipeline(transaction=False)
        pipe.rpush(keys.qq_rpc(self.name), json.dumps(request, ensure_ascii=False))
        pipe.expire(keys.qq_rpc(self.name), int(RPC_TTL))
        await pipe.execute()
        res = await self.ctx.blocking.blpop([reply_key], timeout=max(1, int(timeout + 0.999)))
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

    async def _hold_and_serve(self) -> None:
        """While this process has a connection: hold the lease (saying whether the account
        is online), run the actions other processes push.  Otherwise: watch the holder."""
        renewed_at, said = 0.0, None
        while not self._stopping:
            if not self.connected:
                if self.lease.held:
                    await self._release()
                holder = await self._holder()
                self.remote_online = bool(holder.get("online")) if holder is not None else None
                await self.changed(1.0)
                continue
            self.remote_online = None
            info = {"online": self.online is not False, "self_id": self.self_id}
            try:
                if info != said or time.monotonic() - renewed_at >= self.lease.renew_every:
                    await self.lease.acquire(info)
                    renewed_at, said = time.monotonic(), info
                item = await self.ctx.blocking.blpop([self.ctx.keys.qq_rpc(self.name)], timeout=RPC_POLL)
            except (RedisError, OSError) as exc:
                self.log.warning("cannot serve other processes' QQ actions", extra={"error": str(exc)})
                await self.changed(1.0)
                continue
            if item is not None:
                self.spawn(self._serve_rpc(item[1]), "rpc")

    async def _release(self) -> None:
        try:
            await self.lease.release()
        except (RedisError, OSError):
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
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.rpush(req["reply"], json.dumps(resp, ensure_ascii=False))
        pipe.expire(req["reply"], int(RPC_TTL))
        await pipe.execute()
