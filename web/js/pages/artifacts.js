// Artifacts: what the newest runs produced, with a preview of each.

import {h, pageHeader, table, fmtTime, errorBox, empty, button, replace, add} from '../dom.js';
import {api, OX} from '../api.js';
import {artifactCard} from '../viz.js';

export async function render(ctx) {
  ctx.setTitle('Artifacts');
  const {main, namespace, query} = ctx;
  const typeSel = h('select', {id: 'artifact-type'}, h('option', {value: ''}, 'All types'));
  const search = h('input', {type: 'search', id: 'artifact-search', placeholder: 'Name or task contains…', value: query.q || ''});
  const listBox = h('div', {class: 'list-box'});
  const panel = h('aside', {class: 'side-panel', id: 'artifact-panel', 'aria-label': 'Artifact preview', hidden: true});
  add(main, 
    pageHeader('Artifacts'),
    h('p', {class: 'muted'}, 'Artifacts recorded by the 50 newest runs of this namespace.'),
    h('div', {class: 'toolbar'},
      h('label', {for: 'artifact-search', class: 'sr-only'}, 'Filter artifacts'), search,
      h('label', {for: 'artifact-type', class: 'sr-only'}, 'Artifact type'), typeSel),
    h('div', {class: 'graph-layout'}, h('div', {class: 'grow'}, listBox), panel));

  let all = [];
  try {
    all = (await api(`${OX}/artifacts`, {query: {namespace, limit: 50}})).artifacts || [];
  } catch (err) {
    add(listBox, errorBox(err));
    return;
  }
  for (const t of [...new Set(all.map((a) => a.schema_title))].sort()) {
    add(typeSel, h('option', {value: t, selected: query.type === t}, t.replace(/^system\./, '')));
  }
  const open = (a) => {
    panel.hidden = false;
    replace(panel, 
      h('div', {class: 'panel-head'}, h('h2', null, a.name || a.output_key),
        button('Close', () => { panel.hidden = true; }, {class: 'btn btn-small', 'aria-label': 'Close preview'})),
      h('p', {class: 'muted small'}, 'From run ', h('a', {href: `#/runs/${encodeURIComponent(a.run_id)}?task=${encodeURIComponent(a.task_path)}`}, a.run_name || a.run_id), `, task ${a.task_path}`),
      artifactCard({...a, type: {schemaTitle: a.schema_title}}, {textBytes: 16384}));
  };
  const show = () => {
    const q = search.value.trim().toLowerCase();
    const list = all.filter((a) => (!typeSel.value || a.schema_title === typeSel.value)
      && (!q || `${a.name} ${a.task_path} ${a.output_key}`.toLowerCase().includes(q)));
    ctx.setQuery({q: search.value.trim(), type: typeSel.value});
    if (!list.length) {
      replace(listBox, empty(all.length ? 'No artifact matches.' : 'No artifacts yet: runs record them as their tasks finish.'));
      return;
    }
    replace(listBox, table(['Name', 'Type', 'Run', 'Task', 'Created', ''], list.map((a) => h('tr', null,
      h('td', null, a.name || a.output_key),
      h('td', null, a.schema_title.replace(/^system\./, '')),
      h('td', null, h('a', {href: `#/runs/${encodeURIComponent(a.run_id)}`}, a.run_name || a.run_id.slice(0, 8))),
      h('td', null, a.task_path),
      h('td', null, fmtTime(a.created_at)),
      h('td', {class: 'row-actions'}, button('Preview', () => open(a), {class: 'btn btn-small', 'aria-label': `Preview ${a.name} of ${a.task_path}`})))),
    {class: 'table', 'aria-label': 'Artifacts'}));
  };
  search.addEventListener('input', show);
  typeSel.addEventListener('change', show);
  show();
}
