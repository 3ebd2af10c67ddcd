/* The reply box: sending, files to attach, and quick replies. */
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
  const d = S.detail; if (!d || S.sending) return;
  const ta = $('reply-text');
  const text = ta.value.replace(/\s+$/, '');
  const files = S.files.get(d.id) || [];
  if (!text.trim() && !files.length) return;
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
    S.sending = false; btn.disabled = false; btn.textContent = t('reply.send');
  }
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
export function updateQr() {
  const ctx = qrContext();
  if (!ctx || ctx.start === QR.dismissedAt) { hideQr(); return; }
  const q = ctx.query.toLowerCase();
  QR.items = S.quickReplies.filter((r) => !q || String(r.name || '').toLowerCase().includes(q) || r.text.toLowerCase().includes(q)).slice(0, 50);
  QR.start = ctx.start; QR.end = ctx.end;
  if (!QR.open) QR.idx = 0;
  QR.idx = Math.min(QR.idx, Math.max(0, QR.items.length - 1));
  QR.open = true;
  renderQr();
}
function renderQr() {
  const pop = clear($('qr-pop'));
  pop.hidden = false;
  if (!QR.items.length) { pop.appendChild(h('div', { class: 'qr-empty', text: S.quickReplies.length ? t('qr.none') : t('qr.empty') })); return; }
  QR.items.forEach((r, i) => {
    const n = h('div', { class: 'qr-item' + (i === QR.idx ? ' active' : ''), role: 'option', 'aria-selected': i === QR.idx ? 'true' : 'false', dataset: { idx: String(i) } },
      h('span', { class: 'qr-name', text: r.name || '' }), h('span', { class: 'qr-text', text: r.text }));
    n.addEventListener('mousedown', (e) => { e.preventDefault(); QR.idx = i; insertQr(); });
    pop.appendChild(n);
  });
  const act = pop.querySelector('.qr-item.active'); if (act) act.scrollIntoView({ block: 'nearest' });
}
export function hideQr() { QR.open = false; const p = $('qr-pop'); if (p) { p.hidden = true; clear(p); } }
function expandTemplate(text) {
  const c = (S.detail && S.detail.conv) || {};
  const cu = c.customer || {}, attrs = (cu.attributes && typeof cu.attributes === 'object') ? cu.attributes : {};
  const vars = Object.assign({}, attrs, {
    name: cu.name, customer: cu.name, customer_name: cu.name, customer_id: cu.id,
    agent: S.me && S.me.name, agent_name: S.me && S.me.name, conversation_id: c.id
  });
  return text.replace(/\{(\w+)\}/g, (m, k) => (vars[k] != null && typeof vars[k] !== 'object' && vars[k] !== '' ? String(vars[k]) : m));
}
function insertQr() {
  const r = QR.items[QR.idx]; if (!r) return;
  const ta = $('reply-text');
  const text = expandTemplate(r.text);
  ta.value = ta.value.slice(0, QR.start) + text + ta.value.slice(QR.end);
  hideQr();
  ta.focus();
  const from = QR.start, rest = /\{\w+\}/.exec(text);
  if (rest) ta.setSelectionRange(from + rest.index, from + rest.index + rest[0].length);
  else ta.setSelectionRange(from + text.length, from + text.length);
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
  ta.addEventListener('input', () => { if (QR.dismissedAt >= 0 && (!qrContext() || qrContext().start !== QR.dismissedAt)) QR.dismissedAt = -1; updateQr(); if (S.selected) S.drafts.set(S.selected, ta.value); });
  ta.addEventListener('click', updateQr);
  ta.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== ta) hideQr(); }, 150));
}
