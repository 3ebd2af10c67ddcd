"""The test fakes speak the real protocols: drive them with the real client libraries.

Telegram: python-telegram-bot (Bot and Application) against tests/fakes/telegram_api.py.
OneBot v11: aiohttp WebSocket servers/clients against tests/fakes/onebot.py.
No sleeping to synchronise: everything waits on a condition with a timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json

import aiohttp
import pytest
import telegram
from aiohttp import web
from telegram import ReplyParameters
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, RetryAfter
from telegram.ext import Application, MessageHandler, filters

from tests.fakes.onebot import (
    FakeOneBotForward,
    FakeOneBotReverse,
    OneBotConnectRefused,
    Seg,
    parse_cq,
    to_cq,
)
from tests.fakes.telegram_api import FakeTelegram, make_user

TOKEN = "123456:TEST-TOKEN"
USER = 777001
FORUM = -1001234567890
T = 5.0  # generous per-step timeout; the suite normally finishes in a few seconds


# ---------------------------------------------------------------------- fixtures
@pytest.fixture
async def tg():
    fake = FakeTelegram(TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def bot(tg):
    b = tg.ptb_bot()
    await b.initialize()
    yield b
    await b.shutdown()


def _secs(value) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


class Receiver:
    """A tiny aiohttp app standing in for kefu (webhook receiver / OneBot WS endpoint)."""

    def __init__(self):
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        self.runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self):
        await self.runner.cleanup()


async def recv_json(ws, pred=lambda f: True, timeout: float = T) -> dict:
    """Next JSON frame on ``ws`` satisfying ``pred`` (others are skipped)."""
    async def loop():
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"unexpected ws message {msg.type}")
            frame = json.loads(msg.data)
            if pred(frame):
                return frame
    return await asyncio.wait_for(loop(), timeout)


# ====================================================================== Telegram
async def test_get_me_and_send_message(tg, bot):
    me = await bot.get_me()
    assert me.id == 123456 and me.is_bot and me.username
    msg = await bot.send_message(USER, "您好，订单已收到")
    assert msg.text == "您好，订单已收到"
    assert msg.chat.id == USER and msg.chat.type == "private"
    assert msg.from_user.id == 123456
    assert tg.sent[-1].method == "sendMessage"
    assert tg.sent[-1].chat_id == USER and tg.sent[-1].text == "您好，订单已收到"
    # PTB sends form-urlencoded bodies when there is no file
    assert tg.requests[-1]["content_type"] == "application/x-www-form-urlencoded"


async def test_message_too_long_is_bad_request(tg, bot):
    await bot.send_message(USER, "x" * 4096)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    assert len(tg.sent) == 1
    with pytest.raises(BadRequest, match="(?i)text is empty"):
        await bot.send_message(USER, "")


async def test_raw_wire_shapes(tg):
    """JSON, query-string and form bodies; exact envelope shapes."""
    base = f"{tg.base_url}{TOKEN}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/getMe") as r:
            body = await r.json()
            assert r.status == 200 and body["ok"] is True and body["result"]["is_bot"]
        async with s.post(f"{base}/sendMessage",
                          json={"chat_id": str(USER), "text": "json body",
                                "reply_markup": {"inline_keyboard": [[{"text": "ok",
                                                                       "callback_data": "1"}]]}}) as r:
            body = await r.json()
            assert body["ok"] and body["result"]["text"] == "json body"
            assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "ok"
        async with s.post(f"{base}/sendMessage", data={"chat_id": USER, "text": "1234"}) as r:
            body = await r.json()
            assert body["result"]["text"] == "1234"   # stays a string
        async with s.post(f"{base}/sendMessage", json={"chat_id": USER, "text": "y" * 5000}) as r:
            assert r.status == 400
            assert await r.json() == {"ok": False, "error_code": 400,
                                      "description": "Bad Request: message is too long"}
        async with s.post(f"{base}/noSuchMethod", json={}) as r:
            assert r.status == 404 and (await r.json())["description"] == "Not Found"
        tg.fail_next("sendMessage", 429, retry_after=7)
        async with s.post(f"{base}/sendMessage", json={"chat_id": USER, "text": "z"}) as r:
            assert r.status == 429
            assert await r.json() == {"ok": False, "error_code": 429,
                                      "description": "Too Many Requests: retry after 7",
                                      "parameters": {"retry_after": 7}}


async def test_get_updates_offsets_and_long_poll(tg, bot):
    u1 = tg.inject_private_message(USER, "第一条")
    tg.inject_private_message(USER, "second")
    ups = await bot.get_updates(timeout=0)
    assert [u.message.text for u in ups] == ["第一条", "second"]
    assert ups[0].update_id == u1["update_id"] and ups[1].update_id == u1["update_id"] + 1
    assert ups[0].message.from_user.id == USER and ups[0].message.chat.type == "private"
    # without a confirming offset the same updates come again
    assert len(await bot.get_updates(timeout=0)) == 2
    # offset = last + 1 confirms (drops) both
    assert await bot.get_updates(offset=ups[-1].update_id + 1, timeout=0) == ()
    assert tg.bot().pending == []
    # long poll: the request is answered as soon as an update arrives
    poll = asyncio.create_task(bot.get_updates(offset=ups[-1].update_id + 1, timeout=10))
    await tg.wait_for(lambda: tg.bot().poller is not None, T)
    tg.inject_private_message(USER, "third", from_user=make_user(USER, "张三", username="zs"))
    got = await asyncio.wait_for(poll, T)
    assert [u.message.text for u in got] == ["third"]
    assert got[0].message.from_user.username == "zs"
    # limit + negative offset
    for i in range(5):
        tg.inject_private_message(USER, f"m{i}")
    assert len(await bot.get_updates(offset=got[0].update_id + 1, limit=2, timeout=0)) == 2
    last = await bot.get_updates(offset=-1, timeout=0)
    assert [u.message.text for u in last] == ["m4"]


async def test_long_poll_timeout_returns_empty(tg, bot):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= loop.time() - t0 < 3


async def test_concurrent_get_updates_conflict(tg, bot):
    other = tg.ptb_bot()
    await other.initialize()
    try:
        poll = asyncio.create_task(bot.get_updates(timeout=10))
        await tg.wait_for(lambda: tg.bot().poller is not None, T)
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await other.get_updates(timeout=0)
        tg.inject_private_message(USER, "wake up")
        assert len(await asyncio.wait_for(poll, T)) == 1
        # the poller slot is free again
        assert len(await other.get_updates(timeout=0)) == 1
    finally:
        await other.shutdown()


async def test_dropped_long_poll_frees_the_poller(tg, bot):
    """A poller that dies mid-poll (kill -9) must not leave a phantom 409 behind."""
    async with aiohttp.ClientSession() as s:
        req = asyncio.create_task(s.post(f"{tg.base_url}{TOKEN}/getUpdates",
                                         json={"timeout": 30}))
        await tg.wait_for(lambda: tg.bot().poller is not None, T)
        req.cancel()
        with pytest.raises(asyncio.CancelledError):
            await req
    await tg.wait_for(lambda: tg.bot().poller is None, T)
    assert await bot.get_updates(timeout=0) == ()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_retry_after_and_cooldown(tg, bot):
    tg.fail_next("sendMessage", status=429, retry_after=1)
    with pytest.raises(RetryAfter) as exc:
        await bot.send_message(USER, "flood")
    assert _secs(exc.value.retry_after) == 1
    # resending inside retry_after is refused again and recorded as a violation
    with pytest.raises(RetryAfter):
        await bot.send_photo(USER, photo=b"\xff\xd8jpeg")
    assert [v.kind for v in tg.rate_violations] == ["retry_after"]
    # other chats are unaffected
    await bot.send_message(USER + 1, "other chat")
    # a non-429 failure with a custom description
    tg.fail_next("sendMessage", status=400, description="Bad Request: chat not found",
                 chat_id=USER + 2)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(USER + 2, "x")


async def test_blocked_user_is_forbidden(tg, bot):
    tg.block_user(USER)
    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(USER, "hi")


async def test_unknown_token_unauthorized():
    fake = FakeTelegram(TOKEN, tokens=[TOKEN])
    await fake.start()
    try:
        bad = fake.ptb_bot("999:WRONG")
        try:
            with pytest.raises(InvalidToken):
                await bad.initialize()
        finally:
            await bad.shutdown()
    finally:
        await fake.stop()


async def test_photo_and_document_round_trip(tg, bot):
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    msg = await bot.send_photo(USER, photo=jpeg, caption="截图")
    assert msg.caption == "截图" and msg.photo
    assert tg.requests[-1]["content_type"] == "multipart/form-data"
    sent = tg.sent[-1]
    assert sent.method == "sendPhoto" and sent.files[0]["data"] == jpeg
    f = await bot.get_file(msg.photo[-1].file_id)
    assert f.file_path.startswith(f"{tg.base_file_url}{TOKEN}/photos/")
    assert bytes(await f.download_as_bytearray()) == jpeg

    doc_bytes = "订单号: 20240101\n卡密: ABCD-EFGH".encode()
    msg = await bot.send_document(USER, document=doc_bytes, filename="order.txt")
    assert msg.document.file_name == "order.txt"
    assert msg.document.mime_type == "text/plain"
    assert tg.sent[-1].files[0]["filename"] == "order.txt"
    f = await bot.get_file(msg.document)
    import io
    buf = io.BytesIO()
    await f.download_to_memory(buf)
    assert buf.getvalue() == doc_bytes
    # re-sending by file_id does not upload again
    again = await bot.send_document(USER + 5, document=msg.document.file_id)
    assert again.document.file_id == msg.document.file_id
    with pytest.raises(BadRequest, match="(?i)invalid file_id"):
        await bot.get_file("nope")


async def test_injected_media_download(tg, bot):
    tg.inject_photo(USER, b"PHOTO-BYTES", caption="付款截图")
    tg.inject_document(USER, b"%PDF-1.4 fake", file_name="invoice.pdf",
                       mime_type="application/pdf")
    ups = await bot.get_updates(timeout=0)
    photo_msg, doc_msg = ups[0].message, ups[1].message
    assert photo_msg.caption == "付款截图" and len(photo_msg.photo) == 3
    assert photo_msg.photo[-1].width >= photo_msg.photo[0].width
    f = await bot.get_file(photo_msg.photo[-1])
    assert bytes(await f.download_as_bytearray()) == b"PHOTO-BYTES"
    assert doc_msg.document.file_name == "invoice.pdf"
    f = await bot.get_file(doc_msg.document.file_id)
    assert bytes(await f.download_as_bytearray()) == b"%PDF-1.4 fake"


async def test_forum_topics(tg, bot):
    tg.add_forum(FORUM, "客服组")
    topic = await bot.create_forum_topic(FORUM, "张三 · Telegram", icon_color=16766590)
    assert topic.name == "张三 · Telegram" and topic.icon_color == 16766590
    tid = topic.message_thread_id
    out = await bot.send_message(FORUM, "新会话: 卡密没收到", message_thread_id=tid)
    assert out.message_thread_id == tid and out.is_topic_message
    assert out.chat.is_forum and out.chat.type == "supergroup"
    assert tg.sent[-1].thread_id == tid

    agent = make_user(9001, "Alice", username="alice_cs")
    tg.inject_topic_message(FORUM, tid, "您好，我来处理", from_user=agent,
                            reply_to=out.message_id)
    tg.inject_topic_message(FORUM, tid, "not a reply", from_user=agent)
    ups = await bot.get_updates(timeout=0)
    reply, plain = ups[0].message, ups[1].message
    assert reply.message_thread_id == tid and reply.is_topic_message
    assert reply.from_user.id == 9001 and reply.chat.id == FORUM
    assert reply.reply_to_message.message_id == out.message_id
    assert reply.reply_to_message.from_user.id == 123456
    # Telegram quirk: a plain topic message "replies" to the topic-creation message
    assert plain.reply_to_message.message_id == tid
    assert plain.reply_to_message.forum_topic_created.name == "张三 · Telegram"

    # reply_parameters (new style) and reply_to_message_id (old style)
    r1 = await bot.send_message(FORUM, "引用", message_thread_id=tid,
                                reply_parameters=ReplyParameters(message_id=reply.message_id))
    assert r1.reply_to_message.message_id == reply.message_id
    assert tg.sent[-1].reply_to_message_id == reply.message_id
    r2 = await bot.send_message(FORUM, "old", message_thread_id=tid,
                                reply_to_message_id=reply.message_id)
    assert r2.reply_to_message.message_id == reply.message_id

    # topic deleted by the bot, and by an admin in the app
    assert await bot.delete_forum_topic(FORUM, tid)
    with pytest.raises(BadRequest, match="(?i)message thread not found"):
        await bot.send_message(FORUM, "gone", message_thread_id=tid)
    t2 = await bot.create_forum_topic(FORUM, "李四")
    tg.delete_topic(FORUM, t2.message_thread_id)
    with pytest.raises(BadRequest, match="(?i)message thread not found"):
        await bot.send_message(FORUM, "gone", message_thread_id=t2.message_thread_id)
    with pytest.raises(BadRequest, match="(?i)not a forum"):
        await bot.create_forum_topic(USER, "x")


async def test_copy_message_into_topic_and_adopted_topics(tg, bot):
    """Forwarding a customer's photo to the agents' topic with copy_message."""
    tg.inject_photo(USER, b"SCREENSHOT", caption="付款失败")
    (up,) = await bot.get_updates(timeout=0)
    tg.add_forum(FORUM, "客服组")
    topic = await bot.create_forum_topic(FORUM, "买家")
    mid = await bot.copy_message(FORUM, USER, up.message.message_id,
                                 message_thread_id=topic.message_thread_id)
    assert mid.message_id > 0
    copied = tg.sent[-1]
    assert copied.method == "copyMessage" and copied.thread_id == topic.message_thread_id
    assert copied.files[0]["data"] == b"SCREENSHOT" and copied.text == "付款失败"
    fwd = await bot.forward_message(FORUM, USER, up.message.message_id,
                                    message_thread_id=topic.message_thread_id)
    assert fwd.forward_origin.sender_user.id == USER
    # a topic the fake never saw being created is adopted when a user posts in it
    tg.inject_topic_message(FORUM, 5000, "old topic", from_user=9001)
    out = await bot.send_message(FORUM, "still there", message_thread_id=5000)
    assert out.message_thread_id == 5000
    chat = await bot.get_chat(FORUM)
    assert chat.is_forum and chat.title == "客服组"
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.get_chat(-100999)


async def test_edit_delete_commands_callback(tg, bot):
    m = await bot.send_message(USER, "v1")
    e = await bot.edit_message_text("v2", chat_id=USER, message_id=m.message_id)
    assert e.text == "v2" and e.edit_date is not None
    with pytest.raises(BadRequest, match="(?i)not modified"):
        await bot.edit_message_text("v2", chat_id=USER, message_id=m.message_id)
    assert await bot.delete_message(USER, m.message_id)
    with pytest.raises(BadRequest, match="(?i)not found"):
        await bot.delete_message(USER, m.message_id)
    assert await bot.set_my_commands([("start", "开始"), ("human", "转人工")])
    cmds = await bot.get_my_commands()
    assert [c.command for c in cmds] == ["start", "human"]
    tg.inject_callback_query(USER, "csat:5")
    (up,) = await bot.get_updates(timeout=0)
    assert up.callback_query.data == "csat:5"
    assert await bot.answer_callback_query(up.callback_query.id, text="谢谢")
    assert tg.bot().callback_answers[-1]["text"] == "谢谢"


async def test_webhook_delivery_with_secret(tg, bot):
    got: list[tuple[dict, str | None]] = []
    fail_first = {"n": 1}

    async def hook(request: web.Request):
        if fail_first["n"]:
            fail_first["n"] -= 1
            return web.Response(status=500)
        got.append((await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        return web.Response(text="ok")

    rx = Receiver()
    rx.app.router.add_post("/tg/hook", hook)
    await rx.start()
    try:
        assert await bot.set_webhook(f"{rx.url}/tg/hook", secret_token="s3cret_TOKEN-1")
        info = await bot.get_webhook_info()
        assert info.url == f"{rx.url}/tg/hook"
        sent = tg.inject_private_message(USER, "via webhook")
        await tg.wait_for(lambda: got, T)
        update, secret = got[0]
        assert secret == "s3cret_TOKEN-1"
        assert update == sent
        parsed = telegram.Update.de_json(update, bot)
        assert parsed.message.text == "via webhook"
        # the first attempt got a 500 and was retried
        statuses = [d["status"] for d in tg.bot().webhook_deliveries]
        assert statuses == [500, 200]
        await tg.wait_for(lambda: not tg.bot().pending, T)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0 and "500" in (info.last_error_message or "")
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates(timeout=0)
        with pytest.raises(BadRequest, match="(?i)unallowed characters"):
            await bot.set_webhook(f"{rx.url}/tg/hook", secret_token="bad token!")
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
        tg.inject_private_message(USER, "polled again")
        (up,) = await bot.get_updates(timeout=0)
        assert up.message.text == "polled again"
    finally:
        await rx.stop()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_rate_violations_recorded_and_enforced(tg, bot):
    for i in range(3):                       # a burst of 3 is tolerated
        await bot.send_message(USER, f"burst {i}")
    assert tg.rate_violations == []
    await bot.send_message(USER, "too fast")
    assert [v.kind for v in tg.rate_violations] == ["private"]
    for i in range(21):
        await bot.send_message(FORUM, f"g{i}")
    assert [v.kind for v in tg.rate_violations] == ["private", "group"]

    strict = FakeTelegram(TOKEN, enforce_rate_limits=True)
    await strict.start()
    b = strict.ptb_bot()
    try:
        await b.initialize()
        for i in range(3):
            await b.send_message(USER, f"ok {i}")
        with pytest.raises(RetryAfter):
            await b.send_message(USER, "refused")
        assert len(strict.sent) == 3
    finally:
        await b.shutdown()
        await strict.stop()


async def test_application_polling_end_to_end(tg):
    async def echo(update, context):
        await update.message.reply_text(f"echo: {update.message.text}", do_quote=True)

    app = (Application.builder().token(TOKEN).base_url(tg.base_url)
           .base_file_url(tg.base_file_url).build())
    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=5)
        tg.inject_private_message(USER, "你好")
        reply = await tg.wait_for_sent(lambda m: m.text == "echo: 你好", timeout=T)
        assert reply.chat_id == USER and reply.reply_to_message_id is not None
        await app.updater.stop()
        await app.stop()
    # start_polling deleted any webhook first; the last update was confirmed on stop
    assert any(r["method"] == "deleteWebhook" for r in tg.requests)
    assert tg.bot().pending == []


# ====================================================================== OneBot v11
class KefuWsEndpoint(Receiver):
    """Stands in for kefu's reverse-WS endpoint: checks the token like kefu must."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token
        self.handshakes: list[dict] = []
        self.sockets: asyncio.Queue = asyncio.Queue()
        self.app.router.add_get("/onebot/v11/ws", self.handle)

    async def handle(self, request: web.Request):
        self.handshakes.append(dict(request.headers))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "bad token"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        done = asyncio.get_running_loop().create_future()
        await self.sockets.put((ws, done))
        await done                       # the test owns the socket until it resolves
        return ws


@pytest.fixture
async def endpoint():
    ep = KefuWsEndpoint("kefu-secret")
    await ep.start()
    yield ep
    await ep.stop()


async def test_onebot_reverse_refused_with_wrong_token(endpoint):
    fake = FakeOneBotReverse(f"{endpoint.url.replace('http', 'ws')}/onebot/v11/ws",
                             "wrong", self_id=20001)
    try:
        with pytest.raises(OneBotConnectRefused) as exc:
            await fake.connect()
        assert exc.value.status == 401 and fake.connect_attempts == [401]
        assert endpoint.handshakes[0]["Authorization"] == "Bearer wrong"
    finally:
        await fake.stop()


async def test_onebot_reverse_protocol(endpoint):
    url = f"{endpoint.url.replace('http', 'ws')}/onebot/v11/ws"
    fake = FakeOneBotReverse(url, "kefu-secret", self_id=20001, nickname="小客服")
    await fake.connect()
    ws, done = await asyncio.wait_for(endpoint.sockets.get(), T)
    try:
        hs = endpoint.handshakes[-1]
        assert hs["X-Self-ID"] == "20001" and hs["X-Client-Role"] == "Universal"
        assert hs["Authorization"] == "Bearer kefu-secret"
        life = await recv_json(ws)
        assert life["post_type"] == "meta_event" and life["meta_event_type"] == "lifecycle"
        assert life["sub_type"] == "connect" and life["self_id"] == 20001

        url_img = await fake.add_media("pay.jpg", b"JPEGDATA")
        ev = await fake.inject_private_message(
            30003, [Seg.text("卡密没到 [急]"), Seg.face(14), Seg.image("pay.jpg", url_img)],
            nickname="买家A")
        got = await recv_json(ws, lambda f: f.get("post_type") == "message")
        assert got == ev
        assert got["message_type"] == "private" and got["sub_type"] == "friend"
        assert got["user_id"] == 30003 and got["sender"] == {
            "user_id": 30003, "nickname": "买家A", "card": "", "sex": "unknown", "age": 0}
        assert isinstance(got["message_id"], int) and isinstance(got["time"], int)
        assert got["message"][0] == {"type": "text", "data": {"text": "卡密没到 [急]"}}
        assert got["raw_message"].startswith("卡密没到 &#91;急&#93;[CQ:face,id=14][CQ:image,")
        async with aiohttp.ClientSession() as s:
            async with s.get(got["message"][2]["data"]["url"]) as r:
                assert await r.read() == b"JPEGDATA"

        # actions with echo correlation; the first answer is delayed -> out of order
        fake.delay_next("send_private_msg", 0.3)
        await ws.send_json({"action": "send_private_msg", "echo": "a1",
                            "params": {"user_id": 30003, "message": "您好，正在查询"}})
        await ws.send_json({"action": "get_login_info", "params": {}, "echo": {"n": 2}})
        first = await recv_json(ws, lambda f: "echo" in f)
        second = await recv_json(ws, lambda f: "echo" in f)
        assert first["echo"] == {"n": 2}
        assert first["data"] == {"user_id": 20001, "nickname": "小客服"}
        assert second["echo"] == "a1" and second["status"] == "ok" and second["retcode"] == 0
        mid = second["data"]["message_id"]
        assert fake.sent[-1]["user_id"] == 30003 and fake.sent[-1]["text"] == "您好，正在查询"
        assert fake.sent[-1]["message_id"] == mid

        await ws.send_json({"action": "get_msg", "params": {"message_id": ev["message_id"]},
                            "echo": 3})
        r = await recv_json(ws, lambda f: f.get("echo") == 3)
        assert r["data"]["message"] == ev["message"]

        # friend request flow
        req = await fake.inject_friend_request(40004, comment="买过卡")
        got = await recv_json(ws, lambda f: f.get("post_type") == "request")
        assert got["request_type"] == "friend" and got["flag"] == req["flag"]
        await ws.send_json({"action": "set_friend_add_request",
                            "params": {"flag": got["flag"], "approve": True}, "echo": "fr"})
        r = await recv_json(ws, lambda f: f.get("echo") == "fr")
        assert r["status"] == "ok" and fake.handled_requests[0]["user_id"] == 40004

        # offline: heartbeat says so, sends fail
        await fake.set_online(False)
        hb = await recv_json(ws, lambda f: f.get("meta_event_type") == "heartbeat")
        assert hb["status"]["online"] is False and hb["interval"] > 0
        await ws.send_json({"action": "send_private_msg", "echo": "off",
                            "params": {"user_id": 30003, "message": "x"}})
        r = await recv_json(ws, lambda f: f.get("echo") == "off")
        assert r["status"] == "failed" and r["retcode"] == fake.OFFLINE_RETCODE
        await fake.set_online(True)
        hb = await recv_json(ws, lambda f: f.get("meta_event_type") == "heartbeat")
        assert hb["status"]["online"] is True
    finally:
        done.set_result(None)
        await fake.stop()


async def test_onebot_reverse_reconnects(endpoint):
    url = f"{endpoint.url.replace('http', 'ws')}/onebot/v11/ws"
    fake = FakeOneBotReverse(url, "kefu-secret", self_id=20001, reconnect_interval=0.05)
    await fake.start()
    try:
        ws1, done1 = await asyncio.wait_for(endpoint.sockets.get(), T)
        await recv_json(ws1)                       # lifecycle
        await ws1.close()                          # kefu restarts / drops the link
        done1.set_result(None)
        ws2, done2 = await asyncio.wait_for(endpoint.sockets.get(), T)
        life = await recv_json(ws2)
        assert life["sub_type"] == "connect"
        assert fake.connect_attempts.count(101) == 2
        await fake.inject_group_message(50005, 30003, "群里问一下")
        got = await recv_json(ws2, lambda f: f.get("post_type") == "message")
        assert got["message_type"] == "group" and got["group_id"] == 50005
        assert got["sender"]["role"] == "member"
        done2.set_result(None)
    finally:
        await fake.stop()


async def test_onebot_forward_auth():
    fake = FakeOneBotForward("tok", self_id=20002)
    url = await fake.start()
    try:
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await s.ws_connect(url + "/")
            assert exc.value.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await s.ws_connect(url + "/", headers={"Authorization": "Bearer nope"})
            assert exc.value.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await s.ws_connect(url + "/?access_token=nope")
            assert exc.value.status == 403
            ws = await s.ws_connect(url + "/?access_token=tok")
            assert (await recv_json(ws))["meta_event_type"] == "lifecycle"
            await ws.close()
            ws = await s.ws_connect(url + "/", headers={"Authorization": "Bearer tok"})
            assert (await recv_json(ws))["sub_type"] == "connect"
            await ws.close()
        assert [a["status"] for a in fake.connection_attempts] == [401, 403, 403, 101, 101]
    finally:
        await fake.stop()


async def test_onebot_forward_protocol():
    fake = FakeOneBotForward("tok", self_id=20002)
    url = await fake.start()
    try:
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(url, headers={"Authorization": "Bearer tok"})
            await recv_json(ws)                                   # lifecycle
            await fake.wait_connected(T)
            await fake.inject_private_message(30003, "退款")
            ev = await recv_json(ws, lambda f: f.get("post_type") == "message")
            assert ev["message"] == [{"type": "text", "data": {"text": "退款"}}]
            assert ev["raw_message"] == "退款" and ev["self_id"] == 20002

            # CQ-code string message, reply segment, send_msg routing
            await ws.send_json({"action": "send_msg", "echo": 1, "params": {
                "message_type": "private", "user_id": 30003,
                "message": f"[CQ:reply,id={ev['message_id']}]已退款[CQ:face,id=14]"}})
            r = await recv_json(ws, lambda f: f.get("echo") == 1)
            assert r["status"] == "ok" and isinstance(r["data"]["message_id"], int)
            segs = fake.sent[-1]["message"]
            assert segs == [Seg.reply(ev["message_id"]), Seg.text("已退款"), Seg.face(14)]
            # auto_escape sends CQ text literally
            await ws.send_json({"action": "send_private_msg", "echo": 2, "params": {
                "user_id": 30003, "message": "[CQ:face,id=1]", "auto_escape": True}})
            await recv_json(ws, lambda f: f.get("echo") == 2)
            assert fake.sent[-1]["text"] == "[CQ:face,id=1]"
            await ws.send_json({"action": "send_group_msg", "echo": 3, "params": {
                "group_id": 50005, "message": [Seg.text("群回复")]}})
            r = await recv_json(ws, lambda f: f.get("echo") == 3)
            assert fake.sent[-1]["group_id"] == 50005
            await ws.send_json({"action": "delete_msg", "echo": 4,
                                "params": {"message_id": r["data"]["message_id"]}})
            assert (await recv_json(ws, lambda f: f.get("echo") == 4))["status"] == "ok"
            # unknown action, injected failure, frame without echo
            await ws.send_json({"action": "no_such_api", "params": {}, "echo": 5})
            r = await recv_json(ws, lambda f: f.get("echo") == 5)
            assert r["status"] == "failed" and r["retcode"] == 1404
            fake.fail_next("send_private_msg", retcode=1200, message="风控")
            await ws.send_json({"action": "send_private_msg", "echo": 6,
                                "params": {"user_id": 1, "message": "x"}})
            r = await recv_json(ws, lambda f: f.get("echo") == 6)
            assert (r["status"], r["retcode"], r["message"]) == ("failed", 1200, "风控")
            await ws.send_json({"action": "get_status", "params": {}})
            r = await recv_json(ws, lambda f: "retcode" in f)
            assert "echo" not in r and r["data"]["online"] is True

            await fake.wait_for_action("get_status", timeout=T)
            await fake.drop_connections()
            msg = await asyncio.wait_for(ws.receive(), T)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING)
    finally:
        await fake.stop()


async def test_onebot_forward_split_roles():
    fake = FakeOneBotForward(None, self_id=20002)
    url = await fake.start()
    try:
        async with aiohttp.ClientSession() as s:
            ev_ws = await s.ws_connect(url + "/event")
            api_ws = await s.ws_connect(url + "/api")
            await recv_json(ev_ws)                        # lifecycle on /event only
            await fake.wait_connected(T, count=2)
            await api_ws.send_json({"action": "get_login_info", "echo": "x"})
            r = await recv_json(api_ws)
            assert r["echo"] == "x" and r["data"]["user_id"] == 20002
            await fake.inject_private_message(1, "hi")
            assert (await recv_json(ev_ws))["post_type"] == "message"
            await ev_ws.close()
            await api_ws.close()
    finally:
        await fake.stop()


async def test_onebot_string_format_and_outgoing_media():
    import base64
    fake = FakeOneBotForward(None, self_id=20003, message_format="string")
    url = await fake.start()
    try:
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(url)
            await recv_json(ws)
            ev = await fake.inject_private_message(30003, [Seg.text("看图"), Seg.image("a.jpg")])
            got = await recv_json(ws, lambda f: f.get("post_type") == "message")
            assert got["message"] == ev["raw_message"] and got["message"].startswith("看图[CQ:image,")
            b64 = base64.b64encode(b"IMG").decode()
            await ws.send_json({"action": "send_private_msg", "echo": 1, "params": {
                "user_id": 30003, "message": [Seg.text("收到"),
                                              {"type": "image", "data": {"file": f"base64://{b64}"}}]}})
            assert (await recv_json(ws, lambda f: f.get("echo") == 1))["status"] == "ok"
            assert fake.sent[-1]["files"][0]["data"] == b"IMG"
            await ws.send_json({"action": "upload_private_file", "echo": 2, "params": {
                "user_id": 30003, "file": f"base64://{b64}", "name": "key.txt"}})
            assert (await recv_json(ws, lambda f: f.get("echo") == 2))["status"] == "ok"
            assert fake.sent[-1]["files"][0]["name"] == "key.txt"
            await ws.close()
    finally:
        await fake.stop()


def test_cq_codec_round_trip():
    segs = [Seg.text("a&b[c],d"), Seg.image("x,y.jpg", "http://h/p?a=1&b=2"), Seg.at(10001)]
    cq = to_cq(segs)
    assert cq.startswith("a&amp;b&#91;c&#93;,d[CQ:image,file=x&#44;y.jpg,")
    parsed = parse_cq(cq)
    assert parsed[0] == segs[0] and parsed[2] == {"type": "at", "data": {"qq": "10001"}}
    assert parsed[1]["data"]["file"] == "x,y.jpg"
    assert parsed[1]["data"]["url"] == "http://h/p?a=1&b=2"
