/* kefu agent console — ES modules served as they are: no dependencies, no build step.
 * Every piece of customer / agent / server text is rendered with textContent
 * (dom.js h()); innerHTML is never used.
 *
 * This module starts it: wires each part to the page and signs the agent in. */
import { lang, applyI18n, setLanguage } from './i18n.js';
import { api } from './api.js';
import { S } from './state.js';
import { bindSession, showLogin, enterApp } from './session.js';
import { bindInbox, loadConversations, renderFilters, renderList } from './inbox.js';
import { bindConversation, loadDetail, renderConv, renderConvHead } from './conversation.js';
import { bindComposer } from './composer.js';
import { renderCust } from './customer.js';
import { bindPresence, setPresenceUi } from './presence.js';
import { setLive } from './live.js';
import { bindKeyboard } from './keyboard.js';
import { bindNotify } from './notify.js';

function setLang(l) {
  setLanguage(l);
  if (S.me) { renderFilters(); renderList(); renderConv(); renderCust(); setLive(S.live); setPresenceUi(S.me.status); }
}

function bind() {
  bindSession(); bindInbox(); bindConversation(); bindComposer(); bindPresence(); bindKeyboard(); bindNotify();
  document.querySelectorAll('.lang-switch').forEach((b) => b.addEventListener('click', () => setLang(lang === 'zh' ? 'en' : 'zh')));
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
boot(); // a module runs once the document is parsed
