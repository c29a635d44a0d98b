// One pipeline: its versions, the graph of the selected version, the
// components behind each node, and the form that starts a run.

import {h, pageHeader, fmtTime, errorBox, kvTable, fmtValue, button, table, empty, toast, replace, add} from '../dom.js';
import {api, KFP, OX, pipelineSpecOf} from '../api.js';
import {buildGraph, renderGraph, zoomControls} from '../graph.js';
import {parameterForm, typeName} from '../form.js';
import {uploadForm} from './pipelines.js';

function componentDetails(spec, node) {
  const comp = node.component || {};
  const parts = [];
  const rows = [['Task', node.key], ['Kind', node.kind]];
  if (node.componentName) rows.push(['Component', node.componentName]);
  if (node.condition) rows.push(['Runs if', h('code', null, node.condition)]);
  if (node.loop) rows.push(['Loop', node.loop]);
  if (node.exitTask) rows.push(['Trigger', 'after the tasks it guards, whatever their outcome']);
  if (node.deps.length) rows.push(['After', node.deps.join(', ')]);
  const cache = node.task.cachingOptions;
  if (cache) rows.push(['Caching', cache.enableCache ? 'on' : 'off']);
  if (node.task.retryPolicy) rows.push(['Retries', String(node.task.retryPolicy.maxRetryCount || 0)]);
  const exec = comp.executorLabel && spec.deploymentSpec && spec.deploymentSpec.executors
    ? spec.deploymentSpec.executors[comp.executorLabel] : null;
  if (exec && exec.container) {
    rows.push(['Image', exec.container.image || '']);
    const fn = (exec.container.args || []).indexOf('--function_to_execute');
    if (fn >= 0) rows.push(['Python function', exec.container.args[fn + 1]]);
  }
  if (exec && exec.importer) {
    const u = exec.importer.artifactUri || {};
    rows.push(['Imports', u.constant || (u.runtimeParameter ? `parameter ${u.runtimeParameter}` : '')]);
  }
  parts.push(kvTable(rows));
  const ins = comp.inputDefinitions || {};
  const outs = comp.outputDefinitions || {};
  const defRows = [];
  for (const [k, d] of Object.entries(ins.parameters || {})) defRows.push(['in', k, typeName(d.parameterType), d.defaultValue !== undefined ? fmtValue(d.defaultValue) : '']);
  for (const [k, d] of Object.entries(ins.artifacts || {})) defRows.push(['in', k, ((d.artifactType && d.artifactType.schemaTitle) || 'artifact').replace(/^system\./, ''), '']);
  for (const [k, d] of Object.entries(outs.parameters || {})) defRows.push(['out', k, typeName(d.parameterType), '']);
  for (const [k, d] of Object.entries(outs.artifacts || {})) defRows.push(['out', k, ((d.artifactType && d.artifactType.schemaTitle) || 'artifact').replace(/^system\./, ''), '']);
  if (defRows.length) {
    parts.push(h('h3', null, 'Interface'), table(['', 'Name', 'Type', 'Default'], defRows.map((r) => h('tr', null, r.map((c) => h('td', null, c))))));
  }
  if (exec && exec.container && !(exec.container.args || []).includes('--function_to_execute')) {
    const cmd = [...(exec.container.command || []), ...(exec.container.args || [])].join(' ');
    parts.push(h('h3', null, 'Command'), h('pre', {class: 'text-preview'}, cmd));
  }
  return parts;
}

export async function render(ctx) {
  const {main, params, query} = ctx;
  const pid = params[0];
  const [p, versionsRes] = await Promise.all([
    api(`${KFP}/pipelines/${encodeURIComponent(pid)}`),
    api(`${KFP}/pipelines/${encodeURIComponent(pid)}/versions`, {query: {page_size: 100, sort_by: 'created_at desc'}}),
  ]);
  const versions = versionsRes.pipeline_versions || [];
  ctx.setTitle(p.display_name);
  let version = versions.find((v) => v.pipeline_version_id === query.version) || versions[0];

  const select = h('select', {id: 'version-select'}, versions.map((v) => h('option', {
    value: v.pipeline_version_id, selected: version && v.pipeline_version_id === version.pipeline_version_id,
  }, `${v.display_name} · ${fmtTime(v.created_at)}`)));
  const runLink = h('a', {class: 'btn btn-primary', id: 'create-run'}, 'Create run');
  const updateLink = () => {
    runLink.href = `#/pipelines/${encodeURIComponent(pid)}/run?version=${encodeURIComponent(version ? version.pipeline_version_id : '')}`;
  };
  updateLink();
  const versionUpload = h('div', {class: 'upload-box', hidden: true},
    h('h2', null, 'Upload a new version'),
    uploadForm({pipelineId: pid, onDone: (v) => ctx.navigate(`#/pipelines/${encodeURIComponent(pid)}?version=${encodeURIComponent(v.pipeline_version_id)}`)}));
  const del = button('Delete', async () => {
    if (!window.confirm(`Delete pipeline ${p.display_name} and all its versions?`)) return;
    try {
      await api(`${KFP}/pipelines/${encodeURIComponent(pid)}`, {method: 'DELETE', query: {cascade: 'true'}});
      toast(`Deleted ${p.display_name}.`, 'success');
      ctx.navigate('#/pipelines');
    } catch (err) {
      toast(err.message, 'error');
    }
  }, {class: 'btn btn-danger'});

  add(main, 
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/pipelines'}, 'Pipelines'), ' / ', p.display_name),
    pageHeader(p.display_name,
      h('label', {for: 'version-select', class: 'inline-label'}, 'Version'), select,
      runLink,
      button('Upload version', () => { versionUpload.hidden = !versionUpload.hidden; }),
      del),
    p.description ? h('p', {class: 'muted'}, p.description) : null,
    versionUpload);

  const body = h('div');
  add(main, body);

  const show = () => {
    replace(body);
    if (!version) {
      add(body, empty('This pipeline has no versions.'));
      return;
    }
    const spec = pipelineSpecOf(version.pipeline_spec);
    if (ctx.mode === 'run') {
      // "Run again" passes ?from=RUN: start from that run's parameters.
      const from = ctx.query.from
        ? api(`${OX}/runs/${encodeURIComponent(ctx.query.from)}`).then((r) => r.run.parameters || {}).catch(() => ({}))
        : Promise.resolve({});
      from.then((initial) => add(body, runForm(ctx, p, version, spec, initial)));
      return;
    }
    const graph = buildGraph(spec);
    const panel = h('aside', {class: 'side-panel', 'aria-label': 'Component details', hidden: true});
    const canvas = h('div', {class: 'graph-canvas'});
    let handle = null;
    add(body, 
      h('div', {class: 'graph-layout'},
        h('div', {class: 'graph-wrap'}, zoomControls(() => handle, h), canvas),
        panel),
      inputsSection(spec));
    handle = renderGraph(canvas, graph, {
      ariaLabel: `Graph of ${p.display_name}`,
      onSelect: (node) => {
        panel.hidden = false;
        replace(panel, 
          h('div', {class: 'panel-head'}, h('h2', null, node.label),
            button('Close', () => { panel.hidden = true; }, {class: 'btn btn-small', 'aria-label': 'Close details'})),
          ...componentDetails(spec, node));
      },
    });
  };

  select.addEventListener('change', () => {
    version = versions.find((v) => v.pipeline_version_id === select.value);
    ctx.setQuery({version: version.pipeline_version_id});
    updateLink();
    show();
  });
  show();
}

function inputsSection(spec) {
  const defs = (spec.root && spec.root.inputDefinitions && spec.root.inputDefinitions.parameters) || {};
  const rows = Object.entries(defs).map(([k, d]) => h('tr', null,
    h('td', null, k), h('td', null, typeName(d.parameterType)),
    h('td', null, d.defaultValue !== undefined ? fmtValue(d.defaultValue) : (d.isOptional ? '(optional)' : '(required)'))));
  return h('section', {'aria-labelledby': 'inputs-h'},
    h('h2', {id: 'inputs-h'}, 'Pipeline parameters'),
    rows.length ? table(['Name', 'Type', 'Default'], rows) : empty('No parameters.'));
}

function runForm(ctx, p, version, spec, initial = {}) {
  const pform = parameterForm(spec, initial);
  const now = new Date();
  const stamp = `${now.getFullYear()}${String(now.getMonth() + 1).padStart(2, '0')}${String(now.getDate()).padStart(2, '0')}-${String(now.getHours()).padStart(2, '0')}${String(now.getMinutes()).padStart(2, '0')}${String(now.getSeconds()).padStart(2, '0')}`;
  const name = h('input', {id: 'run-name', type: 'text', required: true, value: `${p.display_name}-${stamp}`});
  const desc = h('input', {id: 'run-desc', type: 'text'});
  const exp = h('select', {id: 'run-experiment'}, h('option', {value: ''}, '(none)'));
  api(`${KFP}/experiments`, {query: {namespace: ctx.namespace, page_size: 200}}).then((res) => {
    for (const e of res.experiments || []) add(exp, h('option', {value: e.experiment_id, selected: e.experiment_id === ctx.query.experiment}, e.display_name));
  }).catch(() => {});
  const status = h('div', {class: 'form-status', role: 'status'});
  const submit = h('button', {type: 'submit', class: 'btn btn-primary', id: 'start-run'}, 'Start run');
  const form = h('form', {class: 'card-form', 'aria-label': 'Start a run'},
    h('h2', null, `Start a run of ${p.display_name}`),
    h('p', {class: 'muted'}, `Version ${version.display_name}`),
    h('div', {class: 'field-row'},
      h('div', {class: 'field'}, h('label', {for: 'run-name'}, 'Run name'), name),
      h('div', {class: 'field'}, h('label', {for: 'run-experiment'}, 'Experiment'), exp)),
    h('div', {class: 'field'}, h('label', {for: 'run-desc'}, 'Description'), desc),
    pform.el,
    h('div', {class: 'form-actions'}, submit,
      h('a', {class: 'btn', href: `#/pipelines/${encodeURIComponent(p.pipeline_id)}?version=${encodeURIComponent(version.pipeline_version_id)}`}, 'Cancel'),
      status));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(status);
    let parameters;
    try {
      parameters = pform.values();
    } catch (err) {
      add(status, errorBox(err));
      return;
    }
    submit.disabled = true;
    try {
      const run = await api(`${KFP}/runs`, {method: 'POST', body: {
        display_name: name.value.trim(),
        description: desc.value.trim(),
        experiment_id: exp.value || undefined,
        namespace: ctx.namespace,
        pipeline_version_reference: {pipeline_id: p.pipeline_id, pipeline_version_id: version.pipeline_version_id},
        runtime_config: {parameters},
      }});
      toast(`Run ${run.display_name} started.`, 'success');
      ctx.navigate(`#/runs/${encodeURIComponent(run.run_id)}`);
    } catch (err) {
      add(status, errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
