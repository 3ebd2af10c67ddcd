/* Live events: the /api/events socket (reconnecting with backoff) and what each event
 * changes on screen. */
import { t } from './i18n.js';
import { toMs } from './util.js';
import { $ } from './dom.js';
import { ROOT, api } from './api.js';
import { S } from './state.js';
import { loadConversations, upsertConv, renderFilters, renderListSoon, renderList } from './inbox.js';
import { loadDetail, renderConvHead, msgDir, appendMessage } from './conversation.js';
import { renderCust } from './customer.js';
import { setPresenceUi } from './presence.js';
import { newConversation } from './notify.js';
import { logout } from './session.js';

export function setLive(on) {
  S.live = on;
  const box = $('conn-state');
  box.classList.toggle('live', on);
  box.querySelector('.conn-text').textContent = on ? t('conn.live') : (S.wsEverOpen ? t('conn.reconnecting') : t('conn.connecting'));
}
export function closeWs() {
  if (S.wsTimer) { clearTimeout(S.wsTimer); S.wsTimer = null; }
  const ws = S.ws; S.ws = null; S.wsEverOpen = false; S.wsAttempt = 0;
  if (ws) { try { ws.close(); } catch (e) { /* */ } }
}
export function connectWs() {
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
  ws.onclose = (ev) => {
    if (S.ws !== ws) return;
    S.ws = null; setLive(false);
    if (ev.code === 4401) { logout(t('login.expired')); return; } // the session ended (logout, expiry, removal)
    scheduleWs();
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
    try {
      const r = await api('GET', '/api/conversations/' + encodeURIComponent(id));
      const known = S.convs.has(id), c = upsertConv(r);
      if (c && id !== S.selected) c.unread = Math.max(c.unread || 0, 1);
      if (c && !known) newConversation(c);
      renderFilters(); renderList();
    }
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
    const known = S.convs.has(String(f.conversation.id));
    const c = upsertConv(f.conversation);
    if (!c) return;
    if (!known) newConversation(c);
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
