// Pipeline graphs: the compiled PipelineSpec → a tree of nodes and groups
// (sub-DAGs for conditions, loops, exit handlers and nested pipelines) →
// a layered layout → SVG. Run pages colour the same graph by task state.

import {s, clear} from './dom.js';

const NODE_W = 176;
const NODE_H = 46;
const H_GAP = 28;
const V_GAP = 40;
const PAD = 14;
const HEADER = 26;
const STATUS_W = 150;

// ------------------------------------------------------------------ model

/** Makes KFP's CEL readable: inputs.parameter_values['pipelinechannel--flip-Output'] → flip-Output. */
export function prettyCondition(cel) {
  if (!cel) return '';
  return cel
    .replace(/int\(inputs\.parameter_values\['pipelinechannel--([^']+)'\]\)/g, '$1')
    .replace(/double\(inputs\.parameter_values\['pipelinechannel--([^']+)'\]\)/g, '$1')
    .replace(/inputs\.parameter_values\['pipelinechannel--([^']+)'\]/g, '$1')
    .replace(/inputs\.parameter_values\['([^']+)'\]/g, '$1');
}

function loopDescription(task) {
  const it = task.parameterIterator || task.artifactIterator;
  if (!it) return '';
  const items = it.items || {};
  let what = '';
  if (items.raw !== undefined) {
    try {
      const list = JSON.parse(items.raw);
      what = Array.isArray(list) ? `${list.length} items` : 'items';
    } catch (_) {
      what = 'items';
    }
  } else if (items.inputParameter) {
    what = items.inputParameter.replace(/^pipelinechannel--/, '');
  } else if (items.inputArtifact) {
    what = items.inputArtifact.replace(/^pipelinechannel--/, '');
  }
  const par = task.iteratorPolicy && task.iteratorPolicy.parallelismLimit;
  return `for each in ${what}${par ? ` · ${par} at a time` : ''}`;
}

function nodeKind(key, task, comp, spec) {
  if (comp && comp.dag) {
    if (task.parameterIterator || task.artifactIterator) return 'loop';
    if (task.triggerPolicy && task.triggerPolicy.condition) return 'condition';
    if (key.startsWith('exit-handler')) return 'exit-handler';
    if (key.startsWith('condition-branches')) return 'branches';
    return 'pipeline';
  }
  const label = comp && comp.executorLabel;
  const exec = label && spec.deploymentSpec && spec.deploymentSpec.executors
    ? spec.deploymentSpec.executors[label] : null;
  if (exec && exec.importer) return 'importer';
  return 'task';
}

function buildDag(spec, dag, prefix, index) {
  const tasks = (dag && dag.tasks) || {};
  const keys = Object.keys(tasks);
  const nodes = keys.map((key) => {
    const task = tasks[key];
    const compName = task.componentRef && task.componentRef.name;
    const comp = (spec.components || {})[compName] || null;
    const id = prefix ? `${prefix}/${key}` : key;
    const kind = nodeKind(key, task, comp, spec);
    const node = {
      id,
      key,
      label: (task.taskInfo && task.taskInfo.name) || key,
      kind,
      task,
      component: comp,
      componentName: compName,
      deps: (task.dependentTasks || []).filter((d) => d in tasks).map((d) => (prefix ? `${prefix}/${d}` : d)),
      condition: prettyCondition(task.triggerPolicy && task.triggerPolicy.condition),
      exitTask: task.triggerPolicy && task.triggerPolicy.strategy === 'ALL_UPSTREAM_TASKS_COMPLETED',
      loop: loopDescription(task),
      children: null,
      collapsed: false,
    };
    index.set(id, node);
    if (comp && comp.dag) node.children = buildDag(spec, comp.dag, id, index);
    return node;
  });
  return nodes;
}

/** The graph of a compiled PipelineSpec: {nodes, index: Map(id → node)}. */
export function buildGraph(spec) {
  const index = new Map();
  const nodes = buildDag(spec, spec && spec.root && spec.root.dag, '', index);
  return {nodes, index};
}

/**
 * Maps a runtime task path to its graph node: loop iterations add a
 * segment after the loop (`for-loop-2/3/square` → `for-loop-2/square`,
 * iteration [3]).
 */
export function staticPath(index, runtimePath) {
  const segs = runtimePath.split('/');
  const out = [];
  const iterations = [];
  let isIteration = false;
  for (let i = 0; i < segs.length; i += 1) {
    out.push(segs[i]);
    isIteration = false;
    const node = index.get(out.join('/'));
    if (node && node.kind === 'loop' && i + 1 < segs.length) {
      iterations.push(segs[i + 1]);
      i += 1;
      isIteration = true;
    }
  }
  return {id: out.join('/'), iterations, isIteration};
}

const STATE_RANK = ['FAILED', 'RUNNING', 'CANCELED', 'PENDING', 'SUCCEEDED', 'CACHED', 'SKIPPED'];

/**
 * One state for a graph node from its runtime instances (several for a
 * task inside a loop): failures first, then activity, then success.
 */
export function aggregate(instances) {
  if (!instances.length) return {state: 'NOT_STARTED', text: ''};
  const label = (t) => (t.cached && t.state === 'SUCCEEDED' ? 'CACHED' : t.state);
  const states = instances.map(label);
  let state = 'SKIPPED';
  for (const st of STATE_RANK) {
    if (states.includes(st)) {
      state = st;
      break;
    }
  }
  if (state === 'CACHED' && states.includes('SUCCEEDED')) state = 'SUCCEEDED';
  if (instances.length === 1) return {state, text: state.toLowerCase()};
  const done = states.filter((x) => x === 'SUCCEEDED' || x === 'CACHED').length;
  return {state, text: `${done}/${instances.length} done`};
}

// ----------------------------------------------------------------- layout

function layoutDag(nodes) {
  for (const n of nodes) {
    if (n.children && n.children.length && !n.collapsed) {
      const inner = layoutDag(n.children);
      n.inner = inner;
      // Wide enough for the header: its title plus room for a status.
      const titleW = Math.min(groupTitle(n).length * 6.8, 200);
      n.w = Math.max(inner.w + 2 * PAD, titleW + STATUS_W + 24, NODE_W + 2 * PAD);
      n.h = inner.h + HEADER + 2 * PAD;
    } else {
      n.inner = null;
      n.w = NODE_W;
      n.h = NODE_H;
    }
  }
  // Longest-path layering.
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layerOf = new Map();
  const visit = (n, stack = new Set()) => {
    if (layerOf.has(n.id)) return layerOf.get(n.id);
    if (stack.has(n.id)) return 0;
    stack.add(n.id);
    let l = 0;
    for (const d of n.deps) {
      const dn = byId.get(d);
      if (dn) l = Math.max(l, visit(dn, stack) + 1);
    }
    stack.delete(n.id);
    layerOf.set(n.id, l);
    return l;
  };
  nodes.forEach((n) => visit(n));
  const layers = [];
  for (const n of nodes) {
    const l = layerOf.get(n.id);
    (layers[l] = layers[l] || []).push(n);
  }
  // Order each layer by the mean position of its parents (one sweep down).
  const pos = new Map();
  layers.forEach((layer, li) => {
    if (li > 0) {
      const bary = (n) => {
        const ps = n.deps.map((d) => pos.get(d)).filter((x) => x !== undefined);
        return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : Number.MAX_SAFE_INTEGER;
      };
      layer.sort((a, b) => bary(a) - bary(b));
    }
    layer.forEach((n, i) => pos.set(n.id, i));
  });
  const widths = layers.map((layer) => layer.reduce((a, n) => a + n.w, 0) + H_GAP * (layer.length - 1));
  const w = Math.max(NODE_W, ...widths);
  let y = 0;
  layers.forEach((layer, li) => {
    const lh = Math.max(...layer.map((n) => n.h));
    let x = (w - widths[li]) / 2;
    for (const n of layer) {
      n.x = x;
      n.y = y;
      x += n.w + H_GAP;
    }
    y += lh + V_GAP;
  });
  const edges = [];
  for (const n of nodes) {
    for (const d of n.deps) if (byId.has(d)) edges.push([byId.get(d), n]);
  }
  return {w, h: Math.max(NODE_H, y - V_GAP), nodes, edges};
}

// ----------------------------------------------------------------- render

function truncate(text, px) {
  const max = Math.floor(px / 7.2);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function groupTitle(n) {
  switch (n.kind) {
    case 'loop': return `↻ ${n.loop}`;
    case 'condition': return `if ${n.condition}`;
    case 'exit-handler': return `exit handler: ${n.label}`;
    case 'branches': return 'if / elif / else';
    default: return `pipeline: ${n.label}`;
  }
}

function kindLabel(n) {
  switch (n.kind) {
    case 'importer': return 'importer';
    case 'loop': return 'loop';
    case 'condition': return 'condition';
    case 'exit-handler': return 'exit handler';
    case 'branches': return 'branches';
    case 'pipeline': return 'sub-pipeline';
    default: return n.exitTask ? 'exit task' : 'task';
  }
}

/**
 * Draws the graph into `container`. Options: onSelect(node), label(node)
 * for the second line. Returns {setState(id, state, text), select(id), relayout()}.
 */
export function renderGraph(container, graph, opts = {}) {
  const view = {nodes: new Map(), selected: null, scale: 1, states: new Map()};

  const draw = () => {
    clear(container);
    const lay = layoutDag(graph.nodes);
    const W = lay.w + 2 * PAD;
    const H = lay.h + 2 * PAD;
    const svg = s('svg', {
      class: 'graph', viewBox: `0 0 ${W} ${H}`, width: W * view.scale, height: H * view.scale,
      role: 'group', 'aria-label': opts.ariaLabel || 'Pipeline graph',
    });
    svg.append(s('defs', null,
      s('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse'},
        s('path', {d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead'}))));
    view.nodes.clear();
    drawDag(svg, lay, PAD, PAD);
    container.append(svg);
    for (const [id, st] of view.states) paint(id, st.state, st.text);
    if (view.selected) mark(view.selected);
  };

  const drawDag = (parent, lay, ox, oy) => {
    const edgeLayer = s('g', {class: 'edges'});
    parent.append(edgeLayer);
    for (const [a, b] of lay.edges) {
      const x1 = ox + a.x + a.w / 2;
      const y1 = oy + a.y + a.h;
      const x2 = ox + b.x + b.w / 2;
      const y2 = oy + b.y;
      const my = (y1 + y2) / 2;
      edgeLayer.append(s('path', {
        class: 'edge', d: `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2 - 2}`, 'marker-end': 'url(#arrow)',
      }));
    }
    for (const n of lay.nodes) {
      const x = ox + n.x;
      const y = oy + n.y;
      const isGroup = Boolean(n.inner);
      const g = s('g', {
        class: `node kind-${n.kind}${isGroup ? ' group' : ''}${n.children ? ' has-children' : ''}`,
        transform: `translate(${x} ${y})`,
        tabindex: 0,
        role: 'button',
        'data-path': n.id,
        'data-state': 'NOT_STARTED',
        'aria-label': `${kindLabel(n)} ${n.label}`,
      });
      const select = (ev) => {
        ev.stopPropagation();
        if (opts.onSelect) opts.onSelect(n);
        mark(n.id);
      };
      g.addEventListener('click', select);
      g.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          select(ev);
        }
      });
      const title = s('title', null, `${n.label} (${kindLabel(n)})`);
      g.append(title);
      if (isGroup) {
        g.append(s('rect', {class: 'group-box', width: n.w, height: n.h, rx: 10}));
        g.append(s('rect', {class: 'group-header', width: n.w, height: HEADER, rx: 10}));
        g.append(s('rect', {class: 'group-header-fill', y: HEADER - 10, width: n.w, height: 10}));
        g.append(s('text', {class: 'group-title', x: 12, y: 17}, truncate(groupTitle(n), n.w - STATUS_W - 20)));
        const status = s('text', {class: 'group-status', x: n.w - 10, y: 17, 'text-anchor': 'end'}, '');
        g.append(status);
        parent.append(g);
        view.nodes.set(n.id, {g, status, node: n});
        drawDag(parent, n.inner, x + PAD, y + HEADER + PAD);
      } else {
        g.append(s('rect', {class: 'node-box', width: n.w, height: n.h, rx: 8}));
        g.append(s('rect', {class: 'node-bar', width: 6, height: n.h, rx: 3}));
        const glyph = n.children ? '▸ ' : (n.kind === 'importer' ? '⇩ ' : '');
        g.append(s('text', {class: 'node-label', x: 16, y: 19}, truncate(glyph + n.label, n.w - 26)));
        const status = s('text', {class: 'node-status', x: 16, y: 36}, kindLabel(n));
        g.append(status);
        parent.append(g);
        view.nodes.set(n.id, {g, status, node: n});
      }
    }
  };

  const paint = (id, state, text) => {
    const v = view.nodes.get(id);
    if (!v) return;
    v.g.setAttribute('data-state', state);
    v.g.setAttribute('aria-label', `${kindLabel(v.node)} ${v.node.label}: ${text || state.toLowerCase()}`);
    v.status.textContent = text ? truncate(text, v.node.inner ? STATUS_W : v.node.w - 26) : (v.node.inner ? '' : kindLabel(v.node));
  };

  const mark = (id) => {
    if (view.selected && view.nodes.get(view.selected)) {
      view.nodes.get(view.selected).g.classList.remove('selected');
    }
    view.selected = id;
    const v = view.nodes.get(id);
    if (v) v.g.classList.add('selected');
  };

  draw();
  // Start zoomed out just enough for a wide graph to fit its box.
  const avail = container.clientWidth - 20;
  const svg = container.querySelector('svg');
  const natural = svg ? Number(svg.getAttribute('width')) : 0;
  if (avail > 0 && natural > avail) {
    view.scale = Math.max(0.7, avail / natural);
    draw();
  }
  return {
    setState(id, state, text) {
      view.states.set(id, {state, text});
      paint(id, state, text);
    },
    select(id) {
      mark(id);
    },
    zoom(factor) {
      view.scale = Math.min(2.5, Math.max(0.3, factor === 0 ? 1 : view.scale * factor));
      draw();
    },
    redraw: draw,
  };
}

/** Zoom buttons for a rendered graph. */
export function zoomControls(handle, h) {
  return h('div', {class: 'zoom', role: 'group', 'aria-label': 'Zoom'},
    h('button', {type: 'button', class: 'btn btn-small', onclick: () => handle().zoom(1.25), 'aria-label': 'Zoom in'}, '+'),
    h('button', {type: 'button', class: 'btn btn-small', onclick: () => handle().zoom(0.8), 'aria-label': 'Zoom out'}, '−'),
    h('button', {type: 'button', class: 'btn btn-small', onclick: () => handle().zoom(0), 'aria-label': 'Reset zoom'}, '1:1'));
}
