/* The open conversation: its header and actions (claim, transfer, close), its messages,
 * and the layout around it. */
import { t } from './i18n.js';
import { cssToken, toMs, safeHref, sameOrigin, str } from './util.js';
import { fmtTime, fmtDay } from './format.js';
import { $, h, clear, linkify, toast, confirmBox } from './dom.js';
import { api } from './api.js';
import { S } from './state.js';
import { roleName, agentName, channelLabel, custName, isMine, roleList } from './labels.js';
import { normConv, upsertConv, badgesFor, renderList } from './inbox.js';
import { renderReplyFiles, hideQr, renderComposer, loadConversationQuickReplies } from './composer.js';
import { loadCustomerHistory, renderCust } from './customer.js';

let detailSeq = 0;
export async function selectConv(id, opt) {
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
export async function loadDetail(id, opt) {
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
    loadConversationQuickReplies(id);
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
export function renderConv() {
  const d = S.detail;
  $('conv-empty').hidden = !!d;
  $('conv-pane').hidden = !d;
  layoutClasses();
  if (!d) return;
  renderConvHead();
  renderMessages();
}
export function renderConvHead() {
  const d = S.detail; if (!d) return;
  const c = d.conv || {};
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
  renderComposer();
}
export function msgDir(m) {
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
  const reveal = revealButton(m, body, conv);
  return h('div', { class: 'msg ' + dir + ' k-' + cssToken(kind) + (isMe ? ' mine' : ''), dataset: { id: m.id != null ? String(m.id) : '' } },
    dir === 'sys' ? null : h('div', { class: 'm-head' },
      h('span', { class: 'm-name', text: name }),
      kind !== 'customer' && kind !== 'agent' ? h('span', { class: 'm-kind', text: t('kind.' + kind) }) : null,
      h('span', { class: 'm-time', title: fmtTime(m.ts, true), text: fmtTime(m.ts) }), reveal),
    body,
    dir === 'sys' ? h('div', { class: 'm-time', text: fmtTime(m.ts) }) : null);
}
const MASKED = /\d\*{4,}\d|\*{4}\d{4}\b/;
/** Agents with reveal_pii see a masked number's clear text on request (audited server-side). */
function revealButton(m, body, conv) {
  const perms = (S.me && S.me.permissions) || [];
  if (!perms.includes('reveal_pii') || m.id == null || !MASKED.test(str(m.text))) return null;
  const btn = h('button', { type: 'button', class: 'm-reveal', text: t('msg.reveal') });
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const r = await api('POST', '/api/conversations/' + encodeURIComponent(conv.id) + '/messages/' +
                          encodeURIComponent(m.id) + '/reveal');
      clear(body); linkify(body, str(r.text));
      btn.replaceWith(h('span', { class: 'm-kind', text: t('msg.revealed') }));
    } catch (e) { btn.disabled = false; btn.title = e.message; }
  });
  return btn;
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
export function appendMessage(m) {
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
export function claim() { if (S.detail && !$('act-claim').disabled) convAction('claim', undefined, t('act.claimed')); }
export async function closeConv() {
  if (!S.detail || $('act-close').disabled) return;
  if (await confirmBox(t('confirm.close'))) convAction('close', undefined, t('act.closed'));
}
export function showTransfer() {
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
export function hideTransfer() { $('transfer-pop').hidden = true; $('act-transfer').setAttribute('aria-expanded', 'false'); }
export function doTransfer() {
  const role = $('transfer-role').value, agent = $('transfer-agent').value;
  if (!role && !agent) { toast(t('transfer.pick'), 'error'); return; }
  hideTransfer();
  convAction('transfer', agent ? { agent } : { role }, t('act.transferred'));
}

/* ------------------------------------------------------------------ layout */
export function layoutClasses() {
  const L = $('layout');
  L.classList.toggle('show-conv', !!S.detail);
  L.classList.toggle('cust-open', S.custOpen);
  document.body.classList.toggle('has-conv', !!S.detail);
}
export function toggleCust(force) {
  S.custOpen = typeof force === 'boolean' ? force : !S.custOpen;
  layoutClasses(); renderConvHead();
}
export function backToList() {
  if (S.selected) S.drafts.set(S.selected, $('reply-text').value);
  S.detail = null; S.selected = null;
  try { history.replaceState(null, '', location.pathname + location.search); } catch (e) { /* */ }
  renderConv(); renderCust(); renderList();
}

export function bindConversation() {
  $('act-claim').addEventListener('click', claim);
  $('act-close').addEventListener('click', closeConv);
  $('act-transfer').addEventListener('click', (e) => { e.stopPropagation(); if ($('transfer-pop').hidden) showTransfer(); else hideTransfer(); });
  $('transfer-ok').addEventListener('click', doTransfer);
  $('transfer-cancel').addEventListener('click', hideTransfer);
  $('transfer-role').addEventListener('change', () => { if ($('transfer-role').value) $('transfer-agent').value = ''; });
  $('transfer-agent').addEventListener('change', () => { if ($('transfer-agent').value) $('transfer-role').value = ''; });
  $('transfer-pop').addEventListener('keydown', (e) => { if (e.key === 'Enter' && e.target.tagName !== 'BUTTON') { e.preventDefault(); doTransfer(); } });
  document.addEventListener('click', (e) => { if (!$('transfer-pop').hidden && !e.target.closest('.transfer-wrap')) hideTransfer(); });
  $('act-info').addEventListener('click', () => toggleCust());
  $('cust-close').addEventListener('click', () => toggleCust(false));
  $('nav-back').addEventListener('click', backToList);
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
}
