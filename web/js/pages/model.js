// One InferenceService: readiness and conditions, model status, components
// with their revisions, the traffic split, request metrics over time
// (sampled from the service's Prometheus endpoint while the page is open),
// a form that sends a V1 or V2 request and shows the answer, where the logs
// of command components are, and the resource itself as YAML and JSON.

import {h, errorBox, kvTable, fmtTime, table, empty, button, toast, notice, replace, add} from '../dom.js';
import {api, fetchRaw, listKube, ApiError, stateHeaders} from '../api.js';
import {fmtNumber, toYaml} from '../katib.js';
import {
  isvcPath, servingPath, readiness, readinessBadge, conditionBadge, modelOf, age, commandComponents,
  modelCounters, intervals, fmtLatency, lineChart, chartWindow, exampleBodies, predictionsOf, prettyJson,
  replicaGauges,
} from '../models.js';
import {trafficCell} from './models.js';

const TRAINED = '/apis/serving.kserve.io/v1alpha1';

/** The resource is polled on these intervals: faster while it is loading. */
const LOADING_REFRESH_MS = 2000;
const IDLE_REFRESH_MS = 5000;
/** The metrics are sampled this often, and this many samples are kept. */
const METRICS_MS = 2000;
const MAX_SAMPLES = 90;

const PROTOCOLS = [['v1', 'V1 predict'], ['v2', 'V2 infer']];
/** How much of a command's log is shown, and how often it is reloaded while shown. */
const LOG_TAIL_BYTES = 256 * 1024;
const LOG_REFRESH_MS = 3000;

export async function render(ctx) {
  const {main, params, namespace} = ctx;
  const name = params[0];
  ctx.setTitle(`${name} · Models`);
  add(main, h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/models'}, 'Models'), ' / ', name));

  let isvc;
  try {
    isvc = await api(isvcPath(namespace, name));
  } catch (err) {
    add(main, h('h1', null, name), errorBox(err),
      err.status === 404 ? h('p', null, `No inference service ${name} in namespace ${namespace}. `, h('a', {href: '#/models'}, 'All inference services')) : null);
    return undefined;
  }

  let disposed = false;
  let timer = null;
  let metricsTimer = null;
  let dataKey = '';
  let metadataAsked = false;

  // ------------------------------------------------------------- header
  const badgeBox = h('span', {id: 'isvc-state'});
  const live = h('span', {class: 'live on', id: 'isvc-live'}, 'live');
  const actionStatus = h('div', {id: 'isvc-action-status', 'aria-live': 'polite'});
  const refreshStatus = h('div', {id: 'isvc-refresh-status'});
  const conditionLine = h('p', {class: 'run-meta muted', id: 'isvc-condition'});
  const remove = async () => {
    if (!window.confirm(`Delete inference service ${name}? Its revisions stop serving at once.`)) return;
    try {
      await api(isvcPath(namespace, name), {method: 'DELETE'});
      toast(`Inference service ${name} deleted.`, 'success');
      ctx.navigate('#/models');
    } catch (err) {
      replace(actionStatus, h('div', {class: 'alert alert-error', role: 'alert', id: 'isvc-action-error'}, err.message));
    }
  };
  add(main,
    h('div', {class: 'page-header'}, h('h1', null, name, ' ', badgeBox, ' ', live),
      h('div', {class: 'actions'}, button('Delete', remove, {class: 'btn btn-danger', id: 'isvc-delete'}))),
    conditionLine, actionStatus, refreshStatus);

  const cards = h('div', {class: 'cards models-cards', id: 'isvc-summary'});
  const conditionsBox = h('div', {id: 'isvc-conditions-box'});
  const modelStatusBox = h('div', {id: 'isvc-model-status-box'});
  const componentsBox = h('div', {id: 'isvc-components-box'});
  const trainedBox = h('div', {id: 'isvc-trained-box'});
  let trainedKey = null;
  const trafficBox = h('div', {id: 'isvc-traffic-box'});
  const logsBox = h('div', {id: 'isvc-logs-box'});
  const logTitle = h('h3', {id: 'isvc-log-h'});
  const logPre = h('pre', {class: 'log', id: 'isvc-log', tabindex: '0', 'aria-labelledby': 'isvc-log-h'});
  let logComponent = null;
  let logTimer = null;
  let logAbort = null;
  const closeLog = () => {
    logComponent = null;
    clearTimeout(logTimer);
    if (logAbort) logAbort.abort();
    logPanel.hidden = true;
  };
  const logPanel = h('section', {class: 'log-panel', id: 'isvc-log-panel', 'aria-labelledby': 'isvc-log-h', hidden: true},
    h('div', {class: 'panel-head'}, logTitle,
      h('div', {class: 'actions'},
        button('Close', closeLog, {class: 'btn btn-small', id: 'isvc-log-close', 'aria-label': 'Close the log'}))),
    logPre);
  const yamlPre = h('pre', {class: 'text-preview spec-view', id: 'isvc-yaml-text'});
  const jsonPre = h('pre', {class: 'text-preview spec-view', id: 'isvc-json-text'});

  // ------------------------------------------------------------ metrics
  const samples = [];
  let metricsState = 'waiting';
  let metricsMessage = '';
  let polling = false;
  // Metrics come from the control plane (…/inferenceservices/NAME/metrics):
  // reading them is not a request to the service, so sampling neither
  // counts as traffic nor wakes a predictor scaled to zero. A request to
  // the model itself (its metadata, for "try it") does wake it, so that
  // waits until the user turns to the form.
  const scalesToZero = () => Number(((isvc.spec && isvc.spec.predictor) || {}).minReplicas) === 0;
  const metricsUrl = `${isvcPath(namespace, name)}/metrics`;
  const sampleBox = h('input', {type: 'checkbox', id: 'metrics-sample', checked: true});
  sampleBox.addEventListener('change', () => pollMetrics());
  const metricsSection = h('section', {id: 'isvc-metrics', 'aria-labelledby': 'metrics-h', 'data-state': 'waiting', 'data-samples': '0'});
  const metricsSummary = h('p', {id: 'metrics-summary', class: 'small'});
  const metricsCharts = h('div', {class: 'viz-row models-charts', id: 'metrics-charts'});
  const metricsCodes = h('div', {id: 'metrics-codes'});
  /** The processes of each revision (commands' copies, scikit-learn workers), from the last sample. */
  const metricsReplicas = h('div', {id: 'metrics-replicas'});
  let replicas = [];
  add(metricsSection,
    h('div', {class: 'section-head'}, h('h2', {id: 'metrics-h'}, 'Metrics'),
      h('label', {class: 'check small', for: 'metrics-sample'}, sampleBox, 'Sample while this page is open')),
    h('p', {class: 'muted small'}, `Sampled every ${METRICS_MS / 1000} s from `,
      h('code', null, metricsUrl), '.'),
    metricsSummary, metricsReplicas, metricsCharts, metricsCodes);

  const renderMetrics = () => {
    const iv = intervals(samples);
    const last = samples[samples.length - 1];
    const windowRequests = iv.reduce((a, x) => a + x.requests, 0);
    const windowErrors = iv.reduce((a, x) => a + x.errors, 0);
    Object.assign(metricsSection.dataset, {
      state: metricsState,
      samples: String(samples.length),
      requestsWindow: String(windowRequests),
      errorsWindow: String(windowErrors),
      requestsTotal: String(last ? last.requests : 0),
      errorsTotal: String(last ? last.errors : 0),
    });
    if (metricsState === 'paused') {
      replace(metricsSummary, h('span', {class: 'muted'}, 'Not sampled. Tick "Sample" to sample.'));
    } else if (metricsState === 'not-ready') {
      replace(metricsSummary, h('span', {class: 'muted'}, 'Metrics are sampled once the service is ready.'));
    } else if (metricsState === 'unavailable') {
      replace(metricsSummary, notice(`No metrics right now: ${metricsMessage}`, 'warning'));
    } else if (metricsState === 'absent') {
      replace(metricsSummary, notice('Requests to a command (a custom predictor or a transformer) are its own to count: Oxflow shows the processes it runs.', 'info'));
    } else if (!last) {
      replace(metricsSummary, h('span', {class: 'muted'}, 'Waiting for the first sample…'));
    } else {
      const meanAll = last.durationCount > 0 ? last.durationSum / last.durationCount : null;
      replace(metricsSummary,
        h('strong', {id: 'metrics-window-requests'}, String(windowRequests)), ` request${windowRequests === 1 ? '' : 's'} since this page opened`,
        ' (', h('strong', {id: 'metrics-window-errors'}, String(windowErrors)), ` error${windowErrors === 1 ? '' : 's'})`,
        h('span', {class: 'muted'}, ` · since the server started: ${last.requests} requests, ${last.errors} errors, mean latency ${fmtLatency(meanAll)}`));
    }
    metricsCharts.hidden = !samples.length || metricsState === 'absent';
    const now = last ? last.t : Date.now();
    const windowMs = chartWindow(samples, METRICS_MS * (MAX_SAMPLES - 1));
    const chart = (id, title, series, points, fmt) => h('section', {class: 'chart-card', id, 'aria-label': title},
      h('h3', null, title), lineChart(points, {title, series, fmt, windowMs, now}));
    replace(metricsCharts,
      chart('chart-rate', 'Requests per second', 'rate', iv.map((x) => ({t: x.t, v: x.rate})), fmtNumber),
      chart('chart-latency', 'Mean latency', 'latency', iv.map((x) => ({t: x.t, v: x.latency})), fmtLatency),
      chart('chart-errors', 'Errors (code ≥ 400) per interval', 'errors', iv.map((x) => ({t: x.t, v: x.errors})), fmtNumber));
    replace(metricsReplicas, replicas.length
      ? table(['Revision', 'Processes running', 'Ready', 'Wanted by the autoscaler'], replicas.map((r) => h('tr', {
        'data-revision': r.revision, 'data-running': String(r.running ?? ''), 'data-ready': String(r.ready ?? ''), 'data-wanted': String(r.wanted ?? ''),
      },
      h('td', null, h('code', null, r.revision)),
      h('td', {class: 'num'}, String(r.running ?? '—')),
      h('td', {class: 'num'}, String(r.ready ?? '—')),
      h('td', {class: 'num'}, String(r.wanted ?? '—')))), {class: 'table compact', id: 'isvc-replicas', 'aria-label': 'Processes per revision'})
      : null);
    const codes = last ? Object.entries(last.byCode).sort() : [];
    replace(metricsCodes, codes.length
      ? table(['Code', 'Requests since the server started'], codes.map(([code, n]) => h('tr', {'data-code': code},
        h('td', null, code), h('td', {class: 'num'}, String(n)))), {class: 'table compact codes-table', 'aria-label': 'Requests by status code'})
      : null);
  };

  const pollMetrics = async () => {
    clearTimeout(metricsTimer);
    if (disposed) return;
    if (polling) {
      metricsTimer = setTimeout(pollMetrics, METRICS_MS);
      return;
    }
    if (!sampleBox.checked) {
      metricsState = 'paused';
      renderMetrics();
      return;
    }
    if (readiness(isvc).state !== 'Ready') {
      // Nothing answers before a revision is ready (503s, every few seconds).
      metricsState = 'not-ready';
      renderMetrics();
      metricsTimer = setTimeout(pollMetrics, METRICS_MS);
      return;
    }
    polling = true;
    try {
      const resp = await fetch(metricsUrl, {headers: {Accept: 'text/plain'}});
      const text = await resp.text();
      if (disposed) return;
      if (resp.status === 404 && commandComponents(isvc).length) {
        metricsState = 'absent';
      } else if (!resp.ok) {
        let why = `${resp.status} ${resp.statusText}`;
        try {
          why = JSON.parse(text).error || why;
        } catch (_) {
          // Not JSON: the status line says enough.
        }
        metricsState = 'unavailable';
        metricsMessage = why;
      } else {
        const c = modelCounters(text, name);
        replicas = replicaGauges(text);
        metricsState = c.reports ? 'ok' : 'absent';
        samples.push({t: Date.now(), ...c});
        if (samples.length > MAX_SAMPLES) samples.splice(0, samples.length - MAX_SAMPLES);
      }
    } catch (err) {
      if (disposed) return;
      metricsState = 'unavailable';
      metricsMessage = err.message;
    } finally {
      polling = false;
    }
    renderMetrics();
    // A command's requests will not start to carry Oxflow's series, but its
    // copies come and go with the autoscaler.
    if (!disposed && (metricsState !== 'absent' || replicas.length)) metricsTimer = setTimeout(pollMetrics, METRICS_MS);
  };

  // ------------------------------------------------------------- try it
  let protocol = (modelOf(isvc).protocol || '').toLowerCase() === 'v2' ? 'v2' : 'v1';
  let examples = exampleBodies(null);
  const pretty = (v) => prettyJson(v);
  const bodies = {v1: pretty(examples.v1), v2: pretty(examples.v2)};
  const edited = {v1: false, v2: false};
  const protoSel = h('select', {id: 'try-protocol', 'aria-label': 'Protocol'},
    PROTOCOLS.map(([v, label]) => h('option', {value: v, selected: v === protocol}, label)));
  const bodyArea = h('textarea', {id: 'try-body', rows: 10, spellcheck: 'false', 'aria-label': 'Request body (JSON)', class: 'try-body'});
  bodyArea.value = bodies[protocol];
  const tryUrl = h('code', {id: 'try-url'});
  const sendBtn = h('button', {type: 'submit', class: 'btn btn-primary', id: 'try-send'}, 'Send');
  const tryStatus = h('span', {id: 'try-status', class: 'try-status'});
  const tryOut = h('div', {id: 'try-output', 'aria-live': 'polite'});
  const urlFor = (p) => (p === 'v2'
    ? servingPath(namespace, name, `v2/models/${encodeURIComponent(name)}/infer`)
    : servingPath(namespace, name, `v1/models/${encodeURIComponent(name)}:predict`));
  const showUrl = () => { tryUrl.textContent = `POST ${urlFor(protocol)}`; };
  showUrl();
  bodyArea.addEventListener('input', () => { edited[protocol] = true; });
  protoSel.addEventListener('change', () => {
    bodies[protocol] = bodyArea.value;
    protocol = protoSel.value;
    bodyArea.value = bodies[protocol];
    showUrl();
  });
  const metadataNote = h('p', {class: 'muted small', id: 'try-metadata'});
  const tryForm = h('form', {class: 'card-form try-form', id: 'try-form', 'aria-label': 'Send a request'},
    h('div', {class: 'form-actions'},
      h('label', {for: 'try-protocol', class: 'inline-label'}, 'Protocol'), protoSel, tryUrl),
    metadataNote,
    bodyArea,
    h('div', {class: 'form-actions'}, sendBtn,
      button('Reset the body', () => {
        edited[protocol] = false;
        bodyArea.value = pretty(examples[protocol]);
      }, {id: 'try-reset'}),
      tryStatus),
    tryOut);
  // A predictor that scales to zero is asked for its metadata only once the
  // user turns to this form (the request would load its model).
  tryForm.addEventListener('focusin', () => {
    if (readiness(isvc).state === 'Ready') loadMetadata();
  });
  tryForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(tryOut);
    tryStatus.textContent = '';
    delete tryStatus.dataset.status;
    try {
      JSON.parse(bodyArea.value);
    } catch (err) {
      add(tryOut, h('div', {class: 'alert alert-error', role: 'alert', id: 'try-error'}, `The body is not valid JSON: ${err.message}`));
      bodyArea.setAttribute('aria-invalid', 'true');
      return;
    }
    bodyArea.removeAttribute('aria-invalid');
    sendBtn.disabled = true;
    const started = performance.now();
    try {
      const resp = await fetch(urlFor(protocol), {
        method: 'POST', body: bodyArea.value, headers: stateHeaders('POST', {'Content-Type': 'application/json', Accept: 'application/json'}),
      });
      const text = await resp.text();
      const ms = performance.now() - started;
      let body = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch (_) {
        // Shown as text below.
      }
      tryStatus.dataset.status = String(resp.status);
      tryStatus.className = `try-status ${resp.ok ? 'ok' : 'failed'}`;
      tryStatus.textContent = `${resp.status} ${resp.statusText} · ${fmtLatency(ms / 1000)}`;
      if (!resp.ok) {
        add(tryOut, h('div', {class: 'alert alert-error', role: 'alert', id: 'try-error'},
          (body && body.error) || text || `${resp.status} ${resp.statusText}`));
      } else {
        const p = predictionsOf(body);
        if (p !== null) add(tryOut, h('p', {class: 'try-result-line'}, h('span', {class: 'muted'}, 'Prediction: '), h('code', {id: 'try-result'}, p)));
      }
      add(tryOut, h('pre', {class: 'text-preview', id: 'try-response'}, body !== null ? pretty(body) : text));
      // Show the request in the metrics without waiting for the next sample.
      if (metricsState === 'ok' || metricsState === 'waiting') pollMetrics();
    } catch (err) {
      add(tryOut, h('div', {class: 'alert alert-error', role: 'alert', id: 'try-error'}, `The request failed: ${err.message}`));
    } finally {
      sendBtn.disabled = false;
    }
  });

  /** Asks the model's V2 metadata once it is ready, to start the bodies with its inputs. */
  const loadMetadata = async () => {
    if (metadataAsked) return;
    metadataAsked = true;
    try {
      const resp = await fetchRaw(servingPath(namespace, name, `v2/models/${encodeURIComponent(name)}`));
      const meta = await resp.json();
      if (disposed || !meta || !Array.isArray(meta.inputs) || !meta.inputs.length) return;
      examples = exampleBodies(meta);
      for (const p of ['v1', 'v2']) if (!edited[p]) bodies[p] = pretty(examples[p]);
      if (!edited[protocol]) bodyArea.value = bodies[protocol];
      replace(metadataNote, 'The bodies start from the model\'s metadata: ',
        meta.inputs.map((i, k) => [k ? ', ' : '', h('code', null, `${i.name} ${i.datatype} [${(i.shape || []).join(', ')}]`)]), '.');
      metadataNote.dataset.loaded = 'true';
    } catch (_) {
      // No V2 metadata (a custom predictor, say): the generic example stays.
      if (!disposed) replace(metadataNote, 'The model did not answer V2 metadata: the bodies are KServe\'s iris example.');
    }
  };

  add(main,
    cards,
    h('section', {'aria-labelledby': 'conditions-h'}, h('h2', {id: 'conditions-h'}, 'Conditions'), conditionsBox),
    h('div', {class: 'two-col models-two-col'},
      h('section', {'aria-labelledby': 'model-status-h'}, h('h2', {id: 'model-status-h'}, 'Model status'), modelStatusBox),
      h('section', {'aria-labelledby': 'traffic-h'}, h('h2', {id: 'traffic-h'}, 'Traffic'), trafficBox)),
    h('section', {'aria-labelledby': 'components-h'}, h('h2', {id: 'components-h'}, 'Components'), componentsBox),
    h('section', {id: 'isvc-trained', 'aria-labelledby': 'trained-h'}, h('h2', {id: 'trained-h'}, 'Trained models'), trainedBox),
    metricsSection,
    h('section', {id: 'try-it', 'aria-labelledby': 'try-h'}, h('h2', {id: 'try-h'}, 'Try it'), tryForm),
    h('section', {id: 'isvc-logs', 'aria-labelledby': 'logs-h'}, h('h2', {id: 'logs-h'}, 'Logs'), logsBox, logPanel),
    h('section', {'aria-labelledby': 'spec-h'}, h('h2', {id: 'spec-h'}, 'Resource'),
      h('details', {id: 'isvc-yaml'}, h('summary', null, 'YAML'), yamlPre),
      h('details', {id: 'isvc-json'}, h('summary', null, 'JSON'), jsonPre)));

  // ------------------------------------------------------------ overview
  const renderHeader = () => {
    const r = readiness(isvc);
    replace(badgeBox, readinessBadge(r.state));
    const st = isvc.status || {};
    const url = st.url || (st.components && st.components.predictor && st.components.predictor.url) || '';
    replace(conditionLine,
      r.reason ? h('strong', {class: 'reason'}, r.reason) : null,
      r.message ? [r.reason ? ' — ' : '', h('span', {class: 'message'}, r.message)] : null,
      r.reason || r.message ? ' · ' : null,
      url ? [h('code', null, url), ' · '] : null,
      `created ${fmtTime(isvc.metadata.creationTimestamp)} (${age(isvc.metadata.creationTimestamp)} ago)`,
      ` · generation ${isvc.metadata.generation || '—'}`);
  };

  const renderCards = () => {
    const r = readiness(isvc);
    const m = modelOf(isvc);
    const spec = isvc.spec || {};
    const p = spec.predictor || {};
    const st = isvc.status || {};
    const statusCard = h('section', {class: `card state-${r.state === 'Ready' ? 'SUCCEEDED' : r.state === 'Loading' ? 'RUNNING' : 'FAILED'}`, id: 'isvc-status-card', 'aria-label': 'Status'},
      h('span', {class: 'card-label'}, 'Status'),
      h('span', {class: 'card-value'}, readinessBadge(r.state)),
      r.state !== 'Ready' && (r.reason || r.message) ? kvTable([
        ['Reason', r.reason || '—'], ['Message', r.message || '—'],
      ], {class: 'kv small'}) : null,
      kvTable([
        ['Observed generation', `${st.observedGeneration ?? '—'} of ${isvc.metadata.generation ?? '—'}`],
        ['Deployment mode', st.deploymentMode || '—'],
      ], {class: 'kv small'}));
    const predictorRows = m.custom
      ? [['Model', h('span', {class: 'type-chip'}, 'custom')], ['Image', m.image || '—'], ['Command', h('code', {class: 'value'}, (m.command || []).join(' ') || '—')]]
      : [['Format', h('span', {class: 'type-chip', id: 'isvc-format'}, `${m.format || '—'}${m.version ? ` ${m.version}` : ''}`)],
        ['Storage URI', h('code', {class: 'value', id: 'isvc-storage'}, m.storageUri || '—')],
        ['Protocol', m.protocol || 'v1'],
        m.runtime ? ['Runtime', m.runtime] : null].filter(Boolean);
    const predictorCard = h('section', {class: 'card', id: 'isvc-predictor-card', 'aria-label': 'Predictor'},
      h('span', {class: 'card-label'}, 'Predictor'),
      kvTable([
        ...predictorRows,
        ['Replicas', `${p.minReplicas ?? 1}${p.maxReplicas ? `–${p.maxReplicas}` : ''}${Number(p.minReplicas) === 0 ? ' (scales to zero when idle)' : ''}`],
        p.batcher ? ['Batcher', `max ${p.batcher.maxBatchSize ?? '—'} rows, ${p.batcher.maxLatency ?? '—'} ms`] : null,
        p.canaryTrafficPercent !== undefined ? ['Canary traffic', `${p.canaryTrafficPercent}%`] : null,
        spec.transformer ? ['Transformer', 'yes (a command)'] : null,
        spec.explainer ? ['Explainer', 'yes (a command)'] : null,
      ].filter(Boolean), {class: 'kv small'}));
    const url = st.url || (st.components && st.components.predictor && st.components.predictor.url) || '';
    const endpointCard = h('section', {class: 'card', id: 'isvc-endpoint-card', 'aria-label': 'Endpoint'},
      h('span', {class: 'card-label'}, 'Endpoint'),
      kvTable([
        ['URL', url ? h('code', {class: 'value', id: 'isvc-url'}, url) : h('span', {class: 'muted'}, 'once ready')],
        ['V1', h('code', {class: 'value'}, `${servingPath(namespace, name, `v1/models/${name}:predict`)}`)],
        ['V2', h('code', {class: 'value'}, `${servingPath(namespace, name, `v2/models/${name}/infer`)}`)],
        ['Host', h('code', {class: 'value'}, `${name}.${namespace}.example.com`)],
      ], {class: 'kv small'}));
    replace(cards, statusCard, predictorCard, endpointCard);
  };

  const renderConditions = () => {
    const list = (isvc.status && Array.isArray(isvc.status.conditions)) ? isvc.status.conditions : [];
    replace(conditionsBox, list.length
      ? table(['Type', 'Status', 'Reason', 'Message', 'Last transition'], list.map((c) => h('tr', {'data-type': c.type, 'data-status': c.status},
        h('td', {class: 'cond-type'}, c.type),
        h('td', null, conditionBadge(c.status)),
        h('td', {class: 'cond-reason'}, c.reason || ''),
        h('td', {class: 'cond-message'}, c.message || ''),
        h('td', {title: c.lastTransitionTime || ''}, fmtTime(c.lastTransitionTime)))),
      {class: 'table compact', id: 'isvc-conditions', 'aria-label': 'Conditions'})
      : empty('No conditions yet.'));
  };

  const renderModelStatus = () => {
    const ms = (isvc.status && isvc.status.modelStatus) || null;
    if (!ms) {
      replace(modelStatusBox, empty('No model status yet.'));
      return;
    }
    const states = ms.states || {};
    const copies = ms.copies || {};
    const f = ms.lastFailureInfo;
    replace(modelStatusBox, kvTable([
      ['Transition status', h('strong', {id: 'model-transition'}, ms.transitionStatus || '—')],
      ['Target model state', states.targetModelState || '—'],
      ['Active model state', states.activeModelState || '—'],
      ['Copies', `${copies.totalCopies ?? '—'} total, ${copies.failedCopies ?? 0} failed`],
      ...(f ? [
        ['Last failure', h('strong', {id: 'model-failure-reason'}, f.reason || '—')],
        ['Failure message', h('span', {id: 'model-failure-message'}, f.message || '—')],
        ['Failed at', fmtTime(f.time)],
        f.modelRevisionName ? ['Revision', h('code', null, f.modelRevisionName)] : null,
      ].filter(Boolean) : []),
    ], {class: 'kv', id: 'isvc-model-status'}));
  };

  const renderComponents = () => {
    const comps = (isvc.status && isvc.status.components) || {};
    const rows = Object.entries(comps).map(([part, c]) => h('tr', {'data-component': part},
      h('td', null, part),
      h('td', null, c.latestCreatedRevision ? h('code', null, c.latestCreatedRevision) : '—'),
      h('td', null, c.latestReadyRevision ? h('code', null, c.latestReadyRevision) : '—'),
      h('td', null, c.latestRolledoutRevision ? h('code', null, c.latestRolledoutRevision) : '—'),
      h('td', null, c.previousRolledoutRevision ? h('code', null, c.previousRolledoutRevision) : '—'),
      h('td', null, c.url ? h('code', {class: 'value'}, c.url) : '—')));
    for (const c of (isvc.status && isvc.status.canaryStatuses) || []) {
      rows.push(h('tr', {'data-component': `canary-${c.name}`},
        h('td', null, `canary ${c.name}`),
        h('td', null, h('code', null, c.revisionName || '—')),
        h('td', null, c.ready ? h('code', null, c.revisionName) : h('span', {class: 'muted'}, `not ready${c.modelStatus && c.modelStatus.lastFailureInfo ? `: ${c.modelStatus.lastFailureInfo.message}` : ''}`)),
        h('td', null, '—'), h('td', null, '—'), h('td', null, '—')));
    }
    replace(componentsBox, rows.length
      ? table(['Component', 'Latest created', 'Latest ready', 'Rolled out', 'Previous rollout', 'URL'], rows,
        {class: 'table compact', id: 'isvc-components', 'aria-label': 'Components'})
      : empty('No components reported yet.'));
  };

  const renderTraffic = () => {
    const p = (isvc.spec && isvc.spec.predictor) || {};
    replace(trafficBox, h('div', {id: 'isvc-traffic'}, trafficCell(isvc)),
      p.canaryTrafficPercent !== undefined
        ? h('p', {class: 'muted small'}, `canaryTrafficPercent ${p.canaryTrafficPercent}: the latest revision gets that share once it is ready, the last rolled-out one the rest.`)
        : null);
  };

  /** The component's log from the API, followed (reloaded) while it is shown. */
  const showLog = async (component) => {
    clearTimeout(logTimer);
    if (logAbort) logAbort.abort();
    const ac = new AbortController();
    logAbort = ac;
    const first = logComponent !== component;
    logComponent = component;
    logPanel.hidden = false;
    replace(logTitle, 'Log of the ', h('code', null, component));
    logPre.dataset.component = component;
    if (first) {
      logPre.dataset.loaded = 'false';
      logPre.textContent = 'Loading…';
    }
    try {
      const resp = await fetchRaw(`${isvcPath(namespace, name)}/logs`, {query: {component, tailBytes: LOG_TAIL_BYTES}, signal: ac.signal});
      const text = await resp.text();
      if (ac.signal.aborted) return;
      // Keep the reader where they are unless they were at the end.
      const atEnd = logPre.scrollTop + logPre.clientHeight >= logPre.scrollHeight - 4;
      const shown = text || '(the log is empty)';
      if (logPre.textContent !== shown) {
        logPre.textContent = shown;
        if (atEnd || first) logPre.scrollTop = logPre.scrollHeight;
      }
    } catch (err) {
      if (err.name === 'AbortError') return;
      logPre.textContent = err instanceof ApiError ? err.message : `Could not read the log: ${err.message}`;
    }
    logPre.dataset.loaded = 'true';
    if (first) logPanel.scrollIntoView({block: 'nearest'});
    if (!disposed && logComponent === component) logTimer = setTimeout(() => showLog(component), LOG_REFRESH_MS);
  };

  const renderLogs = () => {
    const comps = commandComponents(isvc);
    if (!comps.length) {
      replace(logsBox, h('p', {class: 'muted', id: 'isvc-logs-none'},
        'No component of this service runs as a command: the model is served inside the Oxflow server, so it has no log of its own. Its requests show in the metrics above.'));
      return;
    }
    const path = (rev) => `$OXFLOW_HOME/logs/serving/${namespace}/${name}/${rev}.log`;
    const rows = comps.flatMap((c) => (c.revisions.length ? c.revisions : [null]).map((rev) => h('tr', {'data-revision': rev || '', 'data-component': c.component},
      h('td', null, c.component),
      h('td', null, rev ? h('code', null, rev) : h('span', {class: 'muted'}, 'no revision yet')),
      h('td', null, rev ? h('code', {class: 'value log-path'}, path(rev)) : '—'),
      // The endpoint serves each component's latest revision.
      h('td', {class: 'row-actions'}, c.logs && rev && rev === c.latest
        ? button('Show log', () => showLog(c.logs), {class: 'btn btn-small log-btn', 'data-component': c.logs, 'aria-label': `Show the log of the ${c.logs}`})
        : null))));
    replace(logsBox,
      table(['Component', 'Revision', 'Log file (stdout and stderr)', h('span', {class: 'sr-only'}, 'Log')], rows,
        {class: 'table compact', id: 'isvc-log-files', 'aria-label': 'Log files'}),
      h('p', {class: 'muted small'}, 'The log shown is the last ', `${LOG_TAIL_BYTES / 1024} KiB`, ' of the latest revision, from ',
        h('code', null, `${isvcPath(namespace, name)}/logs`), '; every revision\'s file is on the machine that runs ', h('code', null, 'oxflow up'), '.'));
  };

  const renderSpec = () => {
    const y = toYaml(isvc);
    if (yamlPre.textContent !== y) yamlPre.textContent = y;
    const j = JSON.stringify(isvc, null, 2);
    if (jsonPre.textContent !== j) jsonPre.textContent = j;
  };

  const renderAll = () => {
    const key = JSON.stringify([isvc.metadata, isvc.spec, isvc.status]);
    if (key === dataKey) return;
    dataKey = key;
    renderHeader();
    renderCards();
    renderConditions();
    renderModelStatus();
    renderComponents();
    renderTraffic();
    renderLogs();
    renderSpec();
    if (readiness(isvc).state === 'Ready' && !scalesToZero()) loadMetadata();
    // A changed spec may no longer be a command that answers /metrics itself.
    if (metricsState === 'absent') pollMetrics();
  };

  /** The TrainedModels that name this service, with their readiness and URLs. */
  const loadTrained = async () => {
    let models;
    try {
      const list = await listKube(`${TRAINED}/namespaces/${encodeURIComponent(namespace)}/trainedmodels`);
      models = (list.items || []).filter((m) => m.spec && m.spec.inferenceService === name);
    } catch (err) {
      if (!disposed) replace(trainedBox, errorBox(err));
      return;
    }
    const key = JSON.stringify(models.map((m) => [m.metadata, m.spec, m.status]));
    if (disposed || key === trainedKey) return;
    trainedKey = key;
    if (!models.length) {
      replace(trainedBox, empty('None. A model predictor without a storageUri serves the TrainedModels (serving.kserve.io/v1alpha1) that name this service.'));
      return;
    }
    replace(trainedBox, table(['Name', 'Ready', 'Framework', 'Storage URI', 'URL', 'Reason'], models.map((m) => {
      const ready = ((m.status && m.status.conditions) || []).find((c) => c.type === 'Ready') || {};
      const model = m.spec.model || {};
      return h('tr', {'data-trained': m.metadata.name, 'data-ready': ready.status || 'Unknown'},
        h('td', {class: 'tm-name'}, m.metadata.name),
        h('td', null, conditionBadge(ready.status || 'Unknown')),
        h('td', {class: 'tm-framework'}, model.framework || '—'),
        h('td', null, h('code', {class: 'value'}, model.storageUri || '—')),
        h('td', {class: 'tm-url'}, m.status && m.status.url ? h('code', {class: 'value'}, m.status.url) : '—'),
        h('td', {class: 'tm-reason', title: ready.message || ''}, ready.status === 'True' ? '' : [ready.reason || '', ready.message ? ` — ${ready.message}` : '']));
    }), {class: 'table compact', id: 'isvc-trained-models', 'aria-label': 'Trained models'}));
  };

  async function refresh() {
    clearTimeout(timer);
    loadTrained();
    try {
      const next = await api(isvcPath(namespace, name));
      if (disposed) return;
      isvc = next;
      replace(refreshStatus);
      renderAll();
    } catch (err) {
      if (disposed) return;
      if (err instanceof ApiError && err.status === 404) {
        replace(refreshStatus, notice(`Inference service ${name} no longer exists.`, 'warning'));
        live.className = 'live';
        live.textContent = '';
        disposed = true;
        clearTimeout(metricsTimer);
        return;
      }
      replace(refreshStatus, errorBox(err));
    }
    if (!disposed) timer = setTimeout(refresh, readiness(isvc).state === 'Loading' ? LOADING_REFRESH_MS : IDLE_REFRESH_MS);
  }

  renderAll();
  renderMetrics();
  pollMetrics();
  loadTrained();
  timer = setTimeout(refresh, readiness(isvc).state === 'Loading' ? LOADING_REFRESH_MS : IDLE_REFRESH_MS);
  return () => {
    disposed = true;
    clearTimeout(timer);
    clearTimeout(metricsTimer);
    clearTimeout(logTimer);
    if (logAbort) logAbort.abort();
  };
}
