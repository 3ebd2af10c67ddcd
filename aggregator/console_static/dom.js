/* Building the page: h() makes elements (text always as textContent, never HTML),
 * links in text, toasts and the confirm dialog. */
export const $ = (id) => document.getElementById(id);
export function h(tag, props, ...kids) {
  const e = document.createElement(tag);
  if (props) {
    for (const k of Object.keys(props)) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = String(v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of kids.flat(3)) {
    if (c == null || c === false) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
export function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

export function linkify(node, text) {
  const re = /\bhttps?:\/\/[^\s<>"'\u3000-\u303f\uff01-\uff0f]+/g;
  let last = 0, m;
  while ((m = re.exec(text))) {
    const u = m[0].replace(/[).,;:!?]+$/, '');
    if (m.index > last) node.appendChild(document.createTextNode(text.slice(last, m.index)));
    node.appendChild(h('a', { href: u, target: '_blank', rel: 'noopener noreferrer nofollow', text: u }));
    last = m.index + u.length; re.lastIndex = last;
  }
  if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
  return node;
}

/* ------------------------------------------------------------------ toasts / confirm */
export function toast(msg, kind) {
  const box = $('toasts');
  const n = h('div', { class: 'toast ' + (kind || 'info'), role: kind === 'error' ? 'alert' : 'status', text: msg });
  box.appendChild(n);
  setTimeout(() => { n.classList.add('out'); setTimeout(() => n.remove(), 300); }, kind === 'error' ? 6000 : 3000);
}
export function confirmBox(text) {
  return new Promise((resolve) => {
    const m = $('confirm'); $('confirm-text').textContent = text; m.hidden = false;
    const ok = $('confirm-ok'), cancel = $('confirm-cancel');
    const done = (v) => { m.hidden = true; ok.removeEventListener('click', yes); cancel.removeEventListener('click', no); m.removeEventListener('keydown', key); resolve(v); };
    const yes = () => done(true), no = () => done(false);
    const key = (e) => { if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); no(); } };
    ok.addEventListener('click', yes); cancel.addEventListener('click', no); m.addEventListener('keydown', key);
    ok.focus();
  });
}
