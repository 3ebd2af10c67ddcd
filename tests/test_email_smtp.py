"""The SMTP sender (connectors/email/smtp.py) against a real aiosmtpd server.

What a shop would notice: replies leave logged in (also over plain TCP for a
local server), over TLS or STARTTLS with certificate checks, on one kept
connection while replies keep coming; a refused reply says why and whether
retrying can help (5xx: the agent must act; 4xx, a lost server, a bad login:
later), and a server restart between replies goes unnoticed.
"""
from __future__ import annotations

import ssl

import pytest
import trustme

from connectors.email.compose import compose_reply
from connectors.email.config import SmtpSettings
from connectors.email.smtp import ConnectFailed, SendFailure, SmtpSender
from tests.kefu_harness import wait_for
from tests.smtp_server import RecordingSmtpServer

SHOP = "support@shop.example"


@pytest.fixture
def smtp(request):
    def start(port: int | None = None, **kw) -> RecordingSmtpServer:
        server = RecordingSmtpServer(**kw).start(port)
        request.addfinalizer(server.stop)
        return server
    return start


@pytest.fixture
async def senders():
    made: list[SmtpSender] = []

    def make(server: RecordingSmtpServer, **kw) -> SmtpSender:
        settings = {"host": "127.0.0.1", "port": server.port, "tls": False, "starttls": False,
                    "user": server.user, "password": server.password, "timeout": 5, **kw}
        sender = SmtpSender(SmtpSettings(**settings))
        made.append(sender)
        return sender

    yield make
    for s in made:
        await s.close()


def reply(n: int = 1, to: str = "buyer@example.net"):
    return compose_reply(kefu_id=f"m_{n}", address=SHOP, from_name="小店客服", to=to,
                         text=f"您好，卡密已补发 #{n}", subject="卡密没收到", in_reply_to="<q1@example.net>",
                         references=["<q0@example.net>"])


async def test_logs_in_over_plain_tcp_and_delivers_the_threaded_reply(smtp, senders):
    server = smtp()
    answer = await senders(server).send(reply())
    assert answer.startswith("2.0.0 Ok: queued")
    [got] = server.received
    assert got.login == "kefu" and got.sender == SHOP and got.recipients == ["buyer@example.net"]
    msg = got.message
    assert msg["Message-ID"] == "<kefu.m_1@shop.example>" and msg["In-Reply-To"] == "<q1@example.net>"
    assert msg["Subject"] == "Re: 卡密没收到" and str(msg["From"]) == "小店客服 <support@shop.example>"
    assert msg.get_body(("plain",)).get_content().strip() == "您好，卡密已补发 #1"


async def test_one_connection_while_busy_closed_when_idle(smtp, senders):
    server = smtp()
    sender = senders(server, keep_open=0.3)
    for n in range(3):
        await sender.send(reply(n))
    assert len(server.received) == 3 and len(server.sessions) == 1
    await wait_for(lambda: not sender.connected, timeout=5, message="idle connection closed")
    await sender.send(reply(4))
    assert len(server.sessions) == 2


async def test_refusals_are_classified_and_the_connection_stays_usable(smtp, senders):
    server = smtp(refuse={"gone@example.net": "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
                          "full@example.net": "452 4.2.2 Mailbox full, try later"})
    sender = senders(server)
    with pytest.raises(SendFailure) as permanent:
        await sender.send(reply(1, to="gone@example.net"))
    assert permanent.value.permanent and permanent.value.code == 550
    assert "User unknown" in permanent.value.reason  # what the agent is shown
    with pytest.raises(SendFailure) as later:
        await sender.send(reply(2, to="full@example.net"))
    assert not later.value.permanent and later.value.code == 452 and "Mailbox full" in later.value.reason
    server.data_reply = "451 4.3.0 Temporary local problem"
    with pytest.raises(SendFailure) as busy:
        await sender.send(reply(3))
    assert not busy.value.permanent and busy.value.code == 451
    server.data_reply = "552 5.3.4 Message size exceeds fixed limit"
    with pytest.raises(SendFailure) as big:
        await sender.send(reply(4))
    assert big.value.permanent and "size exceeds" in big.value.reason
    await sender.send(reply(5))
    assert [r.message["Message-ID"] for r in server.received] == ["<kefu.m_5@shop.example>"]
    assert len(server.sessions) == 1


async def test_bad_login_or_no_server_is_no_fault_of_the_mail(smtp, senders):
    server = smtp()
    with pytest.raises(ConnectFailed) as wrong:
        await senders(server, password="not-the-password").send(reply())
    assert not wrong.value.permanent and wrong.value.code == 535 and "not-the-password" not in str(wrong.value)
    with pytest.raises(ConnectFailed) as anonymous:  # the server wants a login the settings lack
        await senders(server, user=None, password=None).send(reply())
    assert not anonymous.value.permanent and anonymous.value.code == 530
    server.stop()
    with pytest.raises(ConnectFailed) as down:
        await senders(server).send(reply())
    assert not down.value.permanent
    assert server.logins_refused >= 1 and not server.received


async def test_server_restart_between_replies_goes_unnoticed(smtp, senders):
    server = smtp()
    sender = senders(server)
    await sender.send(reply(1))
    server.stop()  # the kept connection dies with it
    restarted = smtp(port=server.port)
    await sender.send(reply(2))
    assert [r.message["Message-ID"] for r in server.received + restarted.received] == [
        "<kefu.m_1@shop.example>", "<kefu.m_2@shop.example>"]


async def test_tls_and_starttls_with_certificate_checks(smtp, senders, tmp_path):
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    trustme.CA().cert_pem.write_to_path(tmp_path / "other.pem")
    smtps = smtp(tls=server_ctx)
    submission = smtp(starttls=server_ctx)
    await senders(smtps, tls=True, ca_file=tmp_path / "ca.pem").send(reply(1))
    await senders(submission, starttls=True, ca_file=tmp_path / "ca.pem").send(reply(2))
    assert [r.login for r in smtps.received + submission.received] == ["kefu", "kefu"]
    for server, kw in ((smtps, {"tls": True}), (submission, {"starttls": True})):
        with pytest.raises(ConnectFailed) as untrusted:
            await senders(server, ca_file=tmp_path / "other.pem", **kw).send(reply(3))
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.value.reason
    assert len(smtps.received + submission.received) == 2
