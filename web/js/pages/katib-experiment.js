// One Katib experiment: its state and latest condition, stop / resume /
// delete, the best trial, every trial with its parameters and metrics (and
// its log on request), the objective over trials, a parallel-coordinates
// view of the search, and the experiment itself as YAML and JSON. Polled
// while the experiment or any of its trials is still active.

import {h, errorBox, kvTable, fmtTime, fmtDuration, span, table, empty, button, toast, notice, replace, add} from '../dom.js';
import {api, fetchRaw, ApiError} from '../api.js';
import {
  nsPath, phaseOf, currentCondition, phaseBadge, trialPhase, trialMessage, ACTIVE_PHASES, ACTIVE_TRIAL_PHASES,
  metricNames, strategyOf, metricValue, trialObjective, bestTrialName, bestObjective, fmtNumber, assignments,
  sortTrials, trialSeq, trialAttempt, objectiveChart, parallelChart, parallelAxes, toYaml,
} from '../katib.js';

/** Polling interval while something is active. */
const REFRESH_MS = 2000;
const MAX_LOG_CHARS = 2 * 1024 * 1024;

/** Katib's times have whole seconds: a shorter span shows as "< 1 s". */
function duration(start, end) {
  const ms = span(start, end);
  return ms !== null && ms < 1000 ? '< 1 s' : fmtDuration(ms);
}

const METRIC_VIEWS = [
  ['strategy', 'per strategy'],
  ['latest', 'latest'],
  ['min', 'min'],
  ['max', 'max'],
];

export async function render(ctx) {
  const {main, params, namespace} = ctx;
  const name = params[0];
  ctx.setTitle(`${name} · Katib`);
  const crumbs = h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/katib'}, 'Katib'), ' / ', name);
  add(main, crumbs);

  const fetchAll = () => Promise.all([
    api(nsPath(namespace, 'experiments', name)),
    api(nsPath(namespace, 'experiments', name, 'trials')),
  ]);
  let exp;
  let trials;
  try {
    const [e, tl] = await fetchAll();
    exp = e;
    trials = sortTrials(tl.items);
  } catch (err) {
    add(main, h('h1', null, name), errorBox(err),
      err.status === 404 ? h('p', null, `No experiment ${name} in namespace ${namespace}. `, h('a', {href: '#/katib'}, 'All experiments')) : null);
    return undefined;
  }

  let timer = null;
  let disposed = false;
  let metricView = 'strategy';
  let logTrial = null;
  let logAbort = null;
  let dataKey = '';
  let actionsKey = '';

  // ------------------------------------------------------------- header
  const badgeBox = h('span', {id: 'katib-state'});
  const live = h('span', {class: 'live', id: 'katib-live'});
  const actions = h('div', {class: 'actions', id: 'katib-actions'});
  const condition = h('p', {class: 'run-meta muted', id: 'katib-condition'});
  const actionStatus = h('div', {id: 'katib-action-status', 'aria-live': 'polite'});
  const refreshStatus = h('div', {id: 'katib-refresh-status'});
  add(main,
    h('div', {class: 'page-header'}, h('h1', null, name, ' ', badgeBox, ' ', live), actions),
    condition, actionStatus, refreshStatus);

  const cards = h('div', {class: 'cards katib-cards', id: 'katib-summary'});
  const charts = h('div', {class: 'viz-row katib-charts'});
  const metricSel = h('select', {id: 'metric-view', 'aria-label': 'Which value of each metric to show'},
    METRIC_VIEWS.map(([v, label]) => h('option', {value: v}, label)));
  metricSel.addEventListener('change', () => {
    metricView = metricSel.value;
    renderTrials();
  });
  const trialsBox = h('div', {id: 'trials-box'});
  const logTitle = h('h2', {id: 'trial-log-h'});
  const logPre = h('pre', {class: 'log', id: 'trial-log', tabindex: '0', 'aria-labelledby': 'trial-log-h'});
  const logMetrics = h('div', {id: 'trial-metrics'});
  const logPanel = h('section', {class: 'log-panel', id: 'trial-log-panel', 'aria-labelledby': 'trial-log-h', hidden: true},
    h('div', {class: 'panel-head'}, logTitle,
      h('div', {class: 'actions'},
        button('Reload', () => logTrial && showLog(logTrial), {class: 'btn btn-small', id: 'trial-log-reload'}),
        button('Close', () => {
          logPanel.hidden = true;
          logTrial = null;
          if (logAbort) logAbort.abort();
        }, {class: 'btn btn-small', id: 'trial-log-close', 'aria-label': 'Close the trial log'}))),
    logPre, logMetrics);
  const yamlPre = h('pre', {class: 'text-preview spec-view', id: 'experiment-yaml-text'});
  const jsonPre = h('pre', {class: 'text-preview spec-view', id: 'experiment-json-text'});
  add(main,
    cards,
    h('section', {'aria-labelledby': 'charts-h'}, h('h2', {id: 'charts-h'}, 'Search'), charts),
    h('section', {'aria-labelledby': 'trials-h'},
      h('div', {class: 'section-head'}, h('h2', {id: 'trials-h'}, 'Trials'),
        h('label', {class: 'inline-label', for: 'metric-view'}, 'Metric values: '), metricSel),
      trialsBox, logPanel),
    h('section', {'aria-labelledby': 'spec-h'}, h('h2', {id: 'spec-h'}, 'Experiment'),
      h('details', {id: 'experiment-yaml'}, h('summary', null, 'YAML'), yamlPre),
      h('details', {id: 'experiment-json'}, h('summary', null, 'JSON'), jsonPre)));

  const isActive = () => ACTIVE_PHASES.has(phaseOf(exp)) || trials.some((t) => ACTIVE_TRIAL_PHASES.has(trialPhase(t)));

  const renderHeader = () => {
    const phase = phaseOf(exp);
    replace(badgeBox, phaseBadge(phase));
    const c = currentCondition(exp) || {};
    const st = exp.status || {};
    const o = (exp.spec && exp.spec.objective) || {};
    const end = ACTIVE_PHASES.has(phase) ? null : st.completionTime;
    replace(condition,
      c.reason ? h('strong', {class: 'reason'}, c.reason) : null,
      c.message ? [' — ', h('span', {class: 'message'}, c.message)] : null,
      ` · ${o.type || ''} `, h('code', null, o.objectiveMetricName || ''),
      o.goal !== undefined && o.goal !== null ? ` (goal ${fmtNumber(o.goal)})` : null,
      ` · ${(exp.spec.algorithm && exp.spec.algorithm.algorithmName) || ''}`,
      ` · created ${fmtTime(exp.metadata.creationTimestamp)}`,
      st.startTime ? ` · ran ${duration(st.startTime, end)}` : null);
    live.className = `live ${isActive() ? 'on' : ''}`;
    live.textContent = isActive() ? 'live' : '';
    live.dataset.live = isActive() ? 'on' : 'final';
    // The buttons only change with the phase, so that a number being typed survives a refresh.
    const key = JSON.stringify([phase, c.reason, st.trials]);
    if (key === actionsKey) return;
    actionsKey = key;
    replace(actions);
    if (ACTIVE_PHASES.has(phase)) {
      add(actions, button('Stop', () => verb('stop'), {class: 'btn btn-danger', id: 'katib-stop'}));
    } else if (phase === 'Stopped' || phase === 'Failed') {
      add(actions, button('Resume', () => verb('resume'), {class: 'btn', id: 'katib-resume'}));
    } else if (phase === 'Succeeded' && c.reason === 'ExperimentMaxTrialsReached') {
      if ((exp.spec.resumePolicy || 'Never') === 'Never') {
        add(actions, h('span', {class: 'muted small', title: 'Set resumePolicy: LongRunning to resume an experiment that reached maxTrialCount.'},
          'resumePolicy Never: cannot be resumed'));
      } else {
        // Resuming an experiment that reached its maximum needs a larger one.
        const max = h('input', {type: 'number', id: 'katib-resume-max', min: (st.trials || 0) + 1, step: 1,
          value: String((exp.spec.maxTrialCount || st.trials || 0) + (exp.spec.parallelTrialCount || 1)), class: 'small-number'});
        add(actions, h('label', {for: 'katib-resume-max', class: 'inline-label'}, 'New max trials'), max,
          button('Resume', () => verb('resume', {maxTrialCount: Number(max.value)}), {class: 'btn', id: 'katib-resume'}));
      }
    }
    add(actions,
      h('a', {class: 'btn', href: `#/katib/new?from=${encodeURIComponent(name)}`, id: 'katib-copy'}, 'Copy as new'),
      button('Delete', remove, {class: 'btn btn-danger', id: 'katib-delete'}));
  };

  const verb = async (v, body) => {
    replace(actionStatus);
    for (const b of actions.querySelectorAll('button')) b.disabled = true;
    try {
      exp = await api(nsPath(namespace, 'experiments', name, v), {method: 'POST', body});
      toast(v === 'stop' ? `Experiment ${name} stopped.` : `Experiment ${name} resumed.`, 'success');
      actionsKey = '';
      await refresh();
    } catch (err) {
      add(actionStatus, h('div', {class: 'alert alert-error', role: 'alert', id: 'katib-action-error'}, err.message));
      actionsKey = '';
      renderHeader();
    }
  };

  const remove = async () => {
    if (!window.confirm(`Delete experiment ${name} with its trials, metrics and logs?`)) return;
    try {
      await api(nsPath(namespace, 'experiments', name), {method: 'DELETE'});
      toast(`Experiment ${name} deleted.`, 'success');
      ctx.navigate('#/katib');
    } catch (err) {
      replace(actionStatus, h('div', {class: 'alert alert-error', role: 'alert', id: 'katib-action-error'}, err.message));
    }
  };

  // -------------------------------------------------------------- cards
  const select = (trialName) => {
    const row = trialsBox.querySelector(`tr[data-trial="${CSS.escape(trialName)}"]`);
    if (!row) return;
    row.scrollIntoView({block: 'center', behavior: 'smooth'});
    row.classList.remove('flash');
    // Restart the animation on a second click.
    void row.offsetWidth;
    row.classList.add('flash');
  };

  const renderCards = () => {
    const st = exp.status || {};
    const best = bestTrialName(exp);
    const metrics = metricNames(exp);
    const opt = st.currentOptimalTrial || {};
    const bestCard = best
      ? h('section', {class: 'card best-card', id: 'best-trial', 'aria-label': 'Best trial', 'data-trial': best},
        h('span', {class: 'card-label'}, 'Best trial'),
        h('button', {type: 'button', class: 'linkish best-name', onclick: () => select(best)}, best),
        h('span', {class: 'card-value'}, fmtNumber(bestObjective(exp)),
          h('span', {class: 'card-unit'}, ` ${metrics[0]} (${strategyOf(exp, metrics[0])})`)),
        kvTable([
          ...(opt.parameterAssignments || []).map((a) => [a.name, h('code', null, a.value)]),
          ...metrics.slice(1).map((m) => [m, fmtNumber(metricValue(opt.observation && opt.observation.metrics, m, strategyOf(exp, m)))]),
        ], {class: 'kv small'}))
      : h('section', {class: 'card best-card empty-best', id: 'best-trial', 'aria-label': 'Best trial'},
        h('span', {class: 'card-label'}, 'Best trial'),
        h('p', {class: 'muted'}, `No trial has reported ${metrics[0] || 'the objective'} yet.`));
    const count = (label, n, cls = '') => h('li', {class: cls}, h('strong', null, String(n || 0)), ` ${label}`);
    const trialsCard = h('section', {class: 'card', id: 'trial-counts', 'aria-label': 'Trial counts'},
      h('span', {class: 'card-label'}, 'Trials'),
      h('span', {class: 'card-value'}, String(st.trials || 0),
        exp.spec.maxTrialCount ? h('span', {class: 'card-unit'}, ` of ${exp.spec.maxTrialCount}`) : null),
      h('ul', {class: 'counts'},
        count('succeeded', st.trialsSucceeded),
        count('running', st.trialsRunning),
        st.trialsPending ? count('pending', st.trialsPending) : null,
        count('failed', st.trialsFailed),
        st.trialsKilled ? count('killed', st.trialsKilled) : null,
        st.trialsEarlyStopped ? count('early stopped', st.trialsEarlyStopped) : null,
        st.trialMetricsUnavailable ? count('without metrics', st.trialMetricsUnavailable) : null));
    const spec = exp.spec || {};
    const setupCard = h('section', {class: 'card', 'aria-label': 'Setup'},
      h('span', {class: 'card-label'}, 'Setup'),
      kvTable([
        ['Algorithm', (spec.algorithm && spec.algorithm.algorithmName) || ''],
        ...((spec.algorithm && spec.algorithm.algorithmSettings) || []).map((x) => [x.name, x.value]),
        ['Parallel', String(spec.parallelTrialCount || '')],
        ['Max failed', spec.maxFailedTrialCount !== undefined ? String(spec.maxFailedTrialCount) : '—'],
        ['Metrics', metrics.map((m) => `${m} (${strategyOf(exp, m)})`).join(', ')],
        ['Resume policy', spec.resumePolicy || 'Never'],
      ], {class: 'kv small'}));
    replace(cards, bestCard, trialsCard, setupCard);
  };

  // ------------------------------------------------------------- trials
  const renderTrials = () => {
    if (!trials.length) {
      replace(trialsBox, empty(ACTIVE_PHASES.has(phaseOf(exp)) ? 'No trials yet: the first ones are being suggested.' : 'This experiment has no trials.'));
      return;
    }
    const specParams = (exp.spec && exp.spec.parameters) || [];
    const paramNames = specParams.map((p) => p.name);
    const textual = new Set(specParams.filter((p) => p.parameterType === 'categorical').map((p) => p.name));
    const metrics = metricNames(exp);
    const best = bestTrialName(exp);
    const how = (m) => (metricView === 'strategy' ? strategyOf(exp, m) : metricView);
    const headers = ['#', 'Trial', 'State',
      ...paramNames.map((p) => h('span', {class: 'param-head'}, p)),
      ...metrics.map((m, i) => h('span', {class: i === 0 ? 'objective-head' : 'metric-head'}, m, h('span', {class: 'muted'}, ` · ${how(m)}`))),
      'Started', 'Duration', h('span', {class: 'sr-only'}, 'Log')];
    const rows = trials.map((t) => {
      const tname = t.metadata.name;
      const phase = trialPhase(t);
      const msg = trialMessage(t);
      const a = assignments(t);
      const obs = (t.status && t.status.observation && t.status.observation.metrics) || [];
      const isBest = tname === best;
      const seq = trialSeq(t) === null ? '' : trialSeq(t) + 1;
      const end = ACTIVE_TRIAL_PHASES.has(phase) ? null : t.status.completionTime;
      return h('tr', {'data-trial': tname, 'data-state': phase, class: isBest ? 'best' : null, 'aria-current': isBest ? 'true' : null},
        h('td', {class: 'num muted'}, String(seq)),
        h('td', {class: 'trial-name'}, tname, isBest ? h('span', {class: 'best-chip', title: 'The best trial so far'}, 'best') : null,
          trialAttempt(t) > 1 ? h('span', {class: 'muted small'}, ` attempt ${trialAttempt(t)}`) : null),
        h('td', {title: msg}, phaseBadge(phase), msg && phase !== 'Succeeded' && phase !== 'Running' ? h('div', {class: 'muted small trial-message'}, msg) : null),
        ...paramNames.map((p) => {
          if (!a.has(p)) return h('td', {class: 'param', 'data-param': p}, '—');
          const raw = a.get(p);
          // Numbers to six significant digits; the exact value in the tooltip.
          const shown = textual.has(p) || !Number.isFinite(Number(raw)) ? raw : fmtNumber(Number(raw));
          return h('td', {class: textual.has(p) ? 'param' : 'num param', 'data-param': p, title: raw}, shown);
        }),
        ...metrics.map((m, i) => h('td', {class: `num metric${i === 0 ? ' objective' : ''}`, 'data-metric': m}, fmtNumber(metricValue(obs, m, how(m))))),
        h('td', null, fmtTime(t.status && t.status.startTime)),
        h('td', {class: 'num'}, t.status && t.status.startTime ? duration(t.status.startTime, end) : '—'),
        h('td', {class: 'row-actions'}, button('Log', () => showLog(tname), {
          class: 'btn btn-small trial-log-btn', 'aria-label': `Show the log of ${tname}`, disabled: phase === 'Created' && !(t.status && t.status.startTime),
        })));
    });
    replace(trialsBox, table(headers, rows, {class: 'table compact trials-table', id: 'trials', 'aria-label': 'Trials'}));
  };

  // -------------------------------------------------------------- charts
  const renderCharts = () => {
    const metric = metricNames(exp)[0];
    const type = (exp.spec.objective && exp.spec.objective.type) || 'minimize';
    const best = bestTrialName(exp);
    const withValue = trials.map((t, i) => ({t, value: trialObjective(exp, t), index: trialSeq(t) === null ? i + 1 : trialSeq(t) + 1}))
      .filter((x) => typeof x.value === 'number');
    if (!withValue.length) {
      replace(charts, empty(`The charts appear once a trial reports ${metric}.`));
      return;
    }
    const axes = parallelAxes(exp, trials, withValue.map((x) => x.value));
    const rows = withValue.map(({t, value}) => {
      const a = assignments(t);
      return {
        name: t.metadata.name,
        objective: value,
        values: [...axes.slice(0, -1).map((ax) => (ax.kind === 'cat' ? a.get(ax.name) : Number(a.get(ax.name)))), value],
      };
    });
    replace(charts,
      h('section', {class: 'chart-card', id: 'objective-chart', 'aria-label': 'Objective over trials'},
        h('h3', null, `${metric} over trials`),
        objectiveChart(withValue.map(({t, value, index}) => ({name: t.metadata.name, index, value})), {metric, type, bestName: best, onSelect: select})),
      h('section', {class: 'chart-card', id: 'parallel-chart', 'aria-label': 'Parallel coordinates'},
        h('h3', null, 'Parameters and objective'),
        parallelChart(axes, rows, {type, bestName: best, onSelect: select})));
  };

  // ----------------------------------------------------------------- log
  const showLog = async (trialName) => {
    if (logAbort) logAbort.abort();
    const ac = new AbortController();
    logAbort = ac;
    logTrial = trialName;
    logPanel.hidden = false;
    replace(logTitle, 'Log of ', h('code', null, trialName));
    logPre.dataset.trial = trialName;
    logPre.dataset.loaded = 'false';
    if (!logPre.textContent) logPre.textContent = 'Loading…';
    try {
      const [resp, m] = await Promise.all([
        fetchRaw(nsPath(namespace, 'trials', trialName, 'logs'), {signal: ac.signal}),
        api(nsPath(namespace, 'trials', trialName, 'metrics'), {signal: ac.signal}).catch(() => null),
      ]);
      let text = await resp.text();
      if (ac.signal.aborted) return;
      if (text.length > MAX_LOG_CHARS) text = `… (showing the last ${MAX_LOG_CHARS} characters)\n${text.slice(-MAX_LOG_CHARS)}`;
      logPre.textContent = text || '(the log is empty)';
      const logs = (m && m.metricLogs) || [];
      replace(logMetrics, logs.length
        ? h('details', null, h('summary', null, `${logs.length} reported metric value${logs.length > 1 ? 's' : ''}`),
          table(['Time', 'Metric', 'Value'], logs.slice(-500).map((l) => h('tr', null,
            h('td', null, fmtTime(l.timeStamp)), h('td', null, l.metric.name), h('td', {class: 'num'}, l.metric.value))),
          {class: 'table compact', 'aria-label': 'Reported metrics'}))
        : null);
    } catch (err) {
      if (err.name === 'AbortError') return;
      logPre.textContent = err instanceof ApiError && err.status === 404 ? err.message : `Could not read the log: ${err.message}`;
      replace(logMetrics);
    }
    logPre.dataset.loaded = 'true';
    logPanel.scrollIntoView({block: 'nearest'});
  };

  // ------------------------------------------------------------- refresh
  const renderSpec = () => {
    const y = toYaml(exp);
    if (yamlPre.textContent !== y) yamlPre.textContent = y;
    const j = JSON.stringify(exp, null, 2);
    if (jsonPre.textContent !== j) jsonPre.textContent = j;
  };

  const renderAll = () => {
    renderHeader();
    // Redraw the rest only when the data changed (a poll often changes nothing).
    const key = JSON.stringify([exp.status, exp.spec, trials]);
    const changed = key !== dataKey;
    dataKey = key;
    if (changed) {
      renderCards();
      renderCharts();
      renderSpec();
    }
    // Running trials' durations move on even when nothing else does.
    if (changed || trials.some((t) => trialPhase(t) === 'Running')) renderTrials();
  };

  async function refresh() {
    clearTimeout(timer);
    const wasRunning = logTrial && trials.some((t) => t.metadata.name === logTrial && ACTIVE_TRIAL_PHASES.has(trialPhase(t)));
    try {
      const [e, tl] = await fetchAll();
      if (disposed) return;
      exp = e;
      trials = sortTrials(tl.items);
      replace(refreshStatus);
      renderAll();
      // A trial that was running when its log was opened has more to show.
      if (wasRunning && !logPanel.hidden) showLog(logTrial);
    } catch (err) {
      if (disposed) return;
      if (err.status === 404) {
        replace(refreshStatus, notice(`Experiment ${name} no longer exists.`, 'warning'));
        return;
      }
      replace(refreshStatus, errorBox(err));
    }
    if (!disposed && isActive()) timer = setTimeout(refresh, REFRESH_MS);
  }

  renderAll();
  if (isActive()) timer = setTimeout(refresh, REFRESH_MS);
  return () => {
    disposed = true;
    clearTimeout(timer);
    if (logAbort) logAbort.abort();
  };
}
