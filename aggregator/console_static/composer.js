/* The reply box: sending, files to attach, and quick replies.
 *
 * Quick replies come filled by the server for the open conversation
 * (GET /api/conversations/{id}/quick_replies); a variable it could not fill stays
 * as {name}, is selected when the template is inserted, and sending waits until
 * it is filled in. A closed conversation cannot be answered: the box is disabled
 * and says why. */
import { t } from './i18n.js';
import { $, h, clear, toast } from './dom.js';
import { api } from './api.js';
import { S } from './state.js';
import { renderListSoon } from './inbox.js';
import { loadDetail, appendMessage } from './conversation.js';

export async function uploadFiles(list) {
  const d = S.detail; if (!d || !list || !list.length) return;
  const id = d.id, btn = $('reply-attach');
  btn.disabled = true; btn.title = t('reply.uploading');
  try {
    for (const f of Array.from(list)) {
      try {
        const a = await api('POST', '/api/attachments?name=' + encodeURIComponent(f.name || ''), f, f.type);
        S.files.set(id, (S.files.get(id) || []).concat([a]));
        if (S.detail && S.detail.id === id) renderReplyFiles();
      } catch (e) { if (e.status !== 401) toast((f.name ? f.name + ': ' : '') + e.message, 'error'); }
    }
  } finally { btn.disabled = false; btn.title = t('reply.attach'); }
}
export function renderReplyFiles() {
  const box = $('reply-files'), list = (S.detail && S.files.get(S.detail.id)) || [];
  clear(box); box.hidden = !list.length;
  list.forEach((a) => {
    const rm = h('button', { type: 'button', title: t('reply.remove'), 'aria-label': t('reply.remove') + ' ' + (a.name || ''), text: '×' });
    rm.addEventListener('click', () => { S.files.set(S.detail.id, (S.files.get(S.detail.id) || []).filter((x) => x !== a)); renderReplyFiles(); });
    box.appendChild(h('span', { class: 'file-chip', title: a.name || '' }, h('span', { class: 'fname', text: '📎 ' + (a.name || 'file') }), rm));
  });
}
export async function sendReply() {
  const d = S.detail; if (!d || S.sending || (d.conv || {}).status === 'closed') return;
  const ta = $('reply-text');
  const text = ta.value.replace(/\s+$/, '');
  const files = S.files.get(d.id) || [];
  if (!text.trim() && !files.length) return;
  if (unfilled(text).length) { selectPlaceholder(0); renderComposer(); return; }
  S.sending = true;
  const btn = $('reply-send'); btn.disabled = true; btn.textContent = t('reply.sending');
  const id = d.id;
  try {
    const m = await api('POST', '/api/conversations/' + encodeURIComponent(id) + '/messages', { text, attachments: files.map((a) => a.id) });
    S.files.delete(id);
    if (S.detail && S.detail.id === id) {
      ta.value = ''; S.drafts.delete(id); hideQr(); renderReplyFiles();
      if (m && m.id != null) appendMessage(m);
    }
    const c = S.convs.get(id);
    if (c && m && m.id != null) { c.last_message = m; c.updated_at = m.ts || Date.now() / 1000; renderListSoon(); }
  } catch (e) {
    if (e.status === 409) { toast(e.message && e.message !== t('err.generic', { status: 409 }) ? e.message : t('reply.conflict'), 'error'); loadDetail(id, { quiet: true }); }
    else if (e.status !== 401) toast(e.message, 'error');
  } finally {
    S.sending = false; btn.textContent = t('reply.send');
    renderComposer();
  }
}

/** What the box allows now (call after anything that changes the text or the conversation). */
export function renderComposer() {
  const d = S.detail, ta = $('reply-text'), note = $('reply-note');
  const closed = !!d && (d.conv || {}).status === 'closed';
  const missing = closed ? [] : unfilled(ta.value);
  ta.disabled = closed;
  $('reply-attach').disabled = closed;
  $('reply-send').disabled = closed || S.sending || missing.length > 0;
  note.className = 'reply-note' + (closed ? ' closed' : '');
  note.textContent = closed ? t('reply.closed') : missing.length ? t('reply.unfilled', { vars: missing.map((v) => '{' + v + '}').join(' ') }) : '';
  note.hidden = !note.textContent;
}

const BUILT_IN_VARIABLES = ['customer_name', 'order_no', 'agent_name', 'channel'];
/** Placeholders of quick-reply variables still in `text` (the server refuses them too). */
function unfilled(text) {
  const known = new Set(BUILT_IN_VARIABLES);
  const templates = S.quickReplies.flatMap((q) => Object.values(q.texts || { t: q.text }));
  templates.forEach((tx) => { for (const m of String(tx).matchAll(/\{(\w+)\}/g)) known.add(m[1]); });
  const found = [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).filter((v) => known.has(v));
  return [...new Set(found)];
}
/** Select the next unfilled placeholder after the cursor (from the start when `from` is 0). */
function selectPlaceholder(from) {
  const ta = $('reply-text'), names = new Set(unfilled(ta.value));
  const all = [...ta.value.matchAll(/\{(\w+)\}/g)].filter((m) => names.has(m[1]));
  const next = all.find((m) => m.index >= from) || all[0];
  if (!next) return false;
  ta.focus(); ta.setSelectionRange(next.index, next.index + next[0].length);
  return true;
}

/* ------------------------------------------------------------------ quick replies */
export const QR = { open: false, items: [], idx: 0, start: 0, end: 0, dismissedAt: -1 };
export function qrContext() {
  const ta = $('reply-text');
  const pos = ta.selectionStart, before = ta.value.slice(0, pos);
  const m = /(^|\s)\/([^\s/]*)$/.exec(before);
  if (!m) return null;
  return { query: m[2], start: pos - m[2].length - 1, end: pos };
}
/** The open conversation's quick replies, filled by the server. */
export async function loadConversationQuickReplies(id) {
  try {
    const r = await api('GET', '/api/conversations/' + encodeURIComponent(id) + '/quick_replies');
    if (S.detail && S.detail.id === id && Array.isArray(r.quick_replies)) {
      S.detail.quickReplies = r.quick_replies;
      if (QR.open) updateQr();
    }
  } catch (e) { /* the templates as configured (every variable then asked for) */ }
}
function quickReplies() {
  return (S.detail && S.detail.quickReplies) || S.quickReplies;
}
export function updateQr() {
  const ctx = qrContext();
  if (!ctx || ctx.start === QR.dismissedAt) { hideQr(); return; }
  if (!QR.open && S.detail) loadConversationQuickReplies(S.detail.id); // what the conversation knows now
  const q = ctx.query.toLowerCase();
  QR.items = quickReplies().filter((r) => !q || String(r.name || '').toLowerCase().includes(q) || r.text.toLowerCase().includes(q)).slice(0, 50);
  QR.start = ctx.start; QR.end = ctx.end;
  if (!QR.open) QR.idx = 0;
  QR.idx = Math.min(QR.idx, Math.max(0, QR.items.length - 1));
  QR.open = true;
  renderQr();
}
function renderQr() {
  const pop = clear($('qr-pop'));
  pop.hidden = false;
  if (!QR.items.length) { pop.appendChild(h('div', { class: 'qr-empty', text: quickReplies().length ? t('qr.none') : t('qr.empty') })); return; }
  QR.items.forEach((r, i) => {
    const n = h('div', { class: 'qr-item' + (i === QR.idx ? ' active' : ''), role: 'option', 'aria-selected': i === QR.idx ? 'true' : 'false', dataset: { idx: String(i) } },
      h('span', { class: 'qr-name', text: r.name || '' }), h('span', { class: 'qr-text', text: r.text }));
    n.addEventListener('mousedown', (e) => { e.preventDefault(); QR.idx = i; insertQr(); });
    pop.appendChild(n);
  });
  const act = pop.querySelector('.qr-item.active'); if (act) act.scrollIntoView({ block: 'nearest' });
}
export function hideQr() { QR.open = false; const p = $('qr-pop'); if (p) { p.hidden = true; clear(p); } }
function insertQr() {
  const r = QR.items[QR.idx]; if (!r) return;
  const ta = $('reply-text');
  ta.value = ta.value.slice(0, QR.start) + r.text + ta.value.slice(QR.end);
  hideQr();
  ta.focus();
  if (!selectPlaceholder(QR.start)) ta.setSelectionRange(QR.start + r.text.length, QR.start + r.text.length);
  if (S.selected) S.drafts.set(S.selected, ta.value);
  renderComposer();
}

export function onReplyKey(e) {
  if (QR.open) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      if (QR.items.length) { e.preventDefault(); QR.idx = (QR.idx + (e.key === 'ArrowDown' ? 1 : -1) + QR.items.length) % QR.items.length; renderQr(); }
      return;
    }
    if ((e.key === 'Enter' && !e.ctrlKey && !e.metaKey && !e.shiftKey) || e.key === 'Tab') {
      if (QR.items.length && !e.isComposing) { e.preventDefault(); insertQr(); return; }
    }
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); QR.dismissedAt = QR.start; hideQr(); return; }
  }
  if (e.key === 'Tab' && !e.shiftKey && unfilled(e.target.value).length) { e.preventDefault(); selectPlaceholder(e.target.selectionEnd); return; }
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !e.isComposing) { e.preventDefault(); sendReply(); }
}

export function bindComposer() {
  $('reply-send').addEventListener('click', sendReply);
  $('reply-attach').addEventListener('click', () => $('reply-file').click());
  $('reply-file').addEventListener('change', (e) => { const fl = Array.from(e.target.files || []); e.target.value = ''; uploadFiles(fl); });
  const ta = $('reply-text');
  ta.addEventListener('paste', (e) => { const fl = e.clipboardData && e.clipboardData.files; if (fl && fl.length) { e.preventDefault(); uploadFiles(Array.from(fl)); } });
  ta.addEventListener('dragover', (e) => { if (e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files')) e.preventDefault(); });
  ta.addEventListener('drop', (e) => { const fl = e.dataTransfer && e.dataTransfer.files; if (fl && fl.length) { e.preventDefault(); uploadFiles(Array.from(fl)); } });
  ta.addEventListener('keydown', onReplyKey);
  ta.addEventListener('input', () => { if (QR.dismissedAt >= 0 && (!qrContext() || qrContext().start !== QR.dismissedAt)) QR.dismissedAt = -1; updateQr(); if (S.selected) S.drafts.set(S.selected, ta.value); renderComposer(); });
  ta.addEventListener('click', updateQr);
  ta.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== ta) hideQr(); }, 150));
}
