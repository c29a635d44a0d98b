// Models: the InferenceServices of a namespace (KServe's
// serving.kserve.io/v1beta1, the same YAML `kubectl apply` takes), their
// readiness, endpoint, model and traffic; creating one from YAML and
// deleting one.

import {h, pageHeader, table, fmtTime, errorBox, empty, button, toast, replace, add, specError} from '../dom.js';
import {api, listKube, sendText} from '../api.js';
import {
  isvcPath, modelHref, readiness, readinessBadge, modelOf, trafficOf, age, exampleYaml,
} from '../models.js';

/** The list refreshes on these intervals: faster while a service is loading. */
const LOADING_REFRESH_MS = 2000;
const IDLE_REFRESH_MS = 10000;

export async function render(ctx) {
  if (ctx.mode === 'new') return renderCreate(ctx);
  return renderList(ctx);
}

// ------------------------------------------------------------------- list

/** "rev-00002 30% · rev-00001 70% · canary v2 (rev) 20%" as small lines. */
export function trafficCell(isvc) {
  const list = trafficOf(isvc);
  if (!list.length) return h('span', {class: 'muted'}, '—');
  return h('ul', {class: 'traffic-list'}, list.map((t) => h('li', {
    'data-revision': t.revision, 'data-percent': String(t.percent), 'data-kind': t.kind,
  },
  h('strong', {class: 'percent'}, `${t.percent}%`), ' ',
  t.kind === 'canary' ? [h('span', {class: 'type-chip'}, 'canary'), ' ', t.name, ' '] : null,
  h('code', null, t.revision),
  t.tag ? h('span', {class: 'muted small'}, ` tag ${t.tag}`) : null)));
}

function servicesTable(items, onDelete) {
  const now = Date.now();
  const rows = items.map((x) => {
    const name = x.metadata.name;
    const r = readiness(x);
    const m = modelOf(x);
    const url = (x.status && x.status.url) || '';
    return h('tr', {'data-isvc': name, 'data-state': r.state},
      h('td', null, h('a', {href: modelHref(name), class: 'isvc-link'}, name)),
      h('td', {class: 'isvc-status', title: r.message},
        readinessBadge(r.state),
        r.state !== 'Ready' && r.reason ? h('div', {class: 'small isvc-reason'}, h('strong', null, r.reason)) : null,
        r.state !== 'Ready' && r.message ? h('div', {class: 'muted small isvc-message'}, r.message) : null),
      h('td', {class: 'isvc-url'}, url ? h('code', {class: 'value'}, url) : h('span', {class: 'muted'}, '—')),
      h('td', {class: 'isvc-model'},
        h('span', {class: 'type-chip isvc-format'}, m.format || '—'),
        m.storageUri ? h('div', {class: 'uri isvc-storage', title: m.storageUri}, m.storageUri) : null,
        m.custom && m.image ? h('div', {class: 'muted small'}, m.image) : null),
      h('td', {class: 'isvc-traffic'}, trafficCell(x)),
      h('td', {class: 'isvc-age', title: fmtTime(x.metadata.creationTimestamp)}, age(x.metadata.creationTimestamp, now)),
      h('td', {class: 'row-actions'}, button('Delete', () => onDelete(name), {
        class: 'btn btn-small btn-danger isvc-delete', 'aria-label': `Delete ${name}`,
      })));
  });
  return table(['Name', 'Status', 'URL', 'Model', 'Traffic', 'Age', h('span', {class: 'sr-only'}, 'Actions')],
    rows, {class: 'table isvc-table', 'aria-label': 'Inference services'});
}

async function renderList(ctx) {
  ctx.setTitle('Models');
  const {main, namespace} = ctx;
  const listBox = h('div', {id: 'isvc-list'});
  const status = h('div', {id: 'isvc-list-status', 'aria-live': 'polite'});
  let timer = null;
  let disposed = false;
  let key = '';
  const remove = async (name) => {
    if (!window.confirm(`Delete inference service ${name}? Its revisions stop serving at once.`)) return;
    replace(status);
    try {
      await api(isvcPath(namespace, name), {method: 'DELETE'});
      toast(`Inference service ${name} deleted.`, 'success');
    } catch (err) {
      replace(status, errorBox(err));
    }
    key = '';
    load();
  };
  const load = async () => {
    clearTimeout(timer);
    let loading = false;
    try {
      const res = await listKube(isvcPath(namespace));
      if (disposed) return;
      const items = [...(res.items || [])].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      loading = items.some((x) => readiness(x).state === 'Loading');
      // Redraw only when something changed (ages move on a minute scale, so they ride along).
      const next = JSON.stringify([items.map((x) => [x.metadata, x.spec, x.status]), Math.floor(Date.now() / 60000)]);
      if (next !== key) {
        key = next;
        replace(listBox, items.length
          ? servicesTable(items, remove)
          : empty(`No inference services in namespace ${namespace} yet. Create one from KServe YAML with "New".`));
      }
    } catch (err) {
      if (disposed) return;
      key = '';
      replace(listBox, errorBox(err));
    }
    if (!disposed) timer = setTimeout(load, loading ? LOADING_REFRESH_MS : IDLE_REFRESH_MS);
  };
  add(main,
    pageHeader('Models',
      button('Refresh', () => { key = ''; load(); }, {id: 'isvc-refresh'}),
      h('a', {class: 'btn btn-primary', href: '#/models/new', id: 'isvc-new'}, 'New')),
    h('p', {class: 'muted'}, 'Model serving: KServe InferenceServices, each served by Oxflow at its URL with the V1 and V2 protocols. KServe\'s API, at ',
      h('code', null, isvcPath(namespace)), '.'),
    status, listBox);
  await load();
  return () => {
    disposed = true;
    clearTimeout(timer);
  };
}

// ----------------------------------------------------------------- create


function shortId() {
  return Math.random().toString(36).slice(2, 6).padEnd(4, '0');
}

function renderCreate(ctx) {
  ctx.setTitle('New inference service');
  const {main, namespace} = ctx;
  const yaml = h('textarea', {id: 'isvc-yaml', rows: 24, spellcheck: 'false', 'aria-label': 'InferenceService YAML', class: 'yaml-editor'});
  yaml.value = exampleYaml(`sklearn-iris-${shortId()}`);
  const yamlStatus = h('div', {class: 'form-status', id: 'isvc-yaml-status', 'aria-live': 'polite'});
  const createBtn = h('button', {type: 'submit', class: 'btn btn-primary', id: 'isvc-create'}, 'Create');
  const form = h('form', {class: 'card-form', id: 'isvc-yaml-form', 'aria-label': 'Create an inference service from YAML'},
    h('div', {class: 'editor-layout'},
      h('div', {class: 'grow'}, yaml),
      h('aside', {class: 'editor-help muted small'},
        h('p', null, 'A KServe ', h('code', null, 'InferenceService'), ' (', h('code', null, 'serving.kserve.io/v1beta1'), '), YAML or JSON: what ',
          h('code', null, 'kubectl apply'), ' and ', h('code', null, 'oxflow apply'), ' take.'),
        h('p', null, 'Model formats served here: ', h('code', null, 'sklearn'), ', ', h('code', null, 'xgboost'), ', ',
          h('code', null, 'lightgbm'), ', ', h('code', null, 'onnx'), '. A predictor with ', h('code', null, 'containers'),
          ' runs its command as a process here, as do transformers and explainers.'),
        h('p', null, h('code', null, 'storageUri'), ': a local path, ', h('code', null, 'file://'), ', ', h('code', null, 'pvc://'), ', ',
          h('code', null, 'http(s)://'), ' or ', h('code', null, 's3://'), '.'),
        h('p', null, 'Namespace: ', h('code', null, namespace), ' (from the selector).'))),
    h('div', {class: 'form-actions'}, createBtn,
      button('Reset to the example', () => {
        yaml.value = exampleYaml(`sklearn-iris-${shortId()}`);
        replace(yamlStatus);
        yaml.removeAttribute('aria-invalid');
      }, {id: 'isvc-reset-yaml'}),
      h('a', {class: 'btn', href: '#/models'}, 'Cancel'),
      yamlStatus));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(yamlStatus);
    yaml.removeAttribute('aria-invalid');
    createBtn.disabled = true;
    try {
      const created = await sendText(isvcPath(namespace), yaml.value, {contentType: 'application/yaml'});
      toast(`Inference service ${created.metadata.name} created.`, 'success');
      ctx.navigate(modelHref(created.metadata.name));
    } catch (err) {
      add(yamlStatus, specError(err, 'isvc-yaml-error'));
      yaml.setAttribute('aria-invalid', 'true');
    } finally {
      createBtn.disabled = false;
    }
  });
  add(main,
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/models'}, 'Models'), ' / new inference service'),
    pageHeader('New inference service'),
    form);
}
