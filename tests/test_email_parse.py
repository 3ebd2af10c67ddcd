"""Inbound mail as kefu reads it (connectors/email/parse.py), on mails shaped like what
Gmail, Outlook, QQ Mail, 163, iPhone, Yahoo (Big5), a Japanese client and mail
servers send (tests/email_samples/, written for these tests).

What an agent would notice: the customer's words without the quoted history
or signature, in the right characters whatever the charset; their pictures and
files, or why one was not taken; robots (auto-replies, bounces) and kefu's own
mail never showing up as a customer.
"""
from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.email.compose import compose_reply
from connectors.email.parse import MAX_FILES, parse

SAMPLES = Path(__file__).parent / "email_samples"
SHOP = "support@shop.example"


def sample(name: str, **kw):
    return parse((SAMPLES / name).read_bytes(), own_address=SHOP, max_file_bytes=kw.pop("max_file_bytes", 1 << 20), **kw)


@pytest.mark.parametrize("name, sender, sender_name, subject, text", [
    ("gmail_en_reply.eml", "tom.baker.buyer@gmail.example", "Tom Baker", "Re: Key not received",
     "Hi, I paid but the key still hasn't arrived. Order 2024010812345678.\n\nThanks,\nTom"),
    ("gmail_zh_reply.eml", "wxm.buyer@gmail.example", "王小明", "Re: 卡密没收到",
     "卡密还是没有收到，订单号 2024010812345678，麻烦尽快处理。"),
    ("outlook_en_reply.eml", "john.smith@contoso.example", "John Smith", "RE: Activation failed",
     "Thanks, the key works now.\n\nBest regards\nJohn Smith"),
    # labelled gb2312, written in GBK (镕 is not in GB2312)
    ("outlook_zh_reply.eml", "lirong@outlook.example", "李镕", "答复: 回复: 充值失败", "好的，收到了，谢谢！\n李镕"),
    ("qq_zh_reply.eml", "12345678@qq.example", "张三", "回复：卡密无效", "我的卡密显示无效，截图和订单见附件，麻烦看一下。"),
    ("163_zh_reply.eml", "wangfang_buyer@163.example", "王芳", "Re:退款进度", "退款什么时候能到账？已经三天了。"),
    ("big5_new_thread.eml", "chen.dawen@yahoo.example", "陳大文", "儲值卡未收到",  # 嘅: HKSCS under a big5 label
     "請問儲值卡什麼時候會寄到？我已經付款了。\n嘅"),
    ("iso2022jp_new_thread.eml", "yamada@example.jp", "山田太郎", "キーが届かない",
     "注文したキーが届きません。\n注文番号: JP-20240108-0042"),
    ("iphone_photo.eml", "kim.buyer@icloud.example", "Kim", "Wrong region", "The key is for the wrong region, see photo"),
])
def test_customers_words_as_they_wrote_them(name, sender, sender_name, subject, text):
    mail = sample(name)
    assert (mail.kind, mail.sender, mail.sender_name, mail.subject, mail.text) == (
        "customer", sender, sender_name, subject, text)


def test_quoted_history_is_kept_aside_and_cutting_can_be_off():
    mail = sample("gmail_en_reply.eml")
    assert mail.quoted.startswith("On Mon, Jan 8, 2024 at 10:15 AM") and "please send us your order" in mail.quoted
    whole = sample("gmail_zh_reply.eml", cut_quotes=False)
    assert "写道" in whole.text and "> 您好，请提供订单号。" in whole.text


def test_threading_headers():
    mail = sample("gmail_en_reply.eml")
    assert mail.message_id == "<CAJx9Lk3n0VsQ_f4mXwZt0k@mail.gmail.com>"
    assert mail.in_reply_to == "<kefu.m_0001@shop.example>"
    assert mail.references == ["<CAJx9Lk2q7dB1pQ@mail.gmail.com>", "<kefu.m_0001@shop.example>"]
    assert mail.thread_ids == ["<kefu.m_0001@shop.example>", "<CAJx9Lk2q7dB1pQ@mail.gmail.com>"]
    assert mail.date.isoformat() == "2024-01-08T11:02:37+08:00"


def test_html_only_mail_is_read_safely():
    mail = sample("html_only.eml")
    assert mail.text == ("Hello & good evening,\n\nI bought Steam Wallet 100 USD — the code shows \"already redeemed\"."
                         "\n\nOrder A-20240108-77\nPaid ¥688.00\n\n"
                         "Screenshot: here (https://img.example.net/s/abc123.png)\n\n你好 <3")
    for hidden in ("tracking", "alert", "enable js", "font-family", "Contact form"):
        assert hidden not in mail.text


def test_html_quote_containers_are_cut():
    msg = EmailMessage()
    msg["From"] = "buyer@example.net"
    msg.set_content('<div>Still broken.</div><div class="gmail_quote">On Mon, Jan 8, 2024 Shop wrote:'
                    '<blockquote>old text</blockquote></div>', subtype="html")
    mail = parse(msg.as_bytes(), own_address=SHOP, max_file_bytes=1000)
    assert mail.text == "Still broken." and "old text" in mail.quoted


def test_attachments_and_inline_images():
    qq = sample("qq_zh_reply.eml")
    [order] = qq.files
    assert (order.name, order.inline) == ("订单信息.txt", False)
    assert order.data.decode("gb18030") == "订单号: 2024010812345678\n卡密: XXXX-YYYY-ZZZZ\n"
    gmail = sample("gmail_inline_image.eml")  # the picture sits in the HTML branch; the text is the plain one
    assert [(f.name, f.type, f.inline, f.content_id) for f in gmail.files] == [
        ("error.jpg", "image/jpeg", True, "<ii_lr4b2k1p0>")]
    assert gmail.files[0].data.startswith(b"\xff\xd8")
    iphone = sample("iphone_photo.eml")
    assert [(f.name, f.inline) for f in iphone.files] == [("IMG_0421.jpeg", True)]
    assert iphone.quoted == "Sent from my iPhone"


def test_files_over_the_limit_are_refused_with_the_reason():
    mail = sample("iphone_photo.eml", max_file_bytes=100)
    assert mail.files == [] and mail.text == "The key is for the wrong region, see photo"
    assert [(r.name, r.type, r.size, r.reason) for r in mail.refused] == [("IMG_0421.jpeg", "image/jpeg", 306, "too_large")]
    msg = EmailMessage()
    msg["From"] = "buyer@example.net"
    msg.set_content("all my screenshots")
    for n in range(MAX_FILES + 3):
        msg.add_attachment(b"\x89PNG" + bytes([n]), maintype="image", subtype="png", filename=f"s{n}.png")
    many = parse(msg.as_bytes(), own_address=SHOP, max_file_bytes=1000)
    assert len(many.files) == MAX_FILES and [r.reason for r in many.refused] == ["too_many"] * 3


def test_bounce_names_the_reply_that_failed_and_why():
    mail = sample("dsn_bounce.eml")
    assert mail.kind == "bounce"
    assert mail.bounce.message_ids == ["<kefu.m_0042@shop.example>"]
    assert (mail.bounce.recipient, mail.bounce.status) == ("no.such.buyer@example.net", "5.1.1")
    assert "User unknown" in mail.bounce.diagnostic


def test_plain_text_bounce_from_a_mailer_daemon():
    msg = EmailMessage()
    msg["From"] = "Mail Delivery Subsystem <MAILER-DAEMON@mx.qq.example>"
    msg["Subject"] = "退信：Re: 卡密没收到"
    msg.set_content("很抱歉您的邮件被退回。\n原邮件:\nMessage-ID: <kefu.m_0099@shop.example>\n550 Mailbox not found")
    mail = parse(msg.as_bytes(), own_address=SHOP, max_file_bytes=1000)
    assert mail.kind == "bounce" and mail.bounce.message_ids == ["<kefu.m_0099@shop.example>"]


def _customer_mail(**headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Buyer <buyer@example.net>"
    msg["To"] = SHOP
    msg["Subject"] = headers.pop("Subject", "Re: order")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("I am away")
    return msg.as_bytes()


@pytest.mark.parametrize("headers", [
    {"Auto_Submitted": "auto-replied"},
    {"Precedence": "bulk"},
    {"Precedence": "junk"},
    {"X_Autoreply": "yes"},
    {"List_Id": "<deals.lists.example.net>"},
    {"Return_Path": "<>"},
    {"Subject": "自动回复: 卡密没收到"},
    {"Subject": "Out of Office: your order"},
])
def test_robots_are_not_customers(headers):
    assert parse(_customer_mail(**headers), own_address=SHOP, max_file_bytes=1000).kind == "automatic"
    assert sample("outlook_auto_reply.eml").kind == "automatic"


def test_a_person_stays_a_person():
    for headers in ({"Auto_Submitted": "no"}, {"X_Auto_Response_Suppress": "All"}, {"Subject": "Re: 自动回复不工作"}):
        mail = parse(_customer_mail(**headers), own_address=SHOP, max_file_bytes=1000)
        assert (mail.kind, mail.reason) == ("customer", "")


def test_read_receipt_is_not_a_customer():
    msg = EmailMessage()
    msg["From"] = "buyer@example.net"
    msg.set_content("Your message was read")
    msg.make_mixed()
    msg.replace_header("Content-Type", 'multipart/report; report-type=disposition-notification; boundary="b"')
    assert parse(msg.as_bytes(), own_address=SHOP, max_file_bytes=1000).kind == "automatic"


def test_loop_guard_kefu_never_answers_its_own_mail():
    ours = compose_reply(kefu_id="m_7", address=SHOP, from_name="小店客服", to="buyer@example.net",
                         text="您好", subject="卡密", in_reply_to="<q@example.net>")
    assert parse(ours.as_bytes(), own_address=SHOP, max_file_bytes=1000).kind == "own"
    forwarded = ours.as_bytes().replace(b"From: ", b"X-Was-From: ", 1).replace(
        b"Reply-To: ", b"From: forwarder@example.net\r\nReply-To: ", 1)  # a forwarding rule rewrote From
    mail = parse(forwarded, own_address=SHOP, max_file_bytes=1000)
    assert mail.sender == "forwarder@example.net" and mail.kind == "own" and mail.kefu_message_id == "m_7"
    stripped = ours.as_bytes().replace(b"X-Kefu-Message-Id", b"X-Other").replace(b"From: ", b"X-Was: ", 1)
    stripped = b"From: relay@example.net\r\n" + stripped  # only our Message-ID is left
    assert parse(stripped, own_address=SHOP, max_file_bytes=1000).kind == "own"
    customer = _customer_mail(In_Reply_To="<kefu.m_7@shop.example>", References="<kefu.m_7@shop.example>")
    assert parse(customer, own_address=SHOP, max_file_bytes=1000).kind == "customer"  # answering us is fine


def test_raw_8bit_headers_and_flowed_text():
    raw = ("From: 张三 <zhangsan@example.net>\r\nSubject: 卡密问题\r\n"
           "Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
           "This line was wrapped by the \r\nclient and joins again.\r\nNew line.\r\n").encode("utf-8")
    mail = parse(raw, own_address=SHOP, max_file_bytes=1000)
    assert (mail.sender_name, mail.subject) == ("张三", "卡密问题")
    assert mail.text == "This line was wrapped by the client and joins again.\nNew line."
    gbk = "From: =?gb2312?B?1cXI/Q==?= <a@example.net>\r\nSubject: ".encode() + "订单".encode("gbk") + b"\r\n\r\nx"
    assert parse(gbk, own_address=SHOP, max_file_bytes=1000).subject == "订单"


def test_unlabelled_and_undecodable_bodies():
    unlabelled = b"From: a@example.net\r\n\r\n" + "没有标字符集的邮件".encode("gbk")
    assert parse(unlabelled, own_address=SHOP, max_file_bytes=1000).text == "没有标字符集的邮件"
    broken = b"From: a@example.net\r\nContent-Type: text/plain; charset=big5\r\n\r\nok \xff\xfe\xfd end"
    assert parse(broken, own_address=SHOP, max_file_bytes=1000).text.startswith("ok ")
    unknown = b"From: a@example.net\r\nContent-Type: text/plain; charset=x-no-such\r\n\r\nplain words"
    assert parse(unknown, own_address=SHOP, max_file_bytes=1000).text == "plain words"


def test_no_sender():
    mail = parse(b"Subject: hi\r\n\r\nwho am I", own_address=SHOP, max_file_bytes=1000)
    assert (mail.kind, mail.sender) == ("no_sender", "")


# -- never an exception ----------------------------------------------------------------
_HEADERS = ["From", "To", "Subject", "Message-ID", "In-Reply-To", "References", "Date", "Content-Type",
            "Content-Transfer-Encoding", "Content-Disposition", "Auto-Submitted", "Return-Path", "X-Kefu-Message-Id"]
_VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(['multipart/mixed; boundary="b"', 'multipart/alternative; boundary="b"',
                     "multipart/report; report-type=delivery-status; boundary=b", "message/rfc822",
                     "message/delivery-status", "text/html; charset=gb2312", "text/plain; charset=x-unknown",
                     "text/plain; format=flowed; delsp=yes", "base64", "quoted-printable",
                     "attachment; filename*=utf-8''%E4%B8%AD%ZZ", '=?gbk?B?1cXI/Q?=', "=?utf-8?Q?=E4=B8?=",
                     "<a@b> <c", "Mon, 99 Foo 2024 25:61:61 +9999", "<>", "\udcff"]),
)
_BODY_PARTS = st.one_of(st.binary(max_size=200), st.sampled_from([
    b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n", b"--b\r\nContent-Type: image/png\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!notbase64\r\n", b"--b--\r\n", b"<blockquote><p>x",
    b"<script>", b"\r\n\r\n", b"=?utf-8?b?", b"> quoted\r\n", b"-- \r\n"]))


@st.composite
def mime_like(draw) -> bytes:
    headers = draw(st.lists(st.tuples(st.sampled_from(_HEADERS), _VALUES), max_size=10))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    body = b"".join(draw(st.lists(_BODY_PARTS, max_size=8)))
    return head.encode("utf-8", errors="surrogateescape") + b"\r\n" + body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2000), mime_like()))
def test_parse_never_raises(raw):
    mail = parse(raw, own_address=SHOP, max_file_bytes=50)
    assert mail.kind in ("customer", "automatic", "bounce", "own", "no_sender")
    assert isinstance(mail.text, str) and all(len(f.data) <= 50 for f in mail.files)
