// Artifact views: metrics tables, confusion matrices, ROC curves (SVG) and
// previews of an artifact's bytes (text, Markdown, sandboxed HTML).

import {h, s, clear, fmtBytes, fmtValue, kvTable, errorBox, table, add} from './dom.js';
import {fetchRaw, artifactUrl, OX} from './api.js';
import {renderMarkdown} from './markdown.js';

const PALETTE = ['#1f6feb', '#d1242f', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#0a7ea4', '#6e7781'];

export function schemaOf(a) {
  return (a.type && a.type.schemaTitle) || a.schema_title || 'system.Artifact';
}

function fmtNumber(v) {
  if (typeof v !== 'number') return fmtValue(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e6 ? v.toFixed(4).replace(/0+$/, '').replace(/\.$/, '') : v.toExponential(3);
}

/** Scalar metrics (system.Metrics metadata) as a table. */
export function metricsTable(metadata) {
  const rows = Object.entries(metadata || {}).filter(([k]) => k !== 'display_name');
  if (!rows.length) return h('p', {class: 'empty'}, 'No metrics logged.');
  return table(['Metric', 'Value'], rows.map(([k, v]) => h('tr', null,
    h('td', null, k), h('td', {class: 'num'}, fmtNumber(v)))), {class: 'table metrics-table', 'aria-label': 'Metrics'});
}

/** A confusion matrix (ClassificationMetrics.confusionMatrix) as a shaded table. */
export function confusionMatrix(cm, caption) {
  if (!cm || !cm.rows) return null;
  const labels = (cm.annotationSpecs || []).map((a) => a.displayName || '');
  const rows = cm.rows.map((r) => r.row || []);
  const max = Math.max(1, ...rows.flat());
  return h('table', {class: 'confusion', 'aria-label': caption || 'Confusion matrix'},
    caption ? h('caption', null, caption) : null,
    h('thead', null, h('tr', null, h('th', {scope: 'col', class: 'corner'}, 'actual ↓ / predicted →'),
      labels.map((l) => h('th', {scope: 'col'}, l)))),
    h('tbody', null, rows.map((r, i) => h('tr', null,
      h('th', {scope: 'row'}, labels[i] || String(i)),
      r.map((v) => {
        const a = v / max;
        return h('td', {class: 'num', style: {background: `rgba(31, 111, 235, ${0.08 + 0.72 * a})`, color: a > 0.55 ? '#fff' : 'inherit'}}, String(v));
      })))));
}

/** ROC curves: [{label, points: [{falsePositiveRate, recall, confidenceThreshold}]}]. */
export function rocChart(series, title = 'ROC curve') {
  const W = 320;
  const H = 260;
  const m = {l: 44, r: 12, t: 12, b: 38};
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const X = (v) => m.l + v * pw;
  const Y = (v) => m.t + (1 - v) * ph;
  const svg = s('svg', {class: 'roc', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title});
  add(svg, s('title', null, title));
  for (let k = 0; k <= 4; k += 1) {
    const v = k / 4;
    add(svg, s('line', {class: 'grid', x1: X(0), x2: X(1), y1: Y(v), y2: Y(v)}));
    add(svg, s('line', {class: 'grid', x1: X(v), x2: X(v), y1: Y(0), y2: Y(1)}));
    add(svg, s('text', {class: 'tick', x: X(v), y: H - m.b + 14, 'text-anchor': 'middle'}, v.toFixed(2)));
    add(svg, s('text', {class: 'tick', x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end'}, v.toFixed(2)));
  }
  add(svg, s('line', {class: 'diagonal', x1: X(0), y1: Y(0), x2: X(1), y2: Y(1)}));
  add(svg, s('text', {class: 'axis', x: m.l + pw / 2, y: H - 4, 'text-anchor': 'middle'}, 'false positive rate'));
  add(svg, s('text', {class: 'axis', x: 12, y: m.t + ph / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${m.t + ph / 2})`}, 'true positive rate'));
  series.forEach((ser, i) => {
    const pts = [...ser.points].map((p) => [p.falsePositiveRate || 0, p.recall || 0, p.confidenceThreshold])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    if (!pts.length) return;
    const color = PALETTE[i % PALETTE.length];
    add(svg, s('polyline', {class: 'curve', points: pts.map(([x, y]) => `${X(x)},${Y(y)}`).join(' '), stroke: color}));
    for (const [x, y, t] of pts) {
      add(svg, s('circle', {cx: X(x), cy: Y(y), r: 3, fill: color},
        s('title', null, `${ser.label}: fpr ${x}, tpr ${y}${t !== undefined ? `, threshold ${t}` : ''}`)));
    }
  });
  const legend = series.length > 1 || (series[0] && series[0].label)
    ? h('ul', {class: 'legend'}, series.map((ser, i) => h('li', null,
      h('span', {class: 'swatch', style: {background: PALETTE[i % PALETTE.length]}}), ser.label)))
    : null;
  return h('figure', {class: 'chart'}, svg, legend);
}

function classificationView(meta) {
  const parts = [];
  const cm = confusionMatrix(meta.confusionMatrix, 'Confusion matrix');
  if (cm) parts.push(cm);
  if (Array.isArray(meta.confidenceMetrics) && meta.confidenceMetrics.length) {
    parts.push(rocChart([{label: '', points: meta.confidenceMetrics}]));
  }
  if (!parts.length) return h('p', {class: 'empty'}, 'No confusion matrix or ROC curve logged.');
  return h('div', {class: 'viz-row'}, parts);
}

async function loadText(uri, type, maxBytes, signal) {
  const resp = await fetchRaw(`${OX}/artifacts`, {query: {uri, max_bytes: maxBytes, type}, signal});
  const ctype = resp.headers.get('content-type') || '';
  const text = await resp.text();
  if (ctype.startsWith('application/json') && resp.headers.get('x-oxflow-size') === null) {
    // A directory: the server answers with a listing instead of bytes.
    try {
      const v = JSON.parse(text);
      if (v && v.kind === 'directory') return {listing: v};
    } catch (_) {
      // Fall through and show it as text.
    }
  }
  return {
    text,
    truncated: resp.headers.get('x-oxflow-truncated') === 'true',
    size: Number(resp.headers.get('x-oxflow-size') || text.length),
    ctype,
  };
}

function listingView(listing) {
  if (!listing.entries || !listing.entries.length) return h('p', {class: 'empty'}, 'Empty directory.');
  return h('ul', {class: 'listing'}, listing.entries.map((e) => h('li', null,
    e.kind === 'file'
      ? h('a', {href: artifactUrl(e.uri, {download: 'true'})}, e.name)
      : h('span', null, `${e.name}/`),
    e.size !== null && e.size !== undefined ? h('span', {class: 'muted'}, ` ${fmtBytes(e.size)}`) : null)));
}

/**
 * The preview of an artifact's content, by type. Metrics come from
 * metadata; everything else reads (the first bytes of) the stored file.
 */
export function artifactPreview(a, {signal, textBytes = 4096} = {}) {
  const type = schemaOf(a);
  const box = h('div', {class: 'preview', 'data-artifact-type': type});
  const meta = a.metadata || {};
  if (type === 'system.Metrics') {
    add(box, metricsTable(meta));
    return box;
  }
  if (type === 'system.ClassificationMetrics') {
    add(box, classificationView(meta));
    return box;
  }
  if (type === 'system.SlicedClassificationMetrics') {
    const slices = meta.evaluationSlices || [];
    if (!slices.length) add(box, h('pre', {class: 'text-preview'}, JSON.stringify(meta, null, 2)));
    for (const sl of slices) {
      add(box, h('h4', null, `slice ${sl.slice || ''}`), classificationView(sl));
    }
    return box;
  }
  const inStore = a.in_store !== false;
  if (!a.uri) {
    add(box, h('p', {class: 'empty'}, 'This artifact has no URI.'));
    return box;
  }
  if (!inStore) {
    add(box, h('p', {class: 'muted external-note'}, 'Stored outside Oxflow\'s artifact store (imported), so it cannot be previewed here.'));
    return box;
  }
  const status = h('p', {class: 'muted'}, 'Loading preview…');
  add(box, status);
  const maxBytes = type === 'system.HTML' ? 1024 * 1024 : type === 'system.Markdown' ? 256 * 1024 : textBytes;
  loadText(a.uri, type === 'system.Artifact' ? '' : type, maxBytes, signal).then((res) => {
    status.remove();
    if (res.listing) {
      add(box, listingView(res.listing));
      return;
    }
    const note = res.truncated
      ? h('p', {class: 'muted small'}, `Showing the first ${fmtBytes(res.text.length)} of ${fmtBytes(res.size)}.`)
      : null;
    if (type === 'system.Markdown') {
      add(box, h('div', {class: 'markdown'}, renderMarkdown(res.text)), note);
    } else if (type === 'system.HTML') {
      // sandbox="" : no scripts, no forms, no same-origin access.
      add(box, h('iframe', {class: 'html-preview', sandbox: '', srcdoc: res.text, title: `HTML artifact ${a.name || ''}`, referrerpolicy: 'no-referrer'}), note);
    } else if (res.ctype.startsWith('image/')) {
      add(box, h('p', null, h('a', {href: artifactUrl(a.uri)}, 'Open image')));
    } else if (/[\x00-\x08\x0e-\x1f]/.test(res.text.slice(0, 512))) {
      add(box, h('p', {class: 'muted'}, `Binary content (${fmtBytes(res.size)}).`));
    } else if (!res.text.length) {
      add(box, h('p', {class: 'empty'}, 'The file is empty.'));
    } else {
      add(box, h('pre', {class: 'text-preview'}, res.text), note);
    }
  }).catch((err) => {
    if (err.name === 'AbortError') return;
    status.remove();
    add(box, err.status === 403 && !inStore
      ? h('p', {class: 'muted'}, 'Stored outside Oxflow\'s artifact store (imported), so it cannot be previewed here.')
      : errorBox(err));
  });
  return box;
}

/** An artifact card: name, type, URI, metadata, download link and preview. */
export function artifactCard(a, opts = {}) {
  const type = schemaOf(a);
  const meta = a.metadata || {};
  const plainMeta = Object.entries(meta).filter(([k]) => !['confusionMatrix', 'confidenceMetrics', 'evaluationSlices'].includes(k));
  const showMeta = type !== 'system.Metrics' && plainMeta.length;
  const card = h('section', {class: 'artifact-card', 'aria-label': `Artifact ${a.name || ''}`},
    h('header', null,
      h('strong', null, opts.title || a.name || 'artifact'),
      h('span', {class: 'type-chip'}, type.replace(/^system\./, '')),
      a.uri && a.in_store !== false
        ? h('a', {class: 'btn btn-small', href: artifactUrl(a.uri, {download: 'true'}), download: ''}, 'Download')
        : null),
    h('div', {class: 'uri', title: a.uri || ''}, a.uri || ''),
    showMeta ? kvTable(plainMeta.map(([k, v]) => [k, fmtValue(v)]), {class: 'kv small'}) : null);
  if (opts.preview !== false) add(card, artifactPreview(a, opts));
  return card;
}

export {clear};
