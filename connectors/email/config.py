"""The settings of an e-mail channel (`kind: email` under `channels:`).

SPEC fixes `address`, `imap: {host, port, tls, user, password, mailbox}` and
`smtp: {host, port, tls, starttls, user, password}`; the rest is kefu's own.
connectors/config.py adds `EmailChannel` to its union of channel kinds, so the
same strict rules apply: an unknown key is an error.  Intervals are seconds.
"""
from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ADDRESS = re.compile(r"^[^@\s<>\"]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$")
IDLE_LIMIT = 29 * 60  # RFC 2177: servers may drop an IDLE after 30 minutes; re-arm before 29


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Server(_Section):
    host: str
    # tls: the connection is TLS from the first byte (IMAPS 993, SMTPS 465).
    # starttls: plain TCP upgraded with STARTTLS (IMAP 143, SMTP 587).
    # Both false: plain TCP, for local test servers only.
    tls: bool = True
    starttls: bool = False
    # A CA bundle (PEM) to trust instead of the system's, for a server with a
    # private or self-signed certificate.
    ca_file: Path | None = None
    timeout: float = Field(30.0, gt=0)  # seconds for one command or connection attempt

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> "_Server":
        if self.tls and self.starttls:
            raise ValueError("tls and starttls exclude each other: tls for a TLS port (993/465), "
                             "starttls for a plain port upgraded with STARTTLS (143/587)")
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS settings to connect with (certificates verified), None for plain TCP."""
        if not (self.tls or self.starttls):
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


class ImapSettings(_Server):
    """Where customers' mail is read: one mailbox, never marked \\Seen by kefu."""
    port: int = Field(993, ge=1, le=65535)
    user: str
    password: SecretStr  # an app password, from the environment: "${MAIL_PASSWORD}"
    mailbox: str = "INBOX"


class SmtpSettings(_Server):
    """Where replies are sent; logs in whenever user and password are set (also over plain TCP)."""
    port: int = Field(465, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    # An idle connection is kept this long for the next reply, then closed.
    keep_open: float = Field(30.0, ge=0)


class EmailChannel(_Section):
    """Customers writing e-mail: IMAP in (IDLE, else polling), SMTP out, threaded replies."""
    kind: Literal["email"]
    address: str  # the mailbox customers write to; From (and Reply-To) of replies
    from_name: str = ""  # display name in From, e.g. "某某商城客服"; empty = the address alone
    role: str | None = None  # fixes the role of every conversation from this channel
    imap: ImapSettings
    smtp: SmtpSettings
    # IDLE is ended and started again after this many seconds (servers may drop
    # an IDLE after 30 minutes, so it must be below 29).
    idle_rearm: float = Field(25 * 60, gt=0, lt=IDLE_LIMIT)
    # Seconds between checks for new mail on a server without IDLE.
    poll_interval: float = Field(60.0, gt=0)
    # Mail larger than this (bytes) is read only in part: its text up to this
    # size, its attachments refused with the reason shown to the agent.
    max_message_bytes: int = Field(25 << 20, ge=64 << 10)
    # Cut quoted history ("On … wrote:", "在 … 写道：", "> " lines, Outlook's
    # original-message blocks) and signatures ("-- ") from customers' mail.
    cut_quotes: bool = True

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        v = v.strip()
        if not ADDRESS.match(v):
            raise ValueError("must be an e-mail address, e.g. support@shop.example")
        return v.lower()
