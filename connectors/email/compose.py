"""kefu's reply as a mail: threaded so the customer's client shows it under their message.

`compose_reply()` is pure: the same message id gives the same Message-ID, so
a reply re-sent after a crash is recognisably the same mail.  In-Reply-To
names the customer's message it answers, References carries the thread (its
first id and the latest ones, bounded), the subject is "Re: <original>" once.
kefu's automatic messages say so (Auto-Submitted: auto-replied, RFC 3834) and
every mail asks Exchange not to auto-answer it, so two robots never loop.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from connectors.email.ids import KEFU_HEADER, message_id_for

MAX_REFERENCES = 20  # ids in References: the thread's first and the 19 latest
DEFAULT_SUBJECT = "客服回复 / Customer service"
_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|vs|antw|回复|回覆|答复)\s*(?:\[\d+\])?\s*[:：]", re.I)


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    name: str
    type: str  # MIME type; application/octet-stream when unknown
    data: bytes


def reply_subject(original: str) -> str:
    """"Re: <original>", with no second "Re:" when the original already is a reply."""
    original = re.sub(r"\s+", " ", original).strip()
    if not original:
        return f"Re: {DEFAULT_SUBJECT}"
    return original if _REPLY_PREFIX.match(original) else f"Re: {original}"


def thread_references(references: list[str], answered: str | None) -> list[str]:
    """The References of a reply: the thread so far plus the answered message, bounded."""
    chain = list(dict.fromkeys(references + ([answered] if answered else [])))
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1):]
    return chain


def compose_reply(*, kefu_id: str, address: str, from_name: str, to: str, text: str,
                  subject: str, in_reply_to: str | None = None, references: list[str] = (),
                  automatic: bool = False, files: list[OutgoingFile] = (),
                  date: datetime | None = None) -> EmailMessage:
    """The mail for kefu's message `kefu_id` from the channel's `address` to the customer `to`.

    `subject` is the customer's subject (made "Re: …" when this answers their
    message `in_reply_to`; used as it is for a mail kefu starts)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=from_name, addr_spec=address) if from_name else address
    msg["Reply-To"] = address
    msg["To"] = to
    subject = re.sub(r"\s+", " ", subject).strip()
    msg["Subject"] = reply_subject(subject) if in_reply_to else (subject or DEFAULT_SUBJECT)
    msg["Date"] = format_datetime(date or datetime.now(timezone.utc))
    msg["Message-ID"] = message_id_for(kefu_id, address)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    chain = thread_references(list(references), in_reply_to)
    if chain:
        msg["References"] = " ".join(chain)
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg[KEFU_HEADER] = kefu_id
    msg.set_content(text, cte="quoted-printable")  # 7-bit safe for servers without 8BITMIME
    msg.add_alternative(_html(text), subtype="html")
    for f in files:
        maintype, _, subtype = (f.type or "application/octet-stream").partition("/")
        msg.add_attachment(f.data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=f.name)
    return msg


def _html(text: str) -> str:
    body = html.escape(text).replace("\r\n", "\n").replace("\n", "<br>\n")
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
            '<body><div style="font-family: sans-serif; font-size: 14px; line-height: 1.5; '
            f'overflow-wrap: break-word;">{body}</div></body></html>\n')
