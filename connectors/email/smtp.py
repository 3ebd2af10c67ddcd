"""Sending kefu's replies through the shop's SMTP server (aiosmtplib).

One connection is kept while replies keep coming (`smtp.keep_open` seconds
after the last one) and one transaction runs at a time on it.  TLS from the
first byte, STARTTLS, or plain TCP for local test servers — never an
opportunistic upgrade the settings did not ask for; logs in whenever user and
password are set, also over plain TCP.

Every failure is a `SendFailure`: `permanent` (a 5xx answer to this mail: the
agent sees the reason, retrying cannot help) or not (4xx, a dropped or
refused connection, a failed login: retry later with backoff).
"""
from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage

import aiosmtplib

from connectors.email.config import SmtpSettings

log = logging.getLogger("kefu.email.smtp")


class SendFailure(Exception):
    """A mail not accepted by the server; `reason` is the server's own words."""

    def __init__(self, reason: str, *, permanent: bool, code: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.code = code


class ConnectFailed(SendFailure):
    """The server was not reached, or refused the connection or the login: the network or
    the account, not this mail, is the problem — retry later, and tell the operator."""

    def __init__(self, reason: str, code: int | None = None):
        super().__init__(reason, permanent=False, code=code)


class SmtpSender:
    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        self._closer: asyncio.Task | None = None

    async def send(self, message: EmailMessage, *, recipients: list[str] | None = None) -> str:
        """Submit `message` (to its To/Cc unless `recipients`); returns the server's answer."""
        async with self._lock:
            if self._closer is not None:
                self._closer.cancel()
                self._closer = None
            try:
                return await self._send(message, recipients)
            finally:
                if self._client is not None and self.settings.keep_open > 0:
                    self._closer = asyncio.create_task(self._close_when_idle())
                elif self._client is not None:
                    await self._disconnect()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def close(self) -> None:
        async with self._lock:
            if self._closer is not None:
                self._closer.cancel()
                self._closer = None
            await self._disconnect()

    async def _send(self, message: EmailMessage, recipients: list[str] | None) -> str:
        reused = self.connected
        while True:
            client = await self._connection()
            try:
                _refused, answer = await client.send_message(message, recipients=recipients)
                return answer
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError, TimeoutError) as exc:
                await self._disconnect()
                if reused:  # the server closed the kept connection meanwhile: once more on a new one
                    reused = False
                    continue
                raise SendFailure(f"connection lost while sending: {exc}", permanent=False) from None
            except aiosmtplib.SMTPRecipientsRefused as exc:
                codes = [r.code for r in exc.recipients]
                reason = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
                raise SendFailure(reason, permanent=all(c >= 500 for c in codes),
                                  code=max(codes, default=None)) from None
            except aiosmtplib.SMTPResponseException as exc:
                await self._reset(client)
                if exc.code == 530:  # "authentication required": the settings lack user/password
                    raise ConnectFailed(f"{exc.code} {exc.message}", code=exc.code) from None
                raise SendFailure(f"{exc.code} {exc.message}", permanent=exc.code >= 500, code=exc.code) from None
            except aiosmtplib.SMTPNotSupported as exc:  # e.g. a non-ASCII address without SMTPUTF8
                await self._reset(client)
                raise SendFailure(str(exc), permanent=True) from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                await self._disconnect()
                raise SendFailure(str(exc) or type(exc).__name__, permanent=False) from None
            except ValueError as exc:  # no sender or recipient in the message
                raise SendFailure(str(exc), permanent=True) from None

    async def _connection(self) -> aiosmtplib.SMTP:
        if self.connected:
            return self._client
        s = self.settings
        client = aiosmtplib.SMTP(hostname=s.host, port=s.port, use_tls=s.tls, start_tls=s.starttls,
                                 timeout=s.timeout, tls_context=s.ssl_context())
        try:
            await client.connect()
            if s.user and s.password is not None:
                await client.login(s.user, s.password.get_secret_value())
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise ConnectFailed(f"{exc.code} {exc.message}", code=exc.code) from None
        except (aiosmtplib.SMTPException, OSError) as exc:  # refused, unreachable, TLS, no AUTH offered
            client.close()
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        log.info("smtp connected", extra={"host": s.host, "port": s.port, "tls": s.tls, "starttls": s.starttls})
        self._client = client
        return client

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """After a refused transaction: RSET so the kept connection is clean for the next mail."""
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self._disconnect()

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await asyncio.wait_for(client.quit(), self.settings.timeout)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            client.close()

    async def _close_when_idle(self) -> None:
        await asyncio.sleep(self.settings.keep_open)
        async with self._lock:
            self._closer = None
            await self._disconnect()
