// Experiments: list, create, archive and restore; each links to its runs.

import {h, pageHeader, table, fmtTime, errorBox, empty, toast, button, replace, add} from '../dom.js';
import {api, KFP} from '../api.js';

export async function render(ctx) {
  ctx.setTitle('Experiments');
  const {main, namespace} = ctx;
  const name = h('input', {id: 'exp-name', type: 'text', required: true});
  const desc = h('input', {id: 'exp-desc', type: 'text'});
  const status = h('div', {class: 'form-status', role: 'status'});
  const form = h('form', {class: 'card-form', hidden: true, 'aria-label': 'Create an experiment'},
    h('div', {class: 'field-row'},
      h('div', {class: 'field'}, h('label', {for: 'exp-name'}, 'Name'), name),
      h('div', {class: 'field'}, h('label', {for: 'exp-desc'}, 'Description'), desc)),
    h('div', {class: 'form-actions'}, h('button', {type: 'submit', class: 'btn btn-primary'}, 'Create'), status));
  const archived = h('input', {type: 'checkbox', id: 'exp-archived'});
  const listBox = h('div');
  add(main, 
    pageHeader('Experiments', button('New experiment', () => {
      form.hidden = !form.hidden;
      if (!form.hidden) name.focus();
    }, {class: 'btn btn-primary'})),
    form,
    h('div', {class: 'toolbar'}, h('label', {class: 'check', for: 'exp-archived'}, archived, ' show archived')),
    listBox);

  const load = async () => {
    try {
      const res = await api(`${KFP}/experiments`, {query: {namespace, page_size: 200, sort_by: 'created_at desc'}});
      const list = (res.experiments || []).filter((e) => (archived.checked ? e.storage_state === 'ARCHIVED' : e.storage_state !== 'ARCHIVED'));
      if (!list.length) {
        replace(listBox, empty(archived.checked ? 'No archived experiments.' : 'No experiments yet. Runs started with kfp.Client go to "Default".'));
        return;
      }
      replace(listBox, table(['Name', 'Description', 'Created', 'Last run', ''], list.map((e) => h('tr', null,
        h('td', null, h('a', {href: `#/runs?experiment=${encodeURIComponent(e.experiment_id)}`}, e.display_name)),
        h('td', null, e.description || ''),
        h('td', null, fmtTime(e.created_at)),
        h('td', null, fmtTime(e.last_run_created_at)),
        h('td', {class: 'row-actions'}, button(e.storage_state === 'ARCHIVED' ? 'Restore' : 'Archive', async () => {
          try {
            await api(`${KFP}/experiments/${encodeURIComponent(e.experiment_id)}:${e.storage_state === 'ARCHIVED' ? 'unarchive' : 'archive'}`, {method: 'POST'});
            load();
          } catch (err) {
            toast(err.message, 'error');
          }
        }, {class: 'btn btn-small'})))), {class: 'table', 'aria-label': 'Experiments'}));
    } catch (err) {
      replace(listBox, errorBox(err));
    }
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(status);
    try {
      await api(`${KFP}/experiments`, {method: 'POST', body: {display_name: name.value.trim(), description: desc.value.trim(), namespace}});
      toast(`Experiment ${name.value.trim()} created.`, 'success');
      name.value = '';
      desc.value = '';
      form.hidden = true;
      load();
    } catch (err) {
      add(status, errorBox(err));
    }
  });
  archived.addEventListener('change', load);
  await load();
}
