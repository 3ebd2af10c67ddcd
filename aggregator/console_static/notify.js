/* Alerts for new conversations: a sound and a desktop notification, off until the
 * agent turns them on (the bell in the top bar; remembered in localStorage). The
 * browser's permission for notifications is asked only then. */
import { t } from './i18n.js';
import { lsGet, lsSet, str } from './util.js';
import { $, toast } from './dom.js';
import { custName, channelLabel } from './labels.js';
import { selectConv } from './conversation.js';

const PREF_KEY = 'kefu_console_alerts';
const RECENT_S = 120; // a conversation opened longer ago than this is not news
const told = new Set();
let audio = null;

const enabled = () => lsGet(PREF_KEY) === 'on';

function renderToggle() {
  $('notify-toggle').setAttribute('aria-pressed', enabled() ? 'true' : 'false');
}

async function toggle() {
  const on = !enabled();
  lsSet(PREF_KEY, on ? 'on' : 'off');
  renderToggle();
  if (!on) return;
  unlockSound(); // a click: the browser lets the page make sound from now on
  if ('Notification' in window && Notification.permission === 'default') await Notification.requestPermission();
  if (!('Notification' in window) || Notification.permission === 'denied') toast(t('notify.blocked'), 'info');
}

function unlockSound() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  audio = audio || new Ctx();
  if (audio.state === 'suspended') audio.resume();
}

function chime() {
  unlockSound();
  if (!audio) return;
  [660, 880].forEach((hz, i) => {
    const at = audio.currentTime + i * 0.18;
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = hz;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.2, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.3);
    osc.connect(gain).connect(audio.destination);
    osc.start(at); osc.stop(at + 0.3);
  });
}

/** A conversation the console has just learnt of: alert if it is new and alerts are on. */
export function newConversation(conv) {
  if (!enabled() || !conv || conv.status !== 'open' || told.has(conv.id)) return;
  if (Date.now() / 1000 - (conv.created_at || 0) > RECENT_S) return;
  told.add(conv.id);
  chime();
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const lm = conv.last_message;
  const n = new Notification(t('notify.title') + ' · ' + custName(conv),
    { body: (lm && str(lm.text)) || channelLabel(conv), tag: 'kefu-' + conv.id });
  n.onclick = () => { window.focus(); selectConv(conv.id); n.close(); };
}

export function bindNotify() {
  renderToggle();
  $('notify-toggle').addEventListener('click', toggle);
  document.addEventListener('click', () => { if (enabled()) unlockSound(); }, { once: true }); // after a reload
}
