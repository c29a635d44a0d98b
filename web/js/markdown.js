// A safe Markdown subset, rendered straight to DOM nodes (never through
// innerHTML): headings, paragraphs, emphasis, inline code, fenced code,
// lists, block quotes, rules, pipe tables and links (http, https, mailto
// and relative only). Raw HTML is shown as text; images show their alt
// text, so a report can never load anything from the network.

import {h} from './dom.js';

function safeHref(url) {
  const u = url.trim();
  if (/^(https?:|mailto:)/i.test(u)) return u;
  if (/^[a-z][a-z0-9+.-]*:/i.test(u)) return null; // javascript:, data:, …
  return u;
}

/** Inline markup → an array of nodes. */
export function inline(text) {
  const out = [];
  // Order matters: code spans first, so nothing inside them is interpreted.
  const re = /(`+)([\s\S]*?[^`])\1(?!`)|!\[([^\]]*)\]\(([^)\s]*)[^)]*\)|\[([^\]]+)\]\(([^)\s]+)[^)]*\)|\*\*([\s\S]+?)\*\*|(?<!\w)__([\s\S]+?)__(?!\w)|\*([^*\s][^*]*?)\*|(?<!\w)_([^_\s][^_]*?)_(?!\w)|~~([\s\S]+?)~~|<(https?:\/\/[^>\s]+)>/g;
  let last = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[1]) out.push(h('code', null, m[2]));
    else if (m[3] !== undefined && m[0].startsWith('!')) out.push(h('span', {class: 'md-img', title: m[4]}, `[image: ${m[3] || m[4]}]`));
    else if (m[5] !== undefined) {
      const href = safeHref(m[6]);
      out.push(href ? h('a', {href, target: '_blank', rel: 'noopener noreferrer'}, inline(m[5])) : m[5]);
    } else if (m[7] !== undefined) out.push(h('strong', null, inline(m[7])));
    else if (m[8] !== undefined) out.push(h('strong', null, inline(m[8])));
    else if (m[9] !== undefined) out.push(h('em', null, inline(m[9])));
    else if (m[10] !== undefined) out.push(h('em', null, inline(m[10])));
    else if (m[11] !== undefined) out.push(h('del', null, inline(m[11])));
    else if (m[12] !== undefined) out.push(h('a', {href: m[12], target: '_blank', rel: 'noopener noreferrer'}, m[12]));
    last = re.lastIndex;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function splitRow(line) {
  let t = line.trim();
  if (t.startsWith('|')) t = t.slice(1);
  if (t.endsWith('|')) t = t.slice(0, -1);
  return t.split('|').map((c) => c.trim());
}

const isRule = (l) => /^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(l);
const isFence = (l) => /^\s{0,3}(```|~~~)/.test(l);
const heading = (l) => /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(l);
const listItem = (l) => /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/.exec(l);
const isTableSep = (l) => /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(l);

/** Markdown text → a DocumentFragment. */
export function renderMarkdown(src) {
  const frag = document.createDocumentFragment();
  const lines = String(src).replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    if (isFence(line)) {
      const fence = line.trim().slice(0, 3);
      const lang = line.trim().slice(3).trim();
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1;
      frag.append(h('pre', {class: 'md-code', 'data-lang': lang || null}, h('code', null, body.join('\n'))));
      continue;
    }
    const hm = heading(line);
    if (hm) {
      frag.append(h(`h${hm[1].length}`, null, inline(hm[2])));
      i += 1;
      continue;
    }
    if (isRule(line)) {
      frag.append(h('hr'));
      i += 1;
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && isTableSep(lines[i + 1])) {
      const head = splitRow(line);
      const aligns = splitRow(lines[i + 1]).map((c) => (c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : null));
      i += 2;
      const rows = [];
      while (i < lines.length && lines[i].trim() && lines[i].includes('|')) {
        rows.push(splitRow(lines[i]));
        i += 1;
      }
      frag.append(h('table', {class: 'table md-table'},
        h('thead', null, h('tr', null, head.map((c, k) => h('th', {style: aligns[k] ? {textAlign: aligns[k]} : null}, inline(c))))),
        h('tbody', null, rows.map((r) => h('tr', null, head.map((_, k) => h('td', {style: aligns[k] ? {textAlign: aligns[k]} : null}, inline(r[k] || ''))))))));
      continue;
    }
    if (/^\s{0,3}>/.test(line)) {
      const body = [];
      while (i < lines.length && /^\s{0,3}>/.test(lines[i])) {
        body.push(lines[i].replace(/^\s{0,3}>\s?/, ''));
        i += 1;
      }
      frag.append(h('blockquote', null, renderMarkdown(body.join('\n'))));
      continue;
    }
    if (listItem(line)) {
      const first = listItem(line);
      const ordered = /\d/.test(first[2]);
      const items = [];
      while (i < lines.length) {
        const m = listItem(lines[i]);
        if (m && /\d/.test(m[2]) === ordered && m[1].length <= first[1].length + 1) {
          items.push([m[3]]);
          i += 1;
        } else if (lines[i].trim() && /^\s{2,}/.test(lines[i]) && items.length) {
          items[items.length - 1].push(lines[i].trim());
          i += 1;
        } else {
          break;
        }
      }
      const start = ordered ? parseInt(first[2], 10) : null;
      frag.append(h(ordered ? 'ol' : 'ul', {start: ordered && start !== 1 ? start : null},
        items.map((parts) => h('li', null, inline(parts.join(' '))))));
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !heading(lines[i]) && !isFence(lines[i])
      && !isRule(lines[i]) && !/^\s{0,3}>/.test(lines[i]) && !(para.length && listItem(lines[i]))) {
      para.push(lines[i].trim());
      i += 1;
    }
    frag.append(h('p', null, inline(para.join(' '))));
  }
  return frag;
}
