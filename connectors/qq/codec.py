"""OneBot v11 messages: CQ-code strings and segment arrays, read as kefu reads a message."""
from __future__ import annotations

import re
from typing import Any

_CQ_RE = re.compile(r"\[CQ:([a-zA-Z0-9_.-]+)((?:,[^,\]]*)*)\]")
_PLACEHOLDER = {"image": "[图片]", "file": "[文件]", "audio": "[语音]", "video": "[视频]"}
_FACES = ("face", "mface", "marketface", "bface", "sface", "dice", "rps")


def platform_id(self_id: Any, message_id: Any) -> str:
    """A QQ message's id as kefu keeps it: message ids are per account."""
    return f"{self_id}:{message_id}"


def cq_unescape(text: str) -> str:
    return (text.replace("&#44;", ",").replace("&#91;", "[").replace("&#93;", "]")
            .replace("&amp;", "&"))


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


def text_segment(text: str) -> dict:
    return {"type": "text", "data": {"text": text}}


def normalise(message: Any, self_id: Any = None) -> dict[str, Any]:
    """Text, attachments (as QQ describes them: type image/file/audio/video, name, the
    platform's url), the quoted message id and @-mentions of a OneBot message."""
    text: list[str] = []
    attachments: list[dict[str, Any]] = []
    reply_to: str | None = None
    at: list[str] = []
    for seg in segments(message):
        kind = str(seg.get("type", ""))
        data = seg.get("data") or {}
        if kind == "text":
            text.append(str(data.get("text", "")))
        elif kind in _FACES:
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
