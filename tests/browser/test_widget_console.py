"""The web chat widget and the agent console in a real browser against a real daemon.

Chromium is Debian's (`apt-get install chromium`), driven by Python Playwright
(`pip install -e '.[test]'`); no browser is downloaded.  The tests skip, saying
why, when either is missing.  KEFU_CHROMIUM overrides the browser path.
"""
from __future__ import annotations

import json
import os
import shutil

import aiohttp
import pytest

from tests.kefu_harness import DEFAULT_AGENTS, PASSWORDS, Agent, wait_for

CHROMIUM = os.environ.get("KEFU_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pw = pytest.importorskip("playwright.async_api", reason="Python Playwright is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
XSS = 'card key missing <img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>'
W = "#kefu-widget"  # Playwright's CSS engine pierces the widget's open shadow root


@pytest.fixture
async def browser():
    async with pw.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


class Watch:
    """Collects what must never happen on a page: script errors, dialogs, CSP refusals."""

    def __init__(self, page):
        self.problems: list[str] = []
        page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        page.on("dialog", self._dialog)
        page.on("console", self._console)

    async def _dialog(self, d):
        self.problems.append(f"dialog: {d.message}")
        await d.dismiss()

    def _console(self, m):
        if "Content Security Policy" in m.text or "Refused to" in m.text:
            self.problems.append(f"csp: {m.text}")

    def check(self):
        assert not self.problems, self.problems


async def open_page(browser, url, **ctx):
    context = await browser.new_context(**{"viewport": {"width": 1366, "height": 768}, "locale": "en-US", **ctx})
    page = await context.new_page()
    page.set_default_timeout(15000)
    watch = Watch(page)
    await page.goto(url)
    return page, watch


async def widget_send(page, text):
    ta = page.locator(f"{W} textarea")
    await ta.fill(text)
    await ta.press("Enter")


async def visitor(http: aiohttp.ClientSession, d, text: str):
    """A customer on the web chat, without a browser: returns (ws, token)."""
    ws = await http.ws_connect(d.ws_url + "/webchat/ws")
    hello = await next_frame(ws, "hello")
    await ws.send_json({"type": "message", "text": text, "client_msg_id": "m-" + hello["visitor_token"][:8]})
    await next_frame(ws, "ack")
    return ws, hello["visitor_token"]


async def next_frame(ws, kind, timeout=15.0, sender=None):
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame.get("type") == kind and (sender is None or frame["sender"]["kind"] == sender):
            return frame


async def conv_item(page, agent: Agent, text: str):
    """The inbox row of the conversation holding `text` (its preview may be a later message)."""
    conv = await conv_with_text(agent, text)
    return page.locator(f".conv-item[data-id='{conv['id']}']")


async def conv_with_text(agent: Agent, text: str, status: str = "all") -> dict:
    async def find():
        for c in await agent.conversations(status):
            if (c.get("last_message") or {}).get("text") == text:
                return c
            full = await agent.conversation(c["id"])
            if any(m["text"] == text for m in full["messages"]):
                return c
        return None
    return await wait_for(find, 15, message=f"conversation with {text!r}")


async def console_login(browser, d, agent="alice", **ctx):
    page, watch = await open_page(browser, d.url + "/console/", **ctx)
    await page.fill("#login-agent", agent)
    await page.fill("#login-password", PASSWORDS[agent])
    await page.click("#login-submit")
    await page.wait_for_selector("#app:not([hidden])")
    await page.wait_for_selector("#conn-state.live")
    return page, watch


# --------------------------------------------------------------------------- widget

async def test_widget_round_trip_escapes_text_and_resumes(make_daemon, http, browser):
    d = await make_daemon().start()
    alice = await Agent(d, http, "alice").login()
    page, watch = await open_page(browser, d.url + "/webchat/")
    assert await page.get_attribute(f"{W} .btn", "aria-label")
    assert await page.evaluate("typeof window.KefuWidget.open") == "function"
    await page.click(f"{W} .btn")
    await page.wait_for_selector(f"{W} .panel:not([hidden])")

    await widget_send(page, XSS)
    mine = page.locator(f"{W} .row.me[data-id]:not(.pending)")
    await mine.first.wait_for()
    assert await mine.first.locator(".bub").inner_text() == XSS  # shown as text, not markup
    assert await page.locator(f"{W} .bub img, {W} .bub script").count() == 0
    token = await page.evaluate("localStorage.getItem('kefu_visitor_token')")
    assert token and await page.evaluate("localStorage.getItem('kefu_outbox')") is None

    conv = await conv_with_text(alice, XSS)
    assert (await alice.call("POST", f"/api/conversations/{conv['id']}/claim"))[0] == 200
    code, _ = await alice.reply(conv["id"], "马上为您补发 <b>now</b>")
    assert code == 201
    reply = page.locator(f"{W} .row.them", has_text="马上为您补发")
    await reply.wait_for()
    assert await reply.locator(".name").inner_text() == "Alice"
    assert await reply.locator(".bub").inner_text() == "马上为您补发 <b>now</b>"

    # A reload resumes with the same token; history is shown once, nothing twice.
    await page.reload()
    await page.evaluate("window.KefuWidget.open()")
    await page.locator(f"{W} .row.them", has_text="马上为您补发").wait_for()
    await page.wait_for_timeout(500)
    assert await page.evaluate("localStorage.getItem('kefu_visitor_token')") == token
    assert await page.locator(f"{W} .row.me", has_text="card key missing").count() == 1
    assert await page.locator(f"{W} .row.them", has_text="马上为您补发").count() == 1
    assert await page.evaluate("window.__pwned") is None
    watch.check()


async def test_widget_on_a_phone(make_daemon, browser):
    d = await make_daemon().start()
    page, watch = await open_page(browser, d.url + "/webchat/", viewport={"width": 375, "height": 667},
                                  is_mobile=True, has_touch=True, locale="zh-CN")
    btn = await page.locator(f"{W} .btn").bounding_box()
    assert btn and btn["x"] >= 0 and btn["x"] + btn["width"] <= 375 and btn["y"] + btn["height"] <= 667
    await page.tap(f"{W} .btn")
    box = await page.locator(f"{W} .panel").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 375, "height": 667}, box  # full screen
    assert await page.locator(f"{W} .send").inner_text() == "发送"  # zh UI from the browser language
    await widget_send(page, "你好，卡密没收到")
    await page.locator(f"{W} .row.me[data-id]:not(.pending)").wait_for()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await page.tap(f"{W} .x")
    assert await page.locator(f"{W} .panel").is_hidden()
    assert await page.locator(f"{W} .btn").is_visible()
    watch.check()


async def test_widget_outbox_survives_a_daemon_restart(make_daemon, http, browser):
    d = await make_daemon().start()
    alice = await Agent(d, http, "alice").login()
    page, watch = await open_page(browser, d.url + "/webchat/")
    await page.click(f"{W} .btn")
    await widget_send(page, "first message")
    await page.locator(f"{W} .row.me[data-id]:not(.pending)").wait_for()
    console, cwatch = await console_login(browser, d)
    await (await conv_item(console, alice, "first message")).wait_for()

    d.stop()
    await console.wait_for_selector("#conn-state:not(.live)")
    await page.locator(f"{W} .status:not([hidden])").wait_for()
    assert "econnect" in await page.locator(f"{W} .status").inner_text()  # "Reconnecting…"
    await widget_send(page, "sent while kefu was down")
    await page.locator(f"{W} .row.me.pending").wait_for()
    outbox = json.loads(await page.evaluate("localStorage.getItem('kefu_outbox')"))
    assert [o["text"] for o in outbox] == ["sent while kefu was down"]

    await d.start()
    await page.locator(f"{W} .row.me.pending").wait_for(state="detached", timeout=30000)
    assert await page.evaluate("localStorage.getItem('kefu_outbox')") is None
    assert await page.locator(f"{W} .status").is_hidden()
    alice = await Agent(d, http, "alice").login()
    conv = await conv_with_text(alice, "sent while kefu was down")
    texts = [m["text"] for m in (await alice.conversation(conv["id"]))["messages"]]
    assert texts.count("sent while kefu was down") == 1 and texts.count("first message") == 1
    # the console reconnected by itself and re-fetched what it missed
    await console.wait_for_selector("#conn-state.live", timeout=30000)
    await (await conv_item(console, alice, "sent while kefu was down")).wait_for()
    watch.check()
    cwatch.check()


# --------------------------------------------------------------------------- console

QUICK = "Thanks for waiting: your card key is on its way."


async def test_console_live_inbox_reply_and_customer_panel(make_daemon, http, browser):
    d = await make_daemon(quick_replies=[{"name": "thanks", "text": QUICK}]).start()
    alice = await Agent(d, http, "alice").login()
    page, watch = await console_login(browser, d)
    await page.select_option("#presence-select", "online")
    await wait_for(lambda: _status(alice, "alice", "online"), 10, message="alice online")

    ws1, _ = await visitor(http, d, XSS)  # arrives after the console loaded: must show up live
    ws2, _ = await visitor(http, d, "second customer")
    items = page.locator(".conv-item")
    await (await conv_item(page, alice, "second customer")).wait_for()
    assert await items.count() == 2

    await (await conv_item(page, alice, XSS)).click()
    body = page.locator("#msg-list .msg .m-body").first
    await body.wait_for()
    assert await body.inner_text() == XSS
    assert await page.locator("#msg-list img, #msg-list script").count() == 0
    assert "Web chat" in await page.locator("#cust-body").inner_text()

    await page.fill("#reply-text", "Hello from the console")
    await page.press("#reply-text", "Control+Enter")
    pushed = await next_frame(ws1, "message", sender="agent")
    assert pushed["text"] == "Hello from the console" and pushed["sender"]["kind"] == "agent"
    await page.locator("#msg-list .msg.out", has_text="Hello from the console").wait_for()
    assert await page.locator("#msg-list .msg.out", has_text="Hello from the console").count() == 1
    assert await page.input_value("#reply-text") == ""

    # j / k move through the inbox
    await page.locator("#msg-list").click()
    first = await page.get_attribute(".conv-item.selected", "data-id")
    await page.keyboard.press("j")
    await page.wait_for_function("id => document.querySelector('.conv-item.selected')?.dataset.id !== id", arg=first)
    await page.keyboard.press("k")
    await page.wait_for_function("id => document.querySelector('.conv-item.selected')?.dataset.id === id", arg=first)

    # typing / opens the quick-reply picker; Escape closes it, Enter takes the template
    await page.focus("#reply-text")
    await page.keyboard.type("/")
    await page.locator("#qr-pop:not([hidden])").wait_for()
    await page.keyboard.press("Escape")
    assert await page.locator("#qr-pop").is_hidden()
    await (await conv_item(page, alice, XSS)).click()
    await page.fill("#reply-text", "")
    await page.focus("#reply-text")
    await page.keyboard.type("/thanks")
    await page.locator("#qr-pop .qr-item", has_text="thanks").wait_for()
    await page.keyboard.press("Enter")
    assert await page.input_value("#reply-text") == QUICK
    await page.press("#reply-text", "Control+Enter")
    pushed = await next_frame(ws1, "message", sender="agent")  # the customer sees the quick reply
    assert pushed["text"] == QUICK
    await ws1.close()
    await ws2.close()
    watch.check()


async def _status(agent: Agent, who: str, status: str) -> bool:
    code, body = await agent.call("GET", "/api/agents")
    return code == 200 and any(a["id"] == who and a["status"] == status for a in body["agents"])


async def test_files_from_the_widget_and_the_console(make_daemon, http, browser):
    """A visitor sends a payment screenshot from the widget; Alice sees the image in the
    console, attaches a guide with the paperclip and sends it; the visitor gets it."""
    from tests.test_attachments import PDF, png

    d = await make_daemon().start()
    alice = await Agent(d, http, "alice").login()
    page, watch = await open_page(browser, d.url + "/webchat/")
    await page.click(f"{W} .btn")
    await page.wait_for_selector(f"{W} .panel:not([hidden])")
    await widget_send(page, "paid but no card key")  # the visitor has a token now
    await page.locator(f"{W} .row.me[data-id]:not(.pending)").first.wait_for()
    shot = png(40, 30)
    await page.locator(f"{W} input[type=file]").set_input_files(
        files=[{"name": "payment.png", "mimeType": "image/png", "buffer": shot}])
    sent_img = page.locator(f"{W} .row.me[data-id]:not(.pending) .bub img")
    await sent_img.wait_for()

    console, cwatch = await console_login(browser, d)
    await (await conv_item(console, alice, "paid but no card key")).click()
    img = console.locator("#msg-list .m-img img")
    await img.wait_for()
    await wait_for(lambda: img.evaluate("i => i.complete && i.naturalWidth === 40"), 10,
                   message="the screenshot loads in the console (CSP allows it)")
    await console.locator("#reply-file").set_input_files(
        files=[{"name": "guide.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    await console.locator("#reply-files .file-chip", has_text="guide.pdf").wait_for()
    await console.click("#reply-send")
    await console.locator("#reply-files").wait_for(state="hidden")
    await console.locator("#msg-list .m-file", has_text="guide.pdf").wait_for()

    link = page.locator(f"{W} .row.them .bub a", has_text="guide.pdf")
    await link.wait_for()
    href = await link.get_attribute("href")
    async with http.get(href) as r:
        assert r.status == 200 and await r.read() == PDF
    watch.check()
    cwatch.check()


async def test_console_claim_transfer_close_with_keys(make_daemon, http, browser):
    d = await make_daemon().start()
    sue = await Agent(d, http, "sue").login()
    page, watch = await console_login(browser, d)
    await page.select_option("#presence-select", "away")  # signed in = online; away: nothing is given to alice
    await wait_for(lambda: _status(sue, "alice", "away"), 10, message="alice away")
    ws1, _ = await visitor(http, d, "please claim me")  # nobody online: queued
    ws2, _ = await visitor(http, d, "please close me")
    conv1 = await conv_with_text(sue, "please claim me")
    conv2 = await conv_with_text(sue, "please close me")

    await page.click(".tab[data-view=queued]")
    await page.locator(f".conv-item[data-id='{conv1['id']}']").click()
    await page.wait_for_selector("#act-claim:not([disabled])")
    await page.locator("#msg-list").click()
    await page.keyboard.press("c")
    await wait_for(lambda: _field(sue, conv1["id"], "assignee", "alice"), 10, message="claimed by alice")
    await page.wait_for_selector("#act-claim[disabled]")

    # transfer to a role through the popover
    await page.click("#act-transfer")
    await page.select_option("#transfer-role", "finance")
    await page.click("#transfer-ok")
    await wait_for(lambda: _field(sue, conv1["id"], "role", "finance"), 10, message="transferred to finance")

    # close with e + confirm
    await page.click(".tab[data-view=all]")
    await page.locator(f".conv-item[data-id='{conv2['id']}']").click()
    await page.wait_for_selector("#act-close:not([disabled])")
    await page.locator("#msg-list").click()
    await page.keyboard.press("c")
    await wait_for(lambda: _field(sue, conv2["id"], "assignee", "alice"), 10, message="second claimed")
    await page.keyboard.press("e")
    await page.click("#confirm-ok")
    await wait_for(lambda: _field(sue, conv2["id"], "status", "closed"), 10, message="closed")
    await page.wait_for_selector("#act-close[disabled]")
    await ws1.close()
    await ws2.close()
    watch.check()


async def _field(agent: Agent, cid: str, key: str, value) -> bool:
    return (await agent.conversation(cid)).get(key) == value


async def test_console_session_language_and_errors(make_daemon, browser):
    d = await make_daemon().start()
    page, watch = await open_page(browser, d.url + "/console/", locale="en-US")
    assert await page.inner_text("#login-submit") == "Sign in"
    await page.fill("#login-agent", "alice")
    await page.fill("#login-password", "wrong")
    await page.click("#login-submit")
    await page.wait_for_selector("#login-error:not([hidden])")
    assert await page.locator("#app").is_hidden()

    await page.fill("#login-password", PASSWORDS["alice"])
    await page.click("#login-submit")
    await page.wait_for_selector("#app:not([hidden])")
    assert await page.evaluate("sessionStorage.getItem('kefu_token')")

    await page.locator("#app .lang-switch").click()  # -> 中文, kept across reloads
    assert await page.inner_text("#logout-btn") == "退出登录"
    await page.reload()
    await page.wait_for_selector("#app:not([hidden])")
    assert await page.inner_text("#logout-btn") == "退出登录"

    # an expired / revoked token sends the agent back to the login screen
    await page.evaluate("sessionStorage.setItem('kefu_token', 'not-a-valid-token')")
    await page.reload()
    await page.wait_for_selector("#login-view:not([hidden])")
    assert await page.evaluate("sessionStorage.getItem('kefu_token')") is None

    # the tablet layout has no horizontal scroll
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.fill("#login-agent", "alice")
    await page.fill("#login-password", PASSWORDS["alice"])
    await page.click("#login-submit")
    await page.wait_for_selector("#app:not([hidden])")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 768
    watch.check()


# --------------------------------------------------------------------------- screenshots

DOCS_SHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "screenshots")


async def test_screenshots_for_the_readme(make_daemon, http, browser, tmp_path):
    """README.md's screenshots, taken from a realistic desk: written to docs/screenshots
    only when asked (KEFU_SCREENSHOTS=1), so running the tests changes no tracked file."""
    from connectors.api import sign

    shots = DOCS_SHOTS if os.environ.get("KEFU_SCREENSHOTS") == "1" else str(tmp_path)

    secret = "shot-secret"
    alice_all_desks = dict(DEFAULT_AGENTS[0], roles=["presales", "aftersales", "finance"])  # a small shop
    d = await make_daemon(channels={"webchat": {"kind": "webchat"},
                                    "site": {"kind": "api", "secret": secret}},
                          agents=[alice_all_desks, *DEFAULT_AGENTS[1:]]).start()
    alice = await Agent(d, http, "alice").login()
    await alice.presence("online")
    for i, (cid, name, text, attrs) in enumerate([
        ("u1001", "李华", "支付宝付款三次都失败了，但是扣了一次钱，订单号 D20261123001", {"order_count": 31, "total_spent": 5200}),
        ("u1002", "zhangsan", "卡密无效！提示已被使用，我要退款", {"order_count": 3}),
        ("u1003", "Mike", "Hi, do you have Windows 11 Pro keys in stock? How much for 10?", {}),
    ]):
        body = json.dumps({"customer_id": cid, "message_id": f"s{i}", "text": text, "name": name,
                           "attributes": attrs}, ensure_ascii=False).encode()
        async with http.post(d.url + "/api/channels/site/inbound", data=body,
                             headers={"X-Kefu-Signature": sign(secret, body)}) as r:
            assert r.status == 202

    page, watch = await open_page(browser, d.url + "/webchat/", locale="zh-CN")
    await page.click(f"{W} .btn")
    await widget_send(page, "你好，Steam 钱包卡密一直没收到，订单号 D20261123002")
    await page.locator(f"{W} .row.me[data-id]:not(.pending)").wait_for()
    conv = await conv_with_text(alice, "你好，Steam 钱包卡密一直没收到，订单号 D20261123002")
    await alice.reply(conv["id"], "您好，我是客服 Alice。已查到您的订单，卡密已重新发送到您的邮箱，请查收。")
    await page.locator(f"{W} .row.them", has_text="已重新发送").wait_for()
    await page.screenshot(path=os.path.join(shots, "widget-desktop.png"))

    phone, _ = await open_page(browser, d.url + "/webchat/", viewport={"width": 375, "height": 667},
                               is_mobile=True, has_touch=True, device_scale_factor=2, locale="zh-CN")
    await phone.tap(f"{W} .btn")
    await widget_send(phone, "请问 Apple 礼品卡 100 元面值还有货吗？")
    await phone.locator(f"{W} .row.me[data-id]:not(.pending)").wait_for()
    await phone.screenshot(path=os.path.join(shots, "widget-phone.png"))

    console, cwatch = await console_login(browser, d)
    await (await conv_item(console, alice, "卡密无效！提示已被使用，我要退款")).wait_for()
    await console.screenshot(path=os.path.join(shots, "console-inbox.png"))
    await (await conv_item(console, alice, "你好，Steam 钱包卡密一直没收到，订单号 D20261123002")).click()
    await console.locator("#msg-list .msg.out", has_text="已重新发送").wait_for()
    await console.screenshot(path=os.path.join(shots, "console-conversation.png"))
    watch.check()
    cwatch.check()
