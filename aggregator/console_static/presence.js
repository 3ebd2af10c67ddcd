/* The agent's own presence: online, away or offline. */
import { $, toast } from './dom.js';
import { api } from './api.js';
import { S } from './state.js';

export function setPresenceUi(st) {
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

export function bindPresence() {
  $('presence-select').addEventListener('change', changePresence);
}
