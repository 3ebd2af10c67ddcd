/* The console's state, one object every module reads and changes: the agent, the
 * inbox, the open conversation, the live socket; and the inbox filters, remembered. */
import { lsGet, lsSet, ssGet } from './util.js';

export const TOKEN_KEY = 'kefu_token';
const PREFS_KEY = 'kefu_console_prefs';

const prefs = (() => { try { return JSON.parse(lsGet(PREFS_KEY)) || {}; } catch (e) { return {}; } })();
export const S = {
  token: ssGet(TOKEN_KEY) || '',
  me: null,
  convs: new Map(),
  selected: null,
  detail: null,            // {id, conv, messages: [], ids: Set}
  agents: [], roles: [], quickReplies: [], qrLoaded: false,
  view: prefs.view || 'all',
  filters: { search: '', status: prefs.status || 'open', role: prefs.role || '', channel: prefs.channel || '', sort: prefs.sort || 'recent' },
  drafts: new Map(),
  files: new Map(),       // conversation id -> files uploaded for the next reply
  ws: null, wsAttempt: 0, wsTimer: null, wsEverOpen: false, live: false,
  custOpen: window.innerWidth >= 1200,
  custHist: new Map(),     // customer id -> {at, list}
  listOrder: [],
  sending: false
};
export function savePrefs() {
  lsSet(PREFS_KEY, JSON.stringify({ view: S.view, status: S.filters.status, role: S.filters.role, channel: S.filters.channel, sort: S.filters.sort }));
}
