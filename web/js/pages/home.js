// Home: what is running, what just finished, and where to start.

import {h, pageHeader, errorBox, add} from '../dom.js';
import {api, KFP} from '../api.js';
import {runsTable, experimentNames, RUN_STATES} from './common.js';

export async function render(ctx) {
  ctx.setTitle('Home');
  const {main, namespace} = ctx;
  add(main, pageHeader('Welcome to Oxflow',
    h('a', {class: 'btn btn-primary', href: '#/pipelines?upload=1'}, 'Upload a pipeline'),
    h('a', {class: 'btn', href: '#/runs'}, 'All runs')));
  const cards = h('div', {class: 'cards'});
  const recent = h('section', {'aria-labelledby': 'recent-h'}, h('h2', {id: 'recent-h'}, 'Recent runs'));
  add(main, cards, recent);
  try {
    const [runs, pipes, exps, names] = await Promise.all([
      api(`${KFP}/runs`, {query: {namespace, page_size: 100, sort_by: 'created_at desc'}}),
      api(`${KFP}/pipelines`, {query: {namespace, page_size: 1}}),
      api(`${KFP}/experiments`, {query: {namespace, page_size: 1}}),
      experimentNames(namespace),
    ]);
    const list = runs.runs || [];
    const counts = Object.fromEntries(RUN_STATES.map((st) => [st, 0]));
    for (const r of list) counts[r.state] = (counts[r.state] || 0) + 1;
    const card = (label, value, href, cls = '') => h('a', {class: `card ${cls}`, href},
      h('span', {class: 'card-value'}, String(value)), h('span', {class: 'card-label'}, label));
    add(cards, 
      card('pipelines', pipes.total_size || 0, '#/pipelines'),
      card('experiments', exps.total_size || 0, '#/experiments'),
      card('running', counts.RUNNING + counts.PENDING, '#/runs?state=RUNNING', 'state-RUNNING'),
      card('succeeded', counts.SUCCEEDED, '#/runs?state=SUCCEEDED', 'state-SUCCEEDED'),
      card('failed', counts.FAILED, '#/runs?state=FAILED', 'state-FAILED'));
    if (runs.total_size > list.length) {
      add(cards, h('p', {class: 'muted small'}, `Counts cover the newest ${list.length} of ${runs.total_size} runs.`));
    }
    add(recent, runsTable(list.slice(0, 8), {expNames: names, emptyText: 'No runs yet: upload a pipeline and start one.'}));
  } catch (err) {
    add(main, errorBox(err));
  }
  add(main, h('section', {class: 'coming-strip', 'aria-labelledby': 'coming-h'},
    h('h2', {id: 'coming-h'}, 'Coming to Oxflow'),
    h('p', {class: 'muted'}, 'Notebooks and multi-user namespaces are on their way; their pages are in the menu, marked "coming".')));
}
