"""An inbound mail, as bytes from the server, into what kefu needs of it.

`parse()` is pure and never raises: any bytes give an `InboundMail`.  It
decides what the mail is (`kind`): a customer's message, an auto-reply or
bulk mail, a bounce (with which of kefu's messages bounced and why), or
kefu's own mail come back (the loop guard) — only a customer's message may
start or continue a conversation.  Its text is what a person reads: the
text/plain part preferred, HTML converted safely, quoted history and
signature cut (when asked); its files are attachments and inline images,
those over the size limit listed as refused with the reason.
"""
from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import message_from_bytes
from email.message import Message
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Literal

from connectors.email.charsets import decode_bytes, decode_header, unescape_8bit
from connectors.email.html_text import html_to_text
from connectors.email.ids import KEFU_HEADER, is_own_message_id
from connectors.email.quotes import cut_quoted

Kind = Literal["customer", "automatic", "bounce", "own", "no_sender"]
MAX_FILES = 20  # files kept from one mail; more are refused ("too_many")
_SIGNATURE_TYPES = {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?reply|autoreply|out of (?:the )?office|自动回复|自動回覆|自动答复)\s*[:：]",
    re.I)
_ROBOT = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)


class _RawHeaders(Compat32):
    """Header values exactly as received (raw 8-bit bytes surrogate-escaped); charsets.py decodes them."""

    def header_fetch_parse(self, name, value):  # noqa: ANN001 - the stdlib's signature
        return value


_POLICY = _RawHeaders()


@dataclass(frozen=True, slots=True)
class MailFile:
    name: str
    type: str  # MIME type, e.g. image/png
    data: bytes
    inline: bool = False  # an image shown inside the text rather than attached
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class RefusedFile:
    """A file not taken, for the agent to see: `reason` is too_large (over the limit),
    too_many (over MAX_FILES) or message_too_large (the mail was read only in part)."""
    name: str
    type: str
    size: int
    reason: Literal["too_large", "too_many", "message_too_large"]


@dataclass(frozen=True, slots=True)
class Bounce:
    """A delivery failure report: which of kefu's messages, to whom, and the server's reason."""
    message_ids: list[str]  # kefu's Message-IDs found in the returned message
    recipient: str
    status: str  # e.g. 5.1.1
    diagnostic: str  # the remote server's words, e.g. "550 5.1.1 user unknown"


@dataclass(slots=True)
class InboundMail:
    kind: Kind
    reason: str  # why it is not a customer's message (empty when it is)
    sender: str  # lower-case address: the customer's id and contact
    sender_name: str
    reply_to: str | None
    subject: str
    message_id: str | None  # "<...>", as sent
    in_reply_to: str | None
    references: list[str]
    date: datetime | None
    text: str  # as a person reads it
    quoted: str  # what was cut from it: quoted history, signature
    files: list[MailFile] = field(default_factory=list)
    refused: list[RefusedFile] = field(default_factory=list)
    kefu_message_id: str | None = None  # from our header, when kefu sent this mail
    bounce: Bounce | None = None

    @property
    def thread_ids(self) -> list[str]:
        """Message-IDs this mail answers, nearest first: In-Reply-To, then References backwards."""
        out: list[str] = []
        for mid in ([self.in_reply_to] if self.in_reply_to else []) + self.references[::-1]:
            if mid not in out:
                out.append(mid)
        return out


def parse(raw: bytes, *, own_address: str, max_file_bytes: int, cut_quotes: bool = True,
          complete: bool = True) -> InboundMail:
    """`raw` as a mail received at `own_address`.  `complete=False`: only the
    beginning of a mail that was too large was fetched — its files are refused."""
    try:
        msg = message_from_bytes(bytes(raw), policy=_POLICY)
    except Exception:  # the stdlib parser is lenient, but bytes are arbitrary
        msg = message_from_bytes(b"", policy=_POLICY)
    own = own_address.strip().lower()
    sender_name, sender = _first_address(msg, "From")
    if not sender:
        sender_name, sender = _first_address(msg, "Sender")
    reply_to = _first_address(msg, "Reply-To")[1] or None
    message_ids = _ids(msg.get("Message-ID"))
    in_reply_to = _ids(msg.get("In-Reply-To"))
    body = _Body(max_file_bytes, complete)
    body.collect(msg)
    text = body.text()
    quoted = ""
    if cut_quotes and text:
        text, quoted = cut_quoted(text)
    mail = InboundMail(
        kind="customer", reason="", sender=sender, sender_name=sender_name, reply_to=reply_to,
        subject=decode_header(msg.get("Subject")), message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[-1] if in_reply_to else None, references=_ids(msg.get("References")),
        date=_date(msg.get("Date")), text=text, quoted=quoted, files=body.files, refused=body.refused,
        kefu_message_id=decode_header(msg.get(KEFU_HEADER)) or None)
    _classify(mail, msg, own, body)
    return mail


def _classify(mail: InboundMail, msg: Message, own: str, body: "_Body") -> None:
    """Set kind and reason: the loop guard first, then bounces, then automatic mail."""
    header = lambda name: decode_header(msg.get(name)).strip().lower()  # noqa: E731
    if mail.kefu_message_id or is_own_message_id(mail.message_id, own) or (own and mail.sender == own):
        mail.kind, mail.reason = "own", "sent by kefu (loop guard)"
        return
    content_type = msg.get_content_type()
    report = content_type == "multipart/report" and str(msg.get_param("report-type") or "").lower()
    if report == "delivery-status" or msg.get("X-Failed-Recipients") or (
            _ROBOT.match(mail.sender) and not report):
        mail.kind, mail.reason = "bounce", "delivery failure report"
        mail.bounce = body.bounce_details(own)
        return
    reasons = []
    auto = header("Auto-Submitted")
    if auto and auto != "no":
        reasons.append(f"Auto-Submitted: {auto}")
    precedence = header("Precedence")
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        reasons.append(f"Precedence: {precedence}")
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "List-Id"):
        if msg.get(name) is not None and header(name) != "no":
            reasons.append(name)
    if report:
        reasons.append(f"report ({report})")
    if _ROBOT.match(mail.sender):
        reasons.append("sent by a mail server")
    if header("Return-Path") == "<>":
        reasons.append("empty Return-Path")
    if _AUTO_SUBJECT.match(mail.subject):
        reasons.append("auto-reply subject")
    if reasons:
        mail.kind, mail.reason = "automatic", "; ".join(reasons)
    elif not mail.sender:
        mail.kind, mail.reason = "no_sender", "no sender address"


class _Body:
    """Walks the MIME tree once: the readable text, the files, and what a report carries."""

    def __init__(self, max_file_bytes: int, complete: bool):
        self.max_file_bytes = max_file_bytes
        self.complete = complete
        self.parts: list[str] = []
        self.files: list[MailFile] = []
        self.refused: list[RefusedFile] = []
        self.report_fields: list[Message] = []  # message/delivery-status blocks
        self.returned: list[Message] = []  # returned headers or message of a bounce

    def collect(self, part: Message, depth: int = 0, files_only: bool = False) -> None:
        """Text and files of `part`; `files_only` for the alternatives not chosen as the
        text (an HTML alternative's inline images are the customer's pictures too)."""
        if depth > 20:  # a hostile nesting depth: nothing a person wrote is that deep
            return
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            self.report_fields.extend(_status_blocks(part))
            return
        if part.is_multipart() and ctype != "message/rfc822":
            children = [c for c in (part.get_payload() or []) if isinstance(c, Message)]
            chosen = _preferred(children) if ctype == "multipart/alternative" and not files_only else None
            for child in children:
                self.collect(child, depth + 1, files_only or (chosen is not None and child is not chosen))
            return
        disposition = (part.get_content_disposition() or "").lower()
        if ctype in ("text/rfc822-headers", "message/rfc822") and disposition != "attachment" \
                and self.report_fields:
            self.returned.append(_inner_message(part))
            return
        if ctype.startswith("text/") and disposition != "attachment" and not _raw_name(part):
            if ctype in ("text/plain", "text/html") and not files_only:
                text = _text_of(part)
                if text.strip():
                    self.parts.append(text)
            return
        if ctype in _SIGNATURE_TYPES:
            return
        self._file(part, ctype, disposition)

    def _file(self, part: Message, ctype: str, disposition: str) -> None:
        data = _message_bytes(_inner_message(part)) if ctype == "message/rfc822" else _payload(part)
        if not data:
            return
        name = _filename(part, ctype, len(self.files) + len(self.refused) + 1)
        if not self.complete:
            self.refused.append(RefusedFile(name, ctype, len(data), "message_too_large"))
        elif len(data) > self.max_file_bytes:
            self.refused.append(RefusedFile(name, ctype, len(data), "too_large"))
        elif len(self.files) >= MAX_FILES:
            self.refused.append(RefusedFile(name, ctype, len(data), "too_many"))
        else:
            cid = _ids(part.get("Content-ID"))
            inline = disposition == "inline" or (not disposition and bool(cid) and ctype.startswith("image/"))
            self.files.append(MailFile(name, ctype, data, inline, cid[0] if cid else None))

    def text(self) -> str:
        return _tidy("\n\n".join(self.parts))

    def bounce_details(self, own: str) -> Bounce:
        recipient = status = diagnostic = ""
        for block in self.report_fields:
            recipient = recipient or _address_field(block.get("Final-Recipient") or block.get("Original-Recipient"))
            status = status or decode_header(block.get("Status"))
            diagnostic = diagnostic or _address_field(block.get("Diagnostic-Code"))
        ids: list[str] = []
        for returned in self.returned:
            ids += [m for m in _ids(returned.get("Message-ID")) if m not in ids]
        if not ids:  # a plain-text bounce: kefu's ids quoted anywhere in it
            ids = [m for m in dict.fromkeys(re.findall(r"<kefu\.[^<>\s]+>", self.text()))
                   if is_own_message_id(m, own)]
        if not diagnostic:
            diagnostic = self.text()[:500]
        return Bounce(message_ids=ids, recipient=recipient, status=status, diagnostic=diagnostic)


def _preferred(children: list[Message]) -> Message | None:
    """Of the alternatives, the plain text if it has any, else HTML, else the richest other."""
    by_type = {c.get_content_type(): c for c in children}
    plain = by_type.get("text/plain")
    if plain is not None and _text_of(plain).strip():
        return plain
    for c in children:
        if c.get_content_type() == "text/html" or c.is_multipart():
            return c
    return plain


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", errors="surrogateescape") if isinstance(raw, str) else b""


def _text_of(part: Message) -> str:
    charset = part.get_param("charset")
    text = decode_bytes(_payload(part), unescape_8bit(str(charset)) if isinstance(charset, str) else None)
    if part.get_content_type() == "text/html":
        return html_to_text(text)
    if str(part.get_param("format") or "").lower() == "flowed":
        text = _unflow(text, str(part.get_param("delsp") or "").lower() == "yes")
    return text


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676: a line ending in a space continues on the next one."""
    out: list[str] = []
    joining = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        soft = line.endswith(" ") and line != "-- "
        if soft and delsp:
            line = line[:-1]
        if joining and out:
            out[-1] += line
        else:
            out.append(line)
        joining = soft
    return "\n".join(out)


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ").replace("\x00", "")
    lines = [line.rstrip() if line.rstrip() != "--" else "-- " for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _raw_name(part: Message) -> str | None:
    try:
        raw = part.get_filename() or part.get_param("name")
    except Exception:  # broken RFC 2231 continuations
        return None
    return raw if isinstance(raw, str) else None


def _filename(part: Message, ctype: str, n: int) -> str:
    name = decode_header(_raw_name(part))
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).replace("\\", "/").rsplit("/", 1)[-1].strip(" .")
    if not name:
        ext = mimetypes.guess_extension(ctype) or ".bin"
        name = f"{'image' if ctype.startswith('image/') else 'attachment'}-{n}{ext}"
    return name[:200]


def _first_address(msg: Message, header: str) -> tuple[str, str]:
    values = msg.get_all(header) or []
    try:
        pairs = getaddresses([unescape_8bit(str(v)) for v in values])
    except Exception:  # the address parser on hostile input
        pairs = []
    for name, addr in pairs:
        addr = addr.strip().strip("<>").lower()
        if "@" in addr and " " not in addr:
            return decode_header(name), addr
    return "", ""


def _ids(value: str | None) -> list[str]:
    """Message-IDs in a header, each as "<...>"; a bare id without brackets is bracketed."""
    if not value:
        return []
    text = unescape_8bit(str(value))
    found = re.findall(r"<[^<>\s]+>", text)
    if not found and re.fullmatch(r"\s*[^<>\s]+@[^<>\s]+\s*", text):
        found = [f"<{text.strip()}>"]
    return list(dict.fromkeys(found))


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(decode_header(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _status_blocks(part: Message) -> list[Message]:
    """message/delivery-status: header blocks (per message, then per recipient) as Messages."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = decode_bytes(_payload(part))
    return [message_from_bytes(block.encode("utf-8", errors="replace"), policy=_POLICY)
            for block in re.split(r"\r?\n\r?\n", text) if block.strip()]


def _message_bytes(msg: Message) -> bytes:
    try:
        return msg.as_bytes()
    except Exception:  # a header or body the generator cannot write back
        return b""


def _inner_message(part: Message) -> Message:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    return message_from_bytes(_payload(part), policy=_POLICY)


def _address_field(value: str | None) -> str:
    """ "rfc822; user@example.com" → "user@example.com" (also Diagnostic-Code's "smtp; 550 …")."""
    text = decode_header(value)
    return text.split(";", 1)[1].strip() if ";" in text else text
