/*! kefu web chat widget — vanilla JS, no dependencies, no external requests.
 * <script async src="https://support.example.com/webchat/widget.js"
 *         data-title="…" data-color="#1677ff" data-lang="zh|en" data-position="right|left"></script>
 * API: window.KefuWidget.open() / .close() / .toggle(); any element with
 * [data-kefu-open] opens the chat when clicked.
 * Customer/agent text is only ever rendered with textContent. */
(function () {
'use strict';
if (window.KefuWidget && window.KefuWidget.__kefu) return;

var SRC_RE = /\/webchat\/widget\.js(?:[?#].*)?$/;
var K_TOKEN = 'kefu_visitor_token', K_OUTBOX = 'kefu_outbox', K_HIST = 'kefu_history',
  K_OPEN = 'kefu_widget_open';
var MAX_LEN = 4000, HIST_KEEP = 100, ACK_TIMEOUT = 20000, HELLO_TIMEOUT = 10000;

function findScript() {
  var s = document.currentScript;
  if (s && s.src && SRC_RE.test(s.src)) return s;
  var list = document.getElementsByTagName('script');
  for (var i = list.length - 1; i >= 0; i--) {
    if (list[i].src && SRC_RE.test(list[i].src)) return list[i];
  }
  return null;
}
var script = findScript();
var srcUrl;
try { srcUrl = new URL(script ? script.src : '/webchat/widget.js', location.href); }
catch (e) { srcUrl = new URL('/webchat/widget.js', location.href); }
var basePath = srcUrl.pathname.replace(/widget\.js$/, '');
var httpBase = srcUrl.origin + basePath;
var wsBase = (srcUrl.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + srcUrl.host + basePath + 'ws';
function attr(n) { var v = script && script.getAttribute('data-' + n); return v ? String(v).trim() : ''; }

/* i18n */
var STR = {
  zh: {
    title: '在线客服', openLabel: '打开在线客服', closeLabel: '关闭客服窗口',
    placeholder: '请输入消息…', hint: 'Enter 发送 · Shift+Enter 换行', send: '发送',
    connecting: '正在连接…', reconnecting: '重新连接中…', offline: '网络已断开，恢复后将自动重连',
    sending: '发送中…', failed: '发送失败', retry: '重试', me: '我', agent: '客服', bot: '智能助手',
    system: '系统', greeting: '您好！请问有什么可以帮您？',
    newMsg: '条新消息', tooLong: '消息过长（最多 4000 字）', subtitle: '我们通常会尽快回复',
    messages: '聊天消息', attach: '发送图片或文件', upFail: '文件上传失败', tooBig: '文件过大'
  },
  en: {
    title: 'Customer support', openLabel: 'Open support chat', closeLabel: 'Close support chat',
    placeholder: 'Type a message…', hint: 'Enter to send · Shift+Enter for a new line', send: 'Send',
    connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'You are offline — we will reconnect automatically',
    sending: 'Sending…', failed: 'Not sent', retry: 'Retry', me: 'Me', agent: 'Agent', bot: 'Assistant',
    system: 'System', greeting: 'Hi! How can we help you?',
    newMsg: 'new messages', tooLong: 'Message too long (max 4000 characters)', subtitle: 'We usually reply quickly',
    messages: 'Chat messages', attach: 'Send an image or file', upFail: 'Upload failed', tooBig: 'File too large'
  }
};
function normLang(l) { l = String(l || '').toLowerCase(); return l.indexOf('zh') === 0 ? 'zh' : (l ? 'en' : ''); }
var cfg = { title: '', color: '', lang: '', welcome: null, bot_name: null, offline_note: null, online: null };
function lang() { return normLang(attr('lang')) || normLang(cfg.lang) || normLang(navigator.language) || 'en'; }
function t(k) { var L = STR[lang()] || STR.en; return L[k] != null ? L[k] : STR.en[k]; }
function pick(obj) { // {"zh": "...", "en": "..."} or plain string
  if (!obj) return '';
  if (typeof obj === 'string') return obj;
  return obj[lang()] || obj.en || obj.zh || '';
}

/* storage (may throw in private modes / sandboxed frames) */
function sget(k) { try { return window.localStorage.getItem(k); } catch (e) { return null; } }
function sset(k, v) { try { window.localStorage.setItem(k, v); } catch (e) { /* */ } }
function sdel(k) { try { window.localStorage.removeItem(k); } catch (e) { /* */ } }
function jget(k, d) { try { var v = JSON.parse(sget(k)); return v == null ? d : v; } catch (e) { return d; } }

function uuid() {
  var b = new Uint8Array(16); window.crypto.getRandomValues(b);
  return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
}

/* state */
var token = sget(K_TOKEN) || '';
var outbox = jget(K_OUTBOX, []);
if (!Array.isArray(outbox)) outbox = [];
outbox = outbox.filter(function (o) { return o && o.client_msg_id && typeof o.text === 'string'; });
var msgs = []; // {id, cid, text, kind, name, ts, pending, failed, attachments}
var cached = jget(K_HIST, null);
if (cached && cached.token && cached.token === token && Array.isArray(cached.msgs)) msgs = cached.msgs.slice(-HIST_KEEP);
var ws = null, helloed = false, attempt = 0, retryTimer = null, helloTimer = null, ackTimer = null;
var connState = 'idle'; // idle | connecting | open | retry
var isOpen = false, unread = 0, errTimer = null;

function saveOutbox() { if (outbox.length) sset(K_OUTBOX, JSON.stringify(outbox)); else sdel(K_OUTBOX); }
function saveHist() {
  if (!token) return;
  var keep = msgs.filter(function (m) { return m.id && !m.pending && !m.failed && !m.local; }).slice(-HIST_KEEP);
  sset(K_HIST, JSON.stringify({ token: token, msgs: keep }));
}
function hasId(id) { for (var i = 0; i < msgs.length; i++) if (msgs[i].id === id) return true; return false; }
function toMsg(m) {
  var s = m.sender || {};
  return {
    id: m.id != null ? String(m.id) : '', cid: m.client_msg_id || '', text: m.text == null ? '' : String(m.text),
    kind: s.kind || (m.direction === 'in' ? 'customer' : 'agent'), name: s.name || '',
    ts: typeof m.ts === 'number' ? m.ts : (parseFloat(m.ts) || Date.now() / 1000),
    attachments: Array.isArray(m.attachments) ? m.attachments : []
  };
}

/* DOM */
var CSS = [
  ':host{all:initial}',
  '*{box-sizing:border-box}[hidden]{display:none!important}',
  '.root{--kc:#1677ff;--kt:#fff;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI","PingFang SC","Hiragino Sans GB","Microsoft YaHei",Roboto,sans-serif;color:#1f1f1f;-webkit-text-size-adjust:100%}',
  '.btn{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border-radius:50%;border:0;padding:0;background:var(--kc);color:var(--kt);box-shadow:0 4px 16px rgba(0,0,0,.25);cursor:pointer;z-index:2147483000;display:flex;align-items:center;justify-content:center;transition:transform .15s}',
  '.btn:hover{transform:scale(1.06)}.btn:focus-visible{outline:3px solid #91caff;outline-offset:2px}',
  '.left .btn{right:auto;left:20px}',
  '.btn svg{width:28px;height:28px;fill:currentColor}',
  '.badge{position:absolute;top:-3px;right:-3px;min-width:20px;height:20px;border-radius:10px;background:#f5222d;color:#fff;font:600 12px/20px sans-serif;padding:0 6px;text-align:center}',
  '.panel{position:fixed;bottom:88px;right:20px;width:370px;height:580px;max-height:calc(100vh - 108px);background:#fff;border-radius:14px;box-shadow:0 10px 36px rgba(0,0,0,.22);display:flex;flex-direction:column;overflow:hidden;z-index:2147483001}',
  '.left .panel{right:auto;left:20px}',
  '.head{background:var(--kc);color:var(--kt);padding:12px 14px;display:flex;align-items:center;gap:10px;flex:none}',
  '.head .ttl{flex:1;min-width:0}',
  '.head h2{margin:0;font-size:16px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}',
  '.head .sub{font-size:12px;opacity:.85;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}',
  '.x{background:transparent;border:0;color:inherit;width:36px;height:36px;border-radius:8px;cursor:pointer;display:flex;align-items:center;justify-content:center;padding:0}',
  '.x:hover,.x:focus-visible{background:rgba(255,255,255,.2);outline:none}',
  '.x svg{width:20px;height:20px;fill:currentColor}',
  '.status{background:#fffbe6;color:#874d00;font-size:12px;padding:6px 14px;border-bottom:1px solid #ffe58f;flex:none}',
  '.note{background:#f0f5ff;color:#1d39c4;font-size:12px;padding:6px 14px;flex:none;white-space:pre-wrap}',
  '.list{flex:1;overflow-y:auto;overflow-x:hidden;padding:12px;background:#f5f6f8;-webkit-overflow-scrolling:touch;overscroll-behavior:contain}',
  '.row{display:flex;flex-direction:column;align-items:flex-start;margin:0 0 10px;max-width:100%}',
  '.row.me{align-items:flex-end}',
  '.row.sys{align-items:center}',
  '.name{font-size:12px;color:#8c8c8c;margin:0 4px 2px}',
  '.bub{max-width:82%;padding:8px 12px;border-radius:14px;background:#fff;color:#1f1f1f;white-space:pre-wrap;word-break:break-word;overflow-wrap:anywhere;box-shadow:0 1px 2px rgba(0,0,0,.06)}',
  '.me .bub{background:var(--kc);color:var(--kt);border-bottom-right-radius:4px}',
  '.them .bub{border-bottom-left-radius:4px}',
  '.bot .bub{background:#f0f5ff}',
  '.sys .bub{background:transparent;box-shadow:none;color:#8c8c8c;font-size:12px;text-align:center;max-width:92%;padding:2px 8px}',
  '.bub a{color:inherit;text-decoration:underline}',
  '.bub img{display:block;max-width:100%;max-height:220px;border-radius:8px;margin-top:4px}',
  '.meta{font-size:11px;color:#999;margin:2px 4px 0}',
  '.pending .bub{opacity:.7}',
  '.failed .meta{color:#f5222d}',
  '.meta button{background:none;border:0;color:#1677ff;cursor:pointer;font:inherit;padding:0 0 0 6px;text-decoration:underline}',
  '.err{position:absolute;left:12px;right:12px;bottom:96px;background:rgba(0,0,0,.78);color:#fff;border-radius:8px;padding:8px 12px;font-size:13px;z-index:2}',
  '.foot{border-top:1px solid #eee;padding:8px 10px calc(8px + env(safe-area-inset-bottom,0px));display:flex;gap:8px;align-items:flex-end;background:#fff;flex:none}',
  'textarea{flex:1;min-width:0;resize:none;border:1px solid #d9d9d9;border-radius:10px;padding:8px 10px;font:inherit;font-size:15px;line-height:1.4;max-height:120px;min-height:40px;outline:none;color:#1f1f1f;background:#fff}',
  'textarea:focus{border-color:var(--kc);box-shadow:0 0 0 2px rgba(22,119,255,.15)}',
  '.send{flex:none;height:40px;padding:0 16px;border:0;border-radius:10px;background:var(--kc);color:var(--kt);font:inherit;font-weight:600;cursor:pointer}',
  '.send:disabled{opacity:.5;cursor:default}',
  '.x.att{flex:none;height:40px;color:#8c8c8c}.x.att:hover{background:#f0f0f0}',
  '.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}',
  '.hint{font-size:11px;color:#aaa;padding:0 12px 6px;background:#fff;flex:none}',
  '@media (max-width:520px){.panel,.left .panel{top:0;left:0;right:0;bottom:0;width:100%;height:100%;max-height:none;border-radius:0}',
  '.open .btn{display:none}.hint{display:none}textarea{font-size:16px}}',
  '@media (prefers-reduced-motion:reduce){.btn{transition:none}}'
].join('\n');

var SVG_NS = 'http://www.w3.org/2000/svg';
var ICON_CHAT = 'M12 3C6.5 3 2 6.6 2 11c0 2.4 1.3 4.6 3.4 6.1L4.6 21l4.3-2.3c1 .2 2 .3 3.1.3 5.5 0 10-3.6 10-8s-4.5-8-10-8zm-4 9.3a1.3 1.3 0 110-2.6 1.3 1.3 0 010 2.6zm4 0a1.3 1.3 0 110-2.6 1.3 1.3 0 010 2.6zm4 0a1.3 1.3 0 110-2.6 1.3 1.3 0 010 2.6z';
var ICON_CLOSE = 'M18.3 5.7a1 1 0 00-1.4 0L12 10.6 7.1 5.7a1 1 0 10-1.4 1.4l4.9 4.9-4.9 4.9a1 1 0 101.4 1.4l4.9-4.9 4.9 4.9a1 1 0 001.4-1.4L13.4 12l4.9-4.9a1 1 0 000-1.4z';
var ICON_CLIP = 'M16.5 6v11.5a4 4 0 01-8 0V5a2.5 2.5 0 015 0v10.5a1 1 0 01-2 0V6H10v9.5a2.5 2.5 0 005 0V5a4 4 0 00-8 0v12.5a5.5 5.5 0 0011 0V6z';
function icon(d) {
  var s = document.createElementNS(SVG_NS, 'svg'); s.setAttribute('viewBox', '0 0 24 24'); s.setAttribute('aria-hidden', 'true');
  var p = document.createElementNS(SVG_NS, 'path'); p.setAttribute('d', d); s.appendChild(p); return s;
}
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

var host = el('div'); host.id = 'kefu-widget';
var shadow = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
try {
  var sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); shadow.adoptedStyleSheets = [sheet];
} catch (e) { var st = el('style'); st.textContent = CSS; shadow.appendChild(st); }
var root = el('div', 'root'); shadow.appendChild(root);

var btn = el('button', 'btn'); btn.type = 'button'; btn.appendChild(icon(ICON_CHAT));
btn.setAttribute('aria-haspopup', 'dialog'); btn.setAttribute('aria-expanded', 'false');
var badge = el('span', 'badge'); badge.hidden = true; btn.appendChild(badge);

var panel = el('div', 'panel'); panel.hidden = true; panel.setAttribute('role', 'dialog');
var head = el('div', 'head'), ttlBox = el('div', 'ttl'), h2 = el('h2'), sub = el('div', 'sub');
ttlBox.appendChild(h2); ttlBox.appendChild(sub); head.appendChild(ttlBox);
var xBtn = el('button', 'x'); xBtn.type = 'button'; xBtn.appendChild(icon(ICON_CLOSE)); head.appendChild(xBtn);
var statusBar = el('div', 'status'); statusBar.hidden = true; statusBar.setAttribute('role', 'status');
var note = el('div', 'note'); note.hidden = true;
var list = el('div', 'list'); list.setAttribute('role', 'log'); list.setAttribute('aria-live', 'off');
var live = el('div', 'sr'); live.setAttribute('aria-live', 'polite'); // announces new replies only
var errBox = el('div', 'err'); errBox.hidden = true; errBox.setAttribute('role', 'alert');
var foot = el('div', 'foot');
var ta = el('textarea'); ta.rows = 1; ta.maxLength = MAX_LEN;
var sendBtn = el('button', 'send'); sendBtn.type = 'button';
var attBtn = el('button', 'x att'); attBtn.type = 'button'; attBtn.appendChild(icon(ICON_CLIP));
var fileIn = el('input'); fileIn.type = 'file'; fileIn.hidden = true;
[attBtn, ta, sendBtn, fileIn].forEach(function (n) { foot.appendChild(n); });
var hint = el('div', 'hint');
[head, statusBar, note, list, errBox, foot, hint, live].forEach(function (n) { panel.appendChild(n); });
root.appendChild(panel); root.appendChild(btn);

function luminance(hex) {
  var m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(hex || ''); if (!m) return 0;
  var h = m[1]; if (h.length === 3) h = h[0] + h[0] + h[1] + h[1] + h[2] + h[2];
  var c = [0, 2, 4].map(function (i) { var v = parseInt(h.substr(i, 2), 16) / 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function applyLook() {
  var color = attr('color') || cfg.color || '';
  if (color && /^(#[0-9a-f]{3,8}|rgba?\([\d\s.,%]+\)|[a-z]{3,20})$/i.test(color)) {
    root.style.setProperty('--kc', color);
    root.style.setProperty('--kt', luminance(color) > 0.6 ? '#1f1f1f' : '#fff');
  }
  root.classList.toggle('left', (attr('position') || cfg.position) === 'left');
  var title = attr('title') || cfg.title || t('title');
  h2.textContent = title;
  sub.textContent = t('subtitle');
  panel.setAttribute('aria-label', title);
  btn.setAttribute('aria-label', t('openLabel'));
  btn.title = title;
  [[xBtn, 'closeLabel'], [attBtn, 'attach']].forEach(function (p) { p[0].setAttribute('aria-label', t(p[1])); p[0].title = t(p[1]); });
  ta.placeholder = t('placeholder');
  ta.setAttribute('aria-label', t('placeholder'));
  list.setAttribute('aria-label', t('messages'));
  sendBtn.textContent = t('send');
  hint.textContent = t('hint');
  updateNote(); updateStatus(); render();
}
function updateNote() { // "nobody online": follows presence live (hello, presence frames)
  var off = cfg.online === false && pick(cfg.offline_note);
  note.textContent = off || '';
  note.hidden = !off;
}
function setPresence(f) {
  if (typeof f.online !== 'boolean') return;
  cfg.online = f.online; if (f.offline_note) cfg.offline_note = f.offline_note;
  updateNote();
}

/* rendering */
var URL_RE = /\bhttps?:\/\/[^\s<>"'\u3000-\u303f\uff01-\uff0f]+/g;
function fillText(node, text) {
  var last = 0, m;
  URL_RE.lastIndex = 0;
  while ((m = URL_RE.exec(text))) {
    var u = m[0].replace(/[).,;:!?]+$/, '');
    if (m.index > last) node.appendChild(document.createTextNode(text.slice(last, m.index)));
    var a = el('a', '', u); a.href = u; a.target = '_blank'; a.rel = 'noopener noreferrer nofollow';
    node.appendChild(a); last = m.index + u.length; URL_RE.lastIndex = last;
  }
  if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
}
function safeUrl(u) {
  u = String(u || '');
  if (/^data:image\/(png|jpe?g|gif|webp);/i.test(u)) return u;
  try { var x = new URL(u, httpBase); return x.protocol === 'https:' || x.protocol === 'http:' ? x.href : ''; }
  catch (e) { return ''; }
}
function fmtTime(ts) {
  var d = new Date(ts * 1000); if (isNaN(d)) return '';
  var now = new Date(), p = function (n) { return (n < 10 ? '0' : '') + n; };
  var hm = p(d.getHours()) + ':' + p(d.getMinutes());
  return d.toDateString() === now.toDateString() ? hm : (d.getMonth() + 1) + '/' + d.getDate() + ' ' + hm;
}
function kindName(m) {
  if (m.kind === 'customer') return t('me');
  return m.name || t(m.kind === 'bot' ? 'bot' : m.kind === 'system' ? 'system' : 'agent');
}
var renderQueued = false;
function render() {
  if (renderQueued) return; renderQueued = true;
  (window.requestAnimationFrame || setTimeout)(doRender);
}
function doRender() {
  renderQueued = false;
  var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  while (list.firstChild) list.removeChild(list.firstChild);
  // the greeting stands in for kefu's welcome until that arrives (never both)
  var spoke = msgs.some(function (m) { return m.id && m.kind !== 'customer'; });
  var all = spoke ? msgs : [{ kind: 'bot', name: pick(cfg.bot_name) || t('bot'), text: pick(cfg.welcome) || t('greeting'), local: true }].concat(msgs);
  var prevKey = '';
  all.forEach(function (m) {
    var own = m.kind === 'customer', sys = m.kind === 'system';
    var row = el('div', 'row ' + (own ? 'me' : sys ? 'sys' : 'them') + (m.kind === 'bot' ? ' bot' : '') +
      (m.pending ? ' pending' : '') + (m.failed ? ' failed' : ''));
    if (m.id) row.setAttribute('data-id', m.id);
    if (m.cid) row.setAttribute('data-client-msg-id', m.cid);
    var key = m.kind + '|' + m.name;
    if (!own && !sys && key !== prevKey) row.appendChild(el('div', 'name', kindName(m)));
    prevKey = key;
    var bub = el('div', 'bub'); fillText(bub, m.text || '');
    (m.attachments || []).forEach(function (a) {
      var u = a && safeUrl(a.url); if (!u) return;
      if (/^image\//.test(a.type || '') || /^data:image\//.test(u)) {
        var img = el('img'); img.src = u; img.alt = a.name || ''; img.loading = 'lazy'; bub.appendChild(img);
      } else {
        bub.appendChild(document.createElement('br'));
        var link = el('a', '', a.name || u); link.href = u; link.target = '_blank'; link.rel = 'noopener noreferrer'; bub.appendChild(link);
      }
    });
    row.appendChild(bub);
    if (!m.local) {
      var meta = el('div', 'meta', m.failed ? t('failed') : m.pending ? t('sending') : fmtTime(m.ts));
      if (m.failed) {
        var rb = el('button', '', t('retry')); rb.type = 'button';
        rb.addEventListener('click', function () { retryFailed(m); });
        meta.appendChild(rb);
      }
      row.appendChild(meta);
    }
    list.appendChild(row);
  });
  if (nearBottom || forceScroll) list.scrollTop = list.scrollHeight;
  forceScroll = false;
}
var forceScroll = true;

function updateStatus() {
  var s = '';
  if (!navigator.onLine && connState !== 'open') s = t('offline');
  else if (connState === 'connecting') s = t('connecting');
  else if (connState === 'retry' || (connState === 'idle' && attempt > 0)) s = t('reconnecting');
  statusBar.textContent = s;
  statusBar.hidden = !s || !isOpen;
}
function showError(text) {
  errBox.textContent = String(text || '');
  errBox.hidden = !text;
  clearTimeout(errTimer);
  if (text) errTimer = setTimeout(function () { errBox.hidden = true; }, 5000);
}
function setUnread(n) {
  unread = n; badge.textContent = n > 99 ? '99+' : String(n); badge.hidden = !n;
  btn.setAttribute('aria-label', t('openLabel') + (n ? ' (' + n + ' ' + t('newMsg') + ')' : ''));
}

/* messages */
function pendingFromOutbox() {
  outbox.forEach(function (o) {
    for (var i = 0; i < msgs.length; i++) if (msgs[i].cid === o.client_msg_id) return;
    msgs.push({ id: '', cid: o.client_msg_id, text: o.text, kind: 'customer', name: '', ts: o.ts, pending: true, attachments: o.att });
  });
}
function onHistory(list_) {
  var seen = {}, out = [];
  (list_ || []).forEach(function (raw) {
    var m = toMsg(raw); if (!m.id || seen[m.id]) return; seen[m.id] = 1;
    if (m.cid) dropOutbox(m.cid);
    out.push(m);
  });
  out.sort(function (a, b) { return a.ts - b.ts; });
  var keepFailed = msgs.filter(function (m) { return m.failed; });
  msgs = out.concat(keepFailed);
  pendingFromOutbox();
  saveHist(); forceScroll = true; render();
}
function onPush(raw) {
  var m = toMsg(raw);
  if (m.id && hasId(m.id)) return;
  if (m.cid) {
    for (var i = 0; i < msgs.length; i++) {
      if (msgs[i].cid === m.cid) { msgs[i].id = m.id; msgs[i].pending = false; msgs[i].ts = m.ts; dropOutbox(m.cid); saveHist(); render(); return; }
    }
  }
  msgs.push(m);
  msgs.sort(function (a, b) { return (a.pending || a.failed ? 1 : 0) - (b.pending || b.failed ? 1 : 0); });
  if (m.kind !== 'customer') { live.textContent = kindName(m) + ': ' + m.text; if (!isOpen) setUnread(unread + 1); }
  saveHist(); render();
}
function dropOutbox(cid) {
  var n = outbox.length;
  outbox = outbox.filter(function (o) { return o.client_msg_id !== cid; });
  if (outbox.length !== n) saveOutbox();
}
function onAck(cid, id) {
  dropOutbox(cid);
  id = id != null ? String(id) : '';
  var dup = id && hasId(id);
  msgs = msgs.filter(function (m) {
    if (m.cid !== cid) return true;
    if (dup && m.pending) return false;
    m.pending = false; m.failed = false; if (id) m.id = id; return true;
  });
  armAckTimer();
  saveHist(); render();
}
function send(text, att) {
  text = String(text || '').replace(/\s+$/, '');
  if (!text.replace(/\s/g, '') && !att) return false;
  if (text.length > MAX_LEN) { showError(t('tooLong')); return false; }
  var o = { client_msg_id: uuid(), text: text, ts: Date.now() / 1000, att: att || [] };
  outbox.push(o); saveOutbox();
  msgs.push({ id: '', cid: o.client_msg_id, text: text, kind: 'customer', name: '', ts: o.ts, pending: true, attachments: o.att });
  forceScroll = true; render();
  if (helloed) transmit(o); else connect();
  return true;
}
function retryFailed(m) {
  msgs = msgs.filter(function (x) { return x !== m; });
  send(m.text, (m.attachments || []).length ? m.attachments : null);
}
function upload(f) {
  if (f.size > (cfg.max_upload || 10485760)) return showError(t('tooBig'));
  if (!token || !window.fetch) return reconnectNow();
  fetch(httpBase + 'upload?token=' + encodeURIComponent(token) + '&name=' + encodeURIComponent(f.name || ''),
    { method: 'POST', body: f, credentials: 'omit', headers: { 'Content-Type': f.type || 'application/octet-stream' } })
    .then(function (r) { if (!r.ok) throw r; return r.json(); })
    .then(function (a) { send('', [a]); })['catch'](function () { showError(t('upFail')); });
}
function transmit(o) {
  if (!ws || !helloed || ws.readyState !== 1) return;
  try { ws.send(JSON.stringify({ type: 'message', text: o.text, client_msg_id: o.client_msg_id, attachments: (o.att || []).map(function (a) { return a.id; }) })); } catch (e) { return; }
  armAckTimer();
}
function armAckTimer() {
  clearTimeout(ackTimer);
  if (!outbox.length || !ws) return;
  var sock = ws;
  ackTimer = setTimeout(function () { // half-open socket: force a reconnect, the server dedupes re-sends
    if (ws === sock && outbox.length) { try { sock.close(); } catch (e) { /* */ } dropSocket(sock); }
  }, ACK_TIMEOUT);
}

/* connection */
function connect() {
  if (ws || retryTimer) return;
  connState = attempt ? 'retry' : 'connecting'; updateStatus();
  var sock;
  try { sock = new WebSocket(wsBase + (token ? '?token=' + encodeURIComponent(token) : '')); }
  catch (e) { scheduleRetry(); return; }
  ws = sock; helloed = false;
  helloTimer = setTimeout(function () { if (ws === sock && !helloed) { try { sock.close(); } catch (e) { /* */ } dropSocket(sock); } }, HELLO_TIMEOUT);
  sock.onmessage = function (ev) {
    if (ws !== sock) return;
    var f; try { f = JSON.parse(ev.data); } catch (e) { return; }
    if (!f || typeof f !== 'object') return;
    handleFrame(f);
  };
  sock.onclose = function () { dropSocket(sock); };
  sock.onerror = function () { /* onclose follows */ };
}
function dropSocket(sock) {
  if (ws !== sock) return;
  ws = null; helloed = false; clearTimeout(helloTimer); clearTimeout(ackTimer);
  scheduleRetry();
}
function scheduleRetry() {
  if (retryTimer) return;
  var base = Math.min(10000, 500 * Math.pow(2, attempt));
  var delay = Math.min(10000, base * (0.75 + Math.random() * 0.5));
  attempt++;
  connState = 'retry'; updateStatus();
  retryTimer = setTimeout(function () { retryTimer = null; connect(); }, delay);
}
function reconnectNow() {
  if (ws) return;
  if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
  connect();
}
function handleFrame(f) {
  switch (f.type) {
    case 'hello':
      clearTimeout(helloTimer);
      helloed = true; attempt = 0; connState = 'open'; updateStatus();
      if (f.visitor_token) {
        var nt = String(f.visitor_token);
        if (token && nt !== token) { // a new identity: what we cached belongs to the old one
          msgs = msgs.filter(function (m) { return m.pending || m.failed; });
          render();
        }
        token = nt; sset(K_TOKEN, token);
      }
      setPresence(f);
      outbox.slice().forEach(transmit);
      break;
    case 'presence': setPresence(f); break;
    case 'history': onHistory(f.messages); break;
    case 'message': onPush(f); break;
    case 'ack': if (f.client_msg_id) onAck(String(f.client_msg_id), f.id); break;
    case 'error':
      if (f.retry) { try { ws.close(); } catch (e) {} break; } // kefu is busy: reconnect, resend the outbox
      showError(pick(f.text) || f.error || 'error'); // text: {zh, en} when kefu words it for visitors
      if (f.client_msg_id) { // the server refused this message for good
        var cid = String(f.client_msg_id); dropOutbox(cid);
        msgs.forEach(function (m) { if (m.cid === cid) { m.pending = false; m.failed = true; } });
        render();
      }
      break;
    default: break;
  }
}

/* open / close */
function open() {
  if (isOpen) return;
  isOpen = true; panel.hidden = false; root.classList.add('open');
  btn.setAttribute('aria-expanded', 'true'); setUnread(0);
  try { sessionStorage.setItem(K_OPEN, '1'); } catch (e) { /* */ }
  updateStatus(); forceScroll = true; render();
  reconnectNow();
  setTimeout(function () { if (window.matchMedia && !window.matchMedia('(pointer: coarse)').matches) ta.focus(); }, 30);
}
function close() {
  if (!isOpen) return;
  isOpen = false; panel.hidden = true; root.classList.remove('open');
  btn.setAttribute('aria-expanded', 'false');
  try { sessionStorage.removeItem(K_OPEN); } catch (e) { /* */ }
  btn.focus();
}

function autoGrow() { ta.style.height = 'auto'; ta.style.height = Math.min(120, ta.scrollHeight + 2) + 'px'; }
function submit() { if (send(ta.value)) { ta.value = ''; autoGrow(); } ta.focus(); }
btn.addEventListener('click', function () { isOpen ? close() : open(); });
xBtn.addEventListener('click', close);
sendBtn.addEventListener('click', submit);
attBtn.addEventListener('click', function () { fileIn.click(); });
fileIn.addEventListener('change', function () { var f = fileIn.files[0]; fileIn.value = ''; if (f) upload(f); });
ta.addEventListener('input', autoGrow);
ta.addEventListener('keydown', function (e) {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); submit(); }
});
panel.addEventListener('keydown', function (e) { if (e.key === 'Escape') close(); });
window.addEventListener('online', function () { updateStatus(); if (isOpen || outbox.length || token) reconnectNow(); });
window.addEventListener('offline', updateStatus);
document.addEventListener('visibilitychange', function () { if (!document.hidden && (isOpen || outbox.length)) reconnectNow(); });
document.addEventListener('click', function (e) {
  var n = e.target && e.target.closest && e.target.closest('[data-kefu-open]');
  if (n) { e.preventDefault(); open(); }
});

function mount() {
  (document.body || document.documentElement).appendChild(host);
  applyLook(); pendingFromOutbox(); render();
  var wasOpen = false; try { wasOpen = sessionStorage.getItem(K_OPEN) === '1'; } catch (e) { /* */ }
  if (wasOpen) open();
  else if (token || outbox.length) connect(); // returning visitor: receive replies, flush the outbox
}
function loadConfig() {
  if (!window.fetch) return;
  fetch(httpBase + 'config.json', { credentials: 'omit', cache: 'no-cache' })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (c) {
      if (!c || typeof c !== 'object') return;
      ['title', 'color', 'lang', 'position'].forEach(function (k) { if (typeof c[k] === 'string') cfg[k] = c[k]; });
      cfg.welcome = c.welcome || null; cfg.bot_name = c.bot_name || null;
      if (!helloed) setPresence(c); // a live socket knows better than this (cached) answer
      cfg.max_upload = c.max_upload_bytes;
      applyLook();
    })['catch'](function () { /* defaults */ });
}

window.KefuWidget = {
  __kefu: true,
  open: open, close: close,
  toggle: function () { isOpen ? close() : open(); },
  isOpen: function () { return isOpen; }
};
if (document.body) mount(); else document.addEventListener('DOMContentLoaded', mount);
loadConfig();
})();
