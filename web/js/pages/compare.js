// Compare runs side by side: overview, parameters, scalar metrics,
// confusion matrices and one ROC plot with a curve per run.

import {h, pageHeader, errorBox, stateBadge, fmtTime, fmtDuration, span, fmtValue, TERMINAL, table, empty, button, add} from '../dom.js';
import {api, KFP, OX} from '../api.js';
import {confusionMatrix, rocChart} from '../viz.js';

function metricsOf(d) {
  const scalars = new Map();
  const classification = [];
  for (const a of d.artifacts || []) {
    if (a.schema_title === 'system.Metrics') {
      for (const [k, v] of Object.entries(a.metadata || {})) {
        if (k === 'display_name') continue;
        scalars.set(`${a.task_path} › ${k}`, v);
      }
    } else if (a.schema_title === 'system.ClassificationMetrics') {
      classification.push(a);
    }
  }
  return {scalars, classification};
}

function picker(ctx, ids) {
  const box = h('div', {class: 'card-form'});
  const list = h('div', {class: 'check-list'});
  add(box, h('h2', null, 'Choose runs to compare'), list);
  api(`${KFP}/runs`, {query: {namespace: ctx.namespace, page_size: 50, sort_by: 'created_at desc'}}).then((res) => {
    const chosen = new Set(ids);
    for (const r of res.runs || []) {
      const id = `cmp-${r.run_id}`;
      add(list, h('label', {for: id, class: 'check'},
        h('input', {type: 'checkbox', id, checked: chosen.has(r.run_id), onchange: (ev) => {
          if (ev.target.checked) chosen.add(r.run_id);
          else chosen.delete(r.run_id);
        }}), ` ${r.display_name} `, stateBadge(r.state), h('span', {class: 'muted'}, ` ${fmtTime(r.created_at)}`)));
    }
    add(box, button('Compare', () => ctx.navigate(`#/compare?runs=${[...chosen].map(encodeURIComponent).join(',')}`), {class: 'btn btn-primary'}));
  }).catch((err) => add(box, errorBox(err)));
  return box;
}

export async function render(ctx) {
  ctx.setTitle('Compare runs');
  const {main, query} = ctx;
  const ids = (query.runs || '').split(',').map((x) => x.trim()).filter(Boolean);
  add(main, pageHeader('Compare runs'));
  if (ids.length < 2) {
    add(main, h('p', {class: 'muted'}, 'Pick two or more runs (ideally of the same pipeline).'), picker(ctx, ids));
    return;
  }
  const runs = await Promise.all(ids.map((id) => api(`${OX}/runs/${encodeURIComponent(id)}`).catch((err) => ({error: err, id}))));
  const ok = runs.filter((r) => !r.error);
  for (const bad of runs.filter((r) => r.error)) add(main, errorBox(new Error(`${bad.id}: ${bad.error.message}`)));
  if (!ok.length) return;
  // A fresh header per table: a DOM node lives in one place only.
  const head = () => ['', ...ok.map((d) => h('a', {href: `#/runs/${encodeURIComponent(d.run.id)}`}, d.run.display_name))];
  const row = (label, cells, differs) => h('tr', {class: differs ? 'differs' : null}, h('th', {scope: 'row'}, label), cells.map((c) => h('td', null, c)));

  const pipelines = new Set(ok.map((d) => d.run.pipeline_name));
  add(main, pipelines.size > 1 ? h('p', {class: 'alert alert-info'}, `These runs come from different pipelines (${[...pipelines].join(', ')}).`) : null);

  add(main, h('section', {'aria-labelledby': 'ov-h'}, h('h2', {id: 'ov-h'}, 'Overview'),
    table(head(), [
      row('State', ok.map((d) => stateBadge(d.run.state))),
      row('Pipeline', ok.map((d) => d.run.pipeline_name)),
      row('Created', ok.map((d) => fmtTime(d.run.created_at))),
      row('Duration', ok.map((d) => fmtDuration(span(d.run.started_at || d.run.created_at, TERMINAL.has(d.run.state) ? d.run.finished_at : null)))),
    ], {class: 'table compare-table'})));

  const paramNames = [...new Set(ok.flatMap((d) => Object.keys(d.run.parameters || {})))].sort();
  add(main, h('section', {'aria-labelledby': 'par-h'}, h('h2', {id: 'par-h'}, 'Parameters'),
    paramNames.length ? table(head(), paramNames.map((k) => {
      const vals = ok.map((d) => fmtValue((d.run.parameters || {})[k]));
      return row(k, vals.map((v) => h('code', null, v)), new Set(vals).size > 1);
    }), {class: 'table compare-table', 'aria-label': 'Parameters'}) : empty('No parameters.')));

  const metrics = ok.map(metricsOf);
  const metricNames = [...new Set(metrics.flatMap((m) => [...m.scalars.keys()]))].sort();
  add(main, h('section', {'aria-labelledby': 'met-h'}, h('h2', {id: 'met-h'}, 'Metrics'),
    metricNames.length ? table(head(), metricNames.map((k) => {
      const vals = metrics.map((m) => (m.scalars.has(k) ? fmtValue(m.scalars.get(k)) : '—'));
      return row(k, vals, new Set(vals).size > 1);
    }), {class: 'table compare-table', 'aria-label': 'Metrics'}) : empty('None of these runs logged scalar metrics.')));

  const anyCm = metrics.some((m) => m.classification.length);
  if (anyCm) {
    const series = [];
    const matrices = h('div', {class: 'viz-row'});
    ok.forEach((d, i) => {
      for (const a of metrics[i].classification) {
        const label = `${d.run.display_name} · ${a.task_path}`;
        const cm = confusionMatrix((a.metadata || {}).confusionMatrix, label);
        if (cm) add(matrices, cm);
        const pts = (a.metadata || {}).confidenceMetrics;
        if (Array.isArray(pts) && pts.length) series.push({label, points: pts});
      }
    });
    add(main, h('section', {'aria-labelledby': 'cls-h'}, h('h2', {id: 'cls-h'}, 'Classification'),
      matrices, series.length ? rocChart(series, 'ROC curves') : null));
  }
}
