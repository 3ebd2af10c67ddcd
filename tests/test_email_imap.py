"""The IMAP reader (connectors/email/imap.py) against a real Dovecot started by each test.

What a shop would notice: new mail is read as soon as it arrives (IDLE, and
IDLE re-armed), or by polling where the server has no IDLE; a restart of kefu
or of the mail server loses nothing and reads nothing twice; a mail whose
handling failed is read again; the shop's own mail client still sees the mail
as unread; TLS and STARTTLS with certificate checks.
"""
from __future__ import annotations

import asyncio
import uuid
from email.message import EmailMessage

import pytest
import trustme

from connectors.email.config import ImapSettings
from connectors.email.imap import FetchedMail, ImapReader, MailboxPosition, mailbox_argument
from connectors.email.parse import parse
from tests.dovecot_server import BINARY, MISSING, DovecotServer
from tests.kefu_harness import wait_for

pytestmark = pytest.mark.skipif(BINARY is None, reason=MISSING)
LONG = 600.0  # an interval that never elapses in a test: only IDLE can bring the mail


class MemoryPositions:
    """The caller's side of the contract: where the reader got to (kefu keeps it in Redis)."""

    def __init__(self) -> None:
        self.position: MailboxPosition | None = None
        self.saved: list[MailboxPosition] = []

    async def load(self) -> MailboxPosition | None:
        return self.position

    async def save(self, position: MailboxPosition) -> None:
        self.position = position
        self.saved.append(position)


def mail(subject: str, body: str = "hello", size: int = 0) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Buyer <buyer@example.net>"
    msg["To"] = "support@shop.example"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.net>"
    msg.set_content(body)
    if size:
        msg.add_attachment(b"\x89PNG" + bytes(size), maintype="image", subtype="png", filename="screen.png")
    return msg.as_bytes()


def subject_of(m: FetchedMail) -> str:
    return parse(m.raw, own_address="support@shop.example", max_file_bytes=1 << 20).subject


@pytest.fixture
def dovecot(request):
    def start(**kw) -> DovecotServer:
        server = DovecotServer(**kw).start()
        request.addfinalizer(server.cleanup)
        return server
    return start


@pytest.fixture
async def reader():
    """reader(server, positions, **options) -> (ImapReader, list of FetchedMail); stopped at the end."""
    running: list[tuple[ImapReader, asyncio.Task]] = []

    def start(server: DovecotServer, positions: MemoryPositions, *, on_mail=None, mailbox: str = "INBOX",
              port: int | None = None, **kw):
        got: list[FetchedMail] = []

        async def record(m: FetchedMail) -> None:
            if on_mail is not None:
                await on_mail(m)
            got.append(m)

        settings = ImapSettings(host="127.0.0.1", port=port or server.port, tls=kw.pop("tls", False),
                                starttls=kw.pop("starttls", False), ca_file=kw.pop("ca_file", None),
                                user=server.user, password=server.password, mailbox=mailbox, timeout=5)
        kw = {"idle_rearm": LONG, "poll_interval": LONG, "backoff_initial": 0.05, "backoff_max": 0.2, **kw}
        r = ImapReader(settings, positions, record, **kw)
        running.append((r, asyncio.create_task(r.run())))
        return r, got

    yield start
    for r, task in running:
        await r.stop()
        try:
            await asyncio.wait_for(task, 10)
        except (asyncio.CancelledError, Exception):
            task.cancel()


async def waiting_for_mail(r: ImapReader, state: str = "idle") -> None:
    await wait_for(lambda: r.state == state, timeout=15, message=f"reader {state} (last error: {r.last_error})")


async def test_idle_hands_over_new_mail_without_marking_it_seen(dovecot, reader):
    server = dovecot()
    r, got = reader(server, MemoryPositions())
    await waiting_for_mail(r)
    uid = await server.append(mail("where is my card key"))
    await wait_for(lambda: got, timeout=5, message="mail through IDLE")
    assert [(m.uid, subject_of(m), m.complete) for m in got] == [(uid, "where is my card key", True)]
    assert b"\\Seen" not in await server.flags(uid)  # the shop's own client still shows it unread
    server.deliver(mail("second, delivered by the MTA"))
    await wait_for(lambda: len(got) == 2, timeout=5, message="maildir delivery through IDLE")
    assert subject_of(got[1]) == "second, delivered by the MTA" and got[1].uid > uid


async def test_idle_is_rearmed_and_keeps_working(dovecot, reader):
    server = dovecot()
    r, got = reader(server, MemoryPositions(), idle_rearm=0.2)
    await wait_for(lambda: r.idle_rounds >= 4, timeout=15, message="several IDLE rounds")
    await server.append(mail("after re-arming"))
    await wait_for(lambda: got, timeout=5, message="mail after re-arms")
    assert r.sessions == 1 and r.last_error is None  # re-armed on one connection, never reconnected


async def test_position_survives_restart_nothing_twice_nothing_lost(dovecot, reader):
    server = dovecot()
    server.deliver(mail("old history"))  # already there when kefu first starts: not imported
    positions = MemoryPositions()
    first, got_first = reader(server, positions)
    await waiting_for_mail(first)
    await server.append(mail("one"))
    await server.append(mail("two"))
    await wait_for(lambda: len(got_first) == 2, timeout=5, message="two mails")
    await first.stop()
    await wait_for(lambda: first.state == "stopped", message="first reader stopped")
    server.deliver(mail("three, while kefu was down"))
    second, got_second = reader(server, positions)
    await waiting_for_mail(second)
    await server.append(mail("four"))
    await wait_for(lambda: len(got_second) == 2, timeout=5, message="the missed mail and the new one")
    assert [subject_of(m) for m in got_first + got_second] == ["one", "two", "three, while kefu was down", "four"]
    assert positions.position.last_uid == got_second[-1].uid


async def test_mail_is_read_again_until_it_was_handled(dovecot, reader):
    """A handler that fails, or a process killed while handling: the position stays, the mail comes again."""
    server = dovecot()
    positions = MemoryPositions()
    attempts: list[int] = []

    async def fail_once(m: FetchedMail) -> None:
        attempts.append(m.uid)
        if len(attempts) == 1:
            raise RuntimeError("stream unavailable")

    r, got = reader(server, positions, on_mail=fail_once)
    await waiting_for_mail(r)
    uid = await server.append(mail("please resend"))
    await wait_for(lambda: got, timeout=10, message="mail handled on the second attempt")
    assert attempts == [uid, uid] and [m.uid for m in got] == [uid]
    assert [p.last_uid for p in positions.saved[1:]] == [uid]  # saved once, after the handler returned
    await r.stop()

    handling = asyncio.Event()

    async def hang(m: FetchedMail) -> None:
        handling.set()
        await asyncio.Event().wait()

    settings = r.settings
    crashed = MemoryPositions()
    crashed.position = positions.position
    blocked = ImapReader(settings, crashed, hang, idle_rearm=LONG, poll_interval=LONG)
    task = asyncio.create_task(blocked.run())
    await waiting_for_mail(blocked)
    uid2 = await server.append(mail("handled when the process died"))
    await wait_for(handling.is_set, timeout=5, message="handler running")
    task.cancel()  # killed mid-handling, as by kill -9
    await asyncio.gather(task, return_exceptions=True)
    assert crashed.position.last_uid == uid
    again, got_again = reader(server, crashed)
    await wait_for(lambda: got_again, timeout=10, message="the interrupted mail read again")
    assert [m.uid for m in got_again] == [uid2]


async def test_polling_where_the_server_has_no_idle(dovecot, reader):
    server = dovecot(idle=False)
    r, got = reader(server, MemoryPositions(), poll_interval=0.2)
    await waiting_for_mail(r, "polling")
    await server.append(mail("polled"))
    await wait_for(lambda: got, timeout=10, message="mail by polling")
    assert subject_of(got[0]) == "polled" and r.idle_rounds == 0


async def test_reconnects_after_the_mail_server_restarts(dovecot, reader):
    server = dovecot()
    r, got = reader(server, MemoryPositions())
    await waiting_for_mail(r)
    await server.append(mail("before"))
    await wait_for(lambda: got, timeout=5, message="first mail")
    server.stop()
    await wait_for(lambda: r.last_error, timeout=10, message="the reader notices")
    server.deliver(mail("while the server was down"))
    server.start()
    await wait_for(lambda: len(got) == 2, timeout=15, message="mail after the restart")
    await server.append(mail("after"))
    await wait_for(lambda: len(got) == 3, timeout=5, message="IDLE again after the restart")
    assert [subject_of(m) for m in got] == ["before", "while the server was down", "after"]
    assert r.sessions == 2


async def test_new_uidvalidity_reads_the_mailbox_again_from_the_last_day(dovecot, reader):
    server = dovecot()
    box = "客服 Support"  # not INBOX, with a space and Chinese (modified UTF-7 on the wire)
    await server.create(_wire(box))
    positions = MemoryPositions()
    first, got = reader(server, positions, mailbox=box)
    await waiting_for_mail(first)
    await server.append(mail("first"), mailbox=_wire(box))
    await wait_for(lambda: got, timeout=5, message="first mail")
    old = positions.position
    await first.stop()
    await wait_for(lambda: first.state == "stopped", message="first reader stopped")
    await server.recreate(_wire(box))  # restored from a backup: new UIDVALIDITY, UIDs from 1 again
    await server.append(mail("restored copy of first"), mailbox=_wire(box))
    await server.append(mail("new one"), mailbox=_wire(box))
    second, got_second = reader(server, positions, mailbox=box)
    await wait_for(lambda: len(got_second) == 2, timeout=10, message="mailbox read again")
    assert [subject_of(m) for m in got_second] == ["restored copy of first", "new one"]
    assert positions.position.uidvalidity != old.uidvalidity


async def test_tls_and_starttls_with_certificate_checks(dovecot, reader, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    trustme.CA().cert_pem.write_to_path(tmp_path / "other-ca.pem")
    server = dovecot(tls=(tmp_path / "server.pem", tmp_path / "server.pem"))
    imaps, got_imaps = reader(server, MemoryPositions(), port=server.tls_port, tls=True, ca_file=tmp_path / "ca.pem")
    starttls, got_starttls = reader(server, MemoryPositions(), starttls=True, ca_file=tmp_path / "ca.pem")
    untrusted = [reader(server, MemoryPositions(), port=server.tls_port, tls=True, ca_file=tmp_path / "other-ca.pem"),
                 reader(server, MemoryPositions(), starttls=True, ca_file=tmp_path / "other-ca.pem")]
    await waiting_for_mail(imaps)
    await waiting_for_mail(starttls)
    await server.append(mail("over TLS"))
    await wait_for(lambda: got_imaps and got_starttls, timeout=5, message="mail on both TLS readers")
    for r, got in untrusted:
        await wait_for(lambda: r.last_error, timeout=5, message="untrusted certificate refused")
        assert "CERTIFICATE_VERIFY_FAILED" in r.last_error and not got


async def test_mail_over_the_size_limit_is_read_in_part(dovecot, reader):
    server = dovecot()
    r, got = reader(server, MemoryPositions(), max_message_bytes=64 << 10)
    await waiting_for_mail(r)
    await server.append(mail("huge screenshot", body="订单 A123 的截图见附件", size=300 << 10))
    await wait_for(lambda: got, timeout=5, message="large mail")
    m = got[0]
    assert not m.complete and m.size > 300 << 10 and len(m.raw) < 100 << 10
    parsed = parse(m.raw, own_address="support@shop.example", max_file_bytes=10 << 20, complete=m.complete)
    assert parsed.text == "订单 A123 的截图见附件"
    assert [(f.name, f.reason) for f in parsed.refused] == [("screen.png", "message_too_large")]


def _wire(name: str) -> str:
    """A mailbox name as the stdlib's imaplib must be given it (already encoded and quoted)."""
    return mailbox_argument(name)
