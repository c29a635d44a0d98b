// What the Katib pages share: API paths, experiment and trial phases, metric
// values under their strategies, the two SVG charts (objective over trials,
// parallel coordinates) and a small YAML writer for showing an experiment.
// Everything reads Katib's own JSON shapes (kubeflow.org/v1beta1).

import {h, s, add, uid} from './dom.js';
import {KATIB} from './api.js';

/** Experiment phases in which the controller still works on it. */
export const ACTIVE_PHASES = new Set(['Created', 'Running', 'Restarting']);
/** Trial phases that may still change. */
export const ACTIVE_TRIAL_PHASES = new Set(['Created', 'Running']);

/** Katib's algorithm names, in the order the form offers them. */
export const ALGORITHMS = ['random', 'grid', 'bayesianoptimization', 'tpe', 'multivariate-tpe', 'cmaes', 'sobol', 'hyperband'];

/** `/apis/kubeflow.org/v1beta1/namespaces/NS/…`, every part encoded. */
export function nsPath(namespace, ...parts) {
  return [`${KATIB}/namespaces/${encodeURIComponent(namespace)}`, ...parts.map((p) => encodeURIComponent(p))].join('/');
}

export function experimentHref(name) {
  return `#/katib/experiments/${encodeURIComponent(name)}`;
}

function conditions(obj) {
  const list = obj && obj.status && obj.status.conditions;
  return Array.isArray(list) ? list : [];
}

/**
 * The current condition of an experiment: the newest one with status
 * "True" that is not "Created"; "Created" (or nothing) when there is none.
 */
export function currentCondition(exp) {
  const list = conditions(exp);
  const phase = [...list].reverse().find((c) => c.status === 'True' && c.type !== 'Created');
  return phase || list.find((c) => c.type === 'Created') || list[list.length - 1] || null;
}

/** Created / Running / Restarting / Succeeded / Failed / Stopped. */
export function phaseOf(exp) {
  const c = currentCondition(exp);
  return c && c.status === 'True' ? c.type : 'Created';
}

/** A trial's phase: the type of its newest condition that holds. */
export function trialPhase(t) {
  const list = conditions(t);
  const c = [...list].reverse().find((x) => x.status === 'True') || list[list.length - 1];
  return c ? c.type : 'Created';
}

export function trialMessage(t) {
  const list = conditions(t);
  const c = list[list.length - 1];
  return (c && c.message) || '';
}

// Katib's phases drawn with the colours runs use (same meaning, same look).
const BADGE_COLOUR = {
  Created: 'PENDING',
  Running: 'RUNNING',
  Restarting: 'RUNNING',
  Succeeded: 'SUCCEEDED',
  Failed: 'FAILED',
  Stopped: 'CANCELED',
  Killed: 'CANCELED',
  EarlyStopped: 'SKIPPED',
  MetricsUnavailable: 'FAILED',
};

/** "EarlyStopped" → "early stopped". */
export function phaseLabel(phase) {
  return String(phase || 'Unknown').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

/** A badge with the phase's colour and name; `data-state` keeps Katib's spelling. */
export function phaseBadge(phase, attrs = {}) {
  const colour = BADGE_COLOUR[phase] || 'UNKNOWN';
  return h('span', {class: `badge state-${colour}`, 'data-state': phase || 'Unknown', ...attrs}, phaseLabel(phase));
}

// --------------------------------------------------------------- metrics

/** The objective metric first, then the additional ones. */
export function metricNames(exp) {
  const o = (exp.spec && exp.spec.objective) || {};
  return [o.objectiveMetricName, ...(o.additionalMetricNames || [])].filter(Boolean);
}

/** metric → min | max | latest, as the (defaulted) spec says. */
export function strategyOf(exp, metric) {
  const o = (exp.spec && exp.spec.objective) || {};
  const given = (o.metricStrategies || []).find((m) => m.name === metric);
  if (given && given.value) return given.value;
  if (metric === o.objectiveMetricName) return o.type === 'maximize' ? 'max' : 'min';
  return 'latest';
}

/**
 * One metric's value from an observation (`[{name, min, max, latest}]`):
 * `how` is min, max or latest, falling back to latest as Katib does.
 * A number when it parses as one, the reported text otherwise, null when
 * the metric is unavailable.
 */
export function metricValue(metrics, name, how) {
  const m = (metrics || []).find((x) => x.name === name);
  if (!m) return null;
  const usable = (v) => v !== null && v !== undefined && v !== '' && v !== 'unavailable';
  const raw = usable(m[how]) ? m[how] : m.latest;
  if (!usable(raw)) return null;
  const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
  return Number.isFinite(n) ? n : String(raw);
}

/** Oxflow's block of a trial's status: `{attempt, objective}`. */
function oxflowStatus(t) {
  return (t.status && t.status.oxflow) || {};
}

/** A trial's position in its experiment (from 0), or null. */
export function trialSeq(t) {
  const raw = t.metadata && t.metadata.annotations && t.metadata.annotations['tuning.oxflow.dev/seq'];
  const n = raw === undefined ? NaN : Number(raw);
  return Number.isInteger(n) ? n : null;
}

/** How many times a trial was started. */
export function trialAttempt(t) {
  const n = oxflowStatus(t).attempt;
  return typeof n === 'number' ? n : 0;
}

/** The objective value of a trial: the server's, or computed from the observation. */
export function trialObjective(exp, t) {
  const own = oxflowStatus(t).objective;
  if (typeof own === 'number') return own;
  const metric = metricNames(exp)[0];
  const v = metricValue(t.status && t.status.observation && t.status.observation.metrics, metric, strategyOf(exp, metric));
  return typeof v === 'number' ? v : null;
}

/** The best trial's objective value, or null. */
export function bestObjective(exp) {
  const best = exp.status && exp.status.currentOptimalTrial;
  if (!best || !best.bestTrialName) return null;
  const metric = metricNames(exp)[0];
  return metricValue(best.observation && best.observation.metrics, metric, strategyOf(exp, metric));
}

export function bestTrialName(exp) {
  const best = exp.status && exp.status.currentOptimalTrial;
  return (best && best.bestTrialName) || '';
}

export function fmtNumber(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}

/** A trial's parameter assignments as a Map name → value (text). */
export function assignments(t) {
  return new Map(((t.spec && t.spec.parameterAssignments) || []).map((a) => [a.name, a.value]));
}

/** Trials in creation order. */
export function sortTrials(items) {
  const seq = (t) => (trialSeq(t) === null ? Number.MAX_SAFE_INTEGER : trialSeq(t));
  return [...(items || [])].sort((a, b) => seq(a) - seq(b)
    || String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp))
    || a.metadata.name.localeCompare(b.metadata.name));
}

// ---------------------------------------------------------------- charts

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((x) => x >= raw) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function extent(values) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const d = Math.abs(lo) * 0.1 || 1;
    lo -= d;
    hi += d;
  }
  return [lo, hi];
}

// Worst → best: amber, violet, the accent blue.
const RAMP = [[232, 163, 61], [150, 98, 190], [31, 79, 209]];

/** A colour for t in [0, 1], where 1 is the best objective. */
export function rampColour(t) {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const c = RAMP[i].map((v, k) => Math.round(v + (RAMP[i + 1][k] - v) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

/**
 * The objective of each trial over trial index (dots), with the best value
 * so far as a step line. `points`: [{name, index, value}] with numeric values.
 */
export function objectiveChart(points, {metric, type, bestName, onSelect} = {}) {
  const W = 500;
  const H = 280;
  const m = {l: 64, r: 16, t: 14, b: 42};
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const title = `${metric} over trials`;
  const svg = s('svg', {class: 'katib-chart katib-objective', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title});
  add(svg, s('title', null, title));
  const sorted = [...points].sort((a, b) => a.index - b.index);
  const maxIndex = Math.max(1, ...sorted.map((p) => p.index));
  const [y0, y1] = extent(sorted.map((p) => p.value));
  const pad = (y1 - y0) * 0.08;
  const lo = y0 - pad;
  const hi = y1 + pad;
  const X = (i) => m.l + ((i - 0.5) / maxIndex) * pw;
  const Y = (v) => m.t + (1 - (v - lo) / (hi - lo)) * ph;
  for (const v of ticks(lo, hi)) {
    add(svg, s('line', {class: 'grid', x1: m.l, x2: m.l + pw, y1: Y(v), y2: Y(v)}),
      s('text', {class: 'tick', x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end'}, fmtNumber(v)));
  }
  const xStep = Math.max(1, Math.ceil(maxIndex / 12));
  for (let i = 1; i <= maxIndex; i += xStep) {
    add(svg, s('text', {class: 'tick', x: X(i), y: H - m.b + 15, 'text-anchor': 'middle'}, String(i)));
  }
  add(svg, s('line', {class: 'axis-line', x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph}),
    s('line', {class: 'axis-line', x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph}),
    s('text', {class: 'axis', x: m.l + pw / 2, y: H - 6, 'text-anchor': 'middle'}, 'trial'),
    s('text', {class: 'axis', x: 14, y: m.t + ph / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${m.t + ph / 2})`}, metric));
  if (sorted.length) {
    // The running best: a step that only moves when a trial improves on it.
    const better = (a, b) => (type === 'maximize' ? a > b : a < b);
    let best = sorted[0].value;
    let d = `M ${X(sorted[0].index)} ${Y(best)}`;
    for (const p of sorted.slice(1)) {
      d += ` H ${X(p.index)}`;
      if (better(p.value, best)) {
        best = p.value;
        d += ` V ${Y(best)}`;
      }
    }
    add(svg, s('path', {class: 'best-line', d}));
  }
  for (const p of sorted) {
    const isBest = p.name === bestName;
    const dot = s('circle', {
      class: `trial-point${isBest ? ' best' : ''}`, cx: X(p.index), cy: Y(p.value), r: isBest ? 6 : 4,
      'data-trial': p.name, tabindex: onSelect ? '0' : null,
    }, s('title', null, `${p.name} (trial ${p.index}): ${metric} = ${fmtNumber(p.value)}${isBest ? ' · best' : ''}`));
    if (onSelect) {
      dot.addEventListener('click', () => onSelect(p.name));
      dot.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') onSelect(p.name); });
    }
    add(svg, dot);
  }
  const legend = h('ul', {class: 'legend'},
    h('li', null, h('span', {class: 'swatch dot'}), 'trial'),
    h('li', null, h('span', {class: 'swatch dot best'}), 'best trial'),
    h('li', null, h('span', {class: 'swatch line'}), `best ${metric} so far (${type === 'maximize' ? 'max' : 'min'})`));
  return h('figure', {class: 'chart'}, svg, legend);
}

/**
 * Parallel coordinates: one vertical axis per parameter plus the objective,
 * one polyline per trial, coloured from worst (amber) to best (blue).
 * `axes`: [{name, kind: 'num'|'cat', lo, hi, log, cats}];
 * `rows`: [{name, values: [per axis], objective}].
 */
export function parallelChart(axes, rows, {type, bestName, onSelect} = {}) {
  const H = 320;
  const m = {l: 64, r: 64, t: 36, b: 28};
  const W = Math.max(500, m.l + m.r + 150 * Math.max(1, axes.length - 1));
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const title = 'Parallel coordinates of parameters and objective';
  const svg = s('svg', {class: 'katib-chart katib-parallel', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title});
  add(svg, s('title', null, title));
  const AX = (i) => (axes.length === 1 ? m.l + pw / 2 : m.l + (i / (axes.length - 1)) * pw);
  const position = (axis, v) => {
    if (axis.kind === 'cat') {
      const k = axis.cats.indexOf(String(v));
      if (k < 0) return null;
      return m.t + (axis.cats.length === 1 ? ph / 2 : (k / (axis.cats.length - 1)) * ph);
    }
    const n = Number(v);
    if (!Number.isFinite(n) || (axis.log && n <= 0)) return null;
    const f = axis.log ? Math.log10 : (x) => x;
    const [a, b] = [f(axis.lo), f(axis.hi)];
    if (!(b > a)) return m.t + ph / 2;
    return m.t + (1 - (f(n) - a) / (b - a)) * ph;
  };
  // Colour by objective: 1 for the best value, 0 for the worst.
  const objs = rows.map((r) => r.objective).filter((v) => typeof v === 'number');
  const oLo = objs.length ? Math.min(...objs) : 0;
  const oHi = objs.length ? Math.max(...objs) : 1;
  const goodness = (v) => {
    if (typeof v !== 'number' || oHi === oLo) return 1;
    const t = (v - oLo) / (oHi - oLo);
    return type === 'maximize' ? t : 1 - t;
  };
  const ordered = [...rows].sort((a, b) => (a.name === bestName) - (b.name === bestName) || goodness(a.objective) - goodness(b.objective));
  for (const r of ordered) {
    const pts = [];
    for (let i = 0; i < axes.length; i += 1) {
      const y = position(axes[i], r.values[i]);
      if (y === null) break;
      pts.push(`${AX(i)},${y}`);
    }
    if (pts.length !== axes.length) continue;
    const isBest = r.name === bestName;
    const line = s('polyline', {
      class: `pc-line${isBest ? ' best' : ''}`, points: pts.join(' '), stroke: rampColour(goodness(r.objective)),
      'data-trial': r.name,
    }, s('title', null, `${r.name}${isBest ? ' (best)' : ''}\n${axes.map((a, i) => `${a.name} = ${typeof r.values[i] === 'number' ? fmtNumber(r.values[i]) : r.values[i]}`).join('\n')}`));
    if (onSelect) line.addEventListener('click', () => onSelect(r.name));
    add(svg, line);
  }
  // Axes on top of the lines, so their labels stay readable.
  axes.forEach((axis, i) => {
    const x = AX(i);
    const g = s('g', {class: `pc-axis${axis.objective ? ' objective' : ''}`, 'data-axis': axis.name});
    add(g, s('line', {x1: x, x2: x, y1: m.t, y2: m.t + ph}),
      s('text', {class: 'pc-label', x, y: m.t - 14, 'text-anchor': 'middle'}, axis.name));
    const labels = axis.kind === 'cat'
      ? axis.cats.map((c) => [c, position(axis, c)])
      : (axis.log ? logTicks(axis.lo, axis.hi) : ticks(axis.lo, axis.hi, 4)).map((v) => [fmtNumber(v), position(axis, v)]);
    for (const [label, y] of labels) {
      if (y === null) continue;
      add(g, s('line', {class: 'pc-tick', x1: x - 3, x2: x + 3, y1: y, y2: y}),
        s('text', {class: 'tick', x: x + 6, y: y + 3.5, 'text-anchor': 'start'}, label));
    }
    add(svg, g);
  });
  const gradId = uid('katib-ramp');
  const bar = s('svg', {class: 'ramp', width: 120, height: 10, 'aria-hidden': 'true'},
    s('defs', null, s('linearGradient', {id: gradId},
      RAMP.map((_, k) => s('stop', {offset: `${(k / (RAMP.length - 1)) * 100}%`, 'stop-color': rampColour(k / (RAMP.length - 1))})))),
    s('rect', {width: 120, height: 10, rx: 2, fill: `url(#${gradId})`}));
  const legend = h('p', {class: 'legend ramp-legend'},
    h('span', null, 'worse'), bar, h('span', null, 'better'),
    objs.length ? h('span', {class: 'muted'}, ` (${type === 'maximize' ? 'higher' : 'lower'} is better; the best trial is drawn thick)`) : null);
  return h('figure', {class: 'chart'}, h('div', {class: 'chart-scroll'}, svg), legend);
}

function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e += 1) out.push(10 ** e);
  if (out.length < 2) return [lo, hi];
  return out;
}

/**
 * The axes of the parallel-coordinates chart for an experiment: each
 * parameter's feasible space widened to the values trials got, then the
 * objective's range.
 */
export function parallelAxes(exp, trials, objectives) {
  const axes = [];
  for (const p of (exp.spec && exp.spec.parameters) || []) {
    const fs = p.feasibleSpace || {};
    const seen = trials.map((t) => assignments(t).get(p.name)).filter((v) => v !== undefined);
    if (p.parameterType === 'categorical') {
      const cats = (fs.list || []).map(String);
      for (const v of seen) if (!cats.includes(String(v))) cats.push(String(v));
      axes.push({name: p.name, kind: 'cat', cats});
      continue;
    }
    const nums = [...(p.parameterType === 'discrete' ? (fs.list || []) : [fs.min, fs.max]), ...seen]
      .map(Number).filter(Number.isFinite);
    const [lo, hi] = nums.length ? [Math.min(...nums), Math.max(...nums)] : [0, 1];
    const log = ['logUniform', 'logNormal'].includes(fs.distribution) && lo > 0;
    axes.push({name: p.name, kind: 'num', lo, hi, log});
  }
  const vals = objectives.filter((v) => typeof v === 'number');
  const [lo, hi] = vals.length ? extent(vals) : [0, 1];
  axes.push({name: metricNames(exp)[0] || 'objective', kind: 'num', lo, hi, log: false, objective: true});
  return axes;
}

// ------------------------------------------------------------------ YAML

// A plain (unquoted) scalar: safe characters, and nothing a YAML reader
// would take for a boolean, null, number or date (anything starting with a
// digit, a sign or a dot is quoted).
const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./ ()=,+-]*$/;
const LOOKS_TYPED = /^(true|false|yes|no|on|off|y|n|null|~)$/i;

function yamlKey(k) {
  return PLAIN.test(k) && !LOOKS_TYPED.test(k) && !k.endsWith(' ') ? k : JSON.stringify(k);
}

/** A string as a YAML scalar; multi-line text as a literal block at `indent`. */
function yamlString(str, indent) {
  if (str.includes('\n') && !/[\r\t]/.test(str) && !/^\s/.test(str) && !/\n\n$/.test(str)) {
    const body = str.endsWith('\n') ? str.slice(0, -1) : str;
    const pad = ' '.repeat(indent);
    return `${str.endsWith('\n') ? '|' : '|-'}\n${body.split('\n').map((l) => (l ? pad + l : '')).join('\n')}`;
  }
  if (PLAIN.test(str) && !LOOKS_TYPED.test(str) && !str.endsWith(' ')) return str;
  return JSON.stringify(str);
}

function isBlock(v) {
  return v !== null && typeof v === 'object' && Object.keys(v).length > 0;
}

function scalar(v, indent) {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return '[]';
  if (typeof v === 'object') return '{}';
  if (typeof v === 'string') return yamlString(v, indent);
  return String(v);
}

function yamlLines(v, indent) {
  const pad = ' '.repeat(indent);
  const out = [];
  if (Array.isArray(v)) {
    for (const item of v) {
      if (isBlock(item)) {
        const inner = yamlLines(item, indent + 2);
        out.push(`${pad}- ${inner[0].slice(indent + 2)}`, ...inner.slice(1));
      } else {
        out.push(`${pad}- ${scalar(item, indent + 2)}`);
      }
    }
    return out;
  }
  for (const [k, val] of Object.entries(v)) {
    if (isBlock(val)) {
      out.push(`${pad}${yamlKey(k)}:`, ...yamlLines(val, indent + 2));
    } else {
      out.push(`${pad}${yamlKey(k)}: ${scalar(val, indent + 2)}`);
    }
  }
  return out;
}

/** A JSON value as block-style YAML (what `kubectl get -o yaml` looks like). */
export function toYaml(v) {
  if (!isBlock(v)) return `${scalar(v, 0)}\n`;
  return `${yamlLines(v, 0).join('\n')}\n`;
}

/** The experiment the YAML editor starts with: random search over `lr`. */
export function exampleYaml(name) {
  return `apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: ${name}
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
  parallelTrialCount: 2
  maxTrialCount: 6
  maxFailedTrialCount: 2
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace:
        min: "0.01"
        max: "0.1"
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: learningRate
        description: Learning rate
        reference: lr
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: python:3.12
                command:
                  - python3
                  - -c
                  - |
                    import sys
                    lr = float(sys.argv[1])
                    # The StdOut collector reads lines like "loss=0.0123".
                    print(f"loss={(lr - 0.05) ** 2:.6f}")
                  - "\${trialParameters.learningRate}"
            restartPolicy: Never
`;
}
