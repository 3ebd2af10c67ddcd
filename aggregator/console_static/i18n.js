/* Every text the console shows, in Chinese and English, and the language in use
 * (kept in localStorage; the browser's language the first time). */
import { lsGet, lsSet } from './util.js';

const LANG_KEY = 'kefu_console_lang';

export const I18N = {
  en: {
    'login.title': 'Agent sign in', 'login.agent': 'Agent ID', 'login.password': 'Password',
    'login.submit': 'Sign in', 'login.failed': 'Sign-in failed', 'login.expired': 'Your session has expired — please sign in again.',
    'login.missing': 'Enter your agent ID and password.',
    'nav.back': 'Back to inbox', 'header.console': 'Console', 'header.presence': 'Presence',
    'header.lang': 'Language: 中文 / English', 'header.help': 'Keyboard shortcuts', 'header.logout': 'Sign out',
    'presence.online': 'Online', 'presence.away': 'Away', 'presence.offline': 'Offline',
    'presence.bannerAway': 'You are away: new conversations are not given to you.',
    'presence.bannerOffline': 'You are offline: new conversations are not given to you.',
    'presence.goOnline': 'Go online',
    'notify.label': 'New-conversation alerts (sound and desktop notification)', 'notify.title': 'New conversation',
    'notify.blocked': 'This browser blocks desktop notifications for kefu: you will hear a sound only.',
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
    'reply.closed': 'This conversation is closed, so it cannot be answered. If the customer writes again, a new conversation opens.',
    'reply.unfilled': 'Fill in {vars} before sending (Tab selects it).',
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
    'msg.reveal': 'Show clear text', 'msg.revealed': 'Clear text (recorded in the audit log)',
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
    'presence.bannerAway': '你当前为离开状态，新会话不会分配给你。',
    'presence.bannerOffline': '你当前为离线状态，新会话不会分配给你。',
    'presence.goOnline': '上线',
    'notify.label': '新会话提醒（提示音和桌面通知）', 'notify.title': '新会话',
    'notify.blocked': '浏览器已禁止 kefu 的桌面通知，只会播放提示音。',
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
    'reply.closed': '该会话已关闭，无法再回复。客户再次发消息时会开启新的会话。',
    'reply.unfilled': '请先填写 {vars} 再发送（按 Tab 选中）。',
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
    'msg.reveal': '显示原文', 'msg.revealed': '原文（已记入审计日志）',
    'common.cancel': '取消', 'common.ok': '确定', 'common.closePanel': '关闭面板', 'common.you': '我',
    'err.network': '网络错误，请重试。', 'err.generic': '请求失败（{status}）',
    'title.unread': '({n}) kefu 客服工作台'
  }
};
export const ROLE_NAMES = {
  presales: { zh: '售前', en: 'Pre-sales' }, aftersales: { zh: '售后', en: 'After-sales' },
  finance: { zh: '财务', en: 'Finance' }, supervisor: { zh: '主管', en: 'Supervisor' },
  dispute: { zh: '纠纷', en: 'Dispute' }, vip: { zh: 'VIP', en: 'VIP' }
};
export const KIND_NAMES = {
  webchat: { zh: '网页聊天', en: 'Web chat' }, api: { zh: '站内信', en: 'Site messages' },
  email: { zh: '邮件', en: 'Email' }, telegram: { zh: 'Telegram', en: 'Telegram' },
  discord: { zh: 'Discord', en: 'Discord' }, qq: { zh: 'QQ', en: 'QQ' }, wechat: { zh: '微信', en: 'WeChat' },
  wecom: { zh: '微信客服', en: 'WeChat' }
};

export let lang = lsGet(LANG_KEY) || (String(navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en');
if (!I18N[lang]) lang = 'en';
export function t(key, vars) {
  let s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] != null ? String(vars[k]) : m));
  return s;
}
export function loc(obj) { // {"zh": "...", "en": "..."} | string
  if (obj == null) return '';
  if (typeof obj !== 'object') return String(obj);
  return obj[lang] || obj.en || obj.zh || Object.values(obj)[0] || '';
}

/* The API's error sentences (English) in Chinese; one it does not know is shown as it is. */
const SERVER_ERRORS = [
  [/^conversation not found$/, '会话不存在'],
  [/^conversation is closed$/, '会话已关闭'],
  [/^conversation is owned by another agent$/, '该会话已由其他客服负责'],
  [/^conversation is owned by (.+); ask them or a supervisor to transfer it$/, '该会话由 $1 负责，请联系对方或主管转接'],
  [/^no such agent$/, '没有这个客服'],
  [/^that agent is not online$/, '该客服不在线'],
  [/^no such role$/, '没有这个角色'],
  [/^no quick reply by that name.*$/, '没有这个快捷回复'],
  [/^quick reply (\S+) needs ([\w, ]+): send (.+)$/, '快捷回复 $1 需要填写 $2，请发送 $3'],
  [/^fill in (.+) before sending$/, '请先填写 $1 再发送'],
  [/^missing, invalid or expired token$/, '登录已失效，请重新登录'],
  [/^wrong agent or password$/, '账号或密码错误'],
  [/^agent and password are required$/, '请输入客服账号和密码'],
  [/^text is required$/, '请输入回复内容'],
  [/^text longer than (\d+) characters$/, '内容超过 $1 字'],
  [/^unknown or expired file id in attachments.*$/, '附件已过期，请重新上传'],
  [/^file larger than (\S+) .*$/, '文件超过 $1'],
  [/^the request body \(the file\) is empty$/, '文件是空的'],
  [/^request body too large$/, '请求内容过大'],
  [/^storage unavailable, retry shortly$/, '存储暂不可用，请稍后重试'],
  [/^internal error$/, '服务器内部错误'],
];
export function serverError(message) {
  if (lang !== 'zh') return message;
  for (const [re, zh] of SERVER_ERRORS) if (re.test(message)) return message.replace(re, zh);
  return message;
}

export function setLanguage(l) {
  lang = l; lsSet(LANG_KEY, l);
  applyI18n();
}

/** The static page's texts: elements name their key in data-i18n(-placeholder|-title|-aria). */
export function applyI18n() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.querySelectorAll('[data-i18n]').forEach((n) => { n.textContent = t(n.dataset.i18n); });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((n) => { n.placeholder = t(n.dataset.i18nPlaceholder); });
  document.querySelectorAll('[data-i18n-title]').forEach((n) => { n.title = t(n.dataset.i18nTitle); });
  document.querySelectorAll('[data-i18n-aria]').forEach((n) => { n.setAttribute('aria-label', t(n.dataset.i18nAria)); });
  document.querySelectorAll('.lang-switch').forEach((n) => { n.textContent = lang === 'zh' ? 'EN' : '中文'; });
}
