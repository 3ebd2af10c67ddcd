/* How conversations, agents, roles and channels are named and classified on screen. */
import { I18N, ROLE_NAMES, KIND_NAMES, t, loc } from './i18n.js';
import { toMs } from './util.js';
import { S } from './state.js';

export function roleName(id) {
  if (!id) return '';
  const r = S.roles.find((x) => x.id === id);
  if (r && r.name) return loc(r.name);
  return ROLE_NAMES[id] ? loc(ROLE_NAMES[id]) : String(id);
}
export function agentName(id) {
  if (!id) return '';
  if (S.me && id === S.me.id) return (S.me.name || id) + ' (' + t('common.you') + ')';
  const a = S.agents.find((x) => x.id === id);
  return a ? (a.name || a.id) : String(id);
}
function kindName(kind) { return KIND_NAMES[kind] ? loc(KIND_NAMES[kind]) : String(kind || ''); }
export function channelLabel(c) {
  const kind = c.channel_kind || (c.customer && c.customer.channel_kind) || '';
  const name = c.channel || (c.customer && c.customer.channel) || '';
  if (kind && name && kind !== name) return kindName(kind) + ' · ' + name;
  return kindName(kind || name);
}
export function custName(c) {
  const cu = (c && c.customer) || {};
  if (cu.name) return String(cu.name);
  if (cu.id) return t('cust.visitor') + ' ' + String(cu.id).replace(/^[a-z]{1,3}_/i, '').slice(0, 6);
  return (c && c.id) || '?';
}
export function tierLabel(tier) { return tier ? (I18N.en['tier.' + tier] ? t('tier.' + tier) : String(tier)) : ''; }
export function isDispute(c) { return c.role === 'dispute' || c.priority === 'dispute'; }
export function isQueued(c) { return c.status !== 'closed' && (c.queued === true || !c.assignee); }
export function isMine(c) { return !!(S.me && c.assignee && c.assignee === S.me.id); }
export function updatedMs(c) {
  return toMs(c.updated_at) || (c.last_message && toMs(c.last_message.ts)) || toMs(c.created_at) || 0;
}

export function roleList() { // server roles first, then any role an agent holds
  const out = S.roles.slice(), ids = new Set(out.map((r) => r.id));
  S.agents.forEach((a) => (a.roles || []).forEach((id) => {
    if (!ids.has(id)) { ids.add(id); out.push({ id, name: ROLE_NAMES[id] || { zh: id, en: id } }); }
  }));
  return out;
}
