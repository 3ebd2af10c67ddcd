"""Images and files, both ways: a web chat visitor sends a payment screenshot, an
agent sends a guide from the console, from Telegram or from QQ, and each arrives
on the customer's own channel as that channel carries files."""
from __future__ import annotations

import json
import struct
import zlib

import pytest
from aiohttp import web

from connectors.api import sign
from tests.callback_server import CallbackServer
from tests.test_connector_supervision import next_frame
from tests.fakes.onebot import Seg
from tests.fakes.telegram_api import make_user
from tests.kefu_harness import DEFAULT_AGENTS, Agent, wait_for
from tests.test_qq import qq_channel, reverse_fake
from tests.test_telegram import tg, tg_channel  # noqa: F401  (tg is a fixture)

SECRET = "attachments-secret-0123456789"
T = 15.0
PDF = b"%PDF-1.4\n% a card key activation guide\n%%EOF\n"


def png(width: int = 3, height: int = 2) -> bytes:
    """A real (tiny) PNG, so that kefu's image sniffing has the real thing to look at."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


async def upload_as_agent(http, d, agent: Agent, data: bytes, name: str, mime: str) -> tuple[int, dict]:
    async with http.post(d.url + "/api/attachments", params={"name": name}, data=data,
                         headers={**agent.headers, "Content-Type": mime}) as r:
        return r.status, await r.json()


async def fetch(http, url: str) -> tuple[int, bytes, dict]:
    async with http.get(url) as r:
        return r.status, await r.read(), dict(r.headers)


async def test_visitor_screenshot_reaches_the_agent_and_the_agents_guide_reaches_the_visitor(make_daemon, http):
    d = await make_daemon().start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    token = (await next_frame(ws, "hello"))["visitor_token"]

    # The widget on the shop's page uploads across origins: the preflight and the POST say so.
    async with http.options(d.url + "/webchat/upload", headers={
            "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"}) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
        assert "Content-Type" in r.headers["Access-Control-Allow-Headers"]
    shot = png()
    async with http.post(d.url + "/webchat/upload", params={"token": token, "name": "付款截图.png"}, data=shot,
                         headers={"Content-Type": "image/png", "Origin": "https://shop.example"}) as r:
        assert r.status == 201 and r.headers["Access-Control-Allow-Origin"] == "*"
        up = await r.json()
    assert up["name"] == "付款截图.png" and up["type"] == "image/png" and up["size"] == len(shot)
    await ws.send_json({"type": "message", "text": "", "client_msg_id": "shot-1", "attachments": [up["id"]]})
    assert (await next_frame(ws, "ack"))["client_msg_id"] == "shot-1"

    async def conversation():
        convs = [c for c in await alice.conversations() if c["channel"] == "webchat"]
        return convs[0] if convs else None
    conv = await wait_for(conversation, T, message="the visitor's conversation")
    (inbound,) = [m for m in (await alice.conversation(conv["id"]))["messages"] if m["direction"] == "in"]
    (att,) = inbound["attachments"]
    assert (att["name"], att["type"], att["url"]) == ("付款截图.png", "image/png", f"/files/{up['id']}")
    status, body, headers = await fetch(http, d.url + att["url"])
    assert status == 200 and body == shot
    assert headers["Content-Type"] == "image/png" and headers["Content-Disposition"].startswith("inline")
    assert headers["Content-Security-Policy"] == "sandbox"

    # Alice answers with a PDF and no text; the visitor's widget gets it with the message.
    code, up2 = await upload_as_agent(http, d, alice, PDF, "激活教程.pdf", "application/pdf")
    assert code == 201
    code, reply = await alice.call("POST", f"/api/conversations/{conv['id']}/messages",
                                   {"text": "", "attachments": [up2["id"]]})
    assert code == 201, reply
    while True:
        pushed = await next_frame(ws, "message")
        if pushed["sender"]["kind"] == "agent":
            break
    assert pushed["id"] == reply["id"]
    assert [(a["name"], a["type"]) for a in pushed["attachments"]] == [("激活教程.pdf", "application/pdf")]
    status, body, headers = await fetch(http, d.url + pushed["attachments"][0]["url"])
    assert status == 200 and body == PDF
    assert headers["Content-Type"] == "application/octet-stream"  # never rendered by the browser
    assert headers["Content-Disposition"].startswith("attachment;")
    await ws.close()


async def test_bad_files_are_refused_and_nothing_runs(make_daemon, http):
    d = await make_daemon(web={"max_upload_bytes": 4096}).start()
    alice = await Agent(d, http, "alice").login()
    # No visitor token: refused.  Too large: refused, for agents and visitors alike.
    async with http.post(d.url + "/webchat/upload", data=b"x") as r:
        assert r.status == 401 and "token" in (await r.json())["error"]
    async with http.post(d.url + "/webchat/upload", params={"token": "t" * 32}, data=b"x" * 5000) as r:
        assert r.status == 413 and "4096" in (await r.json())["error"]
    code, body = await upload_as_agent(http, d, alice, b"x" * 5000, "big.bin", "application/octet-stream")
    assert code == 413
    code, body = await upload_as_agent(http, d, alice, b"", "empty.txt", "text/plain")
    assert code == 400 and "empty" in body["error"]
    async with http.post(d.url + "/api/attachments", data=b"abc") as r:
        assert r.status == 401  # agents only
    # HTML claiming to be an image is kept as a plain download and never served as a page.
    code, fake = await upload_as_agent(http, d, alice, b"<script>alert(1)</script>", "<img onerror=x>.png",
                                       "image/png")
    assert code == 201 and fake["type"] == "application/octet-stream"
    status, _, headers = await fetch(http, d.url + fake["url"])
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment;")
    # Unknown ids: a 404 for the file, a 400 (nothing stored) for a message naming one.
    status, body, _ = await fetch(http, d.url + "/files/f_" + "0" * 32)
    assert status == 404 and "no such file" in json.loads(body)["error"]
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    await next_frame(ws, "hello")
    await ws.send_json({"type": "message", "text": "see", "client_msg_id": "bad-1", "attachments": ["f_nope"]})
    err = await next_frame(ws, "error")
    assert err["client_msg_id"] == "bad-1" and "attachments" in err["error"]
    await ws.close()
    assert await alice.conversations() == []  # nothing was stored
    # A visitor who uploads without end is slowed down.
    statuses = []
    for _ in range(31):
        async with http.post(d.url + "/webchat/upload", params={"token": "u" * 32}, data=b"%d" % _) as r:
            statuses.append(r.status)
    assert statuses == [201] * 30 + [429]


async def test_site_message_customer_gets_the_file_as_a_link_in_the_callback(make_daemon, http):
    cb = CallbackServer(SECRET)
    cb_url = await cb.start()
    d = await make_daemon(web={"public_url": "https://kefu.shop.example/"},
                          channels={"site": {"kind": "api", "secret": SECRET, "callback_url": cb_url}}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    body = json.dumps({"customer_id": "buyer-7", "message_id": "sm-1", "text": "怎么激活?"}).encode()
    async with http.post(d.url + "/api/channels/site/inbound", data=body,
                         headers={"X-Kefu-Signature": sign(SECRET, body)}) as r:
        assert r.status == 202
    conv = await wait_for(lambda: _first(alice), T, message="conversation")
    _, up = await upload_as_agent(http, d, alice, PDF, "guide.pdf", "application/pdf")
    code, reply = await alice.call("POST", f"/api/conversations/{conv['id']}/messages",
                                   {"text": "教程见附件", "attachments": [up["id"]]})
    assert code == 201
    (got,) = await wait_for(lambda: [m for m in cb.received if m["message_id"] == reply["id"]], T,
                            message="callback")
    assert got["text"] == "教程见附件"
    assert got["attachments"] == [{"name": "guide.pdf", "type": "application/pdf", "size": len(PDF),
                                   "url": f"https://kefu.shop.example/files/{up['id']}"}]
    await cb.stop()


async def _first(agent: Agent):
    convs = await agent.conversations()
    return convs[0] if convs else None


FORUM = -1001234509876
ALICE_TG, ALICE_QQ, TG_CUSTOMER, QQ_CUSTOMER = 5101, 40101, 777101, 20101


def chat_agents() -> list[dict]:
    out = [dict(a) for a in DEFAULT_AGENTS]
    out[0].update(telegram_id=ALICE_TG, qq_id=ALICE_QQ)
    return out


async def test_files_between_telegram_and_qq(make_daemon, http, tg):
    """An agent's photo from a Telegram forum topic reaches a QQ customer as an image;
    an agent's image from QQ reaches a Telegram customer as a photo; a console upload
    reaches both."""
    tg.add_forum(FORUM, "客服组")
    cdn = web.Application()  # where QQ keeps the images its users send
    qq_image = png(5, 5)

    async def qq_cdn(request: web.Request) -> web.Response:
        return web.Response(body=qq_image, content_type="image/png")
    cdn.router.add_get("/qq/img.png", qq_cdn)
    runner = web.AppRunner(cdn, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    cdn_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/qq/img.png"
    d = await make_daemon(agents=chat_agents(), channels={
        "qq": qq_channel(agents={"mode": "private"}),
        "tg": tg_channel(tg, agents={"mode": "team", "group_id": FORUM})}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    qq = await reverse_fake(d)
    try:
        # A QQ customer; Alice answers from her Telegram topic with a photo.
        await qq.inject_private_message(QQ_CUSTOMER, "充值卡怎么用?", nickname="买家")
        await tg.wait_for(lambda: tg.topics(FORUM), timeout=T)
        (thread,) = tg.topics(FORUM)
        photo = png(4, 4)
        tg.inject_photo(FORUM, photo, caption="按图操作", from_user=make_user(ALICE_TG, "Alice"), thread_id=thread)
        await qq.wait_for_sent(lambda s: s["user_id"] == QQ_CUSTOMER and s["text"] == "按图操作", timeout=T)
        img = await qq.wait_for_sent(lambda s: s["user_id"] == QQ_CUSTOMER and s["files"], timeout=T)
        assert [(f["type"], f["data"]) for f in img["files"]] == [("image", photo)]

        # A Telegram customer; Alice answers from QQ with an image (quoting the relayed message).
        tg.inject_private_message(TG_CUSTOMER, "where is my key?", from_user=make_user(TG_CUSTOMER, "Mike"))
        header = await qq.wait_for_sent(lambda s: s["user_id"] == ALICE_QQ and "where is my key" in s["text"],
                                        timeout=T)
        await qq.inject_private_message(ALICE_QQ, [Seg.reply(header["message_id"]), Seg.text("see this"),
                                                   Seg.image("k.png", url=cdn_url)])
        sent = await tg.wait_for_sent(lambda m: m.chat_id == TG_CUSTOMER and m.method == "sendPhoto", timeout=T)
        assert [f["data"] for f in sent.files] == [qq_image]
        await tg.wait_for_sent(lambda m: m.chat_id == TG_CUSTOMER and m.text == "see this", timeout=T)

        # The console: one upload, sent to both customers.
        _, up = await upload_as_agent(http, d, alice, PDF, "guide.pdf", "application/pdf")
        for conv in await alice.conversations():
            code, _ = await alice.call("POST", f"/api/conversations/{conv['id']}/messages",
                                       {"text": "", "attachments": [up["id"]]})
            assert code == 201
        doc = await tg.wait_for_sent(lambda m: m.chat_id == TG_CUSTOMER and m.method == "sendDocument", timeout=T)
        assert [(f["data"], f["filename"]) for f in doc.files] == [(PDF, "guide.pdf")]
        link = await qq.wait_for_sent(lambda s: s["user_id"] == QQ_CUSTOMER and "guide.pdf" in s["text"], timeout=T)
        assert link["text"] == f"guide.pdf: {d.url}/files/{up['id']}"  # QQ gets documents as a link
        # The history shows every file, whichever app carried it.
        files = []
        for c in await alice.conversations():
            files += [a["name"] for m in (await alice.conversation(c["id"]))["messages"]
                      if m["sender"]["kind"] == "agent" for a in m["attachments"]]
        files.sort()
        assert files == ["guide.pdf", "guide.pdf", "image", "photo.jpg"]
    finally:
        await qq.stop()
        await runner.cleanup()


@pytest.mark.parametrize("problem", ["too large", "unreachable"])
async def test_an_agent_file_that_cannot_be_taken_is_explained_not_lost(make_daemon, http, problem):
    """A QQ image kefu cannot fetch (or too large): the agent is told, nothing half-sent."""
    d = await make_daemon(agents=chat_agents(), web={"max_upload_bytes": 1024},
                          channels={"qq": qq_channel(agents={"mode": "private"})}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    qq = await reverse_fake(d)
    cdn = web.Application()

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=png(200, 200) + b"\x00" * 2048, content_type="image/png")
    cdn.router.add_get("/big.png", big)
    runner = web.AppRunner(cdn, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/big.png" if problem == "too large" else f"http://127.0.0.1:{port}/gone.png"
    try:
        await qq.inject_private_message(QQ_CUSTOMER, "在吗", nickname="买家")
        header = await qq.wait_for_sent(lambda s: s["user_id"] == ALICE_QQ and "在吗" in s["text"], timeout=T)
        await qq.inject_private_message(ALICE_QQ, [Seg.reply(header["message_id"]), Seg.image("x.png", url=url)])
        told = await qq.wait_for_sent(lambda s: s["user_id"] == ALICE_QQ and "not sent" in s["text"], timeout=T)
        assert "larger than 1 KB" in told["text"] \
            if problem == "too large" else "404" in told["text"]
        conv = (await alice.conversations())[0]
        assert [m for m in (await alice.conversation(conv["id"]))["messages"]
                if m["sender"]["kind"] == "agent"] == []
    finally:
        await qq.stop()
        await runner.cleanup()


async def test_agents_on_telegram_and_qq_see_a_visitors_screenshot(make_daemon, http, tg):
    """A web chat visitor's payment screenshot reaches the agent where the agent works:
    as a photo in their Telegram chat and as an image in their QQ."""
    d = await make_daemon(agents=chat_agents(), channels={
        "webchat": {"kind": "webchat"}, "qq": qq_channel(agents={"mode": "private"}),
        "tg": tg_channel(tg, agents={"mode": "private"})}).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    qq = await reverse_fake(d)
    try:
        ws = await http.ws_connect(d.ws_url + "/webchat/ws")
        token = (await next_frame(ws, "hello"))["visitor_token"]
        shot = png(6, 6)
        async with http.post(d.url + "/webchat/upload", params={"token": token, "name": "pay.png"}, data=shot,
                             headers={"Content-Type": "image/png"}) as r:
            up = await r.json()
        await ws.send_json({"type": "message", "text": "付款截图", "client_msg_id": "s1", "attachments": [up["id"]]})
        await next_frame(ws, "ack")
        photo = await tg.wait_for_sent(lambda m: m.chat_id == ALICE_TG and m.method == "sendPhoto", timeout=T)
        assert [f["data"] for f in photo.files] == [shot]
        image = await qq.wait_for_sent(lambda s: s["user_id"] == ALICE_QQ and s["files"], timeout=T)
        assert [(f["type"], f["data"]) for f in image["files"]] == [("image", shot)]
        await ws.close()
    finally:
        await qq.stop()
