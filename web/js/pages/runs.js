// Runs: filter by state, name and experiment; page; pick runs to compare.

import {h, pageHeader, errorBox, button, TERMINAL, replace, add} from '../dom.js';
import {api, KFP, kfpFilter} from '../api.js';
import {runsTable, experimentNames, RUN_STATES} from './common.js';

/** Lists refresh on this interval only while a shown run is still active. */
const ACTIVE_REFRESH_MS = 5000;

export async function render(ctx) {
  ctx.setTitle('Runs');
  const {main, query, namespace} = ctx;
  const selected = new Set();
  const names = await experimentNames(namespace);
  const stateSel = h('select', {id: 'state-filter'},
    h('option', {value: ''}, 'All states'),
    RUN_STATES.map((st) => h('option', {value: st, selected: query.state === st}, st.toLowerCase())));
  const search = h('input', {type: 'search', id: 'run-search', placeholder: 'Name contains…', value: query.q || ''});
  const expSel = h('select', {id: 'experiment-filter'},
    h('option', {value: ''}, 'All experiments'),
    [...names].map(([id, n]) => h('option', {value: id, selected: query.experiment === id}, n)));
  const archived = h('input', {type: 'checkbox', id: 'show-archived', checked: query.archived === '1'});
  const compareBtn = button('Compare selected', () => {
    ctx.navigate(`#/compare?runs=${[...selected].map(encodeURIComponent).join(',')}`);
  }, {class: 'btn', disabled: true, id: 'compare-btn'});
  const listBox = h('div', {class: 'list-box'});
  const pager = h('div', {class: 'pager'});
  add(main, 
    pageHeader('Runs', compareBtn, h('a', {class: 'btn btn-primary', href: '#/pipelines'}, 'New run from a pipeline')),
    h('form', {class: 'toolbar', role: 'search', onsubmit: (ev) => ev.preventDefault()},
      h('label', {for: 'run-search', class: 'sr-only'}, 'Filter runs by name'), search,
      h('label', {for: 'state-filter', class: 'sr-only'}, 'Filter runs by state'), stateSel,
      h('label', {for: 'experiment-filter', class: 'sr-only'}, 'Filter runs by experiment'), expSel,
      h('label', {class: 'check'}, archived, ' archived'),
      button('Refresh', () => load(tokens[tokens.length - 1]), {id: 'refresh-runs'})),
    listBox, pager);

  let recurring = query.recurring || '';
  const recurringChip = recurring ? h('span', {class: 'chip'}, 'From one recurring run ',
    button('×', () => { recurring = ''; recurringChip.remove(); reset(); }, {class: 'btn btn-small', 'aria-label': 'Show runs of every schedule'})) : null;
  if (recurringChip) main.querySelector('.toolbar').append(recurringChip);
  const tokens = [undefined];
  let timer = null;
  let typing = null;
  const onToggle = () => {
    compareBtn.disabled = selected.size < 2;
    compareBtn.textContent = selected.size ? `Compare selected (${selected.size})` : 'Compare selected';
  };

  const load = async (token) => {
    clearTimeout(timer);
    try {
      const res = await api(`${KFP}/runs`, {query: {
        namespace,
        experiment_id: expSel.value,
        page_size: 25,
        page_token: token,
        sort_by: 'created_at desc',
        filter: kfpFilter([
          ['display_name', 'IS_SUBSTRING', search.value.trim()],
          ['state', 'EQUALS', stateSel.value],
          ['storage_state', 'EQUALS', archived.checked ? 'ARCHIVED' : 'AVAILABLE'],
          ['recurring_run_id', 'EQUALS', recurring],
        ]),
      }});
      const runs = res.runs || [];
      replace(listBox, runsTable(runs, {selected, onToggle, expNames: names}));
      replace(pager, 
        h('span', {class: 'muted'}, `${res.total_size || 0} runs`),
        tokens.length > 1 ? button('Previous', () => { tokens.pop(); load(tokens[tokens.length - 1]); }) : null,
        res.next_page_token ? button('Next', () => { tokens.push(res.next_page_token); load(res.next_page_token); }) : null);
      if (runs.some((r) => !TERMINAL.has(r.state))) {
        timer = setTimeout(() => load(token), ACTIVE_REFRESH_MS);
      }
    } catch (err) {
      replace(listBox, errorBox(err));
    }
  };
  const reset = () => {
    ctx.setQuery({q: search.value.trim(), state: stateSel.value, experiment: expSel.value, archived: archived.checked ? '1' : '', recurring});
    tokens.length = 1;
    load(undefined);
  };
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(reset, 250);
  });
  stateSel.addEventListener('change', reset);
  expSel.addEventListener('change', reset);
  archived.addEventListener('change', reset);
  await load(undefined);
  return () => {
    clearTimeout(timer);
    clearTimeout(typing);
  };
}
