/* Times and durations as an agent reads them, in the console's language. */
import { lang } from './i18n.js';
import { toMs, pad } from './util.js';

export function fmtTime(v, withDate) {
  const ms = toMs(v); if (!ms) return '';
  const d = new Date(ms), now = new Date();
  const hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
  if (!withDate && d.toDateString() === now.toDateString()) return hm;
  const md = lang === 'zh' ? (d.getMonth() + 1) + '月' + d.getDate() + '日' : (d.getMonth() + 1) + '/' + d.getDate();
  const y = d.getFullYear() !== now.getFullYear() ? (lang === 'zh' ? d.getFullYear() + '年' : d.getFullYear() + '/') : '';
  return (lang === 'zh' ? y + md : (y ? d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) : md)) + ' ' + hm;
}
export function fmtDay(v) {
  const d = new Date(toMs(v));
  return lang === 'zh' ? d.getFullYear() + '年' + (d.getMonth() + 1) + '月' + d.getDate() + '日'
    : d.toLocaleDateString('en', { year: 'numeric', month: 'short', day: 'numeric' });
}
export function fmtDur(ms) {
  const m = Math.max(0, Math.round(Math.abs(ms) / 60000));
  if (m < 60) return m + (lang === 'zh' ? '分' : 'm');
  const hh = Math.floor(m / 60);
  if (hh < 48) return hh + (lang === 'zh' ? '小时' : 'h') + (m % 60 && hh < 10 ? ' ' + (m % 60) + (lang === 'zh' ? '分' : 'm') : '');
  return Math.floor(hh / 24) + (lang === 'zh' ? '天' : 'd');
}
