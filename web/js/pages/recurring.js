// Recurring runs: list, create (cron or interval), enable/disable, delete,
// against /apis/v2beta1/recurringruns. A server without that API answers
// 404, and the page says so instead of failing.

import {h, pageHeader, table, fmtTime, errorBox, empty, toast, button, notice, replace, add} from '../dom.js';
import {api, KFP, pipelineSpecOf} from '../api.js';
import {parameterForm} from '../form.js';

function triggerText(t) {
  if (!t) return '';
  if (t.cron_schedule) return `cron ${t.cron_schedule.cron}`;
  if (t.periodic_schedule) {
    const s = Number(t.periodic_schedule.interval_second);
    if (s % 86400 === 0) return `every ${s / 86400} d`;
    if (s % 3600 === 0) return `every ${s / 3600} h`;
    if (s % 60 === 0) return `every ${s / 60} min`;
    return `every ${s} s`;
  }
  return '';
}

function createForm(ctx, onDone) {
  const name = h('input', {id: 'rr-name', type: 'text', required: true});
  const pipeSel = h('select', {id: 'rr-pipeline', required: true}, h('option', {value: ''}, 'Choose a pipeline…'));
  const verSel = h('select', {id: 'rr-version', required: true});
  const expSel = h('select', {id: 'rr-experiment'}, h('option', {value: ''}, '(none)'));
  const kindCron = h('input', {type: 'radio', name: 'rr-kind', id: 'rr-kind-cron', value: 'cron', checked: true});
  const kindPeriodic = h('input', {type: 'radio', name: 'rr-kind', id: 'rr-kind-periodic', value: 'periodic'});
  const cron = h('input', {id: 'rr-cron', type: 'text', value: '0 0 * * * *', 'aria-describedby': 'rr-cron-help'});
  const interval = h('input', {id: 'rr-interval', type: 'number', min: '1', step: '1', value: '3600'});
  const maxConc = h('input', {id: 'rr-max', type: 'number', min: '1', max: '10', step: '1', value: '1'});
  const catchup = h('input', {id: 'rr-catchup', type: 'checkbox', checked: false});
  const paramsBox = h('div');
  let pform = null;
  const status = h('div', {class: 'form-status', role: 'status'});
  const versions = new Map();

  const loadVersions = async () => {
    replace(verSel);
    replace(paramsBox);
    pform = null;
    if (!pipeSel.value) return;
    const res = await api(`${KFP}/pipelines/${encodeURIComponent(pipeSel.value)}/versions`, {query: {page_size: 100, sort_by: 'created_at desc'}});
    for (const v of res.pipeline_versions || []) {
      versions.set(v.pipeline_version_id, v);
      add(verSel, h('option', {value: v.pipeline_version_id}, v.display_name));
    }
    showParams();
  };
  const showParams = () => {
    const v = versions.get(verSel.value);
    replace(paramsBox);
    pform = v ? parameterForm(pipelineSpecOf(v.pipeline_spec)) : null;
    if (pform) add(paramsBox, pform.el);
  };
  pipeSel.addEventListener('change', () => loadVersions().catch((err) => replace(status, errorBox(err))));
  verSel.addEventListener('change', showParams);
  Promise.all([
    api(`${KFP}/pipelines`, {query: {namespace: ctx.namespace, page_size: 200}}),
    api(`${KFP}/experiments`, {query: {namespace: ctx.namespace, page_size: 200}}),
  ]).then(([pipes, exps]) => {
    for (const p of pipes.pipelines || []) add(pipeSel, h('option', {value: p.pipeline_id}, p.display_name));
    for (const e of exps.experiments || []) add(expSel, h('option', {value: e.experiment_id}, e.display_name));
  }).catch((err) => replace(status, errorBox(err)));

  const form = h('form', {class: 'card-form', 'aria-label': 'Create a recurring run'},
    h('div', {class: 'field-row'},
      h('div', {class: 'field'}, h('label', {for: 'rr-name'}, 'Name'), name),
      h('div', {class: 'field'}, h('label', {for: 'rr-experiment'}, 'Experiment'), expSel)),
    h('div', {class: 'field-row'},
      h('div', {class: 'field'}, h('label', {for: 'rr-pipeline'}, 'Pipeline'), pipeSel),
      h('div', {class: 'field'}, h('label', {for: 'rr-version'}, 'Version'), verSel)),
    h('fieldset', {class: 'trigger'}, h('legend', null, 'Trigger'),
      h('div', {class: 'field-row'},
        h('div', {class: 'field'}, h('label', {for: 'rr-kind-cron', class: 'check'}, kindCron, ' Cron (6 fields, with seconds)'), cron,
          h('small', {class: 'help', id: 'rr-cron-help'}, 'sec min hour day month weekday, e.g. 0 0 2 * * * for 02:00 every day')),
        h('div', {class: 'field'}, h('label', {for: 'rr-kind-periodic', class: 'check'}, kindPeriodic, ' Every N seconds'), interval))),
    h('div', {class: 'field-row'},
      h('div', {class: 'field'}, h('label', {for: 'rr-max'}, 'Max concurrent runs'), maxConc),
      h('div', {class: 'field'}, h('label', {for: 'rr-catchup', class: 'check'}, catchup, ' Catch up missed runs'))),
    paramsBox,
    h('div', {class: 'form-actions'}, h('button', {type: 'submit', class: 'btn btn-primary'}, 'Create recurring run'), status));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(status);
    try {
      const parameters = pform ? pform.values() : {};
      const trigger = kindCron.checked
        ? {cron_schedule: {cron: cron.value.trim()}}
        : {periodic_schedule: {interval_second: Number(interval.value)}};
      await api(`${KFP}/recurringruns`, {method: 'POST', body: {
        display_name: name.value.trim(),
        mode: 'ENABLE',
        max_concurrency: Number(maxConc.value),
        no_catchup: !catchup.checked,
        trigger,
        experiment_id: expSel.value || undefined,
        namespace: ctx.namespace,
        pipeline_version_reference: {pipeline_id: pipeSel.value, pipeline_version_id: verSel.value},
        runtime_config: {parameters},
      }});
      toast(`Recurring run ${name.value.trim()} created.`, 'success');
      onDone();
    } catch (err) {
      add(status, errorBox(err));
    }
  });
  return form;
}

export async function render(ctx) {
  ctx.setTitle('Recurring runs');
  const {main, namespace} = ctx;
  const formBox = h('div', {hidden: true});
  const newBtn = button('New recurring run', () => {
    formBox.hidden = !formBox.hidden;
    if (!formBox.hidden && !formBox.firstChild) add(formBox, createForm(ctx, () => { formBox.hidden = true; replace(formBox); load(); }));
  }, {class: 'btn btn-primary', id: 'new-recurring'});
  const listBox = h('div', {id: 'recurring-list'});
  add(main, pageHeader('Recurring runs', newBtn), formBox, listBox);

  const load = async () => {
    let res;
    try {
      res = await api(`${KFP}/recurringruns`, {query: {namespace, page_size: 100, sort_by: 'created_at desc'}});
    } catch (err) {
      if (err.status === 404) {
        newBtn.disabled = true;
        replace(listBox, notice('Recurring runs are not available on this server yet: it has no /apis/v2beta1/recurringruns endpoint (HTTP 404). Upgrade Oxflow to schedule runs.', 'warning'));
        listBox.firstChild.id = 'recurring-unavailable';
        return;
      }
      replace(listBox, errorBox(err));
      return;
    }
    const list = res.recurringRuns || res.recurring_runs || [];
    if (!list.length) {
      replace(listBox, empty('No recurring runs yet.'));
      return;
    }
    replace(listBox, table(['Name', 'Status', 'Trigger', 'Max concurrent', 'Catch-up', 'Created', ''], list.map((r) => {
      const enabled = (r.status || '').toUpperCase() === 'ENABLED' || (r.mode || '').toUpperCase() === 'ENABLE';
      return h('tr', {'data-recurring-id': r.recurring_run_id},
        h('td', null, h('a', {href: `#/runs?recurring=${encodeURIComponent(r.recurring_run_id)}`}, r.display_name)),
        h('td', null, h('span', {class: `badge ${enabled ? 'state-SUCCEEDED' : 'state-SKIPPED'}`}, enabled ? 'enabled' : 'disabled')),
        h('td', null, triggerText(r.trigger)),
        h('td', {class: 'num'}, String(r.max_concurrency || 1)),
        h('td', null, r.no_catchup ? 'no' : 'yes'),
        h('td', null, fmtTime(r.created_at)),
        h('td', {class: 'row-actions'},
          button(enabled ? 'Disable' : 'Enable', async () => {
            try {
              await api(`${KFP}/recurringruns/${encodeURIComponent(r.recurring_run_id)}:${enabled ? 'disable' : 'enable'}`, {method: 'POST'});
              load();
            } catch (err) {
              toast(err.message, 'error');
            }
          }, {class: 'btn btn-small'}),
          button('Delete', async () => {
            if (!window.confirm(`Delete recurring run ${r.display_name}? Runs it created are kept.`)) return;
            try {
              await api(`${KFP}/recurringruns/${encodeURIComponent(r.recurring_run_id)}`, {method: 'DELETE'});
              load();
            } catch (err) {
              toast(err.message, 'error');
            }
          }, {class: 'btn btn-small btn-danger'})));
    }), {class: 'table', 'aria-label': 'Recurring runs'}));
  };
  await load();
}
