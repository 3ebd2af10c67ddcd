"""The first hour in a real browser: what a new agent and a new visitor noticed.

Same setup as test_widget_console.py (Debian's Chromium driven by Playwright; skipped,
saying why, without them).
"""
from __future__ import annotations

from tests.browser.test_widget_console import (W, Agent, _status, browser, console_login, conv_with_text,  # noqa: F401
                                               open_page, pytestmark, visitor, widget_send)
from tests.kefu_harness import PASSWORDS, wait_for
from tests.test_first_hour import QUICK as API_QUICK
from tests.test_first_hour import SITE, site_message

QUICK = [API_QUICK[0], {"name": "coupon", "text": "Your coupon: {coupon_code}, {customer_name}."}]


async def assignee(agent: Agent, cid: str):
    return (await agent.conversation(cid))["assignee"]


async def test_signing_in_makes_the_agent_online_and_away_is_one_click_from_online(make_daemon, http, browser):
    d = await make_daemon().start()
    sue = await Agent(d, http, "sue").login()
    page, watch = await console_login(browser, d)
    await wait_for(lambda: _status(sue, "alice", "online"), 10, message="alice online after signing in")
    assert await page.input_value("#presence-select") == "online"
    assert await page.locator("#presence-banner").is_hidden()

    ws1, _ = await visitor(http, d, "hello, anyone there?")  # the visitor writes: alice gets it
    conv1 = await conv_with_text(sue, "hello, anyone there?")
    assert conv1["assignee"] == "alice"
    await page.locator(f".conv-item[data-id='{conv1['id']}']").wait_for()

    await page.select_option("#presence-select", "away")  # she may still step away ...
    banner = page.locator("#presence-banner")
    await banner.wait_for()
    assert "away" in await banner.inner_text()
    await wait_for(lambda: _status(sue, "alice", "away"), 10, message="alice away")
    ws2, _ = await visitor(http, d, "second visitor")
    conv2 = await conv_with_text(sue, "second visitor")
    assert conv2["assignee"] is None  # ... and then nothing is given to her
    await page.click("#presence-go-online")  # one click brings her back, and the waiting visitor to her
    await banner.wait_for(state="hidden")
    await wait_for(lambda: _status(sue, "alice", "online"), 10, message="alice online again")
    await wait_for(lambda: assignee(sue, conv2["id"]), 10, message="the queued visitor assigned")
    assert await assignee(sue, conv2["id"]) == "alice"

    await page.click("#logout-btn")  # signing out: offline
    await page.wait_for_selector("#login-view:not([hidden])")
    await wait_for(lambda: _status(sue, "alice", "offline"), 10, message="alice offline after signing out")
    await ws1.close()
    await ws2.close()
    watch.check()


async def test_quick_replies_come_filled_and_ask_for_what_is_missing(make_daemon, http, browser):
    d = await make_daemon(channels=SITE, quick_replies=QUICK).start()
    alice = await Agent(d, http, "alice").login()
    await site_message(http, d, "u1", "m1", "我的卡密没收到，订单号 D20261123001", name="李华")
    conv = await conv_with_text(alice, "我的卡密没收到，订单号 D20261123001")
    page, watch = await console_login(browser, d)
    await page.locator(f".conv-item[data-id='{conv['id']}']").click()
    await page.locator("#msg-list .msg.in").first.wait_for()
    ta = page.locator("#reply-text")

    await ta.focus()
    await page.keyboard.type("/resend")  # filled by the server from the conversation
    await page.locator("#qr-pop .qr-item", has_text="D20261123001").wait_for()
    await page.keyboard.press("Enter")
    assert await ta.input_value() == "您好李华，订单 D20261123001 的卡密已重新发送。"
    assert await page.locator("#reply-note").is_hidden()
    assert await page.locator("#reply-send").is_enabled()
    await ta.fill("")

    await page.keyboard.type("/coupon")  # {coupon_code} is not known: selected, and sending waits for it
    await page.locator("#qr-pop .qr-item", has_text="coupon").wait_for()
    await page.keyboard.press("Enter")
    assert await ta.input_value() == "Your coupon: {coupon_code}, 李华."
    assert await ta.evaluate("t => t.value.slice(t.selectionStart, t.selectionEnd)") == "{coupon_code}"
    assert await page.locator("#reply-send").is_disabled()
    assert "{coupon_code}" in await page.locator("#reply-note").inner_text()
    await page.keyboard.press("Control+Enter")  # refused in the browser: nothing sent
    await page.keyboard.type("SPRING-20")  # typing replaces the selected placeholder
    assert await page.locator("#reply-note").is_hidden()
    await page.keyboard.press("Control+Enter")
    await page.locator("#msg-list .msg.out", has_text="Your coupon: SPRING-20, 李华.").wait_for()
    agent_texts = [m["text"] for m in (await alice.conversation(conv["id"]))["messages"]
                   if m["sender"]["kind"] == "agent"]
    assert agent_texts == ["Your coupon: SPRING-20, 李华."]
    watch.check()


async def test_the_chinese_console_speaks_chinese_and_a_closed_conversation_cannot_be_answered(
        make_daemon, http, browser):
    d = await make_daemon().start()
    page, watch = await open_page(browser, d.url + "/console/", locale="zh-CN")
    await page.fill("#login-agent", "alice")
    await page.fill("#login-password", "wrong")
    await page.click("#login-submit")
    await page.wait_for_selector("#login-error:not([hidden])")
    assert await page.inner_text("#login-error") == "账号或密码错误"  # the server said "wrong agent or password"
    await page.fill("#login-password", PASSWORDS["alice"])
    await page.click("#login-submit")
    await page.wait_for_selector("#conn-state.live")
    assert await page.evaluate("import('./i18n.js').then(m => m.serverError('a sentence kefu has not seen'))") \
        == "a sentence kefu has not seen"  # unknown ones are shown as they are

    alice = await Agent(d, http, "alice").login()
    ws, _ = await visitor(http, d, "请帮我转给 Bob")
    conv = await conv_with_text(alice, "请帮我转给 Bob")
    await page.locator(f".conv-item[data-id='{conv['id']}']").click()
    await page.wait_for_selector("#act-transfer:not([disabled])")
    await page.click("#act-transfer")
    await page.select_option("#transfer-agent", "bob")  # bob is offline: the server refuses
    await page.click("#transfer-ok")
    await page.locator(".toast.error", has_text="该客服不在线").wait_for()

    assert await page.locator("#reply-text").is_enabled()
    assert (await alice.call("POST", f"/api/conversations/{conv['id']}/close"))[0] == 200
    await page.wait_for_selector("#reply-text[disabled]")  # closed live, while the agent looks at it
    assert await page.locator("#reply-send").is_disabled() and await page.locator("#reply-attach").is_disabled()
    assert "已关闭，无法再回复" in await page.inner_text("#reply-note")
    await ws.close()
    watch.check()


NOTIFICATION_STUB = """
window.__alerts = {asked: 0, shown: [], chimes: 0};
class FakeNotification {
  constructor(title, options) { window.__alerts.shown.push({title, body: options && options.body}); }
  close() {}
  static requestPermission() {
    window.__alerts.asked++; FakeNotification.permission = 'granted';
    sessionStorage.setItem('granted', '1'); return Promise.resolve('granted');
  }
}
FakeNotification.permission = sessionStorage.getItem('granted') ? 'granted' : 'default';
window.Notification = FakeNotification;
const param = {value: 0, setValueAtTime() {}, exponentialRampToValueAtTime() {}};
window.AudioContext = class {
  constructor() { this.state = 'running'; this.currentTime = 0; this.destination = {}; }
  resume() {}
  createGain() { return {gain: param, connect: (x) => x}; }
  createOscillator() { return {frequency: param, connect: (x) => x, start() { window.__alerts.chimes++; }, stop() {}}; }
};
"""


async def test_new_conversation_alerts_are_opt_in(make_daemon, http, browser):
    """The browser's notification and audio APIs are stubbed: what kefu asks of them is recorded."""
    d = await make_daemon().start()
    page, watch = await open_page(browser, "about:blank")
    await page.context.add_init_script(NOTIFICATION_STUB)
    await page.goto(d.url + "/console/")
    await page.fill("#login-agent", "alice")
    await page.fill("#login-password", PASSWORDS["alice"])
    await page.click("#login-submit")
    await page.wait_for_selector("#conn-state.live")
    alerts = "window.__alerts"

    ws1, _ = await visitor(http, d, "first, before alerts are on")
    await page.locator(".conv-item", has_text="first, before alerts are on").wait_for()
    assert await page.evaluate(alerts) == {"asked": 0, "shown": [], "chimes": 0}  # off, and nothing asked

    await page.click("#notify-toggle")
    await page.wait_for_selector("#notify-toggle[aria-pressed=true]")
    await wait_for(lambda: page.evaluate(f"{alerts}.asked === 1"), 5, message="permission asked once")
    ws2, _ = await visitor(http, d, "my card key never arrived")
    shown = await wait_for(lambda: page.evaluate(f"{alerts}.shown"), 10, message="a desktop notification")
    assert shown[0]["title"].startswith("New conversation") and shown[0]["body"] == "my card key never arrived"
    assert await page.evaluate(f"{alerts}.chimes") == 2  # the two-tone sound

    await page.reload()  # remembered, and not asked again
    await page.wait_for_selector("#conn-state.live")
    assert await page.get_attribute("#notify-toggle", "aria-pressed") == "true"
    ws3, _ = await visitor(http, d, "third visitor")
    await wait_for(lambda: page.evaluate(f"{alerts}.shown.length === 1"), 10, message="notified after reload")
    assert await page.evaluate(f"{alerts}.asked") == 0

    await page.click("#notify-toggle")  # off again: silence
    await page.wait_for_selector("#notify-toggle[aria-pressed=false]")
    ws4, _ = await visitor(http, d, "fourth visitor")
    await page.locator(".conv-item", has_text="fourth visitor").wait_for()
    assert await page.evaluate(f"{alerts}.shown.length") == 1
    for ws in (ws1, ws2, ws3, ws4):
        await ws.close()
    watch.check()


async def test_widget_greets_once_and_its_banner_follows_presence(make_daemon, http, browser):
    d = await make_daemon().start()
    alice = await Agent(d, http, "alice").login()
    page, watch = await open_page(browser, d.url + "/webchat/", locale="en-US")
    await page.click(f"{W} .btn")
    note = page.locator(f"{W} .note")
    await note.wait_for()
    assert (await note.inner_text()).startswith("No agent is online")
    rows = page.locator(f"{W} .row")
    assert await rows.count() == 1  # the greeting, from the English-speaking bot
    assert await rows.first.locator(".name").inner_text() == "Assistant"
    assert await rows.first.locator(".bub").inner_text() == "Hi! How can we help you?"

    await alice.presence("online")  # the banner follows presence while the widget is open
    await note.wait_for(state="hidden")
    await widget_send(page, "Hello, do you sell Steam cards?")
    welcome = page.locator(f"{W} .row.them", has_text="thanks for contacting us")
    await welcome.wait_for()

    async def greetings() -> int:
        texts = await page.locator(f"{W} .row .bub").all_inner_texts()
        return sum(t.startswith(("Hi! How can we help", "Hello, thanks for contacting us")) for t in texts)
    assert await greetings() == 1  # kefu's welcome took the greeting's place: never both
    await page.reload()  # the widget reopens as it was, with the history
    await welcome.wait_for()
    assert await greetings() == 1

    await alice.presence("away")
    await note.wait_for()
    watch.check()


async def test_a_supervisor_reveals_a_masked_number_and_a_logout_elsewhere_signs_the_console_out(
        make_daemon, http, browser):
    d = await make_daemon(channels=SITE).start()
    sue = await Agent(d, http, "sue").login()
    await site_message(http, d, "u9", "m9", "退款到这张卡 6222021234567890128", name="赵六")
    conv = await conv_with_text(sue, "退款到这张卡 6222********0128")
    page, watch = await console_login(browser, d, "sue")
    await page.locator(f".conv-item[data-id='{conv['id']}']").click()
    body = page.locator("#msg-list .msg.in .m-body", has_text="6222********0128")
    await body.wait_for()  # masked for agents, clear text on request
    await page.locator("#msg-list .msg.in .m-reveal").click()
    await page.locator("#msg-list .msg.in .m-body", has_text="6222021234567890128").wait_for()

    # The session ends elsewhere (sue's token revoked by her logout from another client of the
    # same token): the console's live socket is closed and it asks her to sign in again.
    token = await page.evaluate("sessionStorage.getItem('kefu_token') || localStorage.getItem('kefu_token')")
    assert token
    async with http.post(d.url + "/api/logout", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
    await page.wait_for_selector("#login-view:not([hidden])", timeout=10000)
    watch.check()


async def test_an_agent_without_reveal_pii_gets_no_reveal_button(make_daemon, http, browser):
    d = await make_daemon(channels=SITE).start()
    alice = await Agent(d, http, "alice").login()
    await site_message(http, d, "u8", "m8", "我的手机 13812345678，卡密没收到", name="钱七")
    conv = await conv_with_text(alice, "我的手机 138****5678，卡密没收到")
    page, watch = await console_login(browser, d)
    await page.locator(f".conv-item[data-id='{conv['id']}']").click()
    await page.locator("#msg-list .msg.in .m-body", has_text="138****5678").wait_for()
    assert await page.locator("#msg-list .m-reveal").count() == 0
    watch.check()
