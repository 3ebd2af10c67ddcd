"""An aiohttp client of the WeCom customer-service API (微信客服), for one account.

- ``gettoken`` (corp id + secret) gives an access token for ~2 h; it is cached until
  its expiry minus a margin and kept through a `TokenStore`, so the connector can share
  one token across processes (a token fetched elsewhere is used, not fetched again).
  40014 / 41001 / 42001 (token invalid, missing or expired) refresh it once and repeat
  the call.
- ``kf/sync_msg`` pulls what customers wrote (cursor, the callback's token, limit).
- ``kf/send_msg`` sends text (split at 2,048 UTF-8 bytes), images and files (by
  media_id after ``media/upload``), each part with a msgid derived from kefu's own
  message id, so a re-send after a crash is recognisable; ``kf/send_msg_on_event``
  answers an ``enter_session`` event's welcome code; ``media/get`` fetches customers'
  images and files; ``kf/service_state/get|trans`` keep the session with the API
  (智能助手, state 1), the only state besides "new" in which API replies are allowed.

Errors: `WecomRefusal` (the platform's rules refuse this message: the 48-hour window,
the 5-message quota, a session a person took over in WeCom) names its rule;
`WecomRateLimited` and `WecomUnavailable` are worth retrying; any other `WecomApiError`
is not.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from connectors.kit.text import split_text, utf8_bytes
from connectors.wecom.rules import EXPLANATIONS, RULE_QUOTA, RULE_WINDOW

MAX_TEXT_BYTES = 2048
MAX_MSGID = 32

TOKEN_ERRORS = {40014, 41001, 42001}  # invalid, missing, expired access_token
RATE_LIMIT_ERRORS = {45009, 45011, 45033}  # API frequency / concurrency limits
BUSY_ERRORS = {-1}  # system busy
RULE_SESSION = "wecom_session_state"
REFUSALS = {
    95001: RULE_QUOTA,  # send msg count limit (5 until the customer writes)
    95002: RULE_WINDOW,  # send msg time limit (48 h after the customer's last message)
    95024: RULE_WINDOW,  # no message from the customer within 48 h
    95018: RULE_SESSION,  # send msg session status invalid (a person serves it in WeCom)
}
SESSION_EXPLANATION = {
    "zh": "该微信客服会话已由企业微信中的接待人员接管，API 无法回复；请在企业微信中结束或转回智能助手。",
    "en": "A servicer took this WeChat session over in WeCom, so kefu cannot reply through the API; "
          "end it there or hand it back to the assistant.",
}

# kf/sync_msg origin of a message
ORIGIN_CUSTOMER = 3
ORIGIN_EVENT = 4
ORIGIN_SERVICER = 5

# kf/service_state values
STATE_NEW = 0  # 未处理
STATE_ASSISTANT = 1  # 由智能助手接待: the API (kefu) serves the customer
STATE_QUEUE = 2  # 待接入池排队中
STATE_HUMAN = 3  # 由人工接待 in WeCom's own app
STATE_ENDED = 4  # 已结束/未开始


class WecomApiError(Exception):
    def __init__(self, path: str, errcode: int, errmsg: str = ""):
        super().__init__(f"{path}: errcode {errcode} {errmsg}".strip())
        self.path = path
        self.errcode = errcode
        self.errmsg = errmsg


class WecomUnavailable(WecomApiError):
    """Worth retrying later: the platform is busy, unreachable or answered 5xx."""

    def __init__(self, path: str, errcode: int, errmsg: str = "", retry_after: float = 1.0):
        super().__init__(path, errcode, errmsg)
        self.retry_after = retry_after


class WecomRateLimited(WecomUnavailable):
    """The API's frequency limits: retry after a pause."""


class WecomRefusal(WecomApiError):
    """The platform's rules refuse this message now; `rule` names the rule."""

    def __init__(self, path: str, errcode: int, errmsg: str, rule: str):
        super().__init__(path, errcode, errmsg)
        self.rule = rule

    def explain(self, lang: str = "en") -> str:
        texts = SESSION_EXPLANATION if self.rule == RULE_SESSION else EXPLANATIONS[self.rule]
        return texts["zh" if lang == "zh" else "en"]


class TokenStore(Protocol):
    """Where the access token lives; the connector shares it across processes."""

    async def load(self) -> tuple[str, float] | None: ...  # (token, expires_at unix s)

    async def store(self, token: str, expires_at: float) -> None: ...


class MemoryTokenStore:
    def __init__(self) -> None:
        self.value: tuple[str, float] | None = None

    async def load(self) -> tuple[str, float] | None:
        return self.value

    async def store(self, token: str, expires_at: float) -> None:
        self.value = (token, expires_at)


@dataclass(slots=True)
class KfMessage:
    """One entry of kf/sync_msg's msg_list."""
    msgid: str
    open_kfid: str
    external_userid: str
    send_time: int
    origin: int
    msgtype: str
    text: str = ""
    media_id: str = ""
    event: dict[str, Any] = field(default_factory=dict)
    servicer_userid: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, m: dict[str, Any]) -> KfMessage:
        kind = str(m.get("msgtype") or "")
        body = m.get(kind) if isinstance(m.get(kind), dict) else {}
        event = m.get("event") if kind == "event" and isinstance(m.get("event"), dict) else {}
        return cls(msgid=str(m.get("msgid") or ""), open_kfid=str(m.get("open_kfid") or ""),
                   external_userid=str(m.get("external_userid") or event.get("external_userid") or ""),
                   send_time=int(m.get("send_time") or 0), origin=int(m.get("origin") or 0),
                   msgtype=kind, text=str(body.get("content") or ""),
                   media_id=str(body.get("media_id") or ""), event=event,
                   servicer_userid=str(m.get("servicer_userid") or ""), raw=m)

    @property
    def from_customer(self) -> bool:
        return self.origin == ORIGIN_CUSTOMER


@dataclass(slots=True)
class SyncPage:
    messages: list[KfMessage]
    next_cursor: str
    has_more: bool


@dataclass(slots=True)
class MediaFile:
    data: bytes
    filename: str
    content_type: str


def stable_msgid(message_id: str, part: int = 0) -> str:
    """WeCom's msgid (≤ 32 of [0-9a-zA-Z_-]) for part `part` of kefu's message: the id
    itself when it fits, else a digest of it — the same every time."""
    suffix = f"-{part}" if part else ""
    if re.fullmatch(r"[0-9A-Za-z_-]+", message_id) and len(message_id) + len(suffix) <= MAX_MSGID:
        return message_id + suffix
    return hashlib.sha256(message_id.encode()).hexdigest()[:MAX_MSGID - 4] + suffix


def text_parts(text: str) -> list[str]:
    return split_text(text, MAX_TEXT_BYTES, utf8_bytes)


class WecomApi:
    def __init__(self, api_base: str, corp_id: str, secret: str, open_kfid: str, *,
                 token_store: TokenStore | None = None, token_margin: float = 300.0,
                 timeout: float = 15.0, clock: Callable[[], float] = time.time):
        self.api_base = api_base.rstrip("/")
        self.corp_id = corp_id
        self._secret = secret
        self.open_kfid = open_kfid
        self.tokens = token_store or MemoryTokenStore()
        self.token_margin = token_margin
        self.clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # -- access token ------------------------------------------------------------------
    def _fresh(self, value: tuple[str, float] | None) -> bool:
        return value is not None and value[1] - self.token_margin > self.clock()

    async def access_token(self, *, force: bool = False) -> str:
        """A valid access token: ours, else the shared one, else a new one from gettoken."""
        stale = self._token[0] if force and self._token else None
        if not force and self._fresh(self._token):
            return self._token[0]
        async with self._token_lock:
            if self._fresh(self._token) and self._token[0] != stale:
                return self._token[0]
            shared = await self.tokens.load()
            if self._fresh(shared) and shared[0] != stale:
                self._token = shared
                return shared[0]
            data = await self._json("GET", "/cgi-bin/gettoken",
                                    params={"corpid": self.corp_id, "corpsecret": self._secret})
            token = str(data.get("access_token") or "")
            if not token:
                raise WecomApiError("/cgi-bin/gettoken", -2, "no access_token in the answer")
            self._token = (token, self.clock() + float(data.get("expires_in") or 7200))
            await self.tokens.store(*self._token)
            return token

    # -- transport -----------------------------------------------------------------------
    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """One request without a token; the JSON answer, errcode checked."""
        try:
            async with self._open(method, path, **kw) as resp:
                data = await self._answer(path, resp)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _unreachable(path, exc) from None
        self._check(path, data)
        return data

    def _open(self, method: str, path: str, **kw: Any):
        return self._http().request(method, self.api_base + path, **kw)

    async def _answer(self, path: str, resp: aiohttp.ClientResponse) -> dict[str, Any]:
        if resp.status >= 500 or resp.status == 429:
            raise WecomUnavailable(path, -resp.status, f"HTTP {resp.status}")
        try:
            data = await resp.json(content_type=None)
        except (ValueError, aiohttp.ContentTypeError):
            raise WecomUnavailable(path, -resp.status, f"HTTP {resp.status}, not JSON") from None
        if not isinstance(data, dict):
            raise WecomUnavailable(path, -resp.status, "answer is not a JSON object")
        return data

    @staticmethod
    def _check(path: str, data: dict[str, Any]) -> None:
        code = int(data.get("errcode") or 0)
        if code == 0:
            return
        msg = str(data.get("errmsg") or "")
        if code in REFUSALS:
            raise WecomRefusal(path, code, msg, REFUSALS[code])
        if code in RATE_LIMIT_ERRORS:
            raise WecomRateLimited(path, code, msg, retry_after=2.0)
        if code in BUSY_ERRORS:
            raise WecomUnavailable(path, code, msg)
        raise WecomApiError(path, code, msg)

    async def _call(self, method: str, path: str, *, params: dict | None = None,
                    binary: bool = False, **kw: Any) -> Any:
        """A call with the access token; refreshes it once when the platform says it is
        invalid or expired.  `binary`: a successful answer may be a file (media/get)."""
        for attempt in (0, 1):
            token = await self.access_token(force=attempt == 1)
            query = {**(params or {}), "access_token": token}
            try:
                async with self._open(method, path, params=query, **kw) as resp:
                    ctype = resp.headers.get("Content-Type", "")
                    if binary and resp.status == 200 and "json" not in ctype and "text/plain" not in ctype:
                        return MediaFile(await resp.read(), _filename(resp), ctype.split(";")[0].strip())
                    data = await self._answer(path, resp)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise _unreachable(path, exc) from None
            if int(data.get("errcode") or 0) in TOKEN_ERRORS and attempt == 0:
                continue
            self._check(path, data)
            return data
        raise AssertionError("unreachable")

    # -- receiving -----------------------------------------------------------------------
    async def sync_msg(self, cursor: str | None = None, token: str | None = None,
                       limit: int = 1000) -> SyncPage:
        """One page of messages after `cursor`; `token` is the callback's Token."""
        body: dict[str, Any] = {"open_kfid": self.open_kfid, "limit": limit}
        if cursor:
            body["cursor"] = cursor
        if token:
            body["token"] = token
        data = await self._call("POST", "/cgi-bin/kf/sync_msg", json=body)
        msgs = [KfMessage.from_json(m) for m in data.get("msg_list") or [] if isinstance(m, dict)]
        return SyncPage(msgs, str(data.get("next_cursor") or cursor or ""), bool(data.get("has_more")))

    async def get_media(self, media_id: str) -> MediaFile:
        got = await self._call("GET", "/cgi-bin/media/get", params={"media_id": media_id}, binary=True)
        if not isinstance(got, MediaFile):
            raise WecomApiError("/cgi-bin/media/get", -2, "answer carried no file")
        return got

    # -- sending -------------------------------------------------------------------------
    async def send(self, touser: str, msgtype: str, content: dict[str, Any], msgid: str) -> str:
        body = {"touser": touser, "open_kfid": self.open_kfid, "msgid": msgid, "msgtype": msgtype,
                msgtype: content}
        data = await self._call("POST", "/cgi-bin/kf/send_msg", json=body)
        return str(data.get("msgid") or msgid)

    async def send_text(self, touser: str, text: str, message_id: str) -> list[str]:
        """Send `text` as parts of ≤ 2,048 bytes; the msgids sent, in order."""
        return [await self.send(touser, "text", {"content": part}, stable_msgid(message_id, i))
                for i, part in enumerate(text_parts(text))]

    async def upload_media(self, kind: str, data: bytes, filename: str, content_type: str) -> str:
        """media/upload (kind image, file, voice or video): the media_id, valid 3 days."""
        form = aiohttp.FormData()
        form.add_field("media", data, filename=filename, content_type=content_type)
        got = await self._call("POST", "/cgi-bin/media/upload", params={"type": kind}, data=form)
        return str(got["media_id"])

    async def send_media(self, touser: str, kind: str, data: bytes, filename: str,
                         content_type: str, message_id: str) -> str:
        media_id = await self.upload_media(kind, data, filename, content_type)
        return await self.send(touser, kind, {"media_id": media_id}, stable_msgid(message_id))

    async def send_on_event(self, code: str, text: str, message_id: str) -> str:
        """Answer an event's code (enter_session's welcome_code) with a text."""
        body = {"code": code, "msgid": stable_msgid(message_id), "msgtype": "text",
                "text": {"content": text_parts(text)[0]}}
        data = await self._call("POST", "/cgi-bin/kf/send_msg_on_event", json=body)
        return str(data.get("msgid") or body["msgid"])

    # -- session state -------------------------------------------------------------------
    async def service_state(self, external_userid: str) -> tuple[int, str]:
        data = await self._call("POST", "/cgi-bin/kf/service_state/get",
                                json={"open_kfid": self.open_kfid, "external_userid": external_userid})
        return int(data.get("service_state") or 0), str(data.get("servicer_userid") or "")

    async def transfer_service_state(self, external_userid: str, state: int,
                                     servicer_userid: str | None = None) -> None:
        body: dict[str, Any] = {"open_kfid": self.open_kfid, "external_userid": external_userid,
                                "service_state": state}
        if servicer_userid:
            body["servicer_userid"] = servicer_userid
        await self._call("POST", "/cgi-bin/kf/service_state/trans", json=body)

    async def keep_with_assistant(self, external_userid: str) -> int:
        """Make sure kefu may reply: a new or ended session goes to the assistant (state
        1); one that a person took over in WeCom is a `WecomRefusal`."""
        state, _ = await self.service_state(external_userid)
        if state in (STATE_NEW, STATE_ENDED):
            await self.transfer_service_state(external_userid, STATE_ASSISTANT)
            return STATE_ASSISTANT
        if state != STATE_ASSISTANT:
            raise WecomRefusal("/cgi-bin/kf/service_state/get", 95018,
                               f"service_state {state}", RULE_SESSION)
        return state


def _unreachable(path: str, exc: Exception) -> WecomUnavailable:
    """A transport failure as a retryable error whose text carries no token or secret
    (aiohttp puts the URL, query included, in some of its messages)."""
    detail = _SECRET_PARAMS.sub(r"\1=***", f"{type(exc).__name__}: {exc}")
    return WecomUnavailable(path, -1, detail)


_SECRET_PARAMS = re.compile(r"(access_token|corpsecret)=[^&\s'\"]*")


def _filename(resp: aiohttp.ClientResponse) -> str:
    disposition = resp.headers.get("Content-Disposition", "")
    m = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', disposition)
    return m.group(1) if m else "file"
