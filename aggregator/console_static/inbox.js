/* The inbox: the conversation list with its tabs, filters, sorting and badges. */
import { t } from './i18n.js';
import { cssToken, toMs, str } from './util.js';
import { fmtTime, fmtDur } from './format.js';
import { $, h, clear, toast } from './dom.js';
import { api } from './api.js';
import { S, savePrefs } from './state.js';
import { roleName, agentName, channelLabel, custName, isDispute, isQueued, isMine, updatedMs, roleList } from './labels.js';
import { selectConv, renderConvHead } from './conversation.js';
import { renderCust } from './customer.js';

let loadSeq = 0;
export async function loadConversations() {
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
export function normConv(c) {
  c = Object.assign({}, c);
  c.id = String(c.id);
  if (!c.customer || typeof c.customer !== 'object') c.customer = {};
  if (typeof c.unread !== 'number') c.unread = parseInt(c.unread, 10) || 0;
  return c;
}
export function upsertConv(c) {
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
export function renderFilters() {
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
export function badgesFor(c) {
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
export function renderListSoon() { if (listQueued) return; listQueued = true; requestAnimationFrame(() => { listQueued = false; renderList(); }); }
export function renderList() {
  const ul = $('conv-list');
  const list = visibleConvs();
  S.listOrder = list.map((c) => c.id);
  const scroll = ul.scrollTop;
  clear(ul);
  list.forEach((c) => {
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

export function bindInbox() {
  document.querySelectorAll('.tab').forEach((b) => b.addEventListener('click', () => { S.view = b.dataset.view; savePrefs(); renderFilters(); renderList(); }));
  $('f-search').addEventListener('input', (e) => { S.filters.search = e.target.value; renderList(); });
  $('f-status').addEventListener('change', (e) => { S.filters.status = e.target.value; savePrefs(); renderList(); loadConversations(); });
  $('f-role').addEventListener('change', (e) => { S.filters.role = e.target.value; savePrefs(); renderList(); });
  $('f-channel').addEventListener('change', (e) => { S.filters.channel = e.target.value; savePrefs(); renderList(); });
  $('f-sort').addEventListener('change', (e) => { S.filters.sort = e.target.value; savePrefs(); renderList(); });
  $('conv-list').addEventListener('click', (e) => { const li = e.target.closest('.conv-item'); if (li) selectConv(li.dataset.id); });
}
