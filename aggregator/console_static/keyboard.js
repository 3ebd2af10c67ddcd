/* Keyboard shortcuts (j/k, c, e, t, r, i, /, ?) and the help popover. */
import { $ } from './dom.js';
import { S } from './state.js';
import { selectConv, claim, closeConv, showTransfer, hideTransfer, toggleCust } from './conversation.js';
import { QR, updateQr } from './composer.js';

function isTyping(el) {
  return el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
}
function moveSel(delta) {
  const order = S.listOrder; if (!order.length) return;
  let i = order.indexOf(S.selected);
  i = i < 0 ? (delta > 0 ? 0 : order.length - 1) : Math.max(0, Math.min(order.length - 1, i + delta));
  if (order[i] !== S.selected) selectConv(order[i]);
}
function toggleHelp(force) {
  const pop = $('help-pop');
  const show = typeof force === 'boolean' ? force : pop.hidden;
  pop.hidden = !show; $('help-btn').setAttribute('aria-expanded', show ? 'true' : 'false');
}
function onGlobalKey(e) {
  if (!$('confirm').hidden) return; // the modal handles its own keys
  if (e.key === 'Escape') {
    if (QR.open) return;
    if (!$('help-pop').hidden) { toggleHelp(false); return; }
    if (!$('transfer-pop').hidden) { hideTransfer(); return; }
    if (isTyping(document.activeElement)) { document.activeElement.blur(); return; }
    if (S.custOpen && window.innerWidth < 1200) { toggleCust(false); return; }
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target) || $('app').hidden) return;
  switch (e.key) {
    case 'j': case 'ArrowDown': if (e.key === 'ArrowDown' && !e.target.closest('.conv-list')) return; e.preventDefault(); moveSel(1); break;
    case 'k': case 'ArrowUp': if (e.key === 'ArrowUp' && !e.target.closest('.conv-list')) return; e.preventDefault(); moveSel(-1); break;
    case 'c': e.preventDefault(); claim(); break;
    case 'e': e.preventDefault(); closeConv(); break;
    case 't': e.preventDefault(); showTransfer(); break;
    case 'r': if (S.detail) { e.preventDefault(); $('reply-text').focus(); } break;
    case 'i': if (S.detail) { e.preventDefault(); toggleCust(); } break;
    case '/':
      if (S.detail) {
        e.preventDefault();
        const ta = $('reply-text'); ta.focus();
        const p = ta.value.length; const pre = p && !/\s$/.test(ta.value) ? ' /' : '/';
        ta.value += pre; ta.setSelectionRange(ta.value.length, ta.value.length); QR.dismissedAt = -1; updateQr();
      }
      break;
    case '?': e.preventDefault(); toggleHelp(); break;
    default: break;
  }
}

export function bindKeyboard() {
  $('help-btn').addEventListener('click', (e) => { e.stopPropagation(); toggleHelp(); });
  document.addEventListener('click', (e) => { if (!$('help-pop').hidden && !e.target.closest('.help-wrap')) toggleHelp(false); });
  document.addEventListener('keydown', onGlobalKey);
}
