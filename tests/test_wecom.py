"""WeCom (微信客服) protocol layer: callback crypto, the API client and the reply-window
rules, against tests/fakes/wecom_api.py (which speaks WeCom's wire protocol with the
real crypto) and WeCom's own published sample vectors."""
from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pydantic import ValidationError

from connectors.wecom.api import (RULE_SESSION, STATE_ASSISTANT, STATE_HUMAN, MemoryTokenStore,
                                  WecomApi, WecomApiError, WecomRateLimited, WecomRefusal,
                                  WecomUnavailable, stable_msgid)
from connectors.wecom.config import WecomChannel
from connectors.wecom.crypto import CallbackRefused, WecomCrypto
from connectors.wecom.rules import RULE_QUOTA, RULE_WINDOW, reply_window
from tests.fakes.local_server import serve
from tests.fakes.wecom_api import FakeWecom
from tests.kefu_harness import free_port

# WeCom's published sample (WXBizMsgCrypt Sample.py of the official SDK).
SAMPLE_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
SAMPLE_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
SAMPLE_CORP = "ww1436e0e65a779aee"
SAMPLE_ECHO = ("fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/"
               "3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==")
SAMPLE_POST = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA["
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGz"
    "BhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3J"
    "WcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQH"
    "E7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuP"
    "DGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>")
USER = "wmCustomerAAA"


# ---------------------------------------------------------------------- crypto
def test_wecom_published_sample_verifies_and_decrypts():
    c = WecomCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP)
    assert c.verify_url("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683",
                        SAMPLE_ECHO) == "1288432023552776189"
    fields = c.decrypt_callback("0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779",
                                "1597212914", SAMPLE_POST.encode())
    assert fields["Content"] == "你好" and fields["FromUserName"] == "ChenJiaShun"
    # a different token signs differently: the same request is then refused
    other = WecomCrypto("SomeOtherToken", SAMPLE_KEY, SAMPLE_CORP)
    with pytest.raises(CallbackRefused) as e:
        other.verify_url("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", SAMPLE_ECHO)
    assert e.value.reason == "bad signature" and e.value.status == 401


def _documented_encrypt(key43: str, corp: str, random16: bytes, msg: bytes) -> str:
    """The documented algorithm written out step by step, independently of crypto.py."""
    key = base64.b64decode(key43 + "=")
    plain = random16 + struct.pack("!I", len(msg)) + msg + corp.encode()
    padder = padding.PKCS7(256).padder()  # 256 bits = WeCom's 32-byte blocks
    padded = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES256(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(padded) + enc.finalize()).decode()


def test_encrypt_matches_the_documented_algorithm_and_round_trips():
    c = WecomCrypto("Tok3n", SAMPLE_KEY, "wwcorp01")
    for msg in ("", "x", "<xml><Content><![CDATA[长一点的消息 " + "字" * 40 + "]]></Content></xml>"):
        enc = c.encrypt(msg, random16=b"0123456789abcdef")
        assert enc == _documented_encrypt(SAMPLE_KEY, "wwcorp01", b"0123456789abcdef", msg.encode())
        assert c.decrypt(enc) == msg.encode()
        sig = hashlib.sha1("".join(sorted(["Tok3n", "1700000000", "42", enc])).encode()).hexdigest()
        assert c.sign("1700000000", "42", enc) == sig


def test_forgeries_are_refused_with_a_reason():
    c = WecomCrypto("Tok3n", SAMPLE_KEY, "wwcorp01")
    body, sig = c.encrypt_callback({"Event": "kf_msg_or_event", "Token": "T"}, "1", "2")
    assert c.decrypt_callback(sig, "1", "2", body.encode())["Token"] == "T"
    cases = {
        "bad signature": lambda: c.decrypt_callback("0" * 40, "1", "2", body.encode()),
        "wrong receive id": lambda: c.decrypt(WecomCrypto("Tok3n", SAMPLE_KEY, "wwother").encrypt("hi")),
        "bad padding": lambda: c.decrypt(_documented_raw(SAMPLE_KEY, b"\x00" * 32)),
        "Encrypt is not base64": lambda: c.decrypt("###"),
        "no Encrypt element": lambda: c.decrypt_callback(sig, "1", "2", b"<xml><A>1</A></xml>"),
        "malformed XML": lambda: c.decrypt_callback(sig, "1", "2", b"<xml><Encrypt>"),
        "XML with a document type is not accepted":
            lambda: c.decrypt_callback(sig, "1", "2", b'<!DOCTYPE x [<!ENTITY a "b">]><xml/>'),
    }
    for reason, attempt in cases.items():
        with pytest.raises(CallbackRefused) as e:
            attempt()
        assert e.value.reason == reason
        assert e.value.status == (401 if reason in ("bad signature", "wrong receive id") else 400)


def _documented_raw(key43: str, padded: bytes) -> str:
    key = base64.b64decode(key43 + "=")
    enc = Cipher(algorithms.AES256(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(padded) + enc.finalize()).decode()


def test_channel_config_checks_the_aes_key():
    good = {"kind": "wecom", "corp_id": "ww0123456789abcdef", "secret": "s", "token": "Tok3n",
            "aes_key": SAMPLE_KEY, "open_kfid": "wkAbCdEf"}
    ch = WecomChannel(**good)
    assert ch.api_base == "https://qyapi.weixin.qq.com" and "Tok3n" not in repr(ch)
    for bad in (SAMPLE_KEY[:-1], SAMPLE_KEY + "A", SAMPLE_KEY[:-1] + "!", "=" * 43):
        with pytest.raises(ValidationError, match="aes_key"):
            WecomChannel(**{**good, "aes_key": bad})
    with pytest.raises(ValidationError, match="token"):
        WecomChannel(**{**good, "token": "has space"})


# ---------------------------------------------------------------------- fixtures
@pytest.fixture
async def fake():
    f = FakeWecom()
    await f.start()
    yield f
    await f.stop()


@pytest.fixture
async def api(fake):
    a = WecomApi(fake.url, fake.corp_id, fake.secret, fake.open_kfid, clock=fake.now)
    yield a
    await a.close()


@pytest.fixture
async def receiver(fake):
    """A callback endpoint standing in for kefu's /wecom/<channel>/callback."""
    crypto = WecomCrypto(fake.token, fake.aes_key, fake.corp_id)
    got: list[dict] = []

    async def callback(request: web.Request) -> web.Response:
        q = request.query
        try:
            if request.method == "GET":
                return web.Response(text=crypto.verify_url(q.get("msg_signature", ""), q.get("timestamp", ""),
                                                           q.get("nonce", ""), q.get("echostr", "")))
            got.append(crypto.decrypt_callback(q.get("msg_signature", ""), q.get("timestamp", ""),
                                               q.get("nonce", ""), await request.read()))
            return web.Response(text="success")
        except CallbackRefused as e:
            return web.json_response({"error": e.reason}, status=e.status)

    app = web.Application()
    app.router.add_route("*", "/wecom/wechat/callback", callback)
    runner, base = await serve(app)
    yield base + "/wecom/wechat/callback", got
    await runner.cleanup()


# ---------------------------------------------------------------------- callbacks
async def test_callback_url_verification_and_event_then_sync(fake, api, receiver):
    url, got = receiver
    status, body, echo = await fake.verify_url(url)
    assert (status, body) == (200, echo)
    status, _, _ = await fake.verify_url(url, signature="f" * 40)
    assert status == 401

    fake.inject_text(USER, "我的卡密没收到")
    assert (await fake.notify(url))[0] == 200
    event = got[-1]
    assert event["Event"] == "kf_msg_or_event" and event["OpenKfId"] == fake.open_kfid
    page = await api.sync_msg(token=event["Token"])
    assert [(m.external_userid, m.text, m.from_customer) for m in page.messages] == [(USER, "我的卡密没收到", True)]


async def test_forged_callbacks_store_nothing(fake, receiver):
    url, got = receiver
    other_key = base64.b64encode(bytes(range(32))).decode().rstrip("=")
    forgeries = [
        (401, dict(signature="0" * 40)),  # not signed with our token
        (401, dict(crypto=WecomCrypto(fake.token, fake.aes_key, "wwSomeoneElse"))),  # for another corp
        (400, dict(crypto=WecomCrypto(fake.token, other_key, fake.corp_id))),  # another AES key
    ]
    for status, forgery in forgeries:
        got_status, text = await fake.post_callback(url, fake.callback_fields(), **forgery)
        assert (got_status, "error" in text) == (status, True), forgery
    assert got == []
    assert (await fake.notify(url))[0] == 200 and len(got) == 1


# ---------------------------------------------------------------------- access token
async def test_access_token_is_cached_shared_and_renewed_before_expiry(fake):
    store = MemoryTokenStore()
    a = WecomApi(fake.url, fake.corp_id, fake.secret, fake.open_kfid, token_store=store, clock=fake.now)
    b = WecomApi(fake.url, fake.corp_id, fake.secret, fake.open_kfid, token_store=store, clock=fake.now)
    try:
        await a.sync_msg()
        await a.sync_msg()
        await b.sync_msg()  # another process: takes the shared token
        assert fake.token_requests == 1
        fake.advance(fake.token_ttl - 200)  # inside the 300 s margin
        await b.sync_msg()
        assert fake.token_requests == 2
        await a.sync_msg()  # a picks up b's renewed token from the store
        assert fake.token_requests == 2
    finally:
        await a.close()
        await b.close()


async def test_expired_token_is_refreshed_once(fake, api):
    await api.sync_msg()
    fake.expire_tokens()
    page = await api.sync_msg()
    assert page.messages == [] and fake.token_requests == 2
    assert [r["errcode"] for r in fake.requests if r["path"] == "kf/sync_msg"] == [0, 42001, 0]
    fake.fail_next("kf/sync_msg", 40014, times=2)  # still invalid after the refresh: give up
    with pytest.raises(WecomApiError) as e:
        await api.sync_msg()
    assert e.value.errcode == 40014 and fake.token_requests == 3


async def test_wrong_secret_is_an_error_not_a_retry(fake):
    a = WecomApi(fake.url, fake.corp_id, "wrong", fake.open_kfid)
    try:
        with pytest.raises(WecomApiError) as e:
            await a.sync_msg()
        assert e.value.errcode == 40001 and not isinstance(e.value, WecomRateLimited)
    finally:
        await a.close()


# ---------------------------------------------------------------------- receiving
async def test_sync_pages_with_cursor_and_message_types(fake, api):
    fake.inject_text(USER, "one")
    img = fake.inject_image(USER, b"\x89PNG\r\n\x1a\nfake-image")
    fake.inject_file(USER, b"%PDF-1.4 invoice", filename="发票.pdf")
    _, code = fake.inject_enter_session("wmNewcomer", scene="shop")
    fake.inject_event(USER, "msg_send_fail", fail_msgid="m_x", fail_type=4)

    p1 = await api.sync_msg(limit=2)
    p2 = await api.sync_msg(p1.next_cursor, limit=2)
    p3 = await api.sync_msg(p2.next_cursor, limit=2)
    assert (p1.has_more, p2.has_more, p3.has_more) == (True, True, False)
    msgs = p1.messages + p2.messages + p3.messages
    assert [m.msgtype for m in msgs] == ["text", "image", "file", "event", "event"]
    assert (msgs[4].event["event_type"], msgs[4].event["fail_msgid"], msgs[4].external_userid) == (
        "msg_send_fail", "m_x", USER)
    assert len({m.msgid for m in msgs}) == 5
    again = await api.sync_msg(p3.next_cursor)
    assert again.messages == [] and not again.has_more

    image = await api.get_media(msgs[1].media_id)
    assert image.data == b"\x89PNG\r\n\x1a\nfake-image" and image.content_type == "image/png"
    assert msgs[1].msgid == img["msgid"]
    doc = await api.get_media(msgs[2].media_id)
    assert doc.filename == "发票.pdf" and doc.data.startswith(b"%PDF")

    event = msgs[3]
    assert event.event["event_type"] == "enter_session" and event.external_userid == "wmNewcomer"
    assert not event.from_customer
    await api.send_on_event(event.event["welcome_code"], "欢迎光临！请问有什么可以帮您？", "m_welcome1")
    assert fake.sent[-1]["via"] == "send_msg_on_event" and fake.sent[-1]["touser"] == "wmNewcomer"
    with pytest.raises(WecomApiError) as e:  # a code is good once
        await api.send_on_event(code, "again", "m_welcome2")
    assert e.value.errcode == 40029


async def test_an_unknown_callback_token_is_refused(fake, api):
    with pytest.raises(WecomApiError) as e:
        await api.sync_msg(token="ENCnotIssuedByWeCom")
    assert e.value.errcode == 95007


# ---------------------------------------------------------------------- sending
async def test_long_text_is_split_by_bytes_and_resent_idempotently(fake, api):
    fake.inject_text(USER, "在吗")
    text = "卡密已补发，请查收。" * 300  # 9,000 bytes of UTF-8
    msgids = await api.send_text(USER, text, "m_lx2k9a1b3f9d0c7e")
    parts = [s["text"] for s in fake.sent]
    assert len(parts) == 5 and all(len(p.encode()) <= 2048 for p in parts)
    assert "".join(parts) == text
    assert msgids == ["m_lx2k9a1b3f9d0c7e"] + [f"m_lx2k9a1b3f9d0c7e-{i}" for i in range(1, 5)]
    # a re-send after a crash carries the same msgids: nothing reaches the customer twice
    assert await api.send_text(USER, text, "m_lx2k9a1b3f9d0c7e") == msgids
    assert len(fake.sent) == 5 and fake.duplicates == 5


async def test_the_platform_refuses_over_2048_bytes(fake, api):
    fake.inject_text(USER, "hi")
    with pytest.raises(WecomApiError) as e:
        await api.send(USER, "text", {"content": "字" * 683}, "m_toolong")  # 2,049 bytes
    assert e.value.errcode == 45002 and fake.sent == []


async def test_48_hour_window_and_5_message_quota_are_named_refusals(fake, api):
    fake.inject_text(USER, "hello")
    for i in range(5):
        await api.send_text(USER, f"reply {i}", f"m_r{i}")
    with pytest.raises(WecomRefusal) as e:
        await api.send_text(USER, "one too many", "m_r5")
    assert e.value.rule == RULE_QUOTA and e.value.errcode == 95001 and "5" in e.value.explain("en")

    fake.inject_text(USER, "still there?")  # the customer writes: a fresh window
    await api.send_text(USER, "yes", "m_r6")
    fake.advance(48 * 3600 + 1)
    with pytest.raises(WecomRefusal) as e:
        await api.send_text(USER, "too late", "m_r7")
    assert e.value.rule == RULE_WINDOW and "48" in e.value.explain("zh")
    assert [s["text"] for s in fake.sent][-1] == "yes"


async def test_rate_limits_are_retryable(fake, api):
    fake.inject_text(USER, "hi")
    fake.fail_next("kf/send_msg", 45009)
    with pytest.raises(WecomRateLimited) as e:
        await api.send_text(USER, "hello", "m_rl")
    assert e.value.retry_after > 0
    assert await api.send_text(USER, "hello", "m_rl") == ["m_rl"]


async def test_images_and_files_go_by_media_id(fake, api):
    fake.inject_text(USER, "send me the invoice")
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    await api.send_media(USER, "image", png, "screenshot.png", "image/png", "m_img")
    await api.send_media(USER, "file", b"%PDF-1.4 ...", "invoice.pdf", "application/pdf", "m_file")
    assert [(s["msgtype"], s["file"]["data"], s["file"]["filename"]) for s in fake.sent] == [
        ("image", png, "screenshot.png"), ("file", b"%PDF-1.4 ...", "invoice.pdf")]
    assert [r["upload"]["type"] for r in fake.requests if "upload" in r] == ["image", "file"]


async def test_session_is_kept_with_the_assistant(fake, api):
    fake.inject_text(USER, "hi")
    assert (await api.service_state(USER))[0] == 0
    assert await api.keep_with_assistant(USER) == STATE_ASSISTANT
    assert fake.customers[USER].state == STATE_ASSISTANT
    await api.send_text(USER, "kefu answers", "m_s1")
    fake.set_service_state(USER, STATE_HUMAN, "zhangsan")  # someone took it over in WeCom
    with pytest.raises(WecomRefusal) as e:
        await api.send_text(USER, "blocked", "m_s2")
    assert e.value.rule == RULE_SESSION and e.value.errcode == 95018
    with pytest.raises(WecomRefusal):
        await api.keep_with_assistant(USER)


def test_stable_msgid():
    assert stable_msgid("m_lx2k9a1b3f9d0c7e") == "m_lx2k9a1b3f9d0c7e"
    long_id = "conversation:" + "x" * 40
    ids = {stable_msgid(long_id, i) for i in range(12)}
    assert len(ids) == 12
    for mid in ids | {stable_msgid("a/b c")}:
        assert len(mid) <= 32 and all(ch.isalnum() or ch in "_-" for ch in mid)
    assert stable_msgid(long_id, 3) == stable_msgid(long_id, 3)


# ---------------------------------------------------------------------- rules
def test_reply_window_rule():
    t0 = 1_700_000_000.0
    ok = reply_window(t0, 2, t0 + 3600)
    assert ok.allowed and ok.quota_left == 3 and ok.window_left_s == 47 * 3600
    quota = reply_window(t0, 5, t0 + 60)
    assert (quota.allowed, quota.rule, quota.quota_left) == (False, RULE_QUOTA, 0)
    assert quota.window_left_s == 48 * 3600 - 60
    late = reply_window(t0, 0, t0 + 48 * 3600)
    assert (late.allowed, late.rule, late.window_left_s) == (False, RULE_WINDOW, 0)
    assert "48" in late.explain("zh") and "48 hours" in late.explain("en")
    never = reply_window(None, 0, t0)
    assert never.rule == RULE_WINDOW
    assert ok.as_dict() == {"allowed": True, "rule": None, "window_left_s": 169200, "quota_left": 3}


async def test_an_unreachable_server_is_retryable_and_the_error_carries_no_secret():
    a = WecomApi(f"http://127.0.0.1:{free_port()}", "wwcorp", "very-secret-value", "wkAbCdEf", timeout=5)
    try:
        with pytest.raises(WecomUnavailable) as e:
            await a.sync_msg()
        assert "very-secret-value" not in str(e.value)
    finally:
        await a.close()
