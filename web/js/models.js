// What the Models pages share: API paths, an InferenceService's readiness,
// model and traffic as KServe's JSON shapes say them, the Prometheus text
// the data plane exposes (turned into samples and deltas), a small SVG line
// chart, and the bodies the "try it" form starts with.

import {h, s, add, toDate} from './dom.js';
import {fmtNumber} from './katib.js';

export const KSERVE = '/apis/serving.kserve.io/v1beta1';

/** `/apis/serving.kserve.io/v1beta1/namespaces/NS/inferenceservices[/NAME]`, every part encoded. */
export function isvcPath(namespace, name) {
  const base = `${KSERVE}/namespaces/${encodeURIComponent(namespace)}/inferenceservices`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

/** The service's data plane through the server: `/serving/NS/NAME/REST`. */
export function servingPath(namespace, name, rest) {
  return `/serving/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/${rest}`;
}

export function modelHref(name) {
  return `#/models/services/${encodeURIComponent(name)}`;
}

function conditions(isvc) {
  const list = isvc && isvc.status && isvc.status.conditions;
  return Array.isArray(list) ? list : [];
}

export function condition(isvc, type) {
  return conditions(isvc).find((c) => c.type === type) || null;
}

// Reasons KServe (and Oxflow) give while a revision is still coming up.
const LOADING_REASONS = new Set(['ModelLoading', 'RevisionLoading', 'Starting', 'PredictorConfigurationReady']);

/**
 * Ready / NotReady / Loading, with the `Ready` condition's reason and
 * message. Loading: no status yet, a status for an older generation that
 * is not ready, or a reason that says a revision is still starting.
 */
export function readiness(isvc) {
  const st = (isvc && isvc.status) || {};
  const ready = condition(isvc, 'Ready');
  if (!ready) return {state: 'Loading', reason: '', message: 'The controller has not reported a status yet.'};
  const reason = ready.reason || '';
  const message = ready.message || '';
  if (ready.status === 'True') return {state: 'Ready', reason, message};
  const gen = isvc.metadata && isvc.metadata.generation;
  const stale = typeof gen === 'number' && typeof st.observedGeneration === 'number' && st.observedGeneration < gen;
  if (stale || LOADING_REASONS.has(reason)) return {state: 'Loading', reason, message};
  return {state: 'NotReady', reason, message};
}

const READINESS_BADGE = {Ready: ['SUCCEEDED', 'ready'], NotReady: ['FAILED', 'not ready'], Loading: ['RUNNING', 'loading']};

/** A badge with the readiness' colour and word; `data-state` is Ready / NotReady / Loading. */
export function readinessBadge(state, attrs = {}) {
  const [colour, label] = READINESS_BADGE[state] || ['UNKNOWN', String(state || 'unknown').toLowerCase()];
  return h('span', {class: `badge state-${colour}`, 'data-state': state, ...attrs}, label);
}

/** A condition's status (True / False / Unknown) as a badge. */
export function conditionBadge(status) {
  const colour = status === 'True' ? 'SUCCEEDED' : status === 'False' ? 'FAILED' : 'PENDING';
  return h('span', {class: `badge state-${colour}`, 'data-state': status || 'Unknown'}, status || 'Unknown');
}

// KServe's older per-framework predictor fields (`predictor.sklearn: {...}`).
const FRAMEWORKS = ['sklearn', 'xgboost', 'lightgbm', 'onnx', 'tensorflow', 'pytorch', 'triton', 'huggingface', 'pmml', 'paddle'];

/** The model of a predictor spec: {format, storageUri, protocol, runtime, custom}. */
export function predictorModel(predictor) {
  const p = predictor || {};
  if (p.model) {
    const m = p.model;
    return {
      format: (m.modelFormat && m.modelFormat.name) || '',
      version: (m.modelFormat && m.modelFormat.version) || '',
      storageUri: m.storageUri || (Array.isArray(p.storageUris) && p.storageUris.length ? p.storageUris.map((x) => x.uri || '').join(', ') : ''),
      protocol: m.protocolVersion || '',
      runtime: m.runtime || '',
      custom: false,
    };
  }
  const fw = FRAMEWORKS.find((f) => p[f]);
  if (fw) {
    return {format: fw, version: '', storageUri: p[fw].storageUri || '', protocol: p[fw].protocolVersion || '', runtime: p[fw].runtime || '', custom: false};
  }
  if (Array.isArray(p.containers) && p.containers.length) {
    const c = p.containers[0];
    return {format: 'custom', version: '', storageUri: '', protocol: '', runtime: '', custom: true, image: c.image || '', command: [...(c.command || []), ...(c.args || [])]};
  }
  return {format: '', version: '', storageUri: '', protocol: '', runtime: '', custom: false};
}

export function modelOf(isvc) {
  return predictorModel(isvc && isvc.spec && isvc.spec.predictor);
}

/**
 * Where requests go: the predictor's traffic targets (revision, percent,
 * tag, latest) then the `spec.canary[]` variants (name, revision, percent).
 */
export function trafficOf(isvc) {
  const st = (isvc && isvc.status) || {};
  const predictor = (st.components && st.components.predictor) || {};
  const out = [];
  for (const t of Array.isArray(predictor.traffic) ? predictor.traffic : []) {
    out.push({kind: 'predictor', revision: t.revisionName || '', percent: Number(t.percent) || 0, tag: t.tag || '', latest: Boolean(t.latestRevision)});
  }
  for (const c of Array.isArray(st.canaryStatuses) ? st.canaryStatuses : []) {
    out.push({kind: 'canary', name: c.name || '', revision: c.revisionName || '', percent: Number(c.trafficPercent) || 0, ready: Boolean(c.ready)});
  }
  return out;
}

/** "3s", "5m", "2h", "4d", as kubectl's AGE column. */
export function age(t, now = Date.now()) {
  const d = toDate(t);
  if (!d) return '—';
  const sec = Math.max(0, Math.floor((now - d.getTime()) / 1000));
  if (sec < 120) return `${sec}s`;
  const min = Math.floor(sec / 60);
  if (min < 120) return `${min}m`;
  const hr = Math.floor(min / 60);
  if (hr < 48) return `${hr}h`;
  return `${Math.floor(hr / 24)}d`;
}

/**
 * The components whose revisions are commands (their output goes to a log
 * file): [{component, revisions, latest, logs}], `logs` naming the
 * component the logs endpoint takes (predictor, transformer, explainer;
 * null for canary variants, which it does not serve).
 */
export function commandComponents(isvc) {
  const spec = (isvc && isvc.spec) || {};
  const comps = (isvc && isvc.status && isvc.status.components) || {};
  const out = [];
  const revisionsOf = (c) => [...new Set([c.latestCreatedRevision, c.latestReadyRevision, c.latestRolledoutRevision, c.previousRolledoutRevision].filter(Boolean))];
  if (predictorModel(spec.predictor).custom) {
    const c = comps.predictor || {};
    out.push({component: 'predictor', revisions: revisionsOf(c), latest: c.latestCreatedRevision || '', logs: 'predictor'});
  }
  for (const part of ['transformer', 'explainer']) {
    const c = comps[part] || {};
    if (spec[part]) out.push({component: part, revisions: revisionsOf(c), latest: c.latestCreatedRevision || '', logs: part});
  }
  const canaries = Array.isArray(spec.canary) ? spec.canary : [];
  const statuses = (isvc && isvc.status && isvc.status.canaryStatuses) || [];
  canaries.forEach((c, i) => {
    if (predictorModel(c && c.predictor).custom && statuses[i] && statuses[i].revisionName) {
      out.push({component: `canary ${statuses[i].name || i}`, revisions: [statuses[i].revisionName], latest: statuses[i].revisionName, logs: null});
    }
  });
  return out;
}

// ------------------------------------------------------------- metrics

/** Prometheus text exposition → [{name, labels, value}] (comments and bad lines skipped). */
export function parsePrometheus(text) {
  const out = [];
  for (const raw of String(text || '').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3])) !== null) {
        labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
      }
    }
    const value = Number(m[4]);
    if (!Number.isNaN(value)) out.push({name: m[1], labels, value});
  }
  return out;
}

/**
 * One model's counters from the data plane's `/metrics`: requests, errors
 * (codes ≥ 400), requests by code, and the latency histogram's sum and
 * count. `reports` is false when the text has no Oxflow inference series at
 * all (a custom predictor serving its own metrics).
 */
export function modelCounters(text, model) {
  const samples = parsePrometheus(text);
  const reports = /oxflow_inference_requests_total/.test(String(text || ''));
  const out = {reports, requests: 0, errors: 0, byCode: {}, durationSum: 0, durationCount: 0};
  for (const x of samples) {
    if (x.labels.model !== model) continue;
    if (x.name === 'oxflow_inference_requests_total') {
      out.requests += x.value;
      const code = x.labels.code || '?';
      out.byCode[code] = (out.byCode[code] || 0) + x.value;
      if (Number(code) >= 400) out.errors += x.value;
    } else if (x.name === 'oxflow_inference_request_duration_seconds_sum') {
      out.durationSum += x.value;
    } else if (x.name === 'oxflow_inference_request_duration_seconds_count') {
      out.durationCount += x.value;
    }
  }
  return out;
}

/**
 * The processes behind each revision of a service, from its metrics: the
 * copies of a command or a scikit-learn model's workers running, ready and
 * wanted by the autoscaler. Sorted by revision.
 */
export function replicaGauges(text) {
  const by = {};
  const field = {
    oxflow_serving_replicas: 'running',
    oxflow_serving_ready_replicas: 'ready',
    oxflow_serving_desired_replicas: 'wanted',
  };
  for (const x of parsePrometheus(text)) {
    const f = field[x.name];
    if (!f || !x.labels.revision) continue;
    const r = by[x.labels.revision] || (by[x.labels.revision] = {revision: x.labels.revision});
    r[f] = x.value;
  }
  return Object.values(by).sort((a, b) => a.revision.localeCompare(b.revision));
}

/** A counter's increase between two samples; a reset (restart) counts from zero, as Prometheus does. */
function increase(before, after) {
  return after >= before ? after - before : after;
}

/**
 * Per interval between consecutive samples ({t: ms, ...modelCounters}):
 * requests, request rate (per second), errors and mean latency (seconds,
 * null when no request succeeded in the interval).
 */
export function intervals(samples) {
  const out = [];
  for (let i = 1; i < samples.length; i += 1) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = Math.max(1e-3, (b.t - a.t) / 1000);
    const requests = increase(a.requests, b.requests);
    const count = increase(a.durationCount, b.durationCount);
    const sum = b.durationSum >= a.durationSum ? b.durationSum - a.durationSum : b.durationSum;
    out.push({
      t: b.t,
      requests,
      rate: requests / dt,
      errors: increase(a.errors, b.errors),
      latency: count > 0 ? sum / count : null,
    });
  }
  return out;
}

/** Seconds → "0.42 ms", "12 ms", "1.3 s". */
export function fmtLatency(sec) {
  if (sec === null || sec === undefined || !Number.isFinite(sec)) return '—';
  const ms = sec * 1000;
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** The smallest of 1, 2, 2.5, 5 × 10^k that is at least `v` (1 for nothing). */
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const mag = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((k) => k * mag).find((x) => x >= v * (1 - 1e-9)) || 10 * mag;
}

/** The time a chart spans: what was sampled, at least a minute, at most `max`. */
export function chartWindow(samples, max) {
  if (!samples.length) return 60000;
  const spanMs = samples[samples.length - 1].t - samples[0].t;
  return Math.min(max, Math.max(60000, spanMs));
}

/**
 * JSON with two-space indentation, arrays of plain values on one line
 * (`[[0.2, 1.0]]` rather than six lines).
 */
export function prettyJson(v, depth = 0) {
  const pad = '  '.repeat(depth);
  if (Array.isArray(v)) {
    if (v.every((x) => x === null || typeof x !== 'object')) return `[${v.map((x) => JSON.stringify(x)).join(', ')}]`;
    return `[\n${v.map((x) => `${pad}  ${prettyJson(x, depth + 1)}`).join(',\n')}\n${pad}]`;
  }
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    if (!keys.length) return '{}';
    return `{\n${keys.map((k) => `${pad}  ${JSON.stringify(k)}: ${prettyJson(v[k], depth + 1)}`).join(',\n')}\n${pad}}`;
  }
  return JSON.stringify(v);
}

/**
 * A small time-series chart: `points` [{t: ms, v: number|null}] over the
 * last `windowMs`, a line through the points with values (gaps at null),
 * a dot per point carrying its value in `data-value`.
 */
export function lineChart(points, {title, series, fmt = fmtNumber, windowMs = 60000, now = Date.now()} = {}) {
  const W = 360;
  const H = 150;
  const m = {l: 52, r: 10, t: 10, b: 24};
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const svg = s('svg', {class: 'models-chart', 'data-series': series, viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title});
  add(svg, s('title', null, title));
  const values = points.map((p) => p.v).filter((v) => typeof v === 'number' && Number.isFinite(v));
  const hi = values.length ? Math.max(...values) : 0;
  const top = niceCeil(hi);
  const t1 = now;
  const t0 = now - windowMs;
  const X = (t) => m.l + Math.min(1, Math.max(0, (t - t0) / (t1 - t0))) * pw;
  const Y = (v) => m.t + (1 - v / top) * ph;
  for (const v of [0, top / 2, top]) {
    add(svg, s('line', {class: 'grid', x1: m.l, x2: m.l + pw, y1: Y(v), y2: Y(v)}),
      s('text', {class: 'tick', x: m.l - 5, y: Y(v) + 3.5, 'text-anchor': 'end'}, fmt(v)));
  }
  add(svg, s('line', {class: 'axis-line', x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph}),
    s('text', {class: 'tick', x: m.l, y: H - 6, 'text-anchor': 'start'}, windowMs < 120000 ? `${Math.round(windowMs / 1000)} s ago` : `${Math.round(windowMs / 6000) / 10} min ago`),
    s('text', {class: 'tick', x: m.l + pw, y: H - 6, 'text-anchor': 'end'}, 'now'));
  let d = '';
  let pen = false;
  for (const p of points) {
    if (typeof p.v !== 'number' || !Number.isFinite(p.v)) {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'} ${X(p.t).toFixed(1)} ${Y(p.v).toFixed(1)} `;
    pen = true;
  }
  if (d) add(svg, s('path', {class: 'series-line', d: d.trim()}));
  for (const p of points) {
    if (typeof p.v !== 'number' || !Number.isFinite(p.v)) continue;
    add(svg, s('circle', {class: 'series-point', cx: X(p.t), cy: Y(p.v), r: 2.5, 'data-value': String(p.v)},
      s('title', null, `${new Date(p.t).toLocaleTimeString()}: ${fmt(p.v)}`)));
  }
  return svg;
}

// ------------------------------------------------------------- try it

/** The V2 tensor shape for one example row: -1 (any) becomes 1. */
function concreteShape(shape) {
  return (Array.isArray(shape) ? shape : [1]).map((d) => (Number(d) > 0 ? Number(d) : 1));
}

function zeros(datatype, n) {
  if (datatype === 'BYTES') return Array(n).fill('');
  if (datatype === 'BOOL') return Array(n).fill(false);
  return Array(n).fill(0);
}

/** Nested arrays of the given shape (row-major) from flat values. */
function nest(flat, shape) {
  if (shape.length <= 1) return flat;
  const step = flat.length / shape[0];
  const out = [];
  for (let i = 0; i < shape[0]; i += 1) out.push(nest(flat.slice(i * step, (i + 1) * step), shape.slice(1)));
  return out;
}

// Larger example tensors are left for the user to fill in.
const MAX_EXAMPLE_ELEMENTS = 256;

/**
 * The bodies the "try it" form starts with: from the model's V2 metadata
 * when it answered (each input's name, datatype and shape, zeros as data),
 * else KServe's iris example.
 */
export function exampleBodies(metadata) {
  const inputs = metadata && Array.isArray(metadata.inputs) ? metadata.inputs : [];
  if (!inputs.length) {
    return {
      v1: {instances: [[6.8, 2.8, 4.8, 1.4]]},
      v2: {inputs: [{name: 'input-0', shape: [1, 4], datatype: 'FP32', data: [6.8, 2.8, 4.8, 1.4]}]},
    };
  }
  const v2 = {inputs: inputs.map((i) => {
    const shape = concreteShape(i.shape);
    const n = shape.reduce((a, b) => a * b, 1);
    return {name: i.name, shape, datatype: i.datatype || 'FP32', data: n <= MAX_EXAMPLE_ELEMENTS ? zeros(i.datatype, n) : []};
  })};
  let v1;
  if (inputs.length === 1) {
    const shape = concreteShape(inputs[0].shape);
    const n = shape.reduce((a, b) => a * b, 1);
    const row = n <= MAX_EXAMPLE_ELEMENTS ? nest(zeros(inputs[0].datatype, n), shape) : [];
    v1 = {instances: row};
  } else {
    // Several named inputs: V1's object form, one instance.
    const inst = {};
    for (const i of v2.inputs) {
      const inner = i.shape.slice(1);
      inst[i.name] = inner.length ? nest(i.data, inner) : i.data[0];
    }
    v1 = {instances: [inst]};
  }
  return {v1, v2};
}

/** The interesting part of an answer: V1 predictions, or each V2 output's data. */
export function predictionsOf(body) {
  if (!body || typeof body !== 'object') return null;
  if ('predictions' in body) return JSON.stringify(body.predictions);
  if (Array.isArray(body.outputs)) return body.outputs.map((o) => `${o.name}: ${JSON.stringify(o.data)}`).join('\n');
  return null;
}

/** The InferenceService the New form starts with: KServe's sklearn-iris, with a local storageUri. */
export function exampleYaml(name) {
  return `apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: ${name}
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      # A local directory or file, file://, pvc://CLAIM/PATH
      # ($OXFLOW_HOME/volumes/NAMESPACE/CLAIM/PATH), http(s):// or s3://.
      storageUri: /srv/models/sklearn-iris
`;
}
