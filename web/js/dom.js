// Small DOM helpers. Everything user-supplied goes into the page through
// text nodes and attributes, never through innerHTML.

export const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'style' && typeof v === 'object') {
      Object.assign(el.style, v);
    } else if (k === 'value' && 'value' in el && el.namespaceURI !== SVG_NS) {
      el.value = v;
    } else if (k === 'checked' || k === 'selected' || k === 'disabled') {
      el[k] = Boolean(v);
      if (v) el.setAttribute(k, '');
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: h('a', {href: '#/'}, 'Home'). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  return append(el, children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// ------------------------------------------------------------- formatting

/** Milliseconds, an RFC 3339 string or a Date → Date (null when unset or KFP's epoch). */
export function toDate(t) {
  if (t === null || t === undefined || t === '') return null;
  const d = typeof t === 'number' ? new Date(t) : new Date(t);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return null;
  return d;
}

export function fmtTime(t) {
  const d = toDate(t);
  if (!d) return '—';
  const pad = (n) => String(n).padStart(2, '0');
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (sameDay) return `today ${time}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const hr = Math.floor(m / 60);
  return `${hr} h ${m % 60} min`;
}

/** Duration between two times; an unfinished span counts up to now. */
export function span(start, end) {
  const a = toDate(start);
  if (!a) return null;
  const b = toDate(end) || new Date();
  return b.getTime() - a.getTime();
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function fmtValue(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

export const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'SKIPPED', 'CANCELED']);

/** A state badge: colour plus the state's name, so colour is never the only cue. */
export function stateBadge(state, cached) {
  const label = cached && state === 'SUCCEEDED' ? 'CACHED' : (state || 'UNKNOWN');
  return h('span', {class: `badge state-${label}`, 'data-state': label}, label.toLowerCase());
}

// ----------------------------------------------------------------- pieces

export function table(headers, rows, attrs = {}) {
  return h('table', {class: 'table', ...attrs},
    h('thead', null, h('tr', null, headers.map((x) => h('th', {scope: 'col'}, x)))),
    h('tbody', null, rows));
}

/** A key/value table from [[key, value-node-or-text], …]. */
export function kvTable(pairs, attrs = {}) {
  return h('table', {class: 'kv', ...attrs},
    h('tbody', null, pairs.map(([k, v]) => h('tr', null, h('th', {scope: 'row'}, k), h('td', null, v)))));
}

export function empty(text) {
  return h('p', {class: 'empty'}, text);
}

export function errorBox(err) {
  const msg = err && err.message ? err.message : String(err);
  return h('div', {class: 'alert alert-error', role: 'alert'}, msg);
}

export function notice(text, kind = 'info') {
  return h('div', {class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'note'}, text);
}

export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', {class: `toast toast-${kind}`}, text);
  box.append(t);
  setTimeout(() => t.remove(), 5000);
}

export function pageHeader(title, ...actions) {
  return h('div', {class: 'page-header'},
    h('h1', null, title),
    h('div', {class: 'actions'}, actions));
}

export function button(label, onClick, attrs = {}) {
  return h('button', {type: 'button', class: 'btn', onclick: onClick, ...attrs}, label);
}

export function link(href, text, attrs = {}) {
  return h('a', {href, ...attrs}, text);
}

/** `#/runs?state=RUNNING` from a path and query object (empty values dropped). */
export function hashUrl(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, v);
  }
  const qs = q.toString();
  return `#${path}${qs ? `?${qs}` : ''}`;
}

let uniq = 0;
export function uid(prefix = 'id') {
  uniq += 1;
  return `${prefix}-${uniq}`;
}

/** Replaces an element's children (null/false skipped, arrays flattened). */
export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

/** Appends children (null/false skipped, arrays flattened), unlike Element.append. */
export function add(el, ...children) {
  return append(el, children);
}

/**
 * A refused write as an alert: each field at fault (a Kubernetes Status's
 * `details.causes`, or a message of the form `field.path: what is wrong`)
 * with its path set apart, so forms can point at it.
 */
export function specError(err, id) {
  const msg = err && err.message ? err.message : String(err);
  const api = err && typeof err.status === 'number';
  const refused = api && (err.status === 400 || err.status === 422);
  const status = api ? `${refused ? 'Not accepted' : `Error ${err.status}`}: ` : '';
  // A Kubernetes Status names each field at fault in details.causes.
  const causes = (err && Array.isArray(err.causes) ? err.causes : []).filter((c) => c && c.field);
  if (causes.length) {
    return h('div', {class: 'alert alert-error spec-error', role: 'alert', id},
      status, causes.map((c, i) => [i ? '; ' : '', h('code', {class: 'field-path'}, c.field), ': ', c.message || '']));
  }
  const m = /^([A-Za-z][\w.[\]-]*): ([\s\S]*)$/.exec(msg);
  return h('div', {class: 'alert alert-error spec-error', role: 'alert', id},
    status, m ? [h('code', {class: 'field-path'}, m[1]), ': ', m[2]] : msg);
}
