/* The customer panel: who they are, their details, orders and earlier conversations. */
import { I18N, t } from './i18n.js';
import { cssToken, toMs, str } from './util.js';
import { fmtTime } from './format.js';
import { $, h, clear } from './dom.js';
import { api } from './api.js';
import { S } from './state.js';
import { roleName, agentName, channelLabel, custName, tierLabel, updatedMs } from './labels.js';
import { upsertConv } from './inbox.js';
import { selectConv } from './conversation.js';

export async function loadCustomerHistory(conv) {
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
export function renderCust() {
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
