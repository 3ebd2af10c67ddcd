"""Reading customers' mail from one IMAP mailbox (aioimaplib), as it arrives.

The reader logs in (TLS, STARTTLS or plain), selects the mailbox and hands
every message with a UID above the last one handled to an async callback,
one at a time in UID order; only after the callback returned is the new
position saved — a crash in between re-reads that message, never skips it.
The caller persists the position (`PositionStore`); `\\Seen` is never set
(BODY.PEEK), so the shop's own mail client still sees what is unread.

New mail is noticed with IDLE, re-armed every `idle_rearm` seconds (servers
drop an IDLE after 30 minutes), or by polling every `poll_interval` seconds
where the server has no IDLE.  A lost connection, a server restart or a
failing callback ends the session; the reader reconnects with exponential
backoff until `stop()`.

On a first start kefu takes only mail that arrives from then on (the
mailbox's history is not imported).  When the mailbox's UIDVALIDITY changes
(it was recreated or restored), the stored UIDs mean nothing: every message
since the day of the last one handled is handed over again — the caller
deduplicates by Message-ID — so nothing is lost.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable, Protocol

import aioimaplib

from connectors.email.config import ImapSettings

log = logging.getLogger("kefu.email.imap")


@dataclass(frozen=True, slots=True)
class MailboxPosition:
    uidvalidity: int
    last_uid: int  # the highest UID handed over and handled
    last_date: str = ""  # that message's INTERNALDATE day ("01-Dec-2025"), to find mail again after a UIDVALIDITY change


class PositionStore(Protocol):
    async def load(self) -> MailboxPosition | None: ...

    async def save(self, position: MailboxPosition) -> None: ...


@dataclass(frozen=True, slots=True)
class FetchedMail:
    uid: int
    raw: bytes
    size: int  # the whole message's size on the server
    complete: bool  # False: larger than max_message_bytes, raw is its header and the start of its body


class ImapError(Exception):
    """The server refused something the reader needs (login, SELECT, FETCH, STARTTLS)."""


class ImapReader:
    def __init__(self, settings: ImapSettings, positions: PositionStore,
                 on_mail: Callable[[FetchedMail], Awaitable[None]], *, idle_rearm: float = 25 * 60,
                 poll_interval: float = 60.0, max_message_bytes: int = 25 << 20,
                 backoff_initial: float = 1.0, backoff_max: float = 300.0):
        self.settings = settings
        self.positions = positions
        self.on_mail = on_mail
        self.idle_rearm = idle_rearm
        self.poll_interval = poll_interval
        self.max_message_bytes = max_message_bytes
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        # connecting | idle | polling | fetching | waiting (to reconnect) | stopped
        self.state = "connecting"
        self.last_error: str | None = None
        self.idle_rounds = 0  # IDLE commands started (each re-arm is one)
        self.sessions = 0  # successful logins
        self._stop = asyncio.Event()
        self._lost = asyncio.Event()
        self._steady = False  # this session caught up and waited for mail at least once
        self._client: aioimaplib.IMAP4 | None = None
        self._position: MailboxPosition | None = None

    # -- lifecycle ------------------------------------------------------------------
    async def run(self) -> None:
        """Read mail until stop(): reconnects after any failure, waiting longer each time
        (from `backoff_initial` again once a session had caught up with the mailbox)."""
        delay = self.backoff_initial
        while not self._stop.is_set():
            self._steady = False
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # anything ends only this session: reconnect later
                if not self._stop.is_set():
                    self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    log.warning("imap session ended", extra={
                        "host": self.settings.host, "mailbox": self.settings.mailbox,
                        "error": self.last_error, "retry_in": delay})
            finally:
                await self._close()
            if self._stop.is_set():
                break
            if self._steady:
                delay = self.backoff_initial
            self.state = "waiting"
            await self._wait(self._stop, timeout=delay)
            delay = min(delay * 2, self.backoff_max)
        self.state = "stopped"

    async def stop(self) -> None:
        """Finish the command in progress, log out, and let run() return."""
        self._stop.set()

    # -- one connection -----------------------------------------------------------
    async def _session(self) -> None:
        s = self.settings
        self.state = "connecting"
        self._lost = asyncio.Event()
        lost = self._lost
        context = s.ssl_context()
        self._client = client = aioimaplib.IMAP4(
            host=s.host, port=s.port, timeout=s.timeout, conn_lost_cb=lambda _exc: lost.set(),
            ssl_context=context if s.tls else None)
        await self._call(client.wait_hello_from_server())
        if s.starttls:
            await self._starttls(client, context)
        if "LOGINDISABLED" in client.protocol.capabilities:
            raise ImapError("the server refuses LOGIN on this connection (use tls or starttls)")
        answer = await self._call(client.login(s.user, s.password.get_secret_value()))
        if answer.result != "OK":
            raise ImapError(f"login refused: {_text(answer.lines[-1:])}")
        await self._call(client.protocol.capability())  # they may change with login (RFC 3501 6.2.3)
        selected = await self._call(client.select(mailbox_argument(s.mailbox)))
        if selected.result != "OK":
            raise ImapError(f"cannot select {s.mailbox!r}: {_text(selected.lines[-1:])}")
        self.sessions += 1
        self.last_error = None
        await self._reconcile(client, _number(selected.lines, rb"UIDVALIDITY (\d+)"),
                              _number(selected.lines, rb"UIDNEXT (\d+)"))
        log.info("imap reading", extra={"host": s.host, "mailbox": s.mailbox,
                                        "idle": client.has_capability("IDLE")})
        while not self._stop.is_set():
            await self._catch_up(client)
            self._steady = True
            if client.has_capability("IDLE"):
                await self._idle(client)
            else:
                self.state = "polling"
                await self._wait(self._stop, lost, timeout=self.poll_interval)
                if lost.is_set() and not self._stop.is_set():
                    raise ConnectionError("connection lost")
                if not self._stop.is_set():
                    await self._call(client.noop())

    async def _starttls(self, client: aioimaplib.IMAP4, context) -> None:
        protocol = client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("the server does not offer STARTTLS")
        answer = await self._call(protocol.execute(
            aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)))
        if answer.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(answer.lines[-1:])}")
        loop = asyncio.get_running_loop()
        protocol.transport = await self._call(loop.start_tls(
            protocol.transport, protocol, context, server_hostname=self.settings.host))
        await self._call(protocol.capability())  # capabilities may differ once encrypted

    async def _reconcile(self, client: aioimaplib.IMAP4, uidvalidity: int | None, uidnext: int | None) -> None:
        """Where to continue: the stored position, or now (first start), or again from the last
        day handled when UIDVALIDITY changed."""
        if uidvalidity is None:
            raise ImapError("the server sent no UIDVALIDITY")
        stored = await self.positions.load()
        if stored is not None and stored.uidvalidity == uidvalidity:
            self._position = stored
            return
        if stored is None:
            last = (uidnext - 1) if uidnext else await self._highest_uid(client)
            self._position = MailboxPosition(uidvalidity, max(last, 0), imap_day(datetime.now(timezone.utc)))
            await self.positions.save(self._position)
            return
        log.warning("imap UIDVALIDITY changed: reading again since the last day handled", extra={
            "mailbox": self.settings.mailbox, "old": stored.uidvalidity, "new": uidvalidity,
            "since": stored.last_date})
        first = 1
        since = _day_before(stored.last_date)
        if since:  # a day early: INTERNALDATE days are in the server's time zone
            found = await self._call(client.uid_search("SINCE", since, charset=None))
            uids = [int(n) for line in found.lines[:-1] if isinstance(line, bytes)  # "* SEARCH 3 4" (prefix dropped)
                    for n in line.split() if n.isdigit()]
            first = min(uids) if uids else (uidnext or 1)
        self._position = MailboxPosition(uidvalidity, first - 1, stored.last_date)
        await self.positions.save(self._position)

    async def _highest_uid(self, client: aioimaplib.IMAP4) -> int:
        answer = await self._call(client.uid("fetch", "*", "(UID)"))
        return max(_uids(answer.lines), default=0)

    async def _catch_up(self, client: aioimaplib.IMAP4) -> None:
        """Hand over every message above the position, until a look finds none new."""
        while not self._stop.is_set():
            position = self._position
            answer = await self._call(client.uid("fetch", f"{position.last_uid + 1}:*",
                                                 "(UID RFC822.SIZE INTERNALDATE)"))
            if answer.result != "OK":
                raise ImapError(f"FETCH refused: {_text(answer.lines[-1:])}")
            pending = sorted(m for m in _summaries(answer.lines) if m[0] > position.last_uid)
            if not pending:
                return
            self.state = "fetching"
            for uid, size, day in pending:
                if self._stop.is_set():
                    return
                mail = await self._fetch(client, uid, size)
                if mail is not None:
                    await self.on_mail(mail)
                self._position = MailboxPosition(position.uidvalidity, uid, day or self._position.last_date)
                await self.positions.save(self._position)

    async def _fetch(self, client: aioimaplib.IMAP4, uid: int, size: int) -> FetchedMail | None:
        complete = size <= self.max_message_bytes
        parts = "(BODY.PEEK[])" if complete else f"(BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.{self.max_message_bytes}>)"
        answer = await self._call(client.uid("fetch", str(uid), parts), timeout=max(
            self.settings.timeout, size / 100_000))  # at least 100 kB/s for a large message
        if answer.result != "OK":
            raise ImapError(f"FETCH {uid} refused: {_text(answer.lines[-1:])}")
        literals = [bytes(line) for line in answer.lines if isinstance(line, bytearray)]
        if not literals:  # expunged between the listing and now
            return None
        return FetchedMail(uid=uid, raw=b"".join(literals), size=size, complete=complete)

    async def _idle(self, client: aioimaplib.IMAP4) -> None:
        """One IDLE round: until the server reports a change, the re-arm time passes, or stop.
        The server's keep-alives ("* OK Still here") do not end it."""
        self.state = "idle"
        idle = await self._call(client.idle_start(timeout=self.idle_rearm))
        self.idle_rounds += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.idle_rearm + self.settings.timeout  # the re-arm comes before this
        while True:
            push = asyncio.ensure_future(client.wait_server_push(timeout=max(deadline - loop.time(), 0)))
            try:
                await self._wait(self._stop, self._lost, task=push)
            finally:
                if not push.done():
                    push.cancel()
            if self._lost.is_set():
                raise ConnectionError("connection lost")
            if not push.done() or push.cancelled():  # stop()
                break
            if push.exception() is not None:  # no answer, not even the re-arm: a dead connection
                raise ConnectionError("no answer from the server during IDLE")
            lines = [line for line in push.result() if isinstance(line, bytes)]
            if any(line.startswith(b"BYE") for line in lines):
                raise ConnectionError(f"server closed the connection: {_text(lines)}")
            if not all(line.startswith(b"OK") for line in lines):
                break  # new mail, a change, or the re-arm timer
        client.idle_done()
        await self._call(idle)

    # -- helpers ------------------------------------------------------------------------
    async def _call(self, aw: Awaitable, timeout: float | None = None):
        """One command; a lost connection ends it at once, silence after `timeout` too
        (stop() lets it finish)."""
        task = asyncio.ensure_future(aw)
        finished = await self._wait(self._lost, task=task, timeout=timeout or self.settings.timeout * 2)
        if not finished:
            task.cancel()
            raise ConnectionError("connection lost" if self._lost.is_set() else "the server did not answer")
        return task.result()

    @staticmethod
    async def _wait(*events: asyncio.Event, task: asyncio.Future | None = None,
                    timeout: float | None = None) -> bool:
        """Until `task` is done (→ True), one of `events` is set or `timeout` passed (→ False)."""
        waiters = {asyncio.ensure_future(e.wait()) for e in events}
        try:
            done, _ = await asyncio.wait(waiters | ({task} if task else set()), timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        return task is not None and task in done

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        transport = client.protocol.transport
        if self._stop.is_set() and not self._lost.is_set() and transport is not None:
            try:
                await asyncio.wait_for(client.logout(), 2)
            except Exception:  # leaving anyway
                pass
        if transport is not None:
            transport.close()
        for task in list(client.tasks) + list(client.protocol.tasks):
            task.cancel()


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def imap_day(when: datetime) -> str:
    """A date as IMAP writes it (01-Dec-2025), whatever the process's locale."""
    return f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year}"


def _day_before(day: str) -> str:
    m = re.fullmatch(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})", day or "")
    if not m or m.group(2).title() not in _MONTHS:
        return ""
    when = datetime(int(m.group(3)), _MONTHS.index(m.group(2).title()) + 1, int(m.group(1)))
    return imap_day(when - timedelta(days=1))


def mailbox_argument(name: str) -> str:
    """A mailbox name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            encoded = base64.b64encode("".join(run).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + encoded.replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return '"' + "".join(out).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _summaries(lines: list) -> list[tuple[int, int, str]]:
    """(uid, size, INTERNALDATE day) of each FETCH line."""
    out = []
    for line in lines:
        if not isinstance(line, bytes) or b"FETCH" not in line:
            continue
        uid = re.search(rb"\bUID (\d+)", line)
        size = re.search(rb"RFC822\.SIZE (\d+)", line)
        date = re.search(rb'INTERNALDATE "\s*(\d{1,2}-[A-Za-z]{3}-\d{4})', line)
        if uid:
            out.append((int(uid.group(1)), int(size.group(1)) if size else 0,
                        date.group(1).decode() if date else ""))
    return out


def _uids(lines: list) -> list[int]:
    return [uid for uid, _, _ in _summaries(lines)]


def _number(lines: list, pattern: bytes) -> int | None:
    for line in lines:
        if isinstance(line, bytes):
            m = re.search(pattern, line)
            if m:
                return int(m.group(1))
    return None


def _text(lines: list) -> str:
    return " ".join(bytes(line).decode("utf-8", errors="replace") for line in lines)[:300]
