// Every kind of the server's registry, from the Kubernetes API itself: the
// kinds (discovery), a kind's objects as the server's Table with the kind's
// printer columns, and one object (summary, conditions, events, the pods
// it owns with their logs — a pod's own log on a pod's page —, YAML).
// A kind added to the registry appears here with nothing to write.
//
//   #/resources                              the kinds
//   #/resources/GROUP/VERSION/PLURAL         a kind's objects (GROUP `core` for v1)
//   #/resources/GROUP/VERSION/PLURAL/NAME    one object

import {h, pageHeader, table, kvTable, empty, button, toast, replace, add, fmtTime} from '../dom.js';
import {api, fetchRaw, TABLE} from '../api.js';
import {toYaml} from '../katib.js';

/** `/api/v1` or `/apis/GROUP/VERSION`. */
function groupBase(group, version) {
  return group === 'core' ? `/api/${version}` : `/apis/${group}/${version}`;
}

/** A kind's collection: in `namespace` when it is namespaced. */
function collection(group, version, plural, namespaced, namespace) {
  const base = groupBase(group, version);
  return namespaced ? `${base}/namespaces/${encodeURIComponent(namespace)}/${plural}` : `${base}/${plural}`;
}

function kindHref(group, version, plural) {
  return `#/resources/${group}/${version}/${plural}`;
}

/** Every kind the server serves, with its group version (discovery). */
async function kinds() {
  const out = [];
  const add1 = (group, version, list) => {
    for (const r of list.resources || []) {
      if (r.name.includes('/')) continue; // subresources (status)
      out.push({group, version, plural: r.name, kind: r.kind, namespaced: r.namespaced,
        shortNames: r.shortNames || []});
    }
  };
  add1('core', 'v1', await api('/api/v1'));
  const groups = await api('/apis');
  for (const g of groups.groups || []) {
    for (const gv of g.versions || []) {
      add1(g.name, gv.version, await api(groupBase(g.name, gv.version)));
    }
  }
  return out;
}

async function kindOf(group, version, plural) {
  const list = await api(groupBase(group, version));
  const r = (list.resources || []).find((x) => x.name === plural);
  if (!r) throw new Error(`the server has no ${plural} in ${group === 'core' ? version : `${group}/${version}`}`);
  return r;
}

function renderKinds(ctx) {
  ctx.setTitle('Resources');
  const {main} = ctx;
  add(main, pageHeader('Resources'),
    h('p', {class: 'muted'}, 'Every kind this server serves through its Kubernetes API — what ',
      h('code', null, 'kubectl api-resources'), ' lists.'));
  const box = h('div', {id: 'resource-kinds'});
  add(main, box);
  return kinds().then((list) => {
    const rows = list.map((k) => h('tr', {'data-kind': k.kind},
      h('td', null, h('a', {href: kindHref(k.group, k.version, k.plural)}, k.kind)),
      h('td', null, h('code', null, k.plural)),
      h('td', null, k.shortNames.join(', ')),
      h('td', null, k.group === 'core' ? k.version : `${k.group}/${k.version}`),
      h('td', null, k.namespaced ? 'namespaced' : 'cluster')));
    replace(box, table(['Kind', 'Plural', 'Short names', 'API version', 'Scope'], rows));
  });
}

function cellText(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

async function renderList(ctx, group, version, plural) {
  const {main, namespace} = ctx;
  const r = await kindOf(group, version, plural);
  ctx.setTitle(r.kind);
  add(main,
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/resources'}, 'Resources'), ` / ${plural}`),
    pageHeader(r.kind),
    h('p', {class: 'muted'}, r.namespaced ? ['In namespace ', h('code', null, namespace), '.'] : 'Cluster-scoped.'));
  const box = h('div', {id: 'resource-list'});
  add(main, box);
  const t = await api(collection(group, version, plural, r.namespaced, namespace), {accept: TABLE});
  const cols = (t.columnDefinitions || []).map((c, i) => ({...c, i})).filter((c) => !c.priority);
  if (!t.rows || !t.rows.length) {
    replace(box, empty(`No ${plural} here yet.`));
    return;
  }
  const rows = t.rows.map((row) => {
    const name = row.cells[0];
    return h('tr', {'data-name': name}, cols.map((c) => h('td', null, c.i === 0
      ? h('a', {href: `${kindHref(group, version, plural)}/${encodeURIComponent(name)}`}, name)
      : cellText(row.cells[c.i]))));
  });
  replace(box, table(cols.map((c) => c.name), rows, {id: 'resource-table'}));
}

async function renderObject(ctx, group, version, plural, name) {
  const {main, namespace} = ctx;
  const r = await kindOf(group, version, plural);
  ctx.setTitle(`${r.kind} ${name}`);
  const path = `${collection(group, version, plural, r.namespaced, namespace)}/${encodeURIComponent(name)}`;
  const o = await api(path);
  const meta = o.metadata || {};
  const del = button('Delete', async () => {
    if (!window.confirm(`Delete ${r.kind} ${name}?`)) return;
    try {
      await api(path, {method: 'DELETE'});
      toast(`${r.kind} ${name} deleted.`, 'success');
      ctx.navigate(kindHref(group, version, plural));
    } catch (err) {
      toast(err.message, 'error');
    }
  }, {id: 'resource-delete', class: 'btn btn-danger'});
  add(main,
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/resources'}, 'Resources'), ' / ',
      h('a', {href: kindHref(group, version, plural)}, plural), ` / ${name}`),
    pageHeader(`${r.kind} ${name}`, del));
  const labels = Object.entries(meta.labels || {}).map(([k, v]) => h('code', {class: 'label'}, `${k}=${v}`));
  add(main, h('section', {class: 'card'}, kvTable([
    ['Name', meta.name],
    ...(r.namespaced ? [['Namespace', meta.namespace]] : []),
    ['API version', o.apiVersion],
    ['Created', fmtTime(meta.creationTimestamp)],
    ['Generation', String(meta.generation || '')],
    ['Resource version', meta.resourceVersion || ''],
    ['Labels', labels.length ? labels : '—'],
    ['Owners', (meta.ownerReferences || []).map((x) => `${x.kind}/${x.name}`).join(', ') || '—'],
  ], {id: 'resource-summary'})));

  const conditions = (o.status && Array.isArray(o.status.conditions)) ? o.status.conditions : [];
  add(main, h('h2', null, 'Conditions'), conditions.length
    ? table(['Type', 'Status', 'Reason', 'Message', 'Last transition'], conditions.map((c) => h('tr', {'data-type': c.type},
      h('td', null, c.type), h('td', null, c.status), h('td', null, c.reason || ''), h('td', null, c.message || ''),
      h('td', null, fmtTime(c.lastTransitionTime)))), {id: 'resource-conditions'})
    : empty('No conditions.'));

  const eventsBox = h('div', {id: 'resource-events'});
  add(main, h('h2', null, 'Events'), eventsBox);
  if (meta.uid && meta.namespace) {
    const ev = await api(`/api/v1/namespaces/${encodeURIComponent(meta.namespace)}/events`,
      {query: {fieldSelector: `involvedObject.uid=${meta.uid}`}});
    const items = (ev.items || []).sort((a, b) => String(b.lastTimestamp).localeCompare(String(a.lastTimestamp)));
    replace(eventsBox, items.length
      ? table(['Type', 'Reason', 'Message', 'Count', 'Last seen'], items.map((e) => h('tr', {'data-reason': e.reason},
        h('td', null, e.type || ''), h('td', null, e.reason || ''), h('td', null, e.message || ''),
        h('td', null, String(e.count || 1)), h('td', null, fmtTime(e.lastTimestamp)))))
      : empty('No events.'));
  } else {
    replace(eventsBox, empty('No events.'));
  }

  if (r.namespaced && meta.uid) await renderPods(main, o, group === 'core' && plural === 'pods');

  add(main, h('h2', null, 'YAML'), h('pre', {class: 'yaml', id: 'resource-yaml'}, toYaml(o)));
}

/** A pod's output (its first container's), into `box`. */
async function showLog(box, namespace, pod) {
  replace(box, h('p', {class: 'muted'}, `Loading the log of ${pod}…`));
  try {
    const res = await fetchRaw(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`);
    const text = await res.text();
    replace(box, h('h3', null, `Log of ${pod}`),
      h('pre', {class: 'log', id: 'pod-log', 'data-pod': pod}, text || '(nothing written yet)'));
  } catch (err) {
    replace(box, h('p', {class: 'error'}, err.message));
  }
}

/** The pods the object owns (how its workloads run), each with its log;
 * on a pod's own page, its log. */
async function renderPods(main, o, isPod) {
  const meta = o.metadata;
  const logBox = h('div', {id: 'pod-log-box'});
  if (isPod) {
    add(main, h('h2', null, 'Log'), logBox);
    await showLog(logBox, meta.namespace, meta.name);
    return;
  }
  const list = await api(`/api/v1/namespaces/${encodeURIComponent(meta.namespace)}/pods`);
  const owned = (list.items || []).filter((p) => (p.metadata.ownerReferences || []).some((x) => x.uid === meta.uid));
  if (!owned.length) return;
  const rows = owned.map((p) => {
    const cs = ((p.status || {}).containerStatuses || [])[0] || {};
    return h('tr', {'data-pod': p.metadata.name},
      h('td', null, h('a', {href: `${kindHref('core', 'v1', 'pods')}/${encodeURIComponent(p.metadata.name)}`}, p.metadata.name)),
      h('td', null, (p.status || {}).phase || 'Pending'),
      h('td', null, String(cs.restartCount || 0)),
      h('td', null, button('Log', () => showLog(logBox, meta.namespace, p.metadata.name), {class: 'btn btn-small pod-log-btn'})));
  });
  add(main, h('h2', null, 'Pods'), table(['Name', 'Phase', 'Restarts', ''], rows, {id: 'resource-pods'}), logBox);
}

export async function render(ctx) {
  const [group, version, plural, name] = ctx.params;
  if (!group) return renderKinds(ctx);
  if (!name) return renderList(ctx, group, version, plural);
  return renderObject(ctx, group, version, plural, name);
}
