// The dashboard shell: navigation, the namespace selector and a hash router
// (`#/runs/ID?task=train`). Each page module exports
// `render(ctx) → cleanup?`; the cleanup closes streams and timers when the
// user navigates away.

import {h, clear, errorBox} from './dom.js';
import {api, OX} from './api.js';
import * as home from './pages/home.js';
import * as pipelines from './pages/pipelines.js';
import * as pipeline from './pages/pipeline.js';
import * as runs from './pages/runs.js';
import * as run from './pages/run.js';
import * as compare from './pages/compare.js';
import * as experiments from './pages/experiments.js';
import * as recurring from './pages/recurring.js';
import * as artifacts from './pages/artifacts.js';
import * as katib from './pages/katib.js';
import * as katibExperiment from './pages/katib-experiment.js';
import * as models from './pages/models.js';
import * as model from './pages/model.js';
import * as coming from './pages/coming.js';
import * as resources from './pages/resources.js';

const NAV = [
  {path: '/', label: 'Home', icon: 'M3 10 L12 3 L21 10 V20 H14 V14 H10 V20 H3 Z'},
  {path: '/pipelines', label: 'Pipelines', icon: 'M5 5 h5 v5 h-5 z M14 14 h5 v5 h-5 z M7.5 10 V16.5 H14'},
  {path: '/runs', label: 'Runs', icon: 'M6 4 L19 12 L6 20 Z'},
  {path: '/experiments', label: 'Experiments', icon: 'M9 3 h6 M10 3 v6 L5 19 a1.5 1.5 0 0 0 1.3 2 h11.4 a1.5 1.5 0 0 0 1.3 -2 L14 9 V3'},
  {path: '/recurring', label: 'Recurring runs', icon: 'M4 12 a8 8 0 1 1 2.3 5.7 M4 19 v-5 h5'},
  {path: '/artifacts', label: 'Artifacts', icon: 'M4 7 L12 3 L20 7 V17 L12 21 L4 17 Z M4 7 L12 11 L20 7 M12 11 V21'},
  {path: '/katib', label: 'Katib', icon: 'M4 20 V10 M10 20 V4 M16 20 V13 M22 20 H2'},
  {path: '/models', label: 'Models', icon: 'M12 3 L21 8 L12 13 L3 8 Z M3 13 L12 18 L21 13'},
  {path: '/resources', label: 'Resources', icon: 'M4 5 h16 M4 12 h16 M4 19 h16 M8 3 v4 M14 10 v4 M10 17 v4'},
  {section: 'Coming'},
  {path: '/notebooks', label: 'Notebooks', coming: true, icon: 'M6 3 h11 a1 1 0 0 1 1 1 v16 a1 1 0 0 1 -1 1 h-11 z M9 3 v18'},
  {path: '/contributors', label: 'Contributors', coming: true, icon: 'M9 11 a3.5 3.5 0 1 0 0 -7 a3.5 3.5 0 0 0 0 7 M2 21 a7 7 0 0 1 14 0 M17 11 a3 3 0 1 0 0 -6 M18 14 a6 6 0 0 1 4 6'},
];

const ROUTES = [
  [/^\/$/, home],
  [/^\/pipelines$/, pipelines],
  [/^\/pipelines\/([^/]+)$/, pipeline],
  [/^\/pipelines\/([^/]+)\/run$/, pipeline, {mode: 'run'}],
  [/^\/runs$/, runs],
  [/^\/runs\/([^/]+)$/, run],
  [/^\/compare$/, compare],
  [/^\/experiments$/, experiments],
  [/^\/recurring$/, recurring],
  [/^\/artifacts$/, artifacts],
  [/^\/katib$/, katib],
  [/^\/katib\/new$/, katib, {mode: 'new'}],
  [/^\/katib\/experiments\/([^/]+)$/, katibExperiment],
  [/^\/models$/, models],
  [/^\/models\/new$/, models, {mode: 'new'}],
  [/^\/models\/services\/([^/]+)$/, model],
  [/^\/resources$/, resources],
  [/^\/resources\/([^/]+)\/([^/]+)\/([^/]+)$/, resources],
  [/^\/resources\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)$/, resources],
  [/^\/(notebooks|contributors)$/, coming],
];

const NS_KEY = 'oxflow.namespace';
let cleanup = null;
let generation = 0;
let namespace = localStorage.getItem(NS_KEY) || 'default';

function icon(d) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', d);
  svg.append(p);
  return svg;
}

function buildNav() {
  const list = document.getElementById('nav-list');
  clear(list);
  for (const item of NAV) {
    if (item.section) {
      list.append(h('li', {class: 'nav-section', role: 'presentation'}, item.section));
      continue;
    }
    list.append(h('li', null, h('a', {href: `#${item.path}`, 'data-path': item.path, class: item.coming ? 'coming' : null},
      icon(item.icon), h('span', null, item.label),
      item.coming ? h('span', {class: 'soon', 'aria-label': 'coming soon'}, 'coming') : null)));
  }
}

function markNav(path) {
  for (const a of document.querySelectorAll('#nav-list a')) {
    const p = a.getAttribute('data-path');
    const active = p === '/' ? path === '/' : path === p || path.startsWith(`${p}/`)
      || (p === '/runs' && path === '/compare');
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function loadNamespaces() {
  const select = document.getElementById('namespace-select');
  let list = [{name: namespace}];
  let dflt = namespace;
  try {
    const res = await api(`${OX}/namespaces`);
    list = res.namespaces && res.namespaces.length ? res.namespaces : list;
    dflt = res.default || dflt;
  } catch (_) {
    // Keep the remembered one; pages show their own errors.
  }
  if (!list.some((n) => n.name === namespace)) namespace = dflt;
  clear(select);
  for (const n of list) select.append(h('option', {value: n.name, selected: n.name === namespace}, n.name));
  select.disabled = list.length < 2;
  select.title = list.length < 2 ? 'Only one namespace exists for now' : '';
  select.addEventListener('change', () => {
    namespace = select.value;
    localStorage.setItem(NS_KEY, namespace);
    route();
  });
}

function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  return {path: path || '/', query: Object.fromEntries(new URLSearchParams(qs || ''))};
}

export function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

/** Replaces the query of the current page without re-rendering it. */
export function setQuery(query) {
  const {path} = parseHash();
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const qs = q.toString();
  history.replaceState(null, '', `#${path}${qs ? `?${qs}` : ''}`);
}

async function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch (_) {
      // A page's cleanup must never block navigation.
    }
    cleanup = null;
  }
  generation += 1;
  const mine = generation;
  const {path, query} = parseHash();
  markNav(path);
  const outer = document.getElementById('view');
  clear(outer);
  // Each page renders into its own element: a slow page that finishes after
  // the user moved on writes into a detached node, never into the new page.
  const main = h('div', {class: 'page'});
  outer.append(main);
  let match = null;
  for (const [re, mod, extra] of ROUTES) {
    const m = re.exec(path);
    if (m) {
      match = {mod, params: m.slice(1).map(decodeURIComponent), extra: extra || {}};
      break;
    }
  }
  if (!match) {
    document.title = 'Not found · Oxflow';
    main.append(h('h1', null, 'Page not found'), h('p', null, 'No page at ', h('code', null, path), '. ', h('a', {href: '#/'}, 'Go home')));
    return;
  }
  const ctx = {
    main,
    params: match.params,
    query,
    mode: match.extra.mode,
    namespace,
    setTitle: (t) => { document.title = `${t} · Oxflow`; },
    navigate,
    setQuery,
  };
  try {
    const c = await match.mod.render(ctx);
    if (typeof c === 'function') {
      if (mine === generation) cleanup = c;
      else c();
    }
  } catch (err) {
    main.append(errorBox(err));
  }
}

buildNav();
loadNamespaces().finally(() => {
  window.addEventListener('hashchange', route);
  route();
});
