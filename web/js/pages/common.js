// Pieces several pages share.

import {h, table, stateBadge, fmtTime, fmtDuration, span, TERMINAL, empty} from '../dom.js';
import {api, KFP, pipelineSpecOf} from '../api.js';

export const RUN_STATES = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELING', 'CANCELED'];

export function runDuration(r) {
  const end = TERMINAL.has(r.state) ? r.finished_at : null;
  if (TERMINAL.has(r.state) && (!end || end.startsWith('1970'))) return null;
  return span(r.created_at, end);
}

export function pipelineNameOf(r) {
  const spec = pipelineSpecOf(r.pipeline_spec);
  return (spec && spec.pipelineInfo && spec.pipelineInfo.name) || '';
}

/** KFP times have whole seconds: a shorter run shows as "< 1 s". */
function shortDuration(ms) {
  return ms !== null && ms < 1000 ? '< 1 s' : fmtDuration(ms);
}

/** experiment id → display name, for tables. */
export async function experimentNames(namespace) {
  try {
    const res = await api(`${KFP}/experiments`, {query: {namespace, page_size: 200}});
    return new Map((res.experiments || []).map((e) => [e.experiment_id, e.display_name]));
  } catch (_) {
    return new Map();
  }
}

/**
 * The runs table. With `selected` (a Set of run ids), each row gets a
 * checkbox and `onToggle` is called when it changes.
 */
export function runsTable(runs, {selected, onToggle, expNames, emptyText} = {}) {
  if (!runs.length) return empty(emptyText || 'No runs match.');
  const headers = [
    selected ? h('span', {class: 'sr-only'}, 'Select') : null,
    'Name', 'State', 'Duration', 'Started', 'Pipeline', 'Experiment',
  ].filter((x) => x !== null);
  const rows = runs.map((r) => {
    const exp = r.experiment_id ? ((expNames && expNames.get(r.experiment_id)) || r.experiment_id.slice(0, 8)) : '';
    return h('tr', {'data-run-id': r.run_id, 'data-state': r.state},
      selected ? h('td', null, h('input', {
        type: 'checkbox', 'aria-label': `Select run ${r.display_name}`, checked: selected.has(r.run_id),
        onchange: (ev) => {
          if (ev.target.checked) selected.add(r.run_id);
          else selected.delete(r.run_id);
          if (onToggle) onToggle();
        },
      })) : null,
      h('td', null, h('a', {href: `#/runs/${encodeURIComponent(r.run_id)}`, class: 'run-link'}, r.display_name || r.run_id)),
      h('td', null, stateBadge(r.state)),
      h('td', {class: 'num'}, shortDuration(runDuration(r))),
      h('td', null, fmtTime(r.created_at)),
      h('td', null, pipelineNameOf(r)),
      h('td', null, exp ? h('a', {href: `#/runs?experiment=${encodeURIComponent(r.experiment_id)}`}, exp) : ''));
  });
  return table(headers, rows, {class: 'table runs-table', 'aria-label': 'Runs'});
}
