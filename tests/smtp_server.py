"""A real SMTP server (aiosmtpd) for the tests, recording what it accepts.

AUTH LOGIN and PLAIN are offered also over plain TCP (`auth_require_tls=False`,
test servers only) and required before MAIL, so a test sees that kefu logged
in.  With `tls` it speaks TLS from the first byte (SMTPS); with `starttls` it
offers STARTTLS and requires it.  `refuse` answers RCPT for an address with a
given reply, `data_reply` answers the next DATA with one (4xx/5xx cases).
"""
from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.kefu_harness import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    login: str | None  # the user the session logged in as
    session: int  # which connection carried it

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


@dataclass
class RecordingSmtpServer:
    user: str = "kefu"
    password: str = "smtp-secret"
    tls: ssl.SSLContext | None = None  # SMTPS: TLS from the first byte
    starttls: ssl.SSLContext | None = None  # STARTTLS offered and required
    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient → RCPT reply, e.g. "550 5.1.1 No such user"
    data_reply: str | None = None  # the next DATA gets this reply instead of 250
    logins_refused: int = 0
    sessions: set[int] = field(default_factory=set)
    controller: Controller | None = None

    def start(self, port: int | None = None) -> "RecordingSmtpServer":
        self.port = port or free_port()
        kwargs = {"ssl_context": self.tls} if self.tls else {}
        if self.starttls:
            kwargs.update(tls_context=self.starttls, require_starttls=True)
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")  # on purpose, see above
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, authenticator=self._authenticate,
                                     auth_required=True, auth_require_tls=False, **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user \
            and auth_data.password.decode() == self.password
        if not ok:
            self.logins_refused += 1
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.data_reply:
            reply, self.data_reply = self.data_reply, None
            return reply
        self.sessions.add(id(session))
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, login,
                                      id(session)))
        return f"250 2.0.0 Ok: queued as {len(self.received)}"
