/* The agent's own presence: online, away or offline.
 *
 * Signing in to the console makes the agent online (as in most support tools:
 * an agent with the console open is there to answer); they may still switch to
 * away. While they are not online a banner says that nothing is given to them,
 * with one button to go online. Signing out makes them offline. */
import { t } from './i18n.js';
import { $, toast } from './dom.js';
import { api } from './api.js';
import { S } from './state.js';

export function setPresenceUi(st) {
  st = ['online', 'away', 'offline'].includes(st) ? st : 'offline';
  $('presence-select').value = st;
  $('presence-dot').className = 'pdot ' + st;
  const away = !!S.me && st !== 'online';
  $('presence-banner').hidden = !away;
  if (away) $('presence-banner-text').textContent = t(st === 'away' ? 'presence.bannerAway' : 'presence.bannerOffline');
}

export async function setPresence(st) {
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

export function bindPresence() {
  $('presence-select').addEventListener('change', () => setPresence($('presence-select').value));
  $('presence-go-online').addEventListener('click', () => setPresence('online'));
}
