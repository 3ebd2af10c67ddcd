/* Small helpers without DOM or state: storage that may be unavailable, times, safe links. */
export function lsGet(k) { try { return localStorage.getItem(k); } catch (e) { return null; } }
export function lsSet(k, v) { try { localStorage.setItem(k, v); } catch (e) { /* ignore */ } }
export function ssGet(k) { try { return sessionStorage.getItem(k); } catch (e) { return null; } }
export function ssSet(k, v) { try { if (v) sessionStorage.setItem(k, v); else sessionStorage.removeItem(k); } catch (e) { /* ignore */ } }

export function cssToken(s) { return String(s || '').toLowerCase().replace(/[^a-z0-9_-]/g, '') || 'x'; }
export function toMs(v) {
  if (v == null || v === '') return 0;
  if (typeof v === 'number') return v > 1e12 ? v : v * 1000;
  if (/^\d+(\.\d+)?$/.test(String(v))) return toMs(parseFloat(v));
  const d = Date.parse(v); return isNaN(d) ? 0 : d;
}
export const pad = (n) => (n < 10 ? '0' : '') + n;

export function safeHref(u) {
  if (typeof u !== 'string' || !u) return '';
  if (/^data:image\/(png|jpe?g|gif|webp);base64,/i.test(u)) return u;
  try { const x = new URL(u, location.href); return (x.protocol === 'http:' || x.protocol === 'https:') ? x.href : ''; }
  catch (e) { return ''; }
}
export function sameOrigin(u) { try { return new URL(u, location.href).origin === location.origin; } catch (e) { return false; } }

export function str(v) {
  if (v == null) return '';
  if (typeof v === 'object') { try { return Array.isArray(v) && v.every((x) => typeof x !== 'object') ? v.join(', ') : JSON.stringify(v); } catch (e) { return String(v); } }
  return String(v);
}
