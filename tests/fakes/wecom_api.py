"""A fake WeCom customer-service API (微信客服) for tests (aiohttp.web, 127.0.0.1, random port).

It answers the way https://qyapi.weixin.qq.com does, closely enough that
connectors/wecom/api.py (or any other client) cannot tell the difference::

    fake = FakeWecom()                          # corp_id, secret, open_kfid, token, aes_key
    url = await fake.start()                    # "http://127.0.0.1:PORT" = the channel's api_base
    msg = fake.inject_text("wmCustomer1", "你好")  # a customer writes
    status, text = await fake.notify(callback_url)   # WeCom's encrypted callback to kefu

Wire details reproduced:

* Every answer is JSON ``{"errcode": N, "errmsg": "...", ...}`` with HTTP 200, except a
  successful ``media/get`` (the file, with Content-Type and Content-Disposition).
* ``GET /cgi-bin/gettoken?corpid=&corpsecret=``: 40013 wrong corp id, 40001 wrong
  secret; tokens live ``token_ttl`` seconds.  Other calls take ``?access_token=``: 41001
  missing, 40014 unknown, 42001 expired.
* ``POST /cgi-bin/kf/sync_msg`` ``{cursor, token, limit, open_kfid}``: the callback
  token must be one the fake issued in a callback and not older than 10 minutes
  (95007); limit 1..1000 (40058); an opaque cursor; ``has_more`` 0/1.
* ``POST /cgi-bin/kf/send_msg``: 95000 wrong open_kfid; 95002 when the customer last
  wrote more than 48 h ago (or never), 95001 when 5 messages were sent since; 95018
  unless the session is new (0) or with the assistant (1); text over 2,048 UTF-8 bytes
  45002, empty 44004; msgid must match [0-9a-zA-Z_-@]{0,32} (40058) and is idempotent:
  the same msgid again is answered ok and sends nothing.  image/file by media_id (40007).
* ``POST /cgi-bin/kf/send_msg_on_event`` ``{code, msgid, msgtype, text}``: the code of
  an ``enter_session`` event, usable once within 20 s (40029).
* ``POST /cgi-bin/media/upload?type=image|voice|video|file`` (multipart field ``media``;
  image ≤ 10 MB, file ≤ 20 MB, else 40009/40006), ``GET /cgi-bin/media/get?media_id=``.
* ``POST /cgi-bin/kf/service_state/get`` / ``trans`` (transitions WeCom allows, else
  95016).

Test controls: ``inject_text``, ``inject_image``, ``inject_file``, ``inject_enter_session``,
``inject_event``, ``notify(url)``, ``verify_url(url)``, ``post_callback(url, fields,
**forgery)``, ``advance(seconds)`` (the fake's clock), ``expire_tokens()``,
``fail_next(path, errcode, times)``, ``set_service_state``.  Observation: ``sent``,
``requests``, ``token_requests``, ``duplicates``, ``customers``, ``wait_for``,
``wait_for_sent``.
"""
from __future__ import annotations

import base64
import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web

from connectors.wecom.crypto import WecomCrypto
from tests.fakes.changes import Changes
from tests.fakes.local_server import serve

__all__ = ["FakeWecom", "Customer", "DEFAULT_AES_KEY"]

DEFAULT_AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"  # WeCom's documented sample
WINDOW_S = 48 * 3600
QUOTA = 5
MAX_TEXT_BYTES = 2048
CALLBACK_TOKEN_TTL = 600
WELCOME_CODE_TTL = 20
MEDIA_LIMITS = {"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}
TRANSITIONS = {0: {1, 2, 3, 4}, 1: {2, 3, 4}, 2: {3, 4}, 3: {3, 4}, 4: {1, 2, 3}}
ERRMSG = {
    40001: "invalid credential", 40006: "invalid file size", 40007: "invalid media_id",
    40009: "invalid image size", 40013: "invalid corpid", 40014: "invalid access_token",
    40029: "invalid code", 40058: "invalid Request Parameter", 41001: "access_token missing",
    42001: "access_token expired", 44004: "empty content", 45002: "content size out of limit",
    45009: "reach max api daily quota limit", 95000: "invalid open_kfid",
    95001: "send msg count limit", 95002: "send msg time limit", 95007: "invalid msg token",
    95016: "invalid service_state transfer", 95018: "send msg session status invalid",
    -1: "system busy",
}


@dataclass
class Customer:
    external_userid: str
    last_at: float | None = None  # when the customer last wrote
    sent_since: int = 0  # messages sent to them since
    state: int = 4  # service_state: no session yet
    servicer_userid: str = ""


@dataclass
class _Failure:
    path: str | None
    errcode: int
    times: int


def _ok(**kw: Any) -> web.Response:
    return web.json_response({"errcode": 0, "errmsg": "ok", **kw})


class WecomError(Exception):
    def __init__(self, errcode: int, detail: str = ""):
        super().__init__(errcode)
        self.errcode = errcode
        self.detail = detail


@dataclass
class FakeWecom:
    corp_id: str = "ww0123456789abcdef"
    secret: str = "kf-secret-0123456789"
    open_kfid: str = "wkAbCdEf"
    token: str = "CallbackToken123"
    aes_key: str = DEFAULT_AES_KEY
    token_ttl: int = 7200

    sent: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    customers: dict[str, Customer] = field(default_factory=dict)
    token_requests: int = 0
    duplicates: int = 0

    def __post_init__(self) -> None:
        self.crypto = WecomCrypto(self.token, self.aes_key, self.corp_id)
        self.url = ""
        self._offset = 0.0
        self._tokens: dict[str, float] = {}
        self._callback_tokens: dict[str, float] = {}
        self._welcome_codes: dict[str, tuple[str, float]] = {}
        self._log: list[dict] = []
        self._by_msgid: dict[str, dict] = {}
        self._media: dict[str, tuple[bytes, str, str]] = {}
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._changes: Changes | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> str:
        self._changes = Changes("FakeWecom")
        app = web.Application(client_max_size=32 << 20)
        app.router.add_route("*", "/cgi-bin/{path:.+}", self._handle)
        self._runner, self.url = await serve(app)
        return self.url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeWecom:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- clock and waiting ------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (tokens, 48-hour windows and codes age)."""
        self._offset += seconds
        self._notify()

    def _notify(self) -> None:
        if self._changes:
            self._changes.notify()

    async def wait_for(self, predicate, timeout: float = 5.0) -> Any:
        return await self._changes.wait_for(predicate, timeout)

    async def wait_for_sent(self, count: int = 1, timeout: float = 5.0) -> list[dict]:
        return await self.wait_for(lambda: self.sent if len(self.sent) >= count else None, timeout)

    # -- injection ----------------------------------------------------------------------
    def customer(self, external_userid: str) -> Customer:
        return self.customers.setdefault(external_userid, Customer(external_userid))

    def _append(self, external_userid: str, msgtype: str, body: dict, origin: int = 3) -> dict:
        msg = {"msgid": f"fake{next(self._ids):08d}", "open_kfid": self.open_kfid,
               "external_userid": external_userid, "send_time": int(self.now()),
               "origin": origin, "msgtype": msgtype, msgtype: body}
        if origin == 3:
            c = self.customer(external_userid)
            c.last_at, c.sent_since = self.now(), 0
            if c.state == 4:
                c.state = 0
        self._log.append(msg)
        self._notify()
        return msg

    def inject_text(self, external_userid: str, text: str) -> dict:
        return self._append(external_userid, "text", {"content": text})

    def add_media(self, data: bytes, filename: str, content_type: str) -> str:
        media_id = "MEDIA" + secrets.token_hex(12)
        self._media[media_id] = (data, filename, content_type)
        return media_id

    def inject_image(self, external_userid: str, data: bytes, content_type: str = "image/png") -> dict:
        return self._append(external_userid, "image",
                            {"media_id": self.add_media(data, "image.png", content_type)})

    def inject_file(self, external_userid: str, data: bytes, filename: str = "file.pdf",
                    content_type: str = "application/pdf") -> dict:
        return self._append(external_userid, "file",
                            {"media_id": self.add_media(data, filename, content_type)})

    def inject_event(self, external_userid: str, event_type: str, **fields: Any) -> dict:
        body = {"event_type": event_type, "open_kfid": self.open_kfid,
                "external_userid": external_userid, **fields}
        msg = self._append(external_userid, "event", body, origin=4)
        msg.pop("external_userid")  # events carry the user inside "event" only
        return msg

    def inject_enter_session(self, external_userid: str, scene: str = "") -> tuple[dict, str]:
        """The customer opened the chat: an enter_session event with a welcome code."""
        code = "WELCOME" + secrets.token_hex(8)
        self._welcome_codes[code] = (external_userid, self.now() + WELCOME_CODE_TTL)
        return self.inject_event(external_userid, "enter_session", scene=scene,
                                 welcome_code=code), code

    def set_service_state(self, external_userid: str, state: int, servicer_userid: str = "") -> None:
        c = self.customer(external_userid)
        c.state, c.servicer_userid = state, servicer_userid

    def expire_tokens(self) -> None:
        """Every access token issued so far expires (the next call answers 42001)."""
        for t in self._tokens:
            self._tokens[t] = self.now() - 1

    def fail_next(self, path: str | None, errcode: int, times: int = 1) -> None:
        """The next `times` calls of `path` (e.g. "kf/send_msg"; None = any) answer `errcode`."""
        self._failures.append(_Failure(path, errcode, times))

    # -- callbacks to kefu --------------------------------------------------------------
    def issue_callback_token(self) -> str:
        token = "ENC" + secrets.token_urlsafe(24).replace("-", "A").replace("_", "B")
        self._callback_tokens[token] = self.now() + CALLBACK_TOKEN_TTL
        return token

    def callback_fields(self, token: str | None = None) -> dict[str, str | int]:
        return {"ToUserName": self.corp_id, "CreateTime": int(self.now()), "MsgType": "event",
                "Event": "kf_msg_or_event", "Token": token or self.issue_callback_token(),
                "OpenKfId": self.open_kfid}

    async def post_callback(self, url: str, fields: dict[str, str | int], *,
                            signature: str | None = None, crypto: WecomCrypto | None = None,
                            body: str | None = None) -> tuple[int, str]:
        """POST an encrypted event callback as WeCom does.  Forgeries for tests: another
        `signature`, a `crypto` with another key or corp id, or a raw `body`."""
        timestamp, nonce = str(int(self.now())), str(secrets.randbelow(10**10))
        made, sig = (crypto or self.crypto).encrypt_callback(fields, timestamp, nonce)
        params = {"msg_signature": signature or sig, "timestamp": timestamp, "nonce": nonce}
        async with ClientSession() as s, s.post(url, params=params, data=(body or made).encode(),
                                                headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.text()

    async def notify(self, url: str) -> tuple[int, str]:
        """WeCom's "new messages" callback (kf_msg_or_event with a fresh sync token)."""
        return await self.post_callback(url, self.callback_fields())

    async def verify_url(self, url: str, echo: str | None = None, *,
                         signature: str | None = None) -> tuple[int, str, str]:
        """The console's "save callback URL" check: (status, body, the expected echo)."""
        echo = echo or str(secrets.randbelow(10**19))
        timestamp, nonce = str(int(self.now())), str(secrets.randbelow(10**10))
        echostr = self.crypto.encrypt(echo)
        params = {"msg_signature": signature or self.crypto.sign(timestamp, nonce, echostr),
                  "timestamp": timestamp, "nonce": nonce, "echostr": echostr}
        async with ClientSession() as s, s.get(url, params=params) as resp:
            return resp.status, await resp.text(), echo

    # -- the API ------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        record = {"path": path, "method": request.method, "query": dict(request.query), "at": self.now()}
        self.requests.append(record)
        try:
            self._inject_failure(path)
            if path == "gettoken":
                resp = self._gettoken(request)
            else:
                self._check_token(request.query.get("access_token"))
                handler = _ROUTES.get(path)
                if handler is None:
                    return web.json_response({"errcode": 404, "errmsg": f"no such api {path}"}, status=404)
                resp = await handler(self, request, record)
        except WecomError as e:
            record["errcode"] = e.errcode
            resp = web.json_response({"errcode": e.errcode,
                                      "errmsg": f"{ERRMSG.get(e.errcode, 'error')} {e.detail}".strip()
                                      + f", hint: [{secrets.token_hex(6)}]"})
        else:
            record.setdefault("errcode", 0)
        self._notify()
        return resp

    def _inject_failure(self, path: str) -> None:
        for f in self._failures:
            if f.times > 0 and (f.path is None or f.path == path):
                f.times -= 1
                raise WecomError(f.errcode, "(injected)")

    def _gettoken(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if request.query.get("corpid") != self.corp_id:
            raise WecomError(40013)
        if request.query.get("corpsecret") != self.secret:
            raise WecomError(40001)
        token = secrets.token_urlsafe(48)
        self._tokens[token] = self.now() + self.token_ttl
        return _ok(access_token=token, expires_in=self.token_ttl)

    def _check_token(self, token: str | None) -> None:
        if not token:
            raise WecomError(41001)
        if token not in self._tokens:
            raise WecomError(40014)
        if self._tokens[token] <= self.now():
            raise WecomError(42001)

    async def _body(self, request: web.Request, record: dict) -> dict:
        try:
            body = await request.json()
        except ValueError:
            raise WecomError(40058, "body is not JSON") from None
        if not isinstance(body, dict):
            raise WecomError(40058, "body is not a JSON object")
        record["body"] = body
        return body

    def _kfid(self, body: dict) -> None:
        if body.get("open_kfid") != self.open_kfid:
            raise WecomError(95000)

    async def _sync_msg(self, request: web.Request, record: dict) -> web.Response:
        body = await self._body(request, record)
        if body.get("open_kfid") not in (None, self.open_kfid):
            raise WecomError(95000)
        token = body.get("token")
        if token is not None and self._callback_tokens.get(token, 0) <= self.now():
            raise WecomError(95007)
        limit = body.get("limit", 1000)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise WecomError(40058, "limit")
        start = _cursor_index(body.get("cursor"))
        page = self._log[start:start + limit]
        end = start + len(page)
        return _ok(next_cursor=_cursor(end), has_more=int(end < len(self._log)), msg_list=page)

    def _content(self, body: dict) -> tuple[str, dict]:
        kind = body.get("msgtype")
        content = body.get(kind) if isinstance(body.get(kind), dict) else None
        if kind not in ("text", "image", "file", "voice", "video") or content is None:
            raise WecomError(40058, "msgtype")
        if kind == "text":
            text = content.get("content")
            if not isinstance(text, str) or not text:
                raise WecomError(44004)
            if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
                raise WecomError(45002)
        elif content.get("media_id") not in self._media:
            raise WecomError(40007)
        return kind, content

    def _msgid(self, body: dict) -> str:
        msgid = body.get("msgid")
        if msgid is None:
            return f"auto{next(self._ids):08d}"
        if not isinstance(msgid, str) or not re.fullmatch(r"[0-9a-zA-Z_\-@]{1,32}", msgid):
            raise WecomError(40058, "msgid")
        return msgid

    def _record(self, via: str, msgid: str, touser: str, kind: str, content: dict) -> dict:
        entry = {"via": via, "msgid": msgid, "touser": touser, "msgtype": kind, kind: content,
                 "at": self.now()}
        if kind == "text":
            entry["text"] = content["content"]
        else:
            data, filename, ctype = self._media[content["media_id"]]
            entry["file"] = {"data": data, "filename": filename, "content_type": ctype}
        self.sent.append(entry)
        self._by_msgid[msgid] = entry
        return entry

    async def _send_msg(self, request: web.Request, record: dict) -> web.Response:
        body = await self._body(request, record)
        self._kfid(body)
        msgid = self._msgid(body)
        if msgid in self._by_msgid:
            self.duplicates += 1
            return _ok(msgid=msgid)
        kind, content = self._content(body)
        c = self.customers.get(str(body.get("touser") or ""))
        if c is None or c.last_at is None or c.last_at + WINDOW_S <= self.now():
            raise WecomError(95002)
        if c.sent_since >= QUOTA:
            raise WecomError(95001)
        if c.state not in (0, 1):
            raise WecomError(95018)
        c.sent_since += 1
        self._record("send_msg", msgid, c.external_userid, kind, content)
        return _ok(msgid=msgid)

    async def _send_msg_on_event(self, request: web.Request, record: dict) -> web.Response:
        body = await self._body(request, record)
        code = body.get("code")
        user, expires = self._welcome_codes.pop(code, (None, 0.0)) if isinstance(code, str) else (None, 0.0)
        if user is None or expires <= self.now():
            raise WecomError(40029)
        msgid = self._msgid(body)
        kind, content = self._content(body)
        self._record("send_msg_on_event", msgid, user, kind, content)
        return _ok(msgid=msgid)

    async def _media_upload(self, request: web.Request, record: dict) -> web.Response:
        kind = request.query.get("type")
        if kind not in MEDIA_LIMITS:
            raise WecomError(40058, "type")
        if not request.content_type.startswith("multipart/"):
            raise WecomError(40058, "multipart/form-data expected")
        part = (await request.post()).get("media")
        if not isinstance(part, web.FileField):
            raise WecomError(40058, "no media part")
        data = part.file.read()
        if len(data) < 5 or len(data) > MEDIA_LIMITS[kind]:
            raise WecomError(40009 if kind == "image" else 40006)
        media_id = self.add_media(data, part.filename or "file", part.content_type or "application/octet-stream")
        record["upload"] = {"type": kind, "filename": part.filename, "size": len(data)}
        return _ok(type=kind, media_id=media_id, created_at=str(int(self.now())))

    async def _media_get(self, request: web.Request, record: dict) -> web.StreamResponse:
        got = self._media.get(request.query.get("media_id", ""))
        if got is None:
            raise WecomError(40007)
        data, filename, ctype = got
        return web.Response(body=data, headers={"Content-Type": ctype,
                                                "Content-Disposition": f'attachment; filename="{filename}"'})

    async def _service_state_get(self, request: web.Request, record: dict) -> web.Response:
        body = await self._body(request, record)
        self._kfid(body)
        c = self.customer(str(body.get("external_userid") or ""))
        return _ok(service_state=c.state, servicer_userid=c.servicer_userid)

    async def _service_state_trans(self, request: web.Request, record: dict) -> web.Response:
        body = await self._body(request, record)
        self._kfid(body)
        c = self.customer(str(body.get("external_userid") or ""))
        state = body.get("service_state")
        if state not in TRANSITIONS.get(c.state, set()):
            raise WecomError(95016, f"{c.state} -> {state}")
        if state == 3 and not body.get("servicer_userid"):
            raise WecomError(40058, "servicer_userid")
        c.state, c.servicer_userid = state, str(body.get("servicer_userid") or "")
        return _ok()


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"fake-cursor:{index}".encode()).decode().rstrip("=")


def _cursor_index(cursor: Any) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(str(cursor) + "=" * (-len(str(cursor)) % 4)).decode()
        prefix, _, index = raw.partition(":")
        if prefix != "fake-cursor":
            raise ValueError
        return int(index)
    except ValueError:
        raise WecomError(40058, "cursor") from None


_ROUTES = {
    "kf/sync_msg": FakeWecom._sync_msg,
    "kf/send_msg": FakeWecom._send_msg,
    "kf/send_msg_on_event": FakeWecom._send_msg_on_event,
    "media/upload": FakeWecom._media_upload,
    "media/get": FakeWecom._media_get,
    "kf/service_state/get": FakeWecom._service_state_get,
    "kf/service_state/trans": FakeWecom._service_state_trans,
}
