/* The agent API client: JSON in and out, the agent's token, errors as ApiError
 * (a 401 signs the agent out). */
import { t, serverError } from './i18n.js';
import { S } from './state.js';
import { logout } from './session.js';

/** kefu's root: the console is served at <root>/console/. */
export const ROOT = new URL('../', import.meta.url).href;
export function apiUrl(p) { return new URL(p.replace(/^\//, ''), ROOT).href; }

export class ApiError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}
export async function api(method, path, body, fileType) { // fileType: body is a File sent as is
  const headers = { Accept: 'application/json' };
  if (S.token) headers.Authorization = 'Bearer ' + S.token;
  const opts = { method, headers, cache: 'no-store' };
  if (fileType !== undefined) { headers['Content-Type'] = fileType || 'application/octet-stream'; opts.body = body; }
  else if (body !== undefined) { headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  let r;
  try { r = await fetch(apiUrl(path), opts); } catch (e) { throw new ApiError(0, t('err.network')); }
  let data = null;
  try { const txt = await r.text(); data = txt ? JSON.parse(txt) : null; } catch (e) { data = null; }
  if (r.status === 401 && path !== '/api/login') {
    logout(t('login.expired'));
    throw new ApiError(401, (data && data.error) || 'unauthorized');
  }
  if (!r.ok) throw new ApiError(r.status, (data && typeof data.error === 'string' && serverError(data.error)) || t('err.generic', { status: r.status }));
  return data || {};
}
