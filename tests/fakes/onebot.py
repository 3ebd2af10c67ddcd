"""A fake OneBot v11 implementation (the protocol NapCat / Lagrange / go-cqhttp speak).

Two transports, same behaviour:

* ``FakeOneBotReverse(url, access_token, self_id)`` — *reverse* WebSocket: the fake
  connects to kefu's endpoint with the v11 handshake headers ``X-Self-ID``,
  ``X-Client-Role: Universal`` and ``Authorization: Bearer <token>``.  A refused
  handshake raises ``OneBotConnectRefused(status)`` from ``connect()``.
* ``FakeOneBotForward(access_token, self_id)`` — *forward* WebSocket: the fake serves
  ``ws://127.0.0.1:<port>/`` (Universal; ``/event`` and ``/api`` are the split roles)
  and kefu connects to it.  Auth by ``Authorization: Bearer <token>`` header or
  ``?access_token=`` query: missing -> HTTP 401, wrong -> HTTP 403 (as the v11 HTTP
  spec and go-cqhttp do; set ``wrong_token_status=401`` to change).

Frames (JSON text):

* events pushed to kefu: ``meta_event`` (lifecycle ``connect`` on each new
  connection, ``heartbeat`` with ``status`` and ``interval`` in ms), ``message``
  (private ``friend``/``group`` temp and ``group`` ``normal``) with ``message`` as an
  *array* of segments (``{"type": "text", "data": {"text": ...}}``, ``image``
  ``{file, url, file_size}``, ``face`` ``{id}``, ``reply`` ``{id}``, ``file``, ``at``),
  ``raw_message`` in CQ code, ``sender``, ``self_id``, ``time``, ``font``,
  ``message_format: "array"``; ``request`` (friend add with ``flag``); ``notice``.
* actions from kefu: ``{"action", "params", "echo"}`` answered
  ``{"status": "ok", "retcode": 0, "data": ..., "message": "", "wording": "", "echo": ...}``
  or ``{"status": "failed", "retcode": N, "data": null, "message": ..., "echo": ...}``
  (1404 unknown action, 1400 bad params, ``OFFLINE_RETCODE`` while offline).
  Handled: send_private_msg, send_group_msg, send_msg, get_login_info,
  set_friend_add_request, get_msg, delete_msg, get_status, get_version_info,
  get_friend_list, get_stranger_info, can_send_image, can_send_record, and the
  NapCat/go-cqhttp extensions upload_private_file / upload_group_file.  Media in
  outgoing segments (``base64://``, ``file://``) is decoded into ``sent[i]["files"]``.
  ``message_format="string"`` makes events carry ``message`` as a CQ-code string.
  Events injected while no connection is up are recorded but lost (as in NapCat):
  ``await wait_connected()`` first.
  Outgoing ``message`` may be a CQ-code string (honouring ``auto_escape``) or an array.

Test API shared by both (``OneBotCore``): ``inject_private_message``,
``inject_group_message``, ``inject_friend_request``, ``inject_notice``, ``emit_event``,
``emit_heartbeat``, ``emit_lifecycle``, ``set_online``, ``fail_next``,
``delay_next``, ``add_media``, attributes ``sent`` / ``actions`` / ``events`` /
``messages`` / ``friend_requests`` / ``deleted`` / ``online``, and
``await wait_for(predicate, timeout)`` / ``await wait_for_sent(...)`` /
``await wait_for_action(...)``.  Segment builders live in ``Seg``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

__all__ = [
    "FakeOneBotForward",
    "FakeOneBotReverse",
    "OneBotConnectRefused",
    "OneBotCore",
    "Seg",
    "cq_escape",
    "cq_unescape",
    "parse_cq",
    "segments_text",
    "to_cq",
]

OFFLINE_RETCODE = 1400


class OneBotConnectRefused(Exception):
    """The reverse-WS handshake was refused by kefu (HTTP status in ``status``)."""

    def __init__(self, status: int, message: str = ""):
        super().__init__(f"handshake refused: HTTP {status} {message}".strip())
        self.status = status


# ---------------------------------------------------------------------- segments / CQ
class Seg:
    """Builders for v11 message segments (values are strings, as in the spec)."""

    @staticmethod
    def text(text: str) -> dict:
        return {"type": "text", "data": {"text": text}}

    @staticmethod
    def image(file: str = "6B4DE3DFD1BD271E3297859D41C530F5.jpg", url: str | None = None,
              file_size: int | None = None, sub_type: int = 0) -> dict:
        data: dict[str, Any] = {"file": file, "sub_type": sub_type}
        data["url"] = url or ("https://multimedia.nt.qq.com.cn/download?appid=1406&"
                              f"fileid=FAKE{abs(hash(file)) % 10**8}&rkey=FAKE")
        if file_size is not None:
            data["file_size"] = str(file_size)
        return {"type": "image", "data": data}

    @staticmethod
    def face(face_id: int | str) -> dict:
        return {"type": "face", "data": {"id": str(face_id)}}

    @staticmethod
    def reply(message_id: int | str) -> dict:
        return {"type": "reply", "data": {"id": str(message_id)}}

    @staticmethod
    def at(qq: int | str) -> dict:
        return {"type": "at", "data": {"qq": str(qq)}}

    @staticmethod
    def file(name: str, file_id: str | None = None, file_size: int | None = None,
             url: str | None = None) -> dict:
        data: dict[str, Any] = {"file": name,
                                "file_id": file_id or f"/{abs(hash(name)) % 10**12:x}-fake"}
        if file_size is not None:
            data["file_size"] = str(file_size)
        if url:
            data["url"] = url
        return {"type": "file", "data": data}


def cq_escape(text: str, *, param: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("[", "&#91;").replace("]", "&#93;")
    if param:
        text = text.replace(",", "&#44;")
    return text


def cq_unescape(text: str) -> str:
    return (text.replace("&#44;", ",").replace("&#91;", "[").replace("&#93;", "]")
            .replace("&amp;", "&"))


def to_cq(segments: list[dict]) -> str:
    """Render an array message as a CQ-code string (``raw_message``)."""
    out = []
    for seg in segments:
        if seg["type"] == "text":
            out.append(cq_escape(str(seg["data"].get("text", ""))))
        else:
            params = "".join(f",{k}={cq_escape(str(v), param=True)}"
                             for k, v in (seg.get("data") or {}).items() if v is not None)
            out.append(f"[CQ:{seg['type']}{params}]")
    return "".join(out)


_CQ_RE = re.compile(r"\[CQ:([a-zA-Z0-9_.-]+)((?:,[^,\]]*)*)\]")


def parse_cq(message: str) -> list[dict]:
    """Parse a CQ-code string into an array message."""
    segs: list[dict] = []
    pos = 0
    for m in _CQ_RE.finditer(message):
        if m.start() > pos:
            segs.append(Seg.text(cq_unescape(message[pos:m.start()])))
        data = {}
        for kv in filter(None, m.group(2).split(",")):
            k, _, v = kv.partition("=")
            data[k] = cq_unescape(v)
        segs.append({"type": m.group(1), "data": data})
        pos = m.end()
    if pos < len(message):
        segs.append(Seg.text(cq_unescape(message[pos:])))
    return segs


def normalize_message(message: Any, auto_escape: bool = False) -> list[dict]:
    if isinstance(message, str):
        return [Seg.text(message)] if auto_escape else parse_cq(message)
    if isinstance(message, dict):
        return [message]
    if isinstance(message, list):
        return [dict(s) for s in message]
    raise ValueError("message must be a string or an array of segments")


def segments_text(segments: list[dict]) -> str:
    return "".join(str(s.get("data", {}).get("text", "")) for s in segments
                   if s.get("type") == "text")


def _segment_files(segs: list[dict]) -> list[dict]:
    """Media carried by outgoing segments: base64:// decoded, file:// read, URLs kept."""
    import base64
    from pathlib import Path
    out = []
    for seg in segs:
        if seg.get("type") not in ("image", "file", "record", "video"):
            continue
        ref = str((seg.get("data") or {}).get("file", ""))
        item: dict[str, Any] = {"type": seg["type"], "file": ref, "data": None,
                                "name": (seg.get("data") or {}).get("name")}
        if ref.startswith("base64://"):
            item["data"] = base64.b64decode(ref[len("base64://"):])
        elif ref.startswith("file://"):
            path = Path(ref[len("file://"):])
            item["data"] = path.read_bytes() if path.is_file() else None
        elif ref.startswith("/") and Path(ref).is_file():
            item["data"] = Path(ref).read_bytes()
        out.append(item)
    return out


class _ActionFailed(Exception):
    def __init__(self, retcode: int, message: str):
        super().__init__(message)
        self.retcode = retcode
        self.message = message


@dataclass
class _Fault:
    action: str | None
    retcode: int
    message: str
    times: int


# ---------------------------------------------------------------------- core
class OneBotCore:
    """State and protocol logic shared by the reverse and forward transports."""

    OFFLINE_RETCODE = OFFLINE_RETCODE

    def __init__(self, access_token: str | None = None, self_id: int = 10001, *,
                 nickname: str = "客服小号", heartbeat_interval: int | None = None,
                 send_lifecycle: bool = True, message_format: str = "array"):
        self.access_token = access_token
        self.self_id = int(self_id)
        self.nickname = nickname
        self.heartbeat_interval = heartbeat_interval   # ms; None = no automatic heartbeat
        self.send_lifecycle = send_lifecycle
        if message_format not in ("array", "string"):
            raise ValueError("message_format must be 'array' or 'string'")
        self.message_format = message_format   # how events carry ``message``
        self.online = True
        self.sent: list[dict] = []          # successful send_* actions (see _record_send)
        self.actions: list[dict] = []       # {"frame", "response", "at"} for every action
        self.events: list[dict] = []        # every event pushed to kefu
        self.messages: dict[int, dict] = {} # message_id -> get_msg data (both directions)
        self.friend_requests: dict[str, dict] = {}   # flag -> request event
        self.handled_requests: list[dict] = []       # set_friend_add_request params
        self.deleted: list[int] = []
        self.friends: dict[int, str] = {}
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_base_url: str | None = None
        self._msg_ids = itertools.count(1_000_001)
        self._flags = itertools.count(1)
        self._faults: list[_Fault] = []
        self._delays: list[tuple[str | None, float]] = []
        self._conns: list[tuple[aiohttp.ClientWebSocketResponse | web.WebSocketResponse, str]] = []
        self._tasks: set[asyncio.Task] = set()
        self._hb_task: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._media_runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- waiting
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
                raise TimeoutError(f"{type(self).__name__}.wait_for: condition not met "
                                   f"in {timeout}s")
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_for_sent(self, predicate: Callable[[dict], bool] | None = None,
                            count: int = 1, timeout: float = 5.0) -> dict:
        """Wait until ``count`` entries of ``sent`` match; return the last match."""
        def check():
            hits = [s for s in self.sent if predicate is None or predicate(s)]
            return hits[count - 1] if len(hits) >= count else None
        return await self.wait_for(check, timeout)

    async def wait_for_action(self, action: str, count: int = 1, timeout: float = 5.0) -> dict:
        """Wait for the ``count``-th action frame named ``action``; returns its record."""
        def check():
            hits = [a for a in self.actions if a["frame"].get("action") == action]
            return hits[count - 1] if len(hits) >= count else None
        return await self.wait_for(check, timeout)

    # ---------------------------------------------------------------- connections
    @property
    def connected(self) -> bool:
        return any(not ws.closed for ws, _ in self._conns)

    @property
    def connection_count(self) -> int:
        return sum(1 for ws, _ in self._conns if not ws.closed)

    async def wait_connected(self, timeout: float = 5.0, count: int = 1) -> None:
        await self.wait_for(lambda: self.connection_count >= count, timeout)

    async def _serve(self, ws, role: str) -> None:
        """Read action frames from one connection until it closes."""
        self._conns.append((ws, role))
        self._notify()
        try:
            if self.send_lifecycle and role in ("Universal", "Event"):
                await self._send_to(ws, self._lifecycle("connect"))
            self._ensure_heartbeat()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._spawn(self._on_frame(ws, role, msg.data))
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._spawn(self._on_frame(ws, role, msg.data.decode("utf-8", "replace")))
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
        finally:
            self._conns = [(w, r) for w, r in self._conns if w is not ws]
            self._notify()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send_to(self, ws, payload: dict) -> None:
        if not ws.closed:
            await ws.send_str(json.dumps(payload, ensure_ascii=False))

    async def _on_frame(self, ws, role: str, raw: str) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or "action" not in frame:
            resp = {"status": "failed", "retcode": 1400, "data": None,
                    "message": "invalid action frame", "wording": "invalid action frame"}
            if isinstance(frame, dict) and "echo" in frame:
                resp["echo"] = frame["echo"]
            record = {"frame": frame if isinstance(frame, dict) else {"raw": raw},
                      "response": resp, "at": time.time()}
            self.actions.append(record)
            await self._send_to(ws, resp)
            self._notify()
            return
        if role == "Event":      # event-only connections do not take actions
            return
        resp = await self.handle_action(frame)
        await self._send_to(ws, resp)

    async def handle_action(self, frame: dict) -> dict:
        """Run one action frame and return the response frame (also recorded)."""
        action = str(frame.get("action", ""))
        params = frame.get("params") or {}
        record: dict[str, Any] = {"frame": frame, "response": None, "at": time.time()}
        self.actions.append(record)
        self._notify()
        delay = self._take_delay(action)
        if delay:
            await asyncio.sleep(delay)
        try:
            fault = self._take_fault(action)
            if fault:
                raise _ActionFailed(fault.retcode, fault.message)
            handler = getattr(self, "_act_" + action.lstrip("."), None)
            if handler is None:
                raise _ActionFailed(1404, "API not found: " + action)
            data = handler(params)
            resp: dict[str, Any] = {"status": "ok", "retcode": 0, "data": data,
                                    "message": "", "wording": ""}
        except _ActionFailed as err:
            resp = {"status": "failed", "retcode": err.retcode, "data": None,
                    "message": err.message, "wording": err.message}
        except (KeyError, TypeError, ValueError) as err:
            resp = {"status": "failed", "retcode": 1400, "data": None,
                    "message": f"bad params: {err}", "wording": f"bad params: {err}"}
        if "echo" in frame:
            resp["echo"] = frame["echo"]
        record["response"] = resp
        self._notify()
        return resp

    def _take_fault(self, action: str) -> _Fault | None:
        for f in self._faults:
            if f.action in (None, action):
                f.times -= 1
                if f.times <= 0:
                    self._faults.remove(f)
                return f
        return None

    def _take_delay(self, action: str) -> float:
        for i, (name, seconds) in enumerate(self._delays):
            if name in (None, action):
                del self._delays[i]
                return seconds
        return 0.0

    async def emit_event(self, event: dict) -> dict:
        """Push an event to every event-capable connection (Universal/Event roles)."""
        targets = [ws for ws, role in self._conns if role in ("Universal", "Event")
                   and not ws.closed]
        self.events.append(event)
        for ws in targets:
            try:
                await self._send_to(ws, event)
            except (ConnectionError, RuntimeError):
                pass
        self._notify()
        return event

    async def emit_raw(self, frame: str) -> None:
        """Push a frame exactly as given (malformed or hostile events, for robustness tests)."""
        for ws, role in list(self._conns):
            if role in ("Universal", "Event") and not ws.closed:
                await ws.send_str(frame)

    # ---------------------------------------------------------------- test controls
    def fail_next(self, action: str | None = "send_private_msg", retcode: int = 1400,
                  message: str = "fake failure", times: int = 1) -> None:
        """The next ``times`` calls of ``action`` (None = any) answer status failed."""
        self._faults.append(_Fault(action, retcode, message, times))

    def delay_next(self, action: str | None, seconds: float) -> None:
        """Delay the response to the next ``action`` (to get out-of-order responses)."""
        self._delays.append((action, seconds))

    async def set_online(self, online: bool) -> None:
        """Go offline/online: sends fail while offline; a heartbeat reports the state."""
        self.online = online
        await self.emit_heartbeat()

    def status(self) -> dict:
        return {"app_initialized": True, "app_enabled": True, "plugins_good": None,
                "app_good": True, "online": self.online, "good": self.online,
                "stat": {"packet_received": len(self.actions), "packet_sent": len(self.events),
                         "message_received": 0, "message_sent": len(self.sent)}}

    async def emit_heartbeat(self, interval: int | None = None) -> dict:
        return await self.emit_event({
            "time": int(time.time()), "self_id": self.self_id, "post_type": "meta_event",
            "meta_event_type": "heartbeat", "status": self.status(),
            "interval": interval or self.heartbeat_interval or 5000})

    def _lifecycle(self, sub_type: str) -> dict:
        return {"time": int(time.time()), "self_id": self.self_id,
                "post_type": "meta_event", "meta_event_type": "lifecycle",
                "sub_type": sub_type}

    async def emit_lifecycle(self, sub_type: str = "connect") -> dict:
        return await self.emit_event(self._lifecycle(sub_type))

    def _ensure_heartbeat(self) -> None:
        if self.heartbeat_interval and (self._hb_task is None or self._hb_task.done()):
            self._hb_task = self._spawn(self._heartbeat_loop())

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval / 1000)  # type: ignore[operator]
            if self.connected:
                await self.emit_heartbeat()

    def _wire_message(self, segs: list[dict]) -> list[dict] | str:
        return to_cq(segs) if self.message_format == "string" else segs

    def new_message_id(self) -> int:
        return next(self._msg_ids)

    async def inject_private_message(self, user_id: int, message: str | list | dict,
                                     nickname: str | None = None, *,
                                     sub_type: str = "friend", message_id: int | None = None,
                                     group_id: int | None = None, time_: int | None = None) -> dict:
        """A QQ user writes to the bot.  ``message``: text or segment array.

        ``sub_type``: "friend" (default) or "group" (temporary session, with
        ``group_id`` in ``temp_source``-style field ``sender.group_id``).
        """
        segs = [Seg.text(message)] if isinstance(message, str) else normalize_message(message)
        nickname = nickname or self.friends.get(int(user_id)) or f"QQ用户{user_id}"
        mid = message_id if message_id is not None else self.new_message_id()
        sender: dict[str, Any] = {"user_id": int(user_id), "nickname": nickname, "card": "",
                                  "sex": "unknown", "age": 0}
        if group_id is not None:
            sender["group_id"] = int(group_id)
        event = {
            "self_id": self.self_id, "user_id": int(user_id), "time": time_ or int(time.time()),
            "message_id": mid, "message_seq": mid, "real_id": mid,
            "message_type": "private", "sender": sender, "raw_message": to_cq(segs),
            "font": 14, "sub_type": sub_type, "message": self._wire_message(segs),
            "message_format": self.message_format,
            "post_type": "message", "target_id": int(user_id),
        }
        self.messages[mid] = {"time": event["time"], "message_type": "private",
                              "message_id": mid, "real_id": mid, "sender": sender,
                              "message": segs, "raw_message": event["raw_message"]}
        return await self.emit_event(event)

    async def inject_group_message(self, group_id: int, user_id: int,
                                   message: str | list | dict, nickname: str | None = None,
                                   *, card: str = "", role: str = "member",
                                   message_id: int | None = None) -> dict:
        segs = [Seg.text(message)] if isinstance(message, str) else normalize_message(message)
        mid = message_id if message_id is not None else self.new_message_id()
        sender = {"user_id": int(user_id), "nickname": nickname or f"QQ用户{user_id}",
                  "card": card, "role": role, "sex": "unknown", "age": 0}
        event = {
            "self_id": self.self_id, "user_id": int(user_id), "time": int(time.time()),
            "message_id": mid, "message_seq": mid, "real_id": mid,
            "message_type": "group", "sender": sender, "raw_message": to_cq(segs),
            "font": 14, "sub_type": "normal", "message": self._wire_message(segs),
            "message_format": self.message_format,
            "post_type": "message", "group_id": int(group_id), "anonymous": None,
        }
        self.messages[mid] = {"time": event["time"], "message_type": "group",
                              "message_id": mid, "real_id": mid, "sender": sender,
                              "message": segs, "group_id": int(group_id)}
        return await self.emit_event(event)

    async def inject_friend_request(self, user_id: int, comment: str = "",
                                    flag: str | None = None) -> dict:
        flag = flag or f"{int(time.time() * 1000)}{next(self._flags):04d}"
        event = {"time": int(time.time()), "self_id": self.self_id, "post_type": "request",
                 "request_type": "friend", "user_id": int(user_id), "comment": comment,
                 "flag": flag}
        self.friend_requests[flag] = event
        return await self.emit_event(event)

    async def inject_notice(self, notice_type: str, **fields: Any) -> dict:
        event = {"time": int(time.time()), "self_id": self.self_id, "post_type": "notice",
                 "notice_type": notice_type, **fields}
        return await self.emit_event(event)

    async def add_media(self, name: str, data: bytes,
                        content_type: str = "image/jpeg") -> str:
        """Serve ``data`` over HTTP (as a QQ media URL would be); returns the URL."""
        self.media[name] = (bytes(data), content_type)
        if self.media_base_url is None:
            await self._start_media_server()
        return f"{self.media_base_url}/media/{name}"

    async def _start_media_server(self) -> None:
        app = web.Application()
        app.router.add_get("/media/{name}", self._serve_media)
        self._media_runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._media_runner.setup()
        site = web.TCPSite(self._media_runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.media_base_url = f"http://127.0.0.1:{port}"

    async def _serve_media(self, request: web.Request) -> web.Response:
        item = self.media.get(request.match_info["name"])
        if item is None:
            raise web.HTTPNotFound()
        return web.Response(body=item[0], content_type=item[1])

    async def _close_core(self) -> None:
        for ws, _ in list(self._conns):
            try:
                await ws.close()
            except Exception:
                pass
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._media_runner:
            await self._media_runner.cleanup()
            self._media_runner = None
            self.media_base_url = None

    # ---------------------------------------------------------------- actions
    def _require_online(self) -> None:
        if not self.online:
            raise _ActionFailed(self.OFFLINE_RETCODE, "bot offline: 账号已离线")

    def _record_send(self, action: str, params: dict, message_type: str) -> dict:
        self._require_online()
        segs = normalize_message(params["message"], bool(params.get("auto_escape")))
        if not segs:
            raise _ActionFailed(1400, "message is empty")
        mid = self.new_message_id()
        user_id = int(params["user_id"]) if params.get("user_id") is not None else None
        group_id = int(params["group_id"]) if params.get("group_id") is not None else None
        if message_type == "private" and user_id is None:
            raise _ActionFailed(1400, "user_id is required")
        if message_type == "group" and group_id is None:
            raise _ActionFailed(1400, "group_id is required")
        entry = {"action": action, "params": params, "message_type": message_type,
                 "user_id": user_id, "group_id": group_id, "message": segs,
                 "text": segments_text(segs), "files": _segment_files(segs),
                 "message_id": mid, "at": time.time()}
        self.sent.append(entry)
        sender = {"user_id": self.self_id, "nickname": self.nickname}
        self.messages[mid] = {"time": int(time.time()), "message_type": message_type,
                              "message_id": mid, "real_id": mid, "sender": sender,
                              "message": segs, "raw_message": to_cq(segs),
                              **({"group_id": group_id} if group_id else {})}
        return {"message_id": mid}

    def _upload_file(self, action: str, params: dict, message_type: str) -> None:
        self._require_online()
        seg = {"type": "file", "data": {"file": params["file"],
                                        "name": params.get("name") or ""}}
        self._record_send(action, dict(params, message=[seg]), message_type)

    def _act_upload_private_file(self, params: dict) -> None:
        """NapCat/go-cqhttp extension: send a file to a friend (``file`` = path/URL/base64)."""
        return self._upload_file("upload_private_file", params, "private")

    def _act_upload_group_file(self, params: dict) -> None:
        return self._upload_file("upload_group_file", params, "group")

    def _act_send_private_msg(self, params: dict) -> dict:
        return self._record_send("send_private_msg", params, "private")

    def _act_send_group_msg(self, params: dict) -> dict:
        return self._record_send("send_group_msg", params, "group")

    def _act_send_msg(self, params: dict) -> dict:
        mtype = params.get("message_type")
        if mtype not in ("private", "group"):
            mtype = "group" if params.get("group_id") is not None else "private"
        return self._record_send("send_msg", params, mtype)

    def _act_get_login_info(self, params: dict) -> dict:
        return {"user_id": self.self_id, "nickname": self.nickname}

    def _act_get_status(self, params: dict) -> dict:
        return self.status()

    def _act_get_version_info(self, params: dict) -> dict:
        return {"app_name": "FakeOneBot", "app_version": "0.1.0",
                "protocol_version": "v11"}

    def _act_can_send_image(self, params: dict) -> dict:
        return {"yes": True}

    def _act_can_send_record(self, params: dict) -> dict:
        return {"yes": False}

    def _act_get_friend_list(self, params: dict) -> list:
        return [{"user_id": uid, "nickname": nick, "remark": ""}
                for uid, nick in self.friends.items()]

    def _act_get_stranger_info(self, params: dict) -> dict:
        uid = int(params["user_id"])
        return {"user_id": uid, "nickname": self.friends.get(uid, f"QQ用户{uid}"),
                "sex": "unknown", "age": 0}

    def _act_set_friend_add_request(self, params: dict) -> None:
        self._require_online()
        flag = str(params["flag"])
        req = self.friend_requests.pop(flag, None)
        if req is None:
            raise _ActionFailed(1400, "request flag not found or already handled")
        approve = params.get("approve", True)
        self.handled_requests.append({"flag": flag, "approve": approve,
                                      "remark": params.get("remark", ""),
                                      "user_id": req["user_id"]})
        if approve:
            self.friends[req["user_id"]] = params.get("remark") or f"QQ用户{req['user_id']}"

    def _act_get_msg(self, params: dict) -> dict:
        mid = int(params["message_id"])
        msg = self.messages.get(mid)
        if msg is None:
            raise _ActionFailed(1400, "消息不存在")
        return dict(msg, message=self._wire_message(msg["message"]))

    def _act_delete_msg(self, params: dict) -> None:
        self._require_online()
        mid = int(params["message_id"])
        if self.messages.pop(mid, None) is None:
            raise _ActionFailed(1400, "消息不存在")
        self.deleted.append(mid)


# ---------------------------------------------------------------------- reverse WS
class FakeOneBotReverse(OneBotCore):
    """OneBot implementation in reverse-WebSocket mode: it dials kefu.

    ``connect()`` makes one attempt (raises ``OneBotConnectRefused`` on a refused
    handshake); ``start()`` keeps a connection up in the background, reconnecting
    every ``reconnect_interval`` seconds like NapCat/Lagrange do.  ``disconnect()``
    drops the current connection (simulating a network cut), ``stop()`` ends it all.
    ``connect_attempts`` records each attempt's HTTP status (101 = accepted).
    """

    def __init__(self, url: str, access_token: str | None = None, self_id: int = 10001, *,
                 role: str = "Universal", reconnect_interval: float = 0.2,
                 user_agent: str = "CQHttp/4.15.0", **kwargs: Any):
        super().__init__(access_token, self_id, **kwargs)
        self.url = url
        self.role = role
        self.reconnect_interval = reconnect_interval
        self.user_agent = user_agent
        self.connect_attempts: list[int] = []
        self._session: aiohttp.ClientSession | None = None
        self._runner_task: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None
        self._stopping = False

    def handshake_headers(self) -> dict:
        headers = {"X-Self-ID": str(self.self_id), "X-Client-Role": self.role,
                   "User-Agent": self.user_agent}
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        return headers

    async def connect(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            ws = await self._session.ws_connect(self.url, headers=self.handshake_headers(),
                                                heartbeat=None, autoping=True)
        except aiohttp.WSServerHandshakeError as err:
            self.connect_attempts.append(err.status)
            self._notify()
            raise OneBotConnectRefused(err.status, err.message) from None
        self.connect_attempts.append(101)
        self._reader = self._spawn(self._serve(ws, self.role))
        await self.wait_for(lambda: any(w is ws for w, _ in self._conns) or ws.closed, 5)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.connect()
                if self._reader is not None:
                    await asyncio.shield(self._reader)
            except asyncio.CancelledError:
                raise
            except (OneBotConnectRefused, aiohttp.ClientError, OSError):
                pass
            if self._stopping:
                break
            await asyncio.sleep(self.reconnect_interval)

    async def start(self) -> None:
        """Connect in the background and keep reconnecting until ``stop()``."""
        self._stopping = False
        if self._runner_task is None or self._runner_task.done():
            self._runner_task = self._spawn(self._run())

    async def disconnect(self) -> None:
        """Close the current connection (the background loop, if any, reconnects)."""
        for ws, _ in list(self._conns):
            await ws.close()
        await self.wait_for(lambda: not self.connected, 5)

    async def stop(self) -> None:
        self._stopping = True
        await self._close_core()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FakeOneBotReverse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# ---------------------------------------------------------------------- forward WS
class FakeOneBotForward(OneBotCore):
    """OneBot implementation in forward-WebSocket mode: kefu dials it.

    ``await start() -> "ws://127.0.0.1:<port>"``; paths ``/`` (Universal), ``/event``
    and ``/api``.  ``connection_attempts`` records ``{"path", "status", "headers"}``
    for each handshake (status 101 accepted, 401 missing token, 403 wrong token).
    ``drop_connections()`` closes every client connection (simulated restart).
    """

    def __init__(self, access_token: str | None = None, self_id: int = 10001, *,
                 wrong_token_status: int = 403, **kwargs: Any):
        super().__init__(access_token, self_id, **kwargs)
        self.wrong_token_status = wrong_token_status
        self.connection_attempts: list[dict] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self._ws_handler)
        app.router.add_get("/event", self._ws_handler)
        app.router.add_get("/api", self._ws_handler)
        app.router.add_get("/media/{name}", self._serve_media)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}"
        self.media_base_url = f"http://127.0.0.1:{port}"
        return self.url

    def _auth_status(self, request: web.Request) -> int:
        if not self.access_token:
            return 101
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() in ("bearer", "token") and value == self.access_token:
                return 101
            return self.wrong_token_status
        query = request.query.get("access_token")
        if query is None:
            return 401
        return 101 if query == self.access_token else self.wrong_token_status

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        status = self._auth_status(request)
        self.connection_attempts.append({"path": request.path, "status": status,
                                         "headers": dict(request.headers)})
        self._notify()
        if status != 101:
            text = "Unauthorized" if status == 401 else "Forbidden"
            return web.json_response({"status": "failed", "retcode": status,
                                      "message": text}, status=status)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        role = {"/": "Universal", "/event": "Event", "/api": "API"}[request.path]
        await self._serve(ws, role)
        return ws

    async def drop_connections(self) -> None:
        for ws, _ in list(self._conns):
            await ws.close()
        await self.wait_for(lambda: not self.connected, 5)

    async def stop(self) -> None:
        await self._close_core()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOneBotForward:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
