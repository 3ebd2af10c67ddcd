/* kefu agent console — vanilla JS, no dependencies, no build step.
 * Every piece of customer / agent / server text is rendered with textContent
 * (via h() below); innerHTML is never used. */
(function () {
  'use strict';

  /* ------------------------------------------------------------------ i18n */
  const I18N = {
    en: {
      'login.title': 'Agent sign in', 'login.agent': 'Agent ID', 'login.password': 'Password',
      'login.submit': 'Sign in', 'login.failed': 'Sign-in failed', 'login.expired': 'Your session has expired — please sign in again.',
      'login.missing': 'Enter your agent ID and password.',
      'nav.back': 'Back to inbox', 'header.console': 'Console', 'header.presence': 'Presence',
      'header.lang': 'Language: 中文 / English', 'header.help': 'Keyboard shortcuts', 'header.logout': 'Sign out',
      'presence.online': 'Online', 'presence.away': 'Away', 'presence.offline': 'Offline',
      'conn.live': 'Live', 'conn.reconnecting': 'Reconnecting…', 'conn.connecting': 'Connecting…',
      'help.title': 'Keyboard shortcuts', 'help.jk': 'Next / previous conversation', 'help.c': 'Claim conversation',
      'help.e': 'Close conversation', 'help.t': 'Transfer', 'help.r': 'Focus the reply box',
      'help.slash': 'Quick replies (type / in the reply box)', 'help.send': 'Send reply', 'help.i': 'Show / hide customer panel',
      'help.esc': 'Leave the input / close popups', 'help.help': 'Show this help',
      'inbox.title': 'Inbox', 'inbox.all': 'All', 'inbox.mine': 'Mine', 'inbox.queued': 'Queued',
      'inbox.search': 'Search customer, message, ID', 'inbox.status': 'Status', 'inbox.role': 'Role',
      'inbox.channel': 'Channel', 'inbox.sort': 'Sort', 'inbox.empty': 'No conversations',
      'inbox.allRoles': 'All roles', 'inbox.allChannels': 'All channels',
      'status.open': 'Open', 'status.closed': 'Closed', 'status.all': 'All statuses',
      'sort.recent': 'Latest activity', 'sort.sla': 'SLA due first',
      'conv.none': 'Select a conversation', 'conv.loading': 'Loading…', 'conv.noMessages': 'No messages yet',
      'conv.assignedTo': 'Owner: {name}', 'conv.queued': 'Waiting in queue', 'conv.unassigned': 'Unassigned',
      'conv.ownedByOther': '{name} owns this conversation — claim it to reply.',
      'conv.notMine': 'Nobody owns this conversation yet — claim it before replying.',
      'conv.closedBanner': 'This conversation is closed.', 'conv.loadFailed': 'Could not load the conversation: {error}',
      'act.claim': 'Claim', 'act.transfer': 'Transfer', 'act.close': 'Close', 'act.info': 'Customer',
      'act.claimed': 'Conversation claimed', 'act.transferred': 'Conversation transferred', 'act.closed': 'Conversation closed',
      'transfer.role': 'To role', 'transfer.agent': 'Or to agent', 'transfer.pick': 'Choose a role or an agent',
      'confirm.close': 'Close this conversation?',
      'reply.placeholder': 'Type a reply… (/ for quick replies)', 'reply.hint': 'Ctrl+Enter to send · / quick replies',
      'reply.send': 'Send', 'reply.sending': 'Sending…', 'reply.attach': 'Attach images or files (or paste / drop them here)', 'reply.uploading': 'Uploading…', 'reply.remove': 'Remove', 'reply.conflict': 'Another agent owns this conversation.',
      'qr.none': 'No matching quick reply', 'qr.empty': 'No quick replies configured',
      'cust.title': 'Customer', 'cust.channel': 'Channel', 'cust.tier': 'Tier', 'cust.language': 'Language',
      'cust.id': 'Customer ID', 'cust.attributes': 'Details', 'cust.orders': 'Recent orders',
      'cust.history': 'Earlier conversations', 'cust.noHistory': 'None', 'cust.none': 'Select a conversation to see the customer.',
      'cust.assignee': 'Owner', 'cust.visitor': 'Visitor', 'cust.role': 'Role', 'cust.priority': 'Priority', 'cust.sla': 'SLA due', 'cust.conv': 'Conversation',
      'tier.vip': 'VIP', 'tier.new': 'New', 'tier.regular': 'Regular',
      'prio.normal': 'Normal', 'prio.urgent': 'Urgent', 'prio.dispute': 'Dispute',
      'badge.vip': 'VIP', 'badge.dispute': 'Dispute', 'badge.urgent': 'Urgent', 'badge.sla': 'SLA {t}',
      'badge.overdue': 'SLA overdue {t}', 'badge.queued': 'Queued', 'badge.closed': 'Closed',
      'kind.customer': 'Customer', 'kind.agent': 'Agent', 'kind.bot': 'Bot', 'kind.system': 'System',
      'common.cancel': 'Cancel', 'common.ok': 'OK', 'common.closePanel': 'Close panel', 'common.you': 'you',
      'err.network': 'Network error — please try again.', 'err.generic': 'Request failed ({status})',
      'title.unread': '({n}) kefu console'
    },
    zh: {
      'login.title': '客服登录', 'login.agent': '客服账号', 'login.password': '密码',
      'login.submit': '登录', 'login.failed': '登录失败', 'login.expired': '登录已过期，请重新登录。',
      'login.missing': '请输入客服账号和密码。',
      'nav.back': '返回会话列表', 'header.console': '客服工作台', 'header.presence': '在线状态',
      'header.lang': '语言：中文 / English', 'header.help': '快捷键', 'header.logout': '退出登录',
      'presence.online': '在线', 'presence.away': '离开', 'presence.offline': '离线',
      'conn.live': '实时', 'conn.reconnecting': '重新连接中…', 'conn.connecting': '连接中…',
      'help.title': '快捷键', 'help.jk': '下一个 / 上一个会话', 'help.c': '认领会话',
      'help.e': '关闭会话', 'help.t': '转接', 'help.r': '聚焦回复框',
      'help.slash': '快捷回复（在回复框中输入 /）', 'help.send': '发送回复', 'help.i': '显示 / 隐藏客户信息',
      'help.esc': '离开输入框 / 关闭弹窗', 'help.help': '显示本帮助',
      'inbox.title': '会话列表', 'inbox.all': '全部', 'inbox.mine': '我的', 'inbox.queued': '待分配',
      'inbox.search': '搜索客户、消息或编号', 'inbox.status': '状态', 'inbox.role': '角色',
      'inbox.channel': '渠道', 'inbox.sort': '排序', 'inbox.empty': '暂无会话',
      'inbox.allRoles': '全部角色', 'inbox.allChannels': '全部渠道',
      'status.open': '进行中', 'status.closed': '已关闭', 'status.all': '全部状态',
      'sort.recent': '最新消息', 'sort.sla': 'SLA 优先',
      'conv.none': '请从左侧选择一个会话', 'conv.loading': '加载中…', 'conv.noMessages': '暂无消息',
      'conv.assignedTo': '负责人：{name}', 'conv.queued': '排队中', 'conv.unassigned': '未分配',
      'conv.ownedByOther': '该会话由 {name} 负责，认领后才能回复。',
      'conv.notMine': '该会话尚未分配，请先认领再回复。',
      'conv.closedBanner': '该会话已关闭。', 'conv.loadFailed': '会话加载失败：{error}',
      'act.claim': '认领', 'act.transfer': '转接', 'act.close': '关闭', 'act.info': '客户信息',
      'act.claimed': '已认领会话', 'act.transferred': '会话已转接', 'act.closed': '会话已关闭',
      'transfer.role': '转给角色', 'transfer.agent': '或转给客服', 'transfer.pick': '请选择角色或客服',
      'confirm.close': '确定关闭此会话吗？',
      'reply.placeholder': '输入回复…（输入 / 使用快捷回复）', 'reply.hint': 'Ctrl+Enter 发送 · / 快捷回复',
      'reply.send': '发送', 'reply.sending': '发送中…', 'reply.attach': '添加图片或文件（也可粘贴或拖入）', 'reply.uploading': '上传中…', 'reply.remove': '移除', 'reply.conflict': '该会话已由其他客服负责。',
      'qr.none': '没有匹配的快捷回复', 'qr.empty': '尚未配置快捷回复',
      'cust.title': '客户信息', 'cust.channel': '渠道', 'cust.tier': '等级', 'cust.language': '语言',
      'cust.id': '客户编号', 'cust.attributes': '资料', 'cust.orders': '最近订单',
      'cust.history': '历史会话', 'cust.noHistory': '无', 'cust.none': '选择会话后显示客户信息。',
      'cust.assignee': '负责人', 'cust.visitor': '访客', 'cust.role': '角色', 'cust.priority': '优先级', 'cust.sla': 'SLA 截止', 'cust.conv': '会话',
      'tier.vip': 'VIP', 'tier.new': '新客户', 'tier.regular': '老客户',
      'prio.normal': '普通', 'prio.urgent': '紧急', 'prio.dispute': '纠纷',
      'badge.vip': 'VIP', 'badge.dispute': '纠纷', 'badge.urgent': '紧急', 'badge.sla': 'SLA {t}',
      'badge.overdue': 'SLA 超时 {t}', 'badge.queued': '排队', 'badge.closed': '已关闭',
      'kind.customer': '客户', 'kind.agent': '客服', 'kind.bot': '机器人', 'kind.system': '系统',
      'common.cancel': '取消', 'common.ok': '确定', 'common.closePanel': '关闭面板', 'common.you': '我',
      'err.network': '网络错误，请重试。', 'err.generic': '请求失败（{status}）',
      'title.unread': '({n}) kefu 客服工作台'
    }
  };
  const ROLE_NAMES = {
    presales: { zh: '售前', en: 'Pre-sales' }, aftersales: { zh: '售后', en: 'After-sales' },
    finance: { zh: '财务', en: 'Finance' }, supervisor: { zh: '主管', en: 'Supervisor' },
    dispute: { zh: '纠纷', en: 'Dispute' }, vip: { zh: 'VIP', en: 'VIP' }
  };
  const KIND_NAMES = {
    webchat: { zh: '网页聊天', en: 'Web chat' }, api: { zh: '站内信', en: 'Site messages' },
    email: { zh: '邮件', en: 'Email' }, telegram: { zh: 'Telegram', en: 'Telegram' },
    discord: { zh: 'Discord', en: 'Discord' }, qq: { zh: 'QQ', en: 'QQ' }, wechat: { zh: '微信', en: 'WeChat' },
    wecom: { zh: '微信客服', en: 'WeChat' }
  };
  const LANG_KEY = 'kefu_console_lang', TOKEN_KEY = 'kefu_token', PREFS_KEY = 'kefu_console_prefs';

  function lsGet(k) { try { return localStorage.getItem(k); } catch (e) { return null; } }
  function lsSet(k, v) { try { localStorage.setItem(k, v); } catch (e) { /* ignore */ } }
  function ssGet(k) { try { return sessionStorage.getItem(k); } catch (e) { return null; } }
  function ssSet(k, v) { try { if (v) sessionStorage.setItem(k, v); else sessionStorage.removeItem(k); } catch (e) { /* ignore */ } }

  let lang = lsGet(LANG_KEY) || (String(navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en');
  if (!I18N[lang]) lang = 'en';
  function t(key, vars) {
    let s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] != null ? String(vars[k]) : m));
    return s;
  }
  function loc(obj) { // {"zh": "...", "en": "..."} | string
    if (obj == null) return '';
    if (typeof obj !== 'object') return String(obj);
    return obj[lang] || obj.en || obj.zh || Object.values(obj)[0] || '';
  }

  /* ------------------------------------------------------------------ helpers */
  const $ = (id) => document.getElementById(id);
  function h(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const k of Object.keys(props)) {
        const v = props[k];
        if (v == null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = String(v);
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of kids.flat(3)) {
      if (c == null || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function cssToken(s) { return String(s || '').toLowerCase().replace(/[^a-z0-9_-]/g, '') || 'x'; }
  function toMs(v) {
    if (v == null || v === '') return 0;
    if (typeof v === 'number') return v > 1e12 ? v : v * 1000;
    if (/^\d+(\.\d+)?$/.test(String(v))) return toMs(parseFloat(v));
    const d = Date.parse(v); return isNaN(d) ? 0 : d;
  }
  const pad = (n) => (n < 10 ? '0' : '') + n;
  function fmtTime(v, withDate) {
    const ms = toMs(v); if (!ms) return '';
    const d = new Date(ms), now = new Date();
    const hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
    if (!withDate && d.toDateString() === now.toDateString()) return hm;
    const md = lang === 'zh' ? (d.getMonth() + 1) + '月' + d.getDate() + '日' : (d.getMonth() + 1) + '/' + d.getDate();
    const y = d.getFullYear() !== now.getFullYear() ? (lang === 'zh' ? d.getFullYear() + '年' : d.getFullYear() + '/') : '';
    return (lang === 'zh' ? y + md : (y ? d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) : md)) + ' ' + hm;
  }
  function fmtDay(v) {
    const d = new Date(toMs(v));
    return lang === 'zh' ? d.getFullYear() + '年' + (d.getMonth() + 1) + '月' + d.getDate() + '日'
      : d.toLocaleDateString('en', { year: 'numeric', month: 'short', day: 'numeric' });
  }
  function fmtDur(ms) {
    const m = Math.max(0, Math.round(Math.abs(ms) / 60000));
    if (m < 60) return m + (lang === 'zh' ? '分' : 'm');
    const hh = Math.floor(m / 60);
    if (hh < 48) return hh + (lang === 'zh' ? '小时' : 'h') + (m % 60 && hh < 10 ? ' ' + (m % 60) + (lang === 'zh' ? '分' : 'm') : '');
    return Math.floor(hh / 24) + (lang === 'zh' ? '天' : 'd');
  }
  function safeHref(u) {
    if (typeof u !== 'string' || !u) return '';
    if (/^data:image\/(png|jpe?g|gif|webp);base64,/i.test(u)) return u;
    try { const x = new URL(u, location.href); return (x.protocol === 'http:' || x.protocol === 'https:') ? x.href : ''; }
    catch (e) { return ''; }
  }
  function sameOrigin(u) { try { return new URL(u, location.href).origin === location.origin; } catch (e) { return false; } }
  function linkify(node, text) {
    const re = /\bhttps?:\/\/[^\s<>"'\u3000-\u303f\uff01-\uff0f]+/g;
    let last = 0, m;
    while ((m = re.exec(text))) {
      const u = m[0].replace(/[).,;:!?]+$/, '');
      if (m.index > last) node.appendChild(document.createTextNode(text.slice(last, m.index)));
      node.appendChild(h('a', { href: u, target: '_blank', rel: 'noopener noreferrer nofollow', text: u }));
      last = m.index + u.length; re.lastIndex = last;
    }
    if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
    return node;
  }
  function str(v) {
    if (v == null) return '';
    if (typeof v === 'object') { try { return Array.isArray(v) && v.every((x) => typeof x !== 'object') ? v.join(', ') : JSON.stringify(v); } catch (e) { return String(v); } }
    return String(v);
  }

  /* ------------------------------------------------------------------ API */
  const ROOT = (() => {
    const s = document.currentScript;
    try { return new URL('../', s && s.src ? s.src : location.href).href; } catch (e) { return '/'; }
  })();
  function apiUrl(p) { return new URL(p.replace(/^\//, ''), ROOT).href; }

  class ApiError extends Error {
    constructor(status, msg) { super(msg); this.status = status; }
  }
  async function api(method, path, body, fileType) { // fileType: body is a File sent as is
    const headers = { Accept: 'application/json' };
    if (S.token) headers.Authorization = 'Bearer ' + S.token;
    const opts = { method, headers, cache: 'no-store' };
    if (fileType !== undefined) { headers['Content-Type'] = fileType || 'application/octet-stream'; opts.body = body; }
    else if (body !== undefined) { headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
    let r;
    try { r = await fetch(apiUrl(path), opts); } catch (e) { throw new ApiError(0, t('err.network')); }
    let data = null;
    try { const txt = await r.text(); data = txt ? JSON.parse(txt) : null; } catch (e) { data = null; }
    if (r.status === 401 && path !== '/api/login') {
      logout(t('login.expired'));
      throw new ApiError(401, (data && data.error) || 'unauthorized');
    }
    if (!r.ok) throw new ApiError(r.status, (data && typeof data.error === 'string' && data.error) || t('err.generic', { status: r.status }));
    return data || {};
  }

  /* ------------------------------------------------------------------ state */
  const prefs = (() => { try { return JSON.parse(lsGet(PREFS_KEY)) || {}; } catch (e) { return {}; } })();
  const S = {
    token: ssGet(TOKEN_KEY) || '',
    me: null,
    convs: new Map(),
    selected: null,
    detail: null,            // {id, conv, messages: [], ids: Set}
    agents: [], roles: [], quickReplies: [], qrLoaded: false,
    view: prefs.view || 'all',
    filters: { search: '', status: prefs.status || 'open', role: prefs.role || '', channel: prefs.channel || '', sort: prefs.sort || 'recent' },
    drafts: new Map(),
    files: new Map(),       // conversation id -> files uploaded for the next reply
    ws: null, wsAttempt: 0, wsTimer: null, wsEverOpen: false, live: false,
    custOpen: window.innerWidth >= 1200,
    custHist: new Map(),     // customer id -> {at, list}
    listOrder: [],
    sending: false
  };
  function savePrefs() {
    lsSet(PREFS_KEY, JSON.stringify({ view: S.view, status: S.filters.status, role: S.filters.role, channel: S.filters.channel, sort: S.filters.sort }));
  }

  /* ------------------------------------------------------------------ labels */
  function roleName(id) {
    if (!id) return '';
    const r = S.roles.find((x) => x.id === id);
    if (r && r.name) return loc(r.name);
    return ROLE_NAMES[id] ? loc(ROLE_NAMES[id]) : String(id);
  }
  function agentName(id) {
    if (!id) return '';
    if (S.me && id === S.me.id) return (S.me.name || id) + ' (' + t('common.you') + ')';
    const a = S.agents.find((x) => x.id === id);
    return a ? (a.name || a.id) : String(id);
  }
  function kindName(kind) { return KIND_NAMES[kind] ? loc(KIND_NAMES[kind]) : String(kind || ''); }
  function channelLabel(c) {
    const kind = c.channel_kind || (c.customer && c.customer.channel_kind) || '';
    const name = c.channel || (c.customer && c.customer.channel) || '';
    if (kind && name && kind !== name) return kindName(kind) + ' · ' + name;
    return kindName(kind || name);
  }
  function custName(c) {
    const cu = (c && c.customer) || {};
    if (cu.name) return String(cu.name);
    if (cu.id) return t('cust.visitor') + ' ' + String(cu.id).replace(/^[a-z]{1,3}_/i, '').slice(0, 6);
    return (c && c.id) || '?';
  }
  function tierLabel(tier) { return tier ? (I18N.en['tier.' + tier] ? t('tier.' + tier) : String(tier)) : ''; }
  function isDispute(c) { return c.role === 'dispute' || c.priority === 'dispute'; }
  function isQueued(c) { return c.status !== 'closed' && (c.queued === true || !c.assignee); }
  function isMine(c) { return !!(S.me && c.assignee && c.assignee === S.me.id); }
  function updatedMs(c) {
    return toMs(c.updated_at) || (c.last_message && toMs(c.last_message.ts)) || toMs(c.created_at) || 0;
  }

  /* ------------------------------------------------------------------ i18n apply */
  function applyI18n() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.querySelectorAll('[data-i18n]').forEach((n) => { n.textContent = t(n.dataset.i18n); });
    document.querySelectorAll('[data-i18n-placeholder]').forEach((n) => { n.placeholder = t(n.dataset.i18nPlaceholder); });
    document.querySelectorAll('[data-i18n-title]').forEach((n) => { n.title = t(n.dataset.i18nTitle); });
    document.querySelectorAll('[data-i18n-aria]').forEach((n) => { n.setAttribute('aria-label', t(n.dataset.i18nAria)); });
    document.querySelectorAll('[data-i18n-title]').forEach((n) => { n.title = t(n.dataset.i18nTitle); });
    document.querySelectorAll('.lang-switch').forEach((n) => { n.textContent = lang === 'zh' ? 'EN' : '中文'; });
  }
  function setLang(l) {
    lang = l; lsSet(LANG_KEY, l);
    applyI18n();
    if (S.me) { renderFilters(); renderList(); renderConv(); renderCust(); setLive(S.live); }
  }

  /* ------------------------------------------------------------------ toasts / confirm */
  function toast(msg, kind) {
    const box = $('toasts');
    const n = h('div', { class: 'toast ' + (kind || 'info'), role: kind === 'error' ? 'alert' : 'status', text: msg });
    box.appendChild(n);
    setTimeout(() => { n.classList.add('out'); setTimeout(() => n.remove(), 300); }, kind === 'error' ? 6000 : 3000);
  }
  function confirmBox(text) {
    return new Promise((resolve) => {
      const m = $('confirm'); $('confirm-text').textContent = text; m.hidden = false;
      const ok = $('confirm-ok'), cancel = $('confirm-cancel');
      const done = (v) => { m.hidden = true; ok.removeEventListener('click', yes); cancel.removeEventListener('click', no); m.removeEventListener('keydown', key); resolve(v); };
      const yes = () => done(true), no = () => done(false);
      const key = (e) => { if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); no(); } };
      ok.addEventListener('click', yes); cancel.addEventListener('click', no); m.addEventListener('keydown', key);
      ok.focus();
    });
  }

  /* ------------------------------------------------------------------ login */
  function showLogin(msg) {
    $('app').hidden = true; $('login-view').hidden = false;
    const err = $('login-error'); err.textContent = msg || ''; err.hidden = !msg;
    document.title = 'kefu';
    setTimeout(() => { ($('login-agent').value ? $('login-password') : $('login-agent')).focus(); }, 0);
  }
  async function doLogin(e) {
    e.preventDefault();
    const agent = $('login-agent').value.trim(), password = $('login-password').value;
    const err = $('login-error');
    if (!agent || !password) { err.textContent = t('login.missing'); err.hidden = false; return; }
    const btn = $('login-submit'); btn.disabled = true;
    try {
      const res = await api('POST', '/api/login', { agent, password });
      if (!res.token) throw new ApiError(500, t('login.failed'));
      S.token = res.token; ssSet(TOKEN_KEY, S.token);
      $('login-password').value = '';
      S.me = res.agent ? Object.assign({}, res.agent) : null;
      try { S.me = Object.assign({}, S.me || {}, await api('GET', '/api/me')); } catch (e2) { if (!S.me) throw e2; }
      enterApp();
    } catch (ex) {
      err.textContent = ex.message || t('login.failed'); err.hidden = false;
    } finally { btn.disabled = false; }
  }
  function logout(msg) {
    const hadToken = !!S.token;
    if (hadToken && !msg) { // user action: drop the token server-side too (best effort)
      try { fetch(apiUrl('/api/logout'), { method: 'POST', headers: { Authorization: 'Bearer ' + S.token } }).catch(() => {}); } catch (e) { /* */ }
    }
    S.token = ''; ssSet(TOKEN_KEY, '');
    S.me = null; S.convs.clear(); S.detail = null; S.selected = null; S.custHist.clear();
    closeWs();
    if (hadToken || msg || $('app').hidden === false) showLogin(msg);
  }

  /* ------------------------------------------------------------------ app */
  async function enterApp() {
    $('login-view').hidden = true; $('app').hidden = false;
    $('me-name').textContent = S.me ? (S.me.name || S.me.id || '') : '';
    setPresenceUi(S.me && S.me.status);
    applyI18n();
    renderFilters(); renderList(); renderConv(); renderCust(); layoutClasses();
    const hashId = decodeURIComponent((location.hash.match(/^#c=(.+)$/) || [])[1] || '');
    await Promise.all([loadAgents(), loadRoles(), loadQuickReplies(), loadConversations()]);
    renderFilters(); renderList();
    if (hashId && !S.selected) selectConv(hashId, { keepHash: true });
    connectWs();
  }
  async function loadAgents() {
    try { const r = await api('GET', '/api/agents'); S.agents = Array.isArray(r.agents) ? r.agents : []; }
    catch (e) { if (e.status === 401) return; S.agents = []; }
  }
  async function loadRoles() {
    try { const r = await api('GET', '/api/roles'); S.roles = (Array.isArray(r.roles) ? r.roles : []).filter((x) => x && x.id); }
    catch (e) { S.roles = []; } // 404: derived from the agents' roles (roleList)
  }
  function roleList() { // server roles first, then any role an agent holds
    const out = S.roles.slice(), ids = new Set(out.map((r) => r.id));
    S.agents.forEach((a) => (a.roles || []).forEach((id) => {
      if (!ids.has(id)) { ids.add(id); out.push({ id, name: ROLE_NAMES[id] || { zh: id, en: id } }); }
    }));
    return out;
  }
  async function loadQuickReplies() {
    try { const r = await api('GET', '/api/quick_replies'); S.quickReplies = (Array.isArray(r.quick_replies) ? r.quick_replies : []).filter((q) => q && typeof q.text === 'string'); }
    catch (e) { S.quickReplies = []; }
    S.qrLoaded = true;
  }
  let loadSeq = 0;
  async function loadConversations() {
    const seq = ++loadSeq;
    try {
      const r = await api('GET', '/api/conversations?status=' + encodeURIComponent(S.filters.status));
      if (seq !== loadSeq) return;
      const list = Array.isArray(r.conversations) ? r.conversations : [];
      const next = new Map();
      list.forEach((c) => { if (c && c.id != null) next.set(String(c.id), normConv(c)); });
      if (S.selected && !next.has(S.selected) && S.convs.has(S.selected)) next.set(S.selected, S.convs.get(S.selected));
      if (S.selected && next.has(S.selected)) next.get(S.selected).unread = 0;
      S.convs = next;
      renderFilters(); renderList();
      if (S.detail && next.has(S.detail.id)) { S.detail.conv = Object.assign({}, S.detail.conv, next.get(S.detail.id)); renderConvHead(); renderCust(); }
    } catch (e) {
      if (e.status !== 401) toast(e.message, 'error');
    }
  }
  function normConv(c) {
    c = Object.assign({}, c);
    c.id = String(c.id);
    if (!c.customer || typeof c.customer !== 'object') c.customer = {};
    if (typeof c.unread !== 'number') c.unread = parseInt(c.unread, 10) || 0;
    return c;
  }
  function upsertConv(c) {
    if (!c || c.id == null) return null;
    const id = String(c.id);
    const old = S.convs.get(id);
    const merged = normConv(Object.assign({}, old || {}, c));
    if (c.messages) delete merged.messages;
    if (id === S.selected) merged.unread = 0;
    S.convs.set(id, merged);
    if (S.detail && S.detail.id === id) S.detail.conv = Object.assign({}, S.detail.conv, merged);
    return merged;
  }

  /* ------------------------------------------------------------------ filters & list */
  function renderFilters() {
    const roleSel = $('f-role'), chSel = $('f-channel');
    const roleIds = new Set(roleList().map((r) => r.id));
    S.convs.forEach((c) => { if (c.role) roleIds.add(c.role); });
    if (S.filters.role) roleIds.add(S.filters.role);
    clear(roleSel).appendChild(h('option', { value: '', text: t('inbox.allRoles') }));
    roleIds.forEach((id) => roleSel.appendChild(h('option', { value: id, text: roleName(id) })));
    roleSel.value = S.filters.role;
    const chans = new Map();
    S.convs.forEach((c) => { if (c.channel) chans.set(c.channel, channelLabel(c)); });
    if (S.filters.channel && !chans.has(S.filters.channel)) chans.set(S.filters.channel, S.filters.channel);
    clear(chSel).appendChild(h('option', { value: '', text: t('inbox.allChannels') }));
    [...chans.keys()].sort().forEach((k) => chSel.appendChild(h('option', { value: k, text: chans.get(k) })));
    chSel.value = S.filters.channel;
    $('f-status').value = S.filters.status;
    $('f-sort').value = S.filters.sort;
    document.querySelectorAll('.tab').forEach((b) => {
      const on = b.dataset.view === S.view;
      b.classList.toggle('active', on); b.setAttribute('aria-selected', on ? 'true' : 'false');
    });
  }
  function baseFiltered() {
    const f = S.filters, q = f.search.trim().toLowerCase();
    const out = [];
    S.convs.forEach((c) => {
      if (f.status !== 'all' && (c.status || 'open') !== f.status) return;
      if (f.role && c.role !== f.role) return;
      if (f.channel && c.channel !== f.channel) return;
      if (q) {
        const cu = c.customer || {};
        const hay = [c.id, cu.id, cu.name, c.channel, c.last_message && c.last_message.text].map((x) => String(x || '').toLowerCase()).join('\n');
        if (!hay.includes(q)) return;
      }
      out.push(c);
    });
    return out;
  }
  function visibleConvs() {
    let list = baseFiltered();
    if (S.view === 'mine') list = list.filter(isMine);
    else if (S.view === 'queued') list = list.filter(isQueued);
    if (S.filters.sort === 'sla') {
      list.sort((a, b) => {
        const sa = a.status !== 'closed' && toMs(a.sla_due) ? toMs(a.sla_due) : Infinity;
        const sb = b.status !== 'closed' && toMs(b.sla_due) ? toMs(b.sla_due) : Infinity;
        return sa !== sb ? sa - sb : updatedMs(b) - updatedMs(a);
      });
    } else list.sort((a, b) => updatedMs(b) - updatedMs(a));
    return list;
  }
  function badgesFor(c) {
    const out = [];
    const cu = c.customer || {};
    if (String(cu.tier || '').toLowerCase() === 'vip') out.push(h('span', { class: 'badge vip', text: t('badge.vip') }));
    if (isDispute(c)) out.push(h('span', { class: 'badge dispute', text: t('badge.dispute') }));
    else if (c.priority === 'urgent') out.push(h('span', { class: 'badge urgent', text: t('badge.urgent') }));
    const due = toMs(c.sla_due);
    if (due && c.status !== 'closed') {
      const left = due - Date.now();
      out.push(left < 0
        ? h('span', { class: 'badge sla overdue', title: fmtTime(due, true), text: t('badge.overdue', { t: fmtDur(left) }) })
        : h('span', { class: 'badge sla' + (left < 15 * 60000 ? ' soon' : ''), title: fmtTime(due, true), text: t('badge.sla', { t: fmtDur(left) }) }));
    }
    if (c.status === 'closed') out.push(h('span', { class: 'badge closed', text: t('badge.closed') }));
    return out;
  }
  let listQueued = false;
  function renderListSoon() { if (listQueued) return; listQueued = true; requestAnimationFrame(() => { listQueued = false; renderList(); }); }
  function renderList() {
    const ul = $('conv-list');
    const list = visibleConvs();
    S.listOrder = list.map((c) => c.id);
    const scroll = ul.scrollTop;
    clear(ul);
    list.forEach((c) => {
      const cu = c.customer || {};
      const lm = c.last_message;
      let preview = '';
      if (lm) {
        const k = lm.sender && lm.sender.kind;
        preview = (k && k !== 'customer' ? ((lm.sender.name || t('kind.' + k)) + ': ') : '') + str(lm.text || (lm.attachments && lm.attachments.length ? '📎 ' + (lm.attachments[0].name || '') : ''));
      }
      const owner = c.assignee ? agentName(c.assignee) : (c.status === 'closed' ? '' : t('badge.queued'));
      const li = h('li', {
        class: 'conv-item' + (c.id === S.selected ? ' selected' : '') + (c.unread ? ' has-unread' : '') + (isDispute(c) ? ' is-dispute' : ''),
        role: 'option', 'aria-selected': c.id === S.selected ? 'true' : 'false', tabindex: '-1', dataset: { id: c.id }
      },
      h('div', { class: 'ci-top' },
        h('span', { class: 'ci-name', text: custName(c) }),
        h('span', { class: 'ci-badges' }, badgesFor(c)),
        h('span', { class: 'ci-time', text: fmtTime(updatedMs(c)) })),
      h('div', { class: 'ci-mid' },
        h('span', { class: 'chan chan-' + cssToken(c.channel_kind || c.channel), text: channelLabel(c) }),
        c.role ? h('span', { class: 'role-chip', text: roleName(c.role) }) : null,
        owner ? h('span', { class: 'ci-owner' + (c.assignee ? '' : ' queued'), text: c.assignee ? '→ ' + owner : owner }) : null),
      h('div', { class: 'ci-last' },
        h('span', { class: 'ci-preview', text: preview }),
        c.unread && c.id !== S.selected ? h('span', { class: 'unread', 'aria-label': 'unread', text: c.unread > 99 ? '99+' : String(c.unread) }) : null));
      ul.appendChild(li);
    });
    ul.scrollTop = scroll;
    $('list-empty').hidden = list.length > 0;
    // tab counts (respect status/role/channel/search filters)
    const base = baseFiltered();
    const counts = { all: base.length, mine: base.filter(isMine).length, queued: base.filter(isQueued).length };
    document.querySelectorAll('[data-count]').forEach((n) => { n.textContent = counts[n.dataset.count] ? String(counts[n.dataset.count]) : ''; });
    // window title
    let unread = 0; S.convs.forEach((c) => { if (c.status !== 'closed' && c.id !== S.selected) unread += c.unread || 0; });
    document.title = unread ? t('title.unread', { n: unread }) : 'kefu';
  }

  /* ------------------------------------------------------------------ conversation */
  let detailSeq = 0;
  async function selectConv(id, opt) {
    opt = opt || {};
    id = String(id);
    if (S.selected && S.detail && S.selected !== id) S.drafts.set(S.selected, $('reply-text').value);
    const changed = S.selected !== id;
    S.selected = id;
    const c = S.convs.get(id);
    if (c) c.unread = 0;
    if (!opt.keepHash) { try { history.replaceState(null, '', '#c=' + encodeURIComponent(id)); } catch (e) { /* */ } }
    if (changed) {
      S.detail = { id, conv: c ? Object.assign({}, c) : { id, customer: {} }, messages: [], ids: new Set(), loading: true };
      $('reply-text').value = S.drafts.get(id) || '';
      renderReplyFiles();
      hideQr(); hideTransfer();
    }
    renderList(); renderConv(); renderCust();
    const li = document.querySelector('.conv-item.selected');
    if (li) li.scrollIntoView({ block: 'nearest' });
    await loadDetail(id); // focus stays where it was, so j / k keep working
  }
  async function loadDetail(id, opt) {
    opt = opt || {};
    const seq = ++detailSeq;
    try {
      const r = await api('GET', '/api/conversations/' + encodeURIComponent(id));
      if (S.selected !== id || (seq !== detailSeq && !opt.quiet)) return;
      const msgs = Array.isArray(r.messages) ? r.messages : [];
      const conv = upsertConv(Object.assign({}, r, { unread: 0 })) || normConv(r);
      const d = S.detail && S.detail.id === id ? S.detail : { id };
      d.conv = Object.assign({}, conv); d.loading = false; d.error = null;
      // keep messages that arrived live but are not (yet) in the fetched list
      const fetchedIds = new Set(msgs.map((m) => String(m.id)));
      const extra = (d.messages || []).filter((m) => m.id != null && !fetchedIds.has(String(m.id)) && toMs(m.ts) > (msgs.length ? toMs(msgs[msgs.length - 1].ts) : 0));
      d.messages = dedupe(msgs.concat(extra));
      d.ids = new Set(d.messages.map((m) => String(m.id)));
      S.detail = d;
      renderList(); renderConv(); renderCust();
      loadCustomerHistory(conv);
    } catch (e) {
      if (e.status === 401 || S.selected !== id) return;
      if (S.detail && S.detail.id === id) { S.detail.loading = false; S.detail.error = e.message; renderConv(); }
    }
  }
  function dedupe(list) {
    const seen = new Set(), out = [];
    list.forEach((m) => { const k = m.id != null ? String(m.id) : null; if (k && seen.has(k)) return; if (k) seen.add(k); out.push(m); });
    out.sort((a, b) => toMs(a.ts) - toMs(b.ts));
    return out;
  }
  function renderConv() {
    const d = S.detail;
    $('conv-empty').hidden = !!d;
    $('conv-pane').hidden = !d;
    layoutClasses();
    if (!d) return;
    renderConvHead();
    renderMessages();
  }
  function renderConvHead() {
    const d = S.detail; if (!d) return;
    const c = d.conv || {};
    const cu = c.customer || {};
    $('conv-name').textContent = custName(c);
    const sub = clear($('conv-sub'));
    sub.appendChild(h('span', { class: 'chan chan-' + cssToken(c.channel_kind || c.channel), text: channelLabel(c) }));
    if (c.role) sub.appendChild(h('span', { class: 'role-chip', text: roleName(c.role) }));
    sub.appendChild(h('span', { class: 'status-chip ' + (c.status === 'closed' ? 'closed' : 'open'), text: t(c.status === 'closed' ? 'status.closed' : 'status.open') }));
    sub.appendChild(h('span', { class: 'owner', text: c.assignee ? t('conv.assignedTo', { name: agentName(c.assignee) }) : (c.status === 'closed' ? '' : t('conv.queued')) }));
    badgesFor(c).forEach((b) => { if (!b.classList.contains('closed')) sub.appendChild(b); });
    const closed = c.status === 'closed';
    $('act-claim').disabled = closed || isMine(c);
    $('act-transfer').disabled = closed;
    $('act-close').disabled = closed;
    const banner = $('conv-banner');
    let msg = '', kind = 'info';
    if (d.error) { msg = t('conv.loadFailed', { error: d.error }); kind = 'error'; }
    else if (closed) msg = t('conv.closedBanner');
    else if (c.assignee && !isMine(c)) { msg = t('conv.ownedByOther', { name: agentName(c.assignee) }); kind = 'warn'; }
    banner.textContent = msg; banner.hidden = !msg; banner.className = 'banner ' + kind;
    $('act-info').classList.toggle('active', S.custOpen);
    $('act-info').setAttribute('aria-pressed', S.custOpen ? 'true' : 'false');
  }
  function msgDir(m) {
    const k = m.sender && m.sender.kind;
    if (k === 'system') return 'sys';
    if (m.direction === 'in' || m.direction === 'out') return m.direction;
    return k === 'customer' ? 'in' : 'out';
  }
  function msgNode(m, conv) {
    const s = m.sender || {};
    const dir = msgDir(m);
    const kind = s.kind || (dir === 'in' ? 'customer' : 'agent');
    const name = s.name || (kind === 'customer' ? custName(conv) : (kind === 'agent' && s.id ? agentName(s.id) : t('kind.' + kind)));
    const body = h('div', { class: 'm-body' });
    linkify(body, str(m.text));
    (Array.isArray(m.attachments) ? m.attachments : []).forEach((a) => {
      if (!a) return;
      const href = safeHref(a.url);
      const label = a.name || a.url || 'file';
      if (href && /^image\//.test(a.type || '') && (sameOrigin(href) || href.startsWith('data:'))) {
        body.appendChild(h('a', { class: 'm-img', href, target: '_blank', rel: 'noopener noreferrer' }, h('img', { src: href, alt: label, loading: 'lazy' })));
      } else if (href) {
        body.appendChild(h('a', { class: 'm-file', href, target: '_blank', rel: 'noopener noreferrer', text: '📎 ' + label }));
      } else body.appendChild(h('span', { class: 'm-file', text: '📎 ' + label }));
    });
    const isMe = kind === 'agent' && S.me && s.id === S.me.id;
    return h('div', { class: 'msg ' + dir + ' k-' + cssToken(kind) + (isMe ? ' mine' : ''), dataset: { id: m.id != null ? String(m.id) : '' } },
      dir === 'sys' ? null : h('div', { class: 'm-head' },
        h('span', { class: 'm-name', text: name }),
        kind !== 'customer' && kind !== 'agent' ? h('span', { class: 'm-kind', text: t('kind.' + kind) }) : null,
        h('span', { class: 'm-time', title: fmtTime(m.ts, true), text: fmtTime(m.ts) })),
      body,
      dir === 'sys' ? h('div', { class: 'm-time', text: fmtTime(m.ts) }) : null);
  }
  function renderMessages() {
    const d = S.detail, box = $('msg-list');
    clear(box);
    if (d.loading && !d.messages.length) { box.appendChild(h('div', { class: 'empty', text: t('conv.loading') })); return; }
    if (!d.messages.length) { box.appendChild(h('div', { class: 'empty', text: t('conv.noMessages') })); return; }
    let lastDay = '';
    d.messages.forEach((m) => {
      const day = new Date(toMs(m.ts)).toDateString();
      if (toMs(m.ts) && day !== lastDay) { box.appendChild(h('div', { class: 'day-sep' }, h('span', { text: fmtDay(m.ts) }))); lastDay = day; }
      box.appendChild(msgNode(m, d.conv));
    });
    d.lastDay = lastDay;
    box.scrollTop = box.scrollHeight;
  }
  function appendMessage(m) {
    const d = S.detail; if (!d) return;
    const id = m.id != null ? String(m.id) : null;
    if (id && d.ids.has(id)) return;
    if (id) d.ids.add(id);
    const box = $('msg-list');
    const near = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
    const last = d.messages[d.messages.length - 1];
    d.messages.push(m);
    if (last && toMs(m.ts) < toMs(last.ts)) { d.messages.sort((a, b) => toMs(a.ts) - toMs(b.ts)); renderMessages(); return; }
    if (d.messages.length === 1) { renderMessages(); return; }
    const day = new Date(toMs(m.ts)).toDateString();
    if (toMs(m.ts) && day !== d.lastDay) { box.appendChild(h('div', { class: 'day-sep' }, h('span', { text: fmtDay(m.ts) }))); d.lastDay = day; }
    box.appendChild(msgNode(m, d.conv));
    if (near || msgDir(m) === 'out') box.scrollTop = box.scrollHeight;
  }

  /* ------------------------------------------------------------------ actions */
  async function uploadFiles(list) {
    const d = S.detail; if (!d || !list || !list.length) return;
    const id = d.id, btn = $('reply-attach');
    btn.disabled = true; btn.title = t('reply.uploading');
    try {
      for (const f of Array.from(list)) {
        try {
          const a = await api('POST', '/api/attachments?name=' + encodeURIComponent(f.name || ''), f, f.type);
          S.files.set(id, (S.files.get(id) || []).concat([a]));
          if (S.detail && S.detail.id === id) renderReplyFiles();
        } catch (e) { if (e.status !== 401) toast((f.name ? f.name + ': ' : '') + e.message, 'error'); }
      }
    } finally { btn.disabled = false; btn.title = t('reply.attach'); }
  }
  function renderReplyFiles() {
    const box = $('reply-files'), list = (S.detail && S.files.get(S.detail.id)) || [];
    clear(box); box.hidden = !list.length;
    list.forEach((a) => {
      const rm = h('button', { type: 'button', title: t('reply.remove'), 'aria-label': t('reply.remove') + ' ' + (a.name || ''), text: '×' });
      rm.addEventListener('click', () => { S.files.set(S.detail.id, (S.files.get(S.detail.id) || []).filter((x) => x !== a)); renderReplyFiles(); });
      box.appendChild(h('span', { class: 'file-chip', title: a.name || '' }, h('span', { class: 'fname', text: '📎 ' + (a.name || 'file') }), rm));
    });
  }
  async function sendReply() {
    const d = S.detail; if (!d || S.sending) return;
    const ta = $('reply-text');
    const text = ta.value.replace(/\s+$/, '');
    const files = S.files.get(d.id) || [];
    if (!text.trim() && !files.length) return;
    S.sending = true;
    const btn = $('reply-send'); btn.disabled = true; btn.textContent = t('reply.sending');
    const id = d.id;
    try {
      const m = await api('POST', '/api/conversations/' + encodeURIComponent(id) + '/messages', { text, attachments: files.map((a) => a.id) });
      S.files.delete(id);
      if (S.detail && S.detail.id === id) {
        ta.value = ''; S.drafts.delete(id); hideQr(); renderReplyFiles();
        if (m && m.id != null) appendMessage(m);
      }
      const c = S.convs.get(id);
      if (c && m && m.id != null) { c.last_message = m; c.updated_at = m.ts || Date.now() / 1000; renderListSoon(); }
    } catch (e) {
      if (e.status === 409) { toast(e.message && e.message !== t('err.generic', { status: 409 }) ? e.message : t('reply.conflict'), 'error'); loadDetail(id, { quiet: true }); }
      else if (e.status !== 401) toast(e.message, 'error');
    } finally {
      S.sending = false; btn.disabled = false; btn.textContent = t('reply.send');
    }
  }
  async function convAction(action, body, okMsg) {
    const d = S.detail; if (!d) return;
    const id = d.id;
    try {
      const r = await api('POST', '/api/conversations/' + encodeURIComponent(id) + '/' + action, body);
      if (r && r.id != null && String(r.id) === id) upsertConv(r);
      else if (r && r.conversation && String(r.conversation.id) === id) upsertConv(r.conversation);
      toast(okMsg, 'success');
      renderList(); renderConvHead(); renderCust();
      loadDetail(id, { quiet: true });
    } catch (e) {
      if (e.status !== 401) { toast(e.message, 'error'); loadDetail(id, { quiet: true }); }
    }
  }
  function claim() { if (S.detail && !$('act-claim').disabled) convAction('claim', undefined, t('act.claimed')); }
  async function closeConv() {
    if (!S.detail || $('act-close').disabled) return;
    if (await confirmBox(t('confirm.close'))) convAction('close', undefined, t('act.closed'));
  }
  function showTransfer() {
    if (!S.detail || $('act-transfer').disabled) return;
    const pop = $('transfer-pop');
    const rs = clear($('transfer-role')), as = clear($('transfer-agent'));
    rs.appendChild(h('option', { value: '', text: '—' }));
    roleList().forEach((r) => rs.appendChild(h('option', { value: r.id, text: roleName(r.id) })));
    as.appendChild(h('option', { value: '', text: '—' }));
    S.agents.forEach((a) => {
      if (S.me && a.id === S.me.id) return;
      const st = a.status ? ' · ' + t('presence.' + a.status) : '';
      as.appendChild(h('option', { value: a.id, text: (a.name || a.id) + st }));
    });
    pop.hidden = false; $('act-transfer').setAttribute('aria-expanded', 'true');
    rs.focus();
  }
  function hideTransfer() { $('transfer-pop').hidden = true; $('act-transfer').setAttribute('aria-expanded', 'false'); }
  function doTransfer() {
    const role = $('transfer-role').value, agent = $('transfer-agent').value;
    if (!role && !agent) { toast(t('transfer.pick'), 'error'); return; }
    hideTransfer();
    convAction('transfer', agent ? { agent } : { role }, t('act.transferred'));
  }

  /* ------------------------------------------------------------------ quick replies */
  const QR = { open: false, items: [], idx: 0, start: 0, end: 0, dismissedAt: -1 };
  function qrContext() {
    const ta = $('reply-text');
    const pos = ta.selectionStart, before = ta.value.slice(0, pos);
    const m = /(^|\s)\/([^\s/]*)$/.exec(before);
    if (!m) return null;
    return { query: m[2], start: pos - m[2].length - 1, end: pos };
  }
  function updateQr() {
    const ctx = qrContext();
    if (!ctx || ctx.start === QR.dismissedAt) { hideQr(); return; }
    const q = ctx.query.toLowerCase();
    QR.items = S.quickReplies.filter((r) => !q || String(r.name || '').toLowerCase().includes(q) || r.text.toLowerCase().includes(q)).slice(0, 50);
    QR.start = ctx.start; QR.end = ctx.end;
    if (!QR.open) QR.idx = 0;
    QR.idx = Math.min(QR.idx, Math.max(0, QR.items.length - 1));
    QR.open = true;
    renderQr();
  }
  function renderQr() {
    const pop = clear($('qr-pop'));
    pop.hidden = false;
    if (!QR.items.length) { pop.appendChild(h('div', { class: 'qr-empty', text: S.quickReplies.length ? t('qr.none') : t('qr.empty') })); return; }
    QR.items.forEach((r, i) => {
      const n = h('div', { class: 'qr-item' + (i === QR.idx ? ' active' : ''), role: 'option', 'aria-selected': i === QR.idx ? 'true' : 'false', dataset: { idx: String(i) } },
        h('span', { class: 'qr-name', text: r.name || '' }), h('span', { class: 'qr-text', text: r.text }));
      n.addEventListener('mousedown', (e) => { e.preventDefault(); QR.idx = i; insertQr(); });
      pop.appendChild(n);
    });
    const act = pop.querySelector('.qr-item.active'); if (act) act.scrollIntoView({ block: 'nearest' });
  }
  function hideQr() { QR.open = false; const p = $('qr-pop'); if (p) { p.hidden = true; clear(p); } }
  function expandTemplate(text) {
    const c = (S.detail && S.detail.conv) || {};
    const cu = c.customer || {}, attrs = (cu.attributes && typeof cu.attributes === 'object') ? cu.attributes : {};
    const vars = Object.assign({}, attrs, {
      name: cu.name, customer: cu.name, customer_name: cu.name, customer_id: cu.id,
      agent: S.me && S.me.name, agent_name: S.me && S.me.name, conversation_id: c.id
    });
    return text.replace(/\{(\w+)\}/g, (m, k) => (vars[k] != null && typeof vars[k] !== 'object' && vars[k] !== '' ? String(vars[k]) : m));
  }
  function insertQr() {
    const r = QR.items[QR.idx]; if (!r) return;
    const ta = $('reply-text');
    const text = expandTemplate(r.text);
    ta.value = ta.value.slice(0, QR.start) + text + ta.value.slice(QR.end);
    hideQr();
    ta.focus();
    const from = QR.start, rest = /\{\w+\}/.exec(text);
    if (rest) ta.setSelectionRange(from + rest.index, from + rest.index + rest[0].length);
    else ta.setSelectionRange(from + text.length, from + text.length);
  }

  /* ------------------------------------------------------------------ customer panel */
  async function loadCustomerHistory(conv) {
    const cu = conv && conv.customer; if (!cu || !cu.id) return;
    const key = String(cu.id);
    const cached = S.custHist.get(key);
    if (cached && Date.now() - cached.at < 30000) return;
    S.custHist.set(key, { at: Date.now(), list: cached ? cached.list : null });
    try {
      const r = await api('GET', '/api/conversations?status=all&customer=' + encodeURIComponent(key));
      const list = (Array.isArray(r.conversations) ? r.conversations : []).filter((c) => c && c.customer && String(c.customer.id) === key);
      S.custHist.set(key, { at: Date.now(), list });
      if (S.detail && S.detail.conv && S.detail.conv.customer && String(S.detail.conv.customer.id) === key) renderCust();
    } catch (e) { /* fall back to what the inbox holds */ }
  }
  function kv(label, value) {
    if (value == null || value === '') return null;
    return h('div', { class: 'kv' }, h('dt', { text: label }), h('dd', null, value instanceof Node ? value : String(value)));
  }
  function renderCust() {
    const body = clear($('cust-body'));
    const d = S.detail;
    if (!d) { body.appendChild(h('div', { class: 'empty', text: t('cust.none') })); return; }
    const c = d.conv || {}, cu = c.customer || {};
    const tier = String(cu.tier || '');
    body.appendChild(h('div', { class: 'cust-name' },
      h('span', { text: custName(c) }),
      tier ? h('span', { class: 'badge tier-' + cssToken(tier) + (tier.toLowerCase() === 'vip' ? ' vip' : ''), text: tierLabel(tier) }) : null));
    body.appendChild(h('dl', { class: 'kvs' },
      kv(t('cust.id'), cu.id),
      kv(t('cust.channel'), h('span', { class: 'chan chan-' + cssToken(c.channel_kind || cu.channel || c.channel), text: channelLabel(c) })),
      kv(t('cust.tier'), tierLabel(tier)),
      kv(t('cust.language'), cu.language),
      kv(t('cust.role'), roleName(c.role)),
      kv(t('cust.priority'), c.priority ? (I18N.en['prio.' + c.priority] ? t('prio.' + c.priority) : c.priority) : ''),
      kv(t('cust.assignee'), c.assignee ? agentName(c.assignee) : ''),
      kv(t('cust.sla'), toMs(c.sla_due) ? fmtTime(c.sla_due, true) : ''),
      kv(t('cust.conv'), c.id)));
    const attrs = cu.attributes && typeof cu.attributes === 'object' ? cu.attributes : {};
    const keys = Object.keys(attrs);
    if (keys.length) {
      body.appendChild(h('h4', { text: t('cust.attributes') }));
      body.appendChild(h('dl', { class: 'kvs' }, keys.map((k) => kv(k, str(attrs[k])))));
    }
    const orders = Array.isArray(cu.orders) ? cu.orders : Array.isArray(c.orders) ? c.orders : null;
    if (orders && orders.length) {
      body.appendChild(h('h4', { text: t('cust.orders') }));
      body.appendChild(h('ul', { class: 'orders' }, orders.slice(0, 10).map((o) => {
        if (!o || typeof o !== 'object') return h('li', { text: str(o) });
        const no = o.order_no || o.order_id || o.id || o.no || '';
        const title = o.product || o.title || o.goods || o.item || '';
        const amount = o.amount != null ? o.amount : o.total != null ? o.total : o.price;
        const time = o.created_at || o.time || o.ts;
        return h('li', null,
          h('div', { class: 'o-top' }, h('span', { class: 'o-no', text: str(no) }), o.status ? h('span', { class: 'o-status s-' + cssToken(o.status), text: str(o.status) }) : null),
          title ? h('div', { class: 'o-title', text: str(title) }) : null,
          h('div', { class: 'o-meta', text: [amount != null ? str(amount) + (o.currency ? ' ' + str(o.currency) : '') : '', time ? fmtTime(time, true) : ''].filter(Boolean).join(' · ') }));
      })));
    }
    body.appendChild(h('h4', { text: t('cust.history') }));
    const key = cu.id != null ? String(cu.id) : null;
    const fromServer = key && S.custHist.get(key) && S.custHist.get(key).list;
    const pool = new Map();
    (fromServer || []).forEach((x) => pool.set(String(x.id), x));
    if (key) S.convs.forEach((x) => { if (x.customer && String(x.customer.id) === key) pool.set(x.id, Object.assign({}, pool.get(x.id) || {}, x)); });
    pool.delete(String(c.id));
    const hist = [...pool.values()].sort((a, b) => updatedMs(b) - updatedMs(a));
    if (!hist.length) body.appendChild(h('div', { class: 'muted', text: t('cust.noHistory') }));
    else {
      body.appendChild(h('ul', { class: 'hist' }, hist.slice(0, 20).map((x) => h('li', null,
        h('button', { type: 'button', class: 'hist-item', dataset: { id: String(x.id) }, onclick: () => { if (!S.convs.has(String(x.id))) upsertConv(x); selectConv(String(x.id)); } },
          h('span', { class: 'h-top' },
            h('span', { class: 'h-time', text: fmtTime(toMs(x.created_at) || updatedMs(x), true) }),
            h('span', { class: 'status-chip ' + (x.status === 'closed' ? 'closed' : 'open'), text: t(x.status === 'closed' ? 'status.closed' : 'status.open') })),
          h('span', { class: 'h-meta', text: [channelLabel(x), roleName(x.role)].filter(Boolean).join(' · ') }),
          x.last_message ? h('span', { class: 'h-last', text: str(x.last_message.text) }) : null)))));
    }
  }

  /* ------------------------------------------------------------------ presence */
  function setPresenceUi(st) {
    st = ['online', 'away', 'offline'].includes(st) ? st : 'offline';
    $('presence-select').value = st;
    $('presence-dot').className = 'pdot ' + st;
  }
  async function changePresence() {
    const sel = $('presence-select'), st = sel.value;
    const prev = S.me && S.me.status;
    setPresenceUi(st);
    try {
      await api('PUT', '/api/presence', { status: st });
      if (S.me) S.me.status = st;
    } catch (e) {
      setPresenceUi(prev);
      if (e.status !== 401) toast(e.message, 'error');
    }
  }

  /* ------------------------------------------------------------------ live events */
  function setLive(on) {
    S.live = on;
    const box = $('conn-state');
    box.classList.toggle('live', on);
    box.querySelector('.conn-text').textContent = on ? t('conn.live') : (S.wsEverOpen ? t('conn.reconnecting') : t('conn.connecting'));
  }
  function closeWs() {
    if (S.wsTimer) { clearTimeout(S.wsTimer); S.wsTimer = null; }
    const ws = S.ws; S.ws = null; S.wsEverOpen = false; S.wsAttempt = 0;
    if (ws) { try { ws.close(); } catch (e) { /* */ } }
  }
  function connectWs() {
    if (!S.token || S.ws) return;
    setLive(false);
    const u = new URL('api/events', ROOT);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.searchParams.set('token', S.token);
    let ws;
    try { ws = new WebSocket(u.href); } catch (e) { scheduleWs(); return; }
    S.ws = ws;
    ws.onopen = () => {
      if (S.ws !== ws) return;
      const again = S.wsEverOpen;
      S.wsAttempt = 0; S.wsEverOpen = true; setLive(true);
      if (again) { loadConversations(); if (S.selected) loadDetail(S.selected, { quiet: true }); }
      else loadConversations(); // close the gap between the first list fetch and the socket
    };
    ws.onmessage = (ev) => {
      if (S.ws !== ws) return;
      let f; try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f && typeof f === 'object') handleEvent(f);
    };
    ws.onclose = () => {
      if (S.ws !== ws) return;
      S.ws = null; setLive(false); scheduleWs();
    };
    ws.onerror = () => { /* onclose follows */ };
  }
  function scheduleWs() {
    if (S.wsTimer || !S.token) return;
    const base = Math.min(10000, 500 * Math.pow(2, S.wsAttempt++));
    const delay = Math.min(10000, base * (0.75 + Math.random() * 0.5));
    S.wsTimer = setTimeout(async () => {
      S.wsTimer = null;
      if (!S.token) return;
      try { await api('GET', '/api/me'); } catch (e) { if (e.status === 401 || !S.token) return; }
      connectWs();
    }, delay);
  }
  const pendingFetch = new Set();
  function fetchConvSoon(id) {
    if (pendingFetch.has(id)) return;
    pendingFetch.add(id);
    setTimeout(async () => {
      try { const r = await api('GET', '/api/conversations/' + encodeURIComponent(id)); const c = upsertConv(r); if (c && id !== S.selected) c.unread = Math.max(c.unread || 0, 1); renderFilters(); renderList(); }
      catch (e) { /* ignore */ } finally { pendingFetch.delete(id); }
    }, 150);
  }
  function handleEvent(f) {
    if (f.type === 'message' && f.message) {
      const id = String(f.conversation_id || f.message.conversation_id || '');
      if (!id) return;
      const m = f.message;
      const c = S.convs.get(id);
      if (c) {
        const lm = c.last_message;
        if (!lm || (toMs(m.ts) >= toMs(lm.ts) && (m.sender || {}).kind !== 'bot')) c.last_message = m; // as the server keeps it
        if (toMs(m.ts) > toMs(c.updated_at)) c.updated_at = m.ts;
        const dup = S.detail && S.detail.id === id && m.id != null && S.detail.ids.has(String(m.id));
        if (id !== S.selected && msgDir(m) === 'in' && !dup) c.unread = (c.unread || 0) + 1;
      } else fetchConvSoon(id);
      if (S.detail && S.detail.id === id) appendMessage(m);
      renderListSoon();
    } else if (f.type === 'conversation' && f.conversation) {
      const c = upsertConv(f.conversation);
      if (!c) return;
      renderListSoon();
      if (c.channel && ![...$('f-channel').options].some((o) => o.value === c.channel)) renderFilters();
      if (S.detail && S.detail.id === c.id) { renderConvHead(); renderCust(); }
    } else if ((f.type === 'presence' || f.type === 'agent') && (f.agent || f.agent_id)) {
      const aid = typeof f.agent === 'object' ? f.agent.id : (f.agent_id || f.agent);
      const st = f.status || (typeof f.agent === 'object' && f.agent.status);
      const a = S.agents.find((x) => x.id === aid);
      if (a && st) a.status = st;
      if (S.me && aid === S.me.id && st) { S.me.status = st; setPresenceUi(st); }
    }
  }

  /* ------------------------------------------------------------------ layout */
  function layoutClasses() {
    const L = $('layout');
    L.classList.toggle('show-conv', !!S.detail);
    L.classList.toggle('cust-open', S.custOpen);
    document.body.classList.toggle('has-conv', !!S.detail);
  }
  function toggleCust(force) {
    S.custOpen = typeof force === 'boolean' ? force : !S.custOpen;
    layoutClasses(); renderConvHead();
  }
  function backToList() {
    if (S.selected) S.drafts.set(S.selected, $('reply-text').value);
    S.detail = null; S.selected = null;
    try { history.replaceState(null, '', location.pathname + location.search); } catch (e) { /* */ }
    renderConv(); renderCust(); renderList();
  }

  /* ------------------------------------------------------------------ keyboard */
  function isTyping(el) {
    return el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
  }
  function moveSel(delta) {
    const order = S.listOrder; if (!order.length) return;
    let i = order.indexOf(S.selected);
    i = i < 0 ? (delta > 0 ? 0 : order.length - 1) : Math.max(0, Math.min(order.length - 1, i + delta));
    if (order[i] !== S.selected) selectConv(order[i]);
  }
  function toggleHelp(force) {
    const pop = $('help-pop');
    const show = typeof force === 'boolean' ? force : pop.hidden;
    pop.hidden = !show; $('help-btn').setAttribute('aria-expanded', show ? 'true' : 'false');
  }
  function onGlobalKey(e) {
    if (!$('confirm').hidden) return; // the modal handles its own keys
    if (e.key === 'Escape') {
      if (QR.open) return;
      if (!$('help-pop').hidden) { toggleHelp(false); return; }
      if (!$('transfer-pop').hidden) { hideTransfer(); return; }
      if (isTyping(document.activeElement)) { document.activeElement.blur(); return; }
      if (S.custOpen && window.innerWidth < 1200) { toggleCust(false); return; }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target) || $('app').hidden) return;
    switch (e.key) {
      case 'j': case 'ArrowDown': if (e.key === 'ArrowDown' && !e.target.closest('.conv-list')) return; e.preventDefault(); moveSel(1); break;
      case 'k': case 'ArrowUp': if (e.key === 'ArrowUp' && !e.target.closest('.conv-list')) return; e.preventDefault(); moveSel(-1); break;
      case 'c': e.preventDefault(); claim(); break;
      case 'e': e.preventDefault(); closeConv(); break;
      case 't': e.preventDefault(); showTransfer(); break;
      case 'r': if (S.detail) { e.preventDefault(); $('reply-text').focus(); } break;
      case 'i': if (S.detail) { e.preventDefault(); toggleCust(); } break;
      case '/':
        if (S.detail) {
          e.preventDefault();
          const ta = $('reply-text'); ta.focus();
          const p = ta.value.length; const pre = p && !/\s$/.test(ta.value) ? ' /' : '/';
          ta.value += pre; ta.setSelectionRange(ta.value.length, ta.value.length); QR.dismissedAt = -1; updateQr();
        }
        break;
      case '?': e.preventDefault(); toggleHelp(); break;
      default: break;
    }
  }
  function onReplyKey(e) {
    if (QR.open) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        if (QR.items.length) { e.preventDefault(); QR.idx = (QR.idx + (e.key === 'ArrowDown' ? 1 : -1) + QR.items.length) % QR.items.length; renderQr(); }
        return;
      }
      if ((e.key === 'Enter' && !e.ctrlKey && !e.metaKey && !e.shiftKey) || e.key === 'Tab') {
        if (QR.items.length && !e.isComposing) { e.preventDefault(); insertQr(); return; }
      }
      if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); QR.dismissedAt = QR.start; hideQr(); return; }
    }
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !e.isComposing) { e.preventDefault(); sendReply(); }
  }

  /* ------------------------------------------------------------------ wiring */
  function bind() {
    $('login-form').addEventListener('submit', doLogin);
    document.querySelectorAll('.lang-switch').forEach((b) => b.addEventListener('click', () => setLang(lang === 'zh' ? 'en' : 'zh')));
    $('logout-btn').addEventListener('click', () => logout());
    $('presence-select').addEventListener('change', changePresence);
    $('help-btn').addEventListener('click', (e) => { e.stopPropagation(); toggleHelp(); });
    document.addEventListener('click', (e) => {
      if (!$('help-pop').hidden && !e.target.closest('.help-wrap')) toggleHelp(false);
      if (!$('transfer-pop').hidden && !e.target.closest('.transfer-wrap')) hideTransfer();
    });
    document.querySelectorAll('.tab').forEach((b) => b.addEventListener('click', () => { S.view = b.dataset.view; savePrefs(); renderFilters(); renderList(); }));
    $('f-search').addEventListener('input', (e) => { S.filters.search = e.target.value; renderList(); });
    $('f-status').addEventListener('change', (e) => { S.filters.status = e.target.value; savePrefs(); renderList(); loadConversations(); });
    $('f-role').addEventListener('change', (e) => { S.filters.role = e.target.value; savePrefs(); renderList(); });
    $('f-channel').addEventListener('change', (e) => { S.filters.channel = e.target.value; savePrefs(); renderList(); });
    $('f-sort').addEventListener('change', (e) => { S.filters.sort = e.target.value; savePrefs(); renderList(); });
    $('conv-list').addEventListener('click', (e) => { const li = e.target.closest('.conv-item'); if (li) selectConv(li.dataset.id); });
    $('act-claim').addEventListener('click', claim);
    $('act-close').addEventListener('click', closeConv);
    $('act-transfer').addEventListener('click', (e) => { e.stopPropagation(); if ($('transfer-pop').hidden) showTransfer(); else hideTransfer(); });
    $('transfer-ok').addEventListener('click', doTransfer);
    $('transfer-cancel').addEventListener('click', hideTransfer);
    $('transfer-role').addEventListener('change', () => { if ($('transfer-role').value) $('transfer-agent').value = ''; });
    $('transfer-agent').addEventListener('change', () => { if ($('transfer-agent').value) $('transfer-role').value = ''; });
    $('transfer-pop').addEventListener('keydown', (e) => { if (e.key === 'Enter' && e.target.tagName !== 'BUTTON') { e.preventDefault(); doTransfer(); } });
    $('act-info').addEventListener('click', () => toggleCust());
    $('cust-close').addEventListener('click', () => toggleCust(false));
    $('nav-back').addEventListener('click', backToList);
    $('reply-send').addEventListener('click', sendReply);
    $('reply-attach').addEventListener('click', () => $('reply-file').click());
    $('reply-file').addEventListener('change', (e) => { const fl = Array.from(e.target.files || []); e.target.value = ''; uploadFiles(fl); });
    const ta = $('reply-text');
    ta.addEventListener('paste', (e) => { const fl = e.clipboardData && e.clipboardData.files; if (fl && fl.length) { e.preventDefault(); uploadFiles(Array.from(fl)); } });
    ta.addEventListener('dragover', (e) => { if (e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files')) e.preventDefault(); });
    ta.addEventListener('drop', (e) => { const fl = e.dataTransfer && e.dataTransfer.files; if (fl && fl.length) { e.preventDefault(); uploadFiles(Array.from(fl)); } });
    ta.addEventListener('keydown', onReplyKey);
    ta.addEventListener('input', () => { if (QR.dismissedAt >= 0 && (!qrContext() || qrContext().start !== QR.dismissedAt)) QR.dismissedAt = -1; updateQr(); if (S.selected) S.drafts.set(S.selected, ta.value); });
    ta.addEventListener('click', updateQr);
    ta.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== ta) hideQr(); }, 150));
    document.addEventListener('keydown', onGlobalKey);
    let wasWide = window.innerWidth >= 1200;
    window.addEventListener('resize', () => {
      const wide = window.innerWidth >= 1200;
      if (wide !== wasWide) { wasWide = wide; S.custOpen = wide; renderConvHead(); }
      layoutClasses();
    });
    window.addEventListener('hashchange', () => {
      const id = decodeURIComponent((location.hash.match(/^#c=(.+)$/) || [])[1] || '');
      if (id && id !== S.selected && S.me) selectConv(id, { keepHash: true });
    });
    setInterval(() => { // SLA countdowns; and a fallback refresh while the event socket is down
      if (!S.me) return;
      if (!S.live) { loadConversations(); if (S.selected) loadDetail(S.selected, { quiet: true }); }
      else { renderList(); if (S.detail) renderConvHead(); }
    }, 30000);
  }

  async function boot() {
    applyI18n();
    bind();
    if (!S.token) { showLogin(); return; }
    try {
      S.me = await api('GET', '/api/me');
    } catch (e) {
      if (e.status !== 401) showLogin(e.message);
      return;
    }
    enterApp();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
})();
