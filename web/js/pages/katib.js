// Katib: the hyperparameter tuning experiments of a namespace, and creating
// one, either from Katib YAML (the same file `kubectl apply` takes) or from a
// form that writes that Experiment for the user.

import {h, pageHeader, table, fmtTime, errorBox, empty, button, toast, replace, add, specError} from '../dom.js';
import {api, listKube, sendText} from '../api.js';
import {
  nsPath, experimentHref, phaseOf, currentCondition, phaseBadge, ACTIVE_PHASES, ALGORITHMS,
  bestObjective, bestTrialName, metricNames, fmtNumber, toYaml, exampleYaml,
} from '../katib.js';

/** The list refreshes on this interval only while an experiment is active. */
const ACTIVE_REFRESH_MS = 3000;

export async function render(ctx) {
  if (ctx.mode === 'new') return renderCreate(ctx);
  return renderList(ctx);
}

// ------------------------------------------------------------------- list

function experimentsTable(items) {
  const rows = items.map((e) => {
    const name = e.metadata.name;
    const phase = phaseOf(e);
    const cond = currentCondition(e) || {};
    const st = e.status || {};
    const best = bestTrialName(e);
    const metric = metricNames(e)[0] || '';
    const extra = [
      st.trialsRunning ? `${st.trialsRunning} running` : null,
      st.trialsFailed ? `${st.trialsFailed} failed` : null,
      st.trialsKilled ? `${st.trialsKilled} killed` : null,
    ].filter(Boolean).join(' · ');
    return h('tr', {'data-experiment': name, 'data-state': phase},
      h('td', null, h('a', {href: experimentHref(name), class: 'exp-link'}, name)),
      h('td', null, phaseBadge(phase)),
      h('td', {title: cond.message || ''}, cond.reason || ''),
      h('td', null, (e.spec && e.spec.algorithm && e.spec.algorithm.algorithmName) || ''),
      h('td', {class: 'num trials-cell', title: extra},
        h('span', {class: 'trials-count'}, `${st.trialsSucceeded || 0}/${st.trials || 0}`),
        e.spec && e.spec.maxTrialCount ? h('span', {class: 'muted small'}, ` of ${e.spec.maxTrialCount}`) : null,
        extra ? h('div', {class: 'muted small'}, extra) : null),
      h('td', {class: 'num best-value'}, best ? [h('span', {class: 'muted small'}, `${metric} `), fmtNumber(bestObjective(e))] : '—'),
      h('td', {class: 'best-trial'}, best || '—'),
      h('td', null, fmtTime(e.metadata.creationTimestamp)));
  });
  return table(['Name', 'State', 'Reason', 'Algorithm', 'Trials (succeeded/total)', 'Best objective', 'Best trial', 'Created'],
    rows, {class: 'table katib-table', 'aria-label': 'Katib experiments'});
}

async function renderList(ctx) {
  ctx.setTitle('Katib');
  const {main, namespace} = ctx;
  const listBox = h('div', {id: 'katib-list'});
  let timer = null;
  let disposed = false;
  const load = async () => {
    clearTimeout(timer);
    try {
      const res = await listKube(nsPath(namespace, 'experiments'));
      if (disposed) return;
      const items = [...(res.items || [])].sort((a, b) =>
        String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp)));
      replace(listBox, items.length
        ? experimentsTable(items)
        : empty(`No tuning experiments in namespace ${namespace} yet. Create one from Katib YAML or from the form.`));
      if (items.some((e) => ACTIVE_PHASES.has(phaseOf(e)))) timer = setTimeout(load, ACTIVE_REFRESH_MS);
    } catch (err) {
      if (!disposed) replace(listBox, errorBox(err));
    }
  };
  add(main,
    pageHeader('Katib experiments',
      button('Refresh', load, {id: 'katib-refresh'}),
      h('a', {class: 'btn btn-primary', href: '#/katib/new', id: 'katib-new'}, 'New experiment')),
    h('p', {class: 'muted'}, 'Hyperparameter tuning: an experiment runs trials with the values its search algorithm suggests and keeps the best. Katib\'s API, at ',
      h('code', null, nsPath(namespace, 'experiments')), '.'),
    listBox);
  await load();
  return () => {
    disposed = true;
    clearTimeout(timer);
  };
}

// ----------------------------------------------------------------- create


function shortId() {
  return Math.random().toString(36).slice(2, 6).padEnd(4, '0');
}

/**
 * Splits a command line as a POSIX shell does (quotes and backslashes; no
 * variables or globs), so `python3 -c "print(1)"` is three arguments.
 */
export function shellSplit(line) {
  const out = [];
  let cur = '';
  let any = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === '\'') {
      const end = line.indexOf('\'', i + 1);
      if (end < 0) throw new Error('a single quote is not closed');
      cur += line.slice(i + 1, end);
      any = true;
      i = end + 1;
    } else if (c === '"') {
      i += 1;
      for (;;) {
        if (i >= line.length) throw new Error('a double quote is not closed');
        const d = line[i];
        if (d === '"') break;
        if (d === '\\' && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1])) {
          cur += line[i + 1];
          i += 2;
        } else {
          cur += d;
          i += 1;
        }
      }
      any = true;
      i += 1;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[i + 1];
      any = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (any) out.push(cur);
      cur = '';
      any = false;
      i += 1;
    } else {
      cur += c;
      any = true;
      i += 1;
    }
  }
  if (any) out.push(cur);
  return out;
}

const PARAM_TYPES = ['double', 'int', 'discrete', 'categorical'];
const DISTRIBUTIONS = ['', 'uniform', 'logUniform', 'normal', 'logNormal'];

/** One editable row of the parameters table. */
function paramRow(p, onRemove) {
  const input = (cls, label, value, attrs = {}) => h('input', {type: 'text', class: cls, 'aria-label': label, value: value || '', ...attrs});
  const name = input('p-name', 'Parameter name', p.name, {placeholder: 'name'});
  const type = h('select', {class: 'p-type', 'aria-label': 'Parameter type'},
    PARAM_TYPES.map((t) => h('option', {value: t, selected: t === (p.type || 'double')}, t)));
  const min = input('p-min', 'Minimum', p.min, {size: 7});
  const max = input('p-max', 'Maximum', p.max, {size: 7});
  const step = input('p-step', 'Step', p.step, {size: 6, placeholder: 'optional'});
  const list = input('p-list', 'Values, comma-separated', p.list, {placeholder: 'sgd, adam'});
  const dist = h('select', {class: 'p-dist', 'aria-label': 'Distribution'},
    DISTRIBUTIONS.map((d) => h('option', {value: d, selected: d === (p.distribution || '')}, d || 'default')));
  const sync = () => {
    const listed = type.value === 'discrete' || type.value === 'categorical';
    for (const el of [min, max, step]) el.disabled = listed;
    dist.disabled = type.value === 'categorical';
    list.disabled = !listed;
  };
  type.addEventListener('change', sync);
  sync();
  const tr = h('tr', {class: 'param-row'},
    h('td', null, name), h('td', null, type), h('td', null, min), h('td', null, max), h('td', null, step),
    h('td', null, list), h('td', null, dist),
    h('td', {class: 'row-actions'}, button('Remove', () => onRemove(tr), {class: 'btn btn-small btn-danger p-remove', 'aria-label': 'Remove this parameter'})));
  tr.readParam = () => {
    const feasibleSpace = {};
    const listed = type.value === 'discrete' || type.value === 'categorical';
    if (listed) {
      feasibleSpace.list = list.value.split(',').map((x) => x.trim()).filter((x) => x !== '');
    } else {
      if (min.value.trim()) feasibleSpace.min = min.value.trim();
      if (max.value.trim()) feasibleSpace.max = max.value.trim();
      if (step.value.trim()) feasibleSpace.step = step.value.trim();
    }
    if (!dist.disabled && dist.value) feasibleSpace.distribution = dist.value;
    return {name: name.value.trim(), parameterType: type.value, feasibleSpace};
  };
  return tr;
}

function field(id, label, input, help) {
  return h('div', {class: 'field'}, h('label', {for: id}, label), input, help ? h('small', {class: 'help'}, help) : null);
}

async function renderCreate(ctx) {
  ctx.setTitle('New Katib experiment');
  const {main, namespace, query} = ctx;
  const suffix = shortId();
  let tab = query.tab === 'form' ? 'form' : 'yaml';

  // The YAML editor, prefilled with a small working experiment (or a copy).
  let initial = exampleYaml(`lr-search-${suffix}`);
  let copyNote = null;
  if (query.from) {
    try {
      const src = await api(nsPath(namespace, 'experiments', query.from));
      delete src.status;
      src.metadata = {name: `${src.metadata.name}-copy`.slice(0, 40)};
      initial = toYaml(src);
      copyNote = h('p', {class: 'muted small'}, `A copy of ${query.from}: change the name, then create it.`);
    } catch (err) {
      copyNote = errorBox(new Error(`Could not copy ${query.from}: ${err.message}`));
    }
  }
  const yaml = h('textarea', {id: 'katib-yaml', rows: 34, spellcheck: 'false', 'aria-label': 'Experiment YAML', class: 'yaml-editor'});
  yaml.value = initial;
  const yamlStatus = h('div', {class: 'form-status', id: 'katib-yaml-status', 'aria-live': 'polite'});
  const yamlBtn = h('button', {type: 'submit', class: 'btn btn-primary', id: 'katib-create-yaml'}, 'Create');
  const yamlForm = h('form', {class: 'card-form', id: 'katib-yaml-form', 'aria-label': 'Create an experiment from YAML'},
    copyNote,
    h('div', {class: 'editor-layout'},
      h('div', {class: 'grow'}, yaml),
      h('aside', {class: 'editor-help muted small'},
        h('p', null, 'A Katib ', h('code', null, 'Experiment'), ' (', h('code', null, 'kubeflow.org/v1beta1'), '), YAML or JSON.'),
        h('p', null, 'Each trial runs the ', h('code', null, 'command'), ' and ', h('code', null, 'args'),
          ' of the primary container of the trial Job as a process here; ', h('code', null, '${trialParameters.NAME}'),
          ' is replaced with the suggested value.'),
        h('p', null, 'Metrics are read from the trial\'s standard output, lines such as ', h('code', null, 'loss=0.123'), '.'),
        h('p', null, 'Namespace: ', h('code', null, namespace), ' (from the selector).'))),
    h('div', {class: 'form-actions'}, yamlBtn,
      button('Reset to the example', () => {
        yaml.value = exampleYaml(`lr-search-${shortId()}`);
        replace(yamlStatus);
        yaml.removeAttribute('aria-invalid');
      }, {id: 'katib-reset-yaml'}),
      yamlStatus));

  const created = (exp) => {
    toast(`Experiment ${exp.metadata.name} created.`, 'success');
    ctx.navigate(experimentHref(exp.metadata.name));
  };

  yamlForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(yamlStatus);
    yaml.removeAttribute('aria-invalid');
    yamlBtn.disabled = true;
    try {
      created(await sendText(nsPath(namespace, 'experiments'), yaml.value, {contentType: 'application/yaml'}));
    } catch (err) {
      add(yamlStatus, specError(err, 'katib-yaml-error'));
      yaml.setAttribute('aria-invalid', 'true');
    } finally {
      yamlBtn.disabled = false;
    }
  });

  // The form: the same Experiment, written from a few fields.
  const fName = h('input', {type: 'text', id: 'kf-name', value: `form-search-${suffix}`, required: true, pattern: '[a-z]([-a-z0-9]*[a-z0-9])?', maxlength: 40});
  const fType = h('select', {id: 'kf-objective-type'}, h('option', {value: 'minimize'}, 'minimize'), h('option', {value: 'maximize'}, 'maximize'));
  const fMetric = h('input', {type: 'text', id: 'kf-metric', value: 'loss', required: true});
  const fGoal = h('input', {type: 'number', id: 'kf-goal', step: 'any', placeholder: 'optional'});
  const fAdditional = h('input', {type: 'text', id: 'kf-additional', placeholder: 'accuracy, f1'});
  const fAlgorithm = h('select', {id: 'kf-algorithm'}, ALGORITHMS.map((a) => h('option', {value: a}, a)));
  const count = (id, value) => h('input', {type: 'number', id, min: 1, step: 1, value: String(value)});
  const fMax = count('kf-max-trials', 6);
  const fParallel = count('kf-parallel', 2);
  const fMaxFailed = count('kf-max-failed', 2);
  const paramBody = h('tbody');
  const removeRow = (tr) => tr.remove();
  add(paramBody, paramRow({name: 'lr', type: 'double', min: '0.01', max: '0.1'}, removeRow));
  const fCommand = h('input', {type: 'text', id: 'kf-command', class: 'mono',
    value: 'python3 -c "import sys; lr = float(sys.argv[1]); print(f\'loss={(lr - 0.05) ** 2:.6f}\')"'});
  const fArgs = h('input', {type: 'text', id: 'kf-args', class: 'mono', value: '${trialParameters.lr}'});
  const fImage = h('input', {type: 'text', id: 'kf-image', value: 'python:3.12'});
  const formStatus = h('div', {class: 'form-status', id: 'katib-form-status', 'aria-live': 'polite'});
  const formBtn = h('button', {type: 'submit', class: 'btn btn-primary', id: 'kf-create'}, 'Create');

  const build = () => {
    const num = (el, label) => {
      const raw = el.value.trim();
      if (raw === '') return undefined;
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${label}: must be a whole number of at least 1`);
      return n;
    };
    const params = [...paramBody.querySelectorAll('tr.param-row')].map((tr) => tr.readParam());
    let command;
    let args;
    try {
      command = shellSplit(fCommand.value);
      args = shellSplit(fArgs.value);
    } catch (err) {
      throw new Error(`trial command: ${err.message}`);
    }
    // Katib wants every parameter to reach the trial: one the command does
    // not mention is passed as --NAME=VALUE.
    const text = [...command, ...args].join('\n');
    for (const p of params) {
      if (p.name && !text.includes(`\${trialParameters.${p.name}}`)) args.push(`--${p.name}=\${trialParameters.${p.name}}`);
    }
    const objective = {type: fType.value, objectiveMetricName: fMetric.value.trim()};
    if (fGoal.value.trim() !== '') objective.goal = Number(fGoal.value);
    const additional = fAdditional.value.split(',').map((x) => x.trim()).filter(Boolean);
    if (additional.length) objective.additionalMetricNames = additional;
    const container = {name: 'training-container'};
    if (fImage.value.trim()) container.image = fImage.value.trim();
    container.command = command;
    if (args.length) container.args = args;
    const spec = {
      objective,
      algorithm: {algorithmName: fAlgorithm.value},
      parallelTrialCount: num(fParallel, 'parallel trials'),
      maxTrialCount: num(fMax, 'max trials'),
      maxFailedTrialCount: num(fMaxFailed, 'max failed trials'),
      parameters: params,
      trialTemplate: {
        primaryContainerName: 'training-container',
        trialParameters: params.map((p) => ({name: p.name, reference: p.name})),
        trialSpec: {
          apiVersion: 'batch/v1',
          kind: 'Job',
          spec: {template: {spec: {containers: [container], restartPolicy: 'Never'}}},
        },
      },
    };
    for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k];
    return {apiVersion: 'kubeflow.org/v1beta1', kind: 'Experiment', metadata: {name: fName.value.trim()}, spec};
  };

  const form = h('form', {class: 'card-form', id: 'katib-form', 'aria-label': 'Create an experiment from a form', novalidate: true},
    h('div', {class: 'field-row'},
      field('kf-name', 'Name', fName, 'Lower case letters, digits and dashes; at most 40 characters.'),
      field('kf-algorithm', 'Algorithm', fAlgorithm)),
    h('fieldset', null, h('legend', null, 'Objective'),
      h('div', {class: 'field-row'},
        field('kf-objective-type', 'Type', fType),
        field('kf-metric', 'Metric', fMetric, 'The name the trial prints, as in loss=0.12.'),
        field('kf-goal', 'Goal', fGoal, 'Stop once the best trial reaches it.'),
        field('kf-additional', 'Additional metrics', fAdditional, 'Collected too; comma-separated.'))),
    h('fieldset', null, h('legend', null, 'Trials'),
      h('div', {class: 'field-row'},
        field('kf-max-trials', 'Max trials', fMax),
        field('kf-parallel', 'Parallel trials', fParallel),
        field('kf-max-failed', 'Max failed trials', fMaxFailed))),
    h('fieldset', null, h('legend', null, 'Search space'),
      h('table', {class: 'table compact params-table', id: 'kf-params', 'aria-label': 'Parameters'},
        h('thead', null, h('tr', null, ['Name', 'Type', 'Min', 'Max', 'Step', 'List', 'Distribution', ''].map((x) => h('th', {scope: 'col'}, x)))),
        paramBody),
      h('p', null, button('Add parameter', () => add(paramBody, paramRow({}, removeRow)), {class: 'btn btn-small', id: 'kf-add-param'})),
      h('p', {class: 'help'}, 'double and int take min and max (and an optional step); discrete and categorical take a comma-separated list.')),
    h('fieldset', null, h('legend', null, 'Trial'),
      field('kf-command', 'Command', fCommand, 'Split like a shell line; runs as the container named training-container of a batch/v1 Job.'),
      field('kf-args', 'Arguments', fArgs, 'Use ${trialParameters.NAME} for a parameter\'s value. A parameter used nowhere is passed as --NAME=VALUE.'),
      field('kf-image', 'Image', fImage, 'Recorded with the experiment (for Kubernetes); local trials run on this machine.')),
    h('div', {class: 'form-actions'}, formBtn,
      button('Open in the YAML editor', () => {
        replace(formStatus);
        try {
          yaml.value = toYaml(build());
          showTab('yaml');
        } catch (err) {
          add(formStatus, specError(err, 'katib-form-error'));
        }
      }, {id: 'kf-to-yaml'}),
      formStatus));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(formStatus);
    formBtn.disabled = true;
    try {
      created(await api(nsPath(namespace, 'experiments'), {method: 'POST', body: build()}));
    } catch (err) {
      add(formStatus, specError(err, 'katib-form-error'));
    } finally {
      formBtn.disabled = false;
    }
  });

  const tabBtn = (id, label) => h('button', {
    type: 'button', role: 'tab', class: 'tab', id: `katib-tab-${id}`, 'aria-controls': `katib-${id}-panel`,
    onclick: () => showTab(id),
  }, label);
  const tabs = h('div', {class: 'tabs', role: 'tablist', 'aria-label': 'How to describe the experiment'},
    tabBtn('yaml', 'YAML'), tabBtn('form', 'Form'));
  const yamlPanel = h('div', {id: 'katib-yaml-panel', role: 'tabpanel', 'aria-labelledby': 'katib-tab-yaml'}, yamlForm);
  const formPanel = h('div', {id: 'katib-form-panel', role: 'tabpanel', 'aria-labelledby': 'katib-tab-form'}, form);
  function showTab(id) {
    tab = id;
    yamlPanel.hidden = id !== 'yaml';
    formPanel.hidden = id !== 'form';
    for (const b of tabs.querySelectorAll('.tab')) b.setAttribute('aria-selected', String(b.id === `katib-tab-${id}`));
    ctx.setQuery({tab: id === 'form' ? 'form' : '', from: query.from});
  }
  add(main,
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/katib'}, 'Katib'), ' / new experiment'),
    pageHeader('New Katib experiment'),
    tabs, yamlPanel, formPanel);
  showTab(tab);
}
