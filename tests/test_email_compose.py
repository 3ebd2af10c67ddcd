"""kefu's replies as mail (connectors/email/compose.py).

What a customer would notice: the reply sits in their thread (In-Reply-To,
References, "Re: <their subject>"), comes from the shop's name and address,
reads well as text and as HTML, carries its files; what kefu needs: the same
reply re-sent after a crash has the same Message-ID, and it is recognised as
kefu's own when it comes back.
"""
from __future__ import annotations

import pytest

from connectors.email.compose import MAX_REFERENCES, OutgoingFile, compose_reply, reply_subject
from connectors.email.ids import is_own_message_id
from connectors.email.parse import parse

SHOP = "Support@Shop.example"


def reply(**kw):
    args = {"kefu_id": "m_abc", "address": SHOP, "from_name": "小店客服", "to": "buyer@example.net",
            "text": "您好，卡密已补发。", "subject": "卡密没收到", "in_reply_to": "<q2@example.net>",
            "references": ["<q1@example.net>"], **kw}
    return compose_reply(**args)


def test_threaded_reply_headers():
    msg = reply()
    assert str(msg["From"]) == "小店客服 <Support@Shop.example>" and msg["Reply-To"] == SHOP
    assert msg["To"] == "buyer@example.net" and msg["Subject"] == "Re: 卡密没收到"
    assert msg["In-Reply-To"] == "<q2@example.net>"
    assert msg["References"] == "<q1@example.net> <q2@example.net>"
    assert msg["X-Kefu-Message-Id"] == "m_abc" and msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Auto-Submitted"] is None  # a person's answer


def test_same_message_same_message_id():
    first, again, other = reply(), reply(text="changed after the crash?"), reply(kefu_id="m_abd")
    assert first["Message-ID"] == again["Message-ID"] == "<kefu.m_abc@shop.example>"
    assert other["Message-ID"] != first["Message-ID"]
    assert is_own_message_id(first["Message-ID"], "support@shop.example")
    assert reply(kefu_id="m/../x y")["Message-ID"] == "<kefu.m____x_y@shop.example>"


@pytest.mark.parametrize("original, expected", [
    ("卡密没收到", "Re: 卡密没收到"),
    ("Re: Key not received", "Re: Key not received"),
    ("RE: Activation failed", "RE: Activation failed"),
    ("回复：卡密无效", "回复：卡密无效"),
    ("答复: 回复: 充值失败", "答复: 回复: 充值失败"),
    ("  Order\n  A-77 ", "Re: Order A-77"),
    ("", "Re: 客服回复 / Customer service"),
])
def test_subject_says_re_once_and_keeps_the_original(original, expected):
    assert reply_subject(original) == expected
    assert reply(subject=original)["Subject"] == expected


def test_mail_kefu_starts_keeps_its_subject_and_has_no_thread():
    msg = reply(subject="您的订单 A-77 支付失败", in_reply_to=None, references=[], automatic=True)
    assert msg["Subject"] == "您的订单 A-77 支付失败"
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert msg["Auto-Submitted"] == "auto-replied"  # kefu's automatic message: other robots stay quiet


def test_references_are_bounded_keeping_the_first():
    thread = [f"<t{n}@example.net>" for n in range(40)]
    refs = reply(references=thread, in_reply_to="<t40@example.net>")["References"].split()
    assert len(refs) == MAX_REFERENCES and refs[0] == "<t0@example.net>" and refs[-1] == "<t40@example.net>"
    assert refs[1:] == [f"<t{n}@example.net>" for n in range(41 - MAX_REFERENCES + 1, 41)]


def test_text_html_and_files_survive_the_trip():
    files = [OutgoingFile("卡密 清单.txt", "text/plain", "AAAA-BBBB\n".encode()),
             OutgoingFile("receipt.pdf", "application/pdf", b"%PDF-1.4 ..."),
             OutgoingFile("blob", "", b"\x00\x01")]
    msg = reply(text="第一行 <b>不是粗体</b> & 更多\n第二行", files=files)
    html = msg.get_body(("html",)).get_content()
    assert "&lt;b&gt;不是粗体&lt;/b&gt; &amp; 更多<br>" in html and "第二行" in html
    got = parse(msg.as_bytes(), own_address=SHOP, max_file_bytes=1 << 20)
    assert got.kind == "own" and got.text == "第一行 <b>不是粗体</b> & 更多\n第二行"
    assert [(f.name, f.type, f.data) for f in got.files] == [(f.name, f.type or "application/octet-stream", f.data)
                                                             for f in files]


def test_customers_answer_to_a_reply_points_back_at_it():
    ours = reply()
    answer = (f"From: buyer@example.net\r\nTo: support@shop.example\r\nSubject: {ours['Subject']}\r\n"
              f"Message-ID: <q3@example.net>\r\nIn-Reply-To: {ours['Message-ID']}\r\n"
              f"References: {ours['References']} {ours['Message-ID']}\r\n\r\n好的，收到").encode()
    got = parse(answer, own_address=SHOP, max_file_bytes=1000)
    assert got.kind == "customer" and got.thread_ids[0] == "<kefu.m_abc@shop.example>"
    assert "卡密没收到" in got.subject
