/* Signing in and out, and entering the console with everything it needs loaded. */
import { t, applyI18n } from './i18n.js';
import { ssSet } from './util.js';
import { $ } from './dom.js';
import { apiUrl, ApiError, api } from './api.js';
import { TOKEN_KEY, S } from './state.js';
import { loadConversations, renderFilters, renderList } from './inbox.js';
import { selectConv, renderConv, layoutClasses } from './conversation.js';
import { renderCust } from './customer.js';
import { setPresence, setPresenceUi } from './presence.js';
import { closeWs, connectWs } from './live.js';

export function showLogin(msg) {
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
    enterApp({ signedIn: true });
  } catch (ex) {
    err.textContent = ex.message || t('login.failed'); err.hidden = false;
  } finally { btn.disabled = false; }
}
export function logout(msg) {
  const hadToken = !!S.token;
  if (hadToken && !msg) { // user action: offline, then drop the token server-side too (best effort)
    const headers = { Authorization: 'Bearer ' + S.token, 'Content-Type': 'application/json' };
    fetch(apiUrl('/api/presence'), { method: 'PUT', headers, body: JSON.stringify({ status: 'offline' }) })
      .catch(() => {}).then(() => fetch(apiUrl('/api/logout'), { method: 'POST', headers })).catch(() => {});
  }
  S.token = ''; ssSet(TOKEN_KEY, '');
  S.me = null; S.convs.clear(); S.detail = null; S.selected = null; S.custHist.clear();
  closeWs();
  if (hadToken || msg || $('app').hidden === false) showLogin(msg);
}

/** Show the console; `signedIn`: the agent has just signed in, and so is online. */
export async function enterApp({ signedIn = false } = {}) {
  $('login-view').hidden = true; $('app').hidden = false;
  $('me-name').textContent = S.me ? (S.me.name || S.me.id || '') : '';
  if (signedIn && S.me && S.me.status !== 'online') setPresence('online');
  else setPresenceUi(S.me && S.me.status);
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
async function loadQuickReplies() {
  try { const r = await api('GET', '/api/quick_replies'); S.quickReplies = (Array.isArray(r.quick_replies) ? r.quick_replies : []).filter((q) => q && typeof q.text === 'string'); }
  catch (e) { S.quickReplies = []; }
  S.qrLoaded = true;
}

export function bindSession() {
  $('login-form').addEventListener('submit', doLogin);
  $('logout-btn').addEventListener('click', () => logout());
}
