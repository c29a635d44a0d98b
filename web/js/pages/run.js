// One run: its graph coloured by task state and kept current by the
// server-sent event stream (/oxflow/v1/runs/{id}/events), a side panel per
// task (inputs, outputs, streamed logs, artifact previews), and the run's
// parameters and outputs.

import {h, pageHeader, errorBox, kvTable, stateBadge, fmtTime, fmtDuration, span, fmtValue, TERMINAL, button, table, empty, toast, clear, replace, add} from '../dom.js';
import {api, fetchRaw, KFP, OX, artifactUrl} from '../api.js';
import {buildGraph, renderGraph, zoomControls, staticPath, aggregate} from '../graph.js';
import {artifactCard, schemaOf} from '../viz.js';

const MAX_LOG_CHARS = 2 * 1024 * 1024;

function paramsTable(obj, label) {
  const rows = Object.entries(obj || {});
  if (!rows.length) return empty(`No ${label}.`);
  return table(['Name', 'Value'], rows.map(([k, v]) => h('tr', null, h('td', null, k), h('td', null, h('code', {class: 'value'}, fmtValue(v))))), {class: 'table compact', 'aria-label': label});
}

function artifactLinks(arts) {
  const rows = [];
  for (const [key, list] of Object.entries(arts || {})) {
    for (const a of list || []) {
      rows.push(h('tr', null, h('td', null, key), h('td', null, schemaOf(a).replace(/^system\./, '')),
        h('td', {class: 'uri-cell', title: a.uri || ''}, a.uri || '')));
    }
  }
  if (!rows.length) return null;
  return table(['Name', 'Type', 'URI'], rows, {class: 'table compact'});
}

export async function render(ctx) {
  const {main, params, query} = ctx;
  const runId = params[0];
  let data = await api(`${OX}/runs/${encodeURIComponent(runId)}`);
  let run = data.run;
  ctx.setTitle(run.display_name);
  const spec = data.pipeline_spec && data.pipeline_spec.pipeline_spec ? data.pipeline_spec.pipeline_spec : data.pipeline_spec;
  const graph = buildGraph(spec || {});
  const tasks = new Map(data.tasks.map((t) => [t.path, t]));
  let artifacts = data.artifacts || [];
  let selectedId = null;
  let selectedInstance = null;
  let es = null;
  let fullTimer = null;
  let tickTimer = null;
  let logAbort = null;
  let panelTab = query.tab || 'overview';
  let disposed = false;

  // ------------------------------------------------------------- header
  const badgeBox = h('span', {id: 'run-state'});
  const live = h('span', {class: 'live', id: 'live-indicator'});
  const durationEl = h('span', {id: 'run-duration'});
  const actions = h('div', {class: 'actions'});
  const errorArea = h('div');
  const header = h('div', {class: 'page-header'},
    h('h1', null, run.display_name, ' ', badgeBox, ' ', live),
    actions);
  const meta = h('p', {class: 'run-meta muted'});
  add(main, 
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/runs'}, 'Runs'), ' / ', run.display_name),
    header, meta, errorArea);

  const renderHeader = () => {
    replace(badgeBox, stateBadge(run.state));
    const dur = span(run.started_at || run.created_at, TERMINAL.has(run.state) ? run.finished_at : null);
    durationEl.textContent = fmtDuration(dur);
    replace(meta, 
      'Pipeline ', h('strong', null, run.pipeline_name),
      run.pipeline_id ? [' (', h('a', {href: `#/pipelines/${encodeURIComponent(run.pipeline_id)}?version=${encodeURIComponent(run.pipeline_version_id || '')}`}, 'view'), ')'] : null,
      ' · created ', fmtTime(run.created_at), ' · duration ', durationEl,
      ' · id ', h('code', null, run.id));
    replace(actions);
    if (!TERMINAL.has(run.state)) {
      add(actions, button('Terminate', () => verb('terminate'), {class: 'btn btn-danger', id: 'terminate-run'}));
    }
    if (run.state === 'FAILED' || run.state === 'CANCELED') {
      add(actions, button('Retry', () => verb('retry'), {class: 'btn', id: 'retry-run'}));
    }
    if (run.pipeline_id) {
      add(actions, h('a', {class: 'btn', href: `#/pipelines/${encodeURIComponent(run.pipeline_id)}/run?version=${encodeURIComponent(run.pipeline_version_id || '')}&from=${encodeURIComponent(run.id)}`}, 'Run again'));
    }
    add(actions, h('a', {class: 'btn', href: `#/compare?runs=${encodeURIComponent(run.id)}`}, 'Compare…'));
    add(actions, button(run.storage_state === 'ARCHIVED' ? 'Restore' : 'Archive',
      () => verb(run.storage_state === 'ARCHIVED' ? 'unarchive' : 'archive'), {class: 'btn'}));
    replace(errorArea, run.state === 'FAILED' && run.error ? errorBox(new Error(run.error)) : '');
  };

  const verb = async (v) => {
    try {
      await api(`${KFP}/runs/${encodeURIComponent(run.id)}:${v}`, {method: 'POST'});
      toast(`Run ${v} requested.`, 'success');
      await refreshFull();
      if (v === 'retry') openStream();
    } catch (err) {
      toast(err.message, 'error');
    }
  };

  // -------------------------------------------------------------- graph
  const canvas = h('div', {class: 'graph-canvas'});
  const panel = h('aside', {class: 'side-panel', id: 'task-panel', 'aria-label': 'Task details', hidden: true});
  let handle = null;
  const legend = h('ul', {class: 'state-legend', 'aria-label': 'Legend'},
    ['PENDING', 'RUNNING', 'SUCCEEDED', 'CACHED', 'FAILED', 'SKIPPED', 'CANCELED'].map((st) => h('li', null, stateBadge(st))));
  add(main, h('div', {class: 'graph-layout'},
    h('div', {class: 'graph-wrap'}, h('div', {class: 'graph-toolbar'}, zoomControls(() => handle, h), legend), canvas),
    panel));

  const grouped = () => {
    const inst = new Map();
    const iters = new Map();
    for (const t of tasks.values()) {
      const sp = staticPath(graph.index, t.path);
      const m = sp.isIteration ? iters : inst;
      if (!m.has(sp.id)) m.set(sp.id, []);
      m.get(sp.id).push({...t, iteration: sp.iterations.join('/')});
    }
    return {inst, iters};
  };

  const repaint = () => {
    if (!handle) return;
    const {inst, iters} = grouped();
    for (const [id, node] of graph.index) {
      const list = inst.get(id) || [];
      const agg = aggregate(list);
      let text = agg.text;
      if (!list.length && TERMINAL.has(run.state)) {
        // The run is over and this node never ran (a false condition above it).
        handle.setState(id, 'NOT_RUN', 'not run');
        continue;
      }
      if (list.length === 1) {
        const t = list[0];
        const d = t.started_at ? fmtDuration(span(t.started_at, TERMINAL.has(t.state) ? t.finished_at : null)) : '';
        text = t.cached && t.state === 'SUCCEEDED' ? 'cached' : `${t.state.toLowerCase()}${d && t.state !== 'SKIPPED' ? ` · ${d}` : ''}`;
      }
      if (node.kind === 'loop' && iters.has(id)) {
        const its = iters.get(id);
        const done = its.filter((t) => t.state === 'SUCCEEDED').length;
        text = `${done}/${its.length} iterations · ${agg.state.toLowerCase()}`;
      }
      handle.setState(id, agg.state, text);
    }
    if (selectedId) renderPanel(false);
  };

  // -------------------------------------------------------------- panel
  const instancesOf = (id) => (grouped().inst.get(id) || []).sort((a, b) => a.path.localeCompare(b.path, undefined, {numeric: true}));

  const stopLog = () => {
    if (logAbort) logAbort.abort();
    logAbort = null;
  };

  const streamLog = async (t, pre) => {
    stopLog();
    const ac = new AbortController();
    logAbort = ac;
    pre.textContent = '';
    const path = t.path.split('/').map(encodeURIComponent).join('/');
    try {
      const resp = await fetchRaw(`${OX}/runs/${encodeURIComponent(run.id)}/tasks/${path}/log`, {query: {follow: 'true'}, signal: ac.signal});
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      pre.dataset.streaming = 'true';
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        const nearBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
        add(pre, dec.decode(value, {stream: true}));
        if (pre.textContent.length > MAX_LOG_CHARS) pre.textContent = pre.textContent.slice(-MAX_LOG_CHARS);
        if (nearBottom) pre.scrollTop = pre.scrollHeight;
      }
      pre.dataset.streaming = 'false';
      if (!pre.textContent) pre.textContent = '(the log is empty)';
    } catch (err) {
      if (err.name === 'AbortError') return;
      pre.dataset.streaming = 'false';
      pre.textContent = err.status === 404 ? err.message : `Could not read the log: ${err.message}`;
    }
  };

  const tabButton = (id, label) => h('button', {
    type: 'button', role: 'tab', id: `tab-${id}`, class: 'tab', 'aria-selected': String(panelTab === id),
    'aria-controls': 'task-tabpanel',
    onclick: () => {
      panelTab = id;
      ctx.setQuery({task: selectedId, tab: panelTab === 'overview' ? '' : panelTab});
      renderPanel(true);
    },
  }, label);

  /** Redraws the panel; `force` also restarts the log stream and previews. */
  let panelKey = '';
  const renderPanel = (force) => {
    const node = graph.index.get(selectedId);
    if (!node) return;
    const list = instancesOf(selectedId);
    let t = list.find((x) => x.path === selectedInstance) || list.find((x) => x.state === 'FAILED')
      || list.find((x) => x.state === 'RUNNING') || list[0] || null;
    if (t) selectedInstance = t.path;
    // Only redraw when something visible changed (events arrive often).
    // A followed log ends by itself when its task does: only another
    // instance or attempt restarts it.
    const key = panelTab === 'logs'
      ? JSON.stringify([selectedId, panelTab, t && [t.path, t.attempt], list.length])
      : JSON.stringify([selectedId, panelTab, t && [t.path, t.state, t.attempt, Boolean(t.outputs)], list.length]);
    if (!force && key === panelKey) return;
    panelKey = key;
    stopLog();
    panel.hidden = false;
    const head = h('div', {class: 'panel-head'},
      h('h2', null, node.label),
      button('Close', () => {
        panel.hidden = true;
        selectedId = null;
        stopLog();
        ctx.setQuery({});
      }, {class: 'btn btn-small', 'aria-label': 'Close task details'}));
    const picker = list.length > 1 ? h('div', {class: 'field inline'},
      h('label', {for: 'instance-select'}, 'Iteration'),
      h('select', {id: 'instance-select', onchange: (ev) => { selectedInstance = ev.target.value; renderPanel(true); }},
        list.map((x) => h('option', {value: x.path, selected: t && x.path === t.path}, `${x.iteration || x.path} · ${x.state.toLowerCase()}`)))) : null;
    const tabs = h('div', {class: 'tabs', role: 'tablist', 'aria-label': 'Task views'},
      tabButton('overview', 'Overview'), tabButton('logs', 'Logs'), tabButton('artifacts', 'Artifacts'));
    const body = h('div', {id: 'task-tabpanel', role: 'tabpanel', 'aria-labelledby': `tab-${panelTab}`, class: 'tabpanel'});
    replace(panel, head, picker, tabs, body);
    if (!t) {
      add(body, h('p', {class: 'muted'}, 'This task has not started (yet).'));
      return;
    }
    if (panelTab === 'logs') {
      if (!['container', 'importer'].includes(t.kind)) {
        add(body, h('p', {class: 'muted'}, `A ${t.kind === 'dag' ? 'sub-DAG' : t.kind} has no log of its own; open one of the tasks inside it.`));
        return;
      }
      const pre = h('pre', {class: 'log', id: 'task-log', tabindex: '0', 'aria-label': `Log of ${t.path}`});
      add(body, pre);
      streamLog(t, pre);
      return;
    }
    if (panelTab === 'artifacts') {
      const outs = Object.entries((t.outputs && t.outputs.artifacts) || {});
      if (!outs.length) add(body, empty('This task produced no artifacts.'));
      for (const [key, arts] of outs) {
        for (const a of arts || []) {
          add(body, artifactCard(a, {title: key}));
        }
      }
      const ins = Object.entries((t.inputs && t.inputs.artifacts) || {});
      if (ins.length) {
        add(body, h('h3', null, 'Input artifacts'));
        for (const [key, arts] of ins) {
          for (const a of arts || []) add(body, artifactCard(a, {title: key, preview: false}));
        }
      }
      return;
    }
    const rows = [
      ['State', stateBadge(t.state, t.cached)],
      ['Path', h('code', null, t.path)],
      ['Kind', t.kind],
      ['Started', fmtTime(t.started_at)],
      ['Finished', fmtTime(t.finished_at)],
      ['Duration', fmtDuration(span(t.started_at, TERMINAL.has(t.state) ? t.finished_at : null))],
    ];
    if (t.attempt > 1) rows.push(['Attempt', String(t.attempt)]);
    if (t.inputs && t.inputs.image) rows.push(['Image', t.inputs.image]);
    add(body, kvTable(rows));
    if (t.error) add(body, h('h3', null, 'Error'), h('pre', {class: 'error-text'}, t.error));
    if (t.inputs) {
      add(body, h('h3', null, 'Inputs'), paramsTable(t.inputs.parameters, 'input parameters'), artifactLinks(t.inputs.artifacts));
    }
    if (t.outputs && (Object.keys(t.outputs.parameters || {}).length || Object.keys(t.outputs.artifacts || {}).length)) {
      add(body, h('h3', null, 'Outputs'), paramsTable(t.outputs.parameters, 'output parameters'), artifactLinks(t.outputs.artifacts));
      const n = Object.values(t.outputs.artifacts || {}).flat().length;
      if (n) {
        add(body, h('p', null, button(`Preview ${n} artifact${n > 1 ? 's' : ''}`, () => {
          panelTab = 'artifacts';
          renderPanel(true);
        }, {class: 'btn btn-small'})));
      }
    }
  };

  const select = (id) => {
    selectedId = id;
    selectedInstance = null;
    ctx.setQuery({task: id, tab: panelTab === 'overview' ? '' : panelTab});
    if (handle) handle.select(id);
    renderPanel(true);
  };

  handle = renderGraph(canvas, graph, {ariaLabel: `Graph of run ${run.display_name}`, onSelect: (node) => select(node.id)});

  // ------------------------------------------------------------ details
  const details = h('section', {class: 'run-details', 'aria-labelledby': 'details-h'});
  add(main, details);
  const renderDetails = () => {
    replace(details, 
      h('h2', {id: 'details-h'}, 'Parameters and outputs'),
      h('div', {class: 'two-col'},
        h('div', null, h('h3', null, 'Parameters'), paramsTable(run.parameters, 'run parameters')),
        h('div', null, h('h3', null, 'Pipeline outputs'), paramsTable(run.outputs, 'pipeline outputs'))),
      artifacts.length ? h('div', null, h('h3', null, 'Artifacts'),
        table(['Name', 'Type', 'Task', ''], artifacts.map((a) => h('tr', null,
          h('td', null, a.name || a.output_key),
          h('td', null, a.schema_title.replace(/^system\./, '')),
          h('td', null, h('a', {href: '#', onclick: (ev) => {
            ev.preventDefault();
            panelTab = 'artifacts';
            select(staticPath(graph.index, a.task_path).id);
            selectedInstance = a.task_path;
            renderPanel(true);
          }}, a.task_path)),
          h('td', null, a.in_store ? h('a', {href: artifactUrl(a.uri, {download: 'true'})}, 'download') : h('span', {class: 'muted'}, 'external')))),
        {class: 'table compact'})) : null);
  };

  // ------------------------------------------------------- live updates
  const refreshFull = async () => {
    try {
      data = await api(`${OX}/runs/${encodeURIComponent(run.id)}`);
    } catch (err) {
      return;
    }
    if (disposed) return;
    run = data.run;
    artifacts = data.artifacts || [];
    for (const t of data.tasks) tasks.set(t.path, t);
    renderHeader();
    renderDetails();
    repaint();
  };
  const scheduleFull = (ms = 300) => {
    clearTimeout(fullTimer);
    fullTimer = setTimeout(refreshFull, ms);
  };

  const setLive = (text, cls) => {
    live.className = `live ${cls}`;
    live.textContent = text;
    live.dataset.live = cls;
  };

  const openStream = () => {
    if (es) es.close();
    if (TERMINAL.has(run.state)) {
      setLive('', 'final');
      return;
    }
    es = new EventSource(`${OX}/runs/${encodeURIComponent(run.id)}/events`);
    setLive('connecting…', 'connecting');
    es.addEventListener('open', () => setLive('live', 'on'));
    es.addEventListener('snapshot', (ev) => {
      const d = JSON.parse(ev.data);
      run = {...run, ...d.run};
      for (const t of d.tasks) tasks.set(t.path, {...(tasks.get(t.path) || {}), ...t});
      renderHeader();
      repaint();
    });
    es.addEventListener('task', (ev) => {
      const t = JSON.parse(ev.data);
      const prev = tasks.get(t.path) || {};
      const merged = {...prev, ...t};
      if (t.state === 'RUNNING' && !merged.started_at) merged.started_at = Date.now();
      if (TERMINAL.has(t.state) && !merged.finished_at) merged.finished_at = Date.now();
      tasks.set(t.path, merged);
      repaint();
      if (TERMINAL.has(t.state) || !prev.inputs) scheduleFull();
    });
    es.addEventListener('run', (ev) => {
      run = {...run, state: JSON.parse(ev.data).state};
      renderHeader();
    });
    es.addEventListener('end', () => {
      es.close();
      es = null;
      setLive('', 'final');
      scheduleFull(0);
    });
    es.addEventListener('error', () => {
      if (es && es.readyState === EventSource.CONNECTING) setLive('reconnecting…', 'connecting');
    });
  };

  renderHeader();
  renderDetails();
  repaint();
  if (query.task && graph.index.has(query.task)) select(query.task);
  openStream();
  tickTimer = setInterval(() => {
    if (!TERMINAL.has(run.state)) renderHeaderDuration();
  }, 1000);
  function renderHeaderDuration() {
    durationEl.textContent = fmtDuration(span(run.started_at || run.created_at, null));
  }

  return () => {
    disposed = true;
    if (es) es.close();
    stopLog();
    clearTimeout(fullTimer);
    clearInterval(tickTimer);
    clear(panel);
  };
}
