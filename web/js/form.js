// Run parameter forms, generated from a pipeline's root inputDefinitions.

import {h, uid} from './dom.js';

const TYPE_NAMES = {
  NUMBER_INTEGER: 'integer',
  NUMBER_DOUBLE: 'number',
  STRING: 'string',
  BOOLEAN: 'boolean',
  LIST: 'list (JSON)',
  STRUCT: 'object (JSON)',
  TASK_FINAL_STATUS: 'task status',
};

export function typeName(t) {
  return TYPE_NAMES[t] || (t || 'string').toLowerCase();
}

/**
 * A fieldset with one typed input per pipeline parameter.
 * Returns {el, values()} where values() throws an Error naming the field
 * (and marks it invalid) when a value does not parse.
 */
export function parameterForm(spec, initial = {}) {
  const defs = (spec && spec.root && spec.root.inputDefinitions && spec.root.inputDefinitions.parameters) || {};
  const artifacts = (spec && spec.root && spec.root.inputDefinitions && spec.root.inputDefinitions.artifacts) || {};
  const fields = [];
  const rows = Object.entries(defs).map(([name, def]) => {
    const id = uid('param');
    const type = def.parameterType || 'STRING';
    const given = name in initial ? initial[name] : def.defaultValue;
    const hasDefault = def.defaultValue !== undefined;
    const errId = `${id}-err`;
    let input;
    if (type === 'BOOLEAN') {
      input = h('input', {id, type: 'checkbox', name, checked: Boolean(given)});
    } else if (type === 'LIST' || type === 'STRUCT') {
      input = h('textarea', {id, name, rows: 2, spellcheck: 'false', 'aria-describedby': errId,
        placeholder: type === 'LIST' ? '[1, 2, 3]' : '{"key": "value"}'});
      input.value = given === undefined ? '' : JSON.stringify(given);
    } else if (type === 'NUMBER_INTEGER' || type === 'NUMBER_DOUBLE') {
      input = h('input', {id, name, type: 'number', step: type === 'NUMBER_INTEGER' ? '1' : 'any', 'aria-describedby': errId,
        value: given === undefined ? '' : String(given)});
    } else {
      input = h('input', {id, name, type: 'text', 'aria-describedby': errId, value: given === undefined ? '' : String(given)});
    }
    const required = !def.isOptional && !hasDefault;
    if (required && type !== 'BOOLEAN') input.setAttribute('required', '');
    const err = h('span', {class: 'field-error', id: errId});
    fields.push({name, type, input, err, required, optional: def.isOptional || hasDefault});
    return h('div', {class: 'field'},
      h('label', {for: id}, name, h('span', {class: 'type-hint'}, ` ${typeName(type)}${required ? ' · required' : ''}`)),
      input,
      def.description ? h('small', {class: 'help'}, def.description) : null,
      err);
  });
  const artifactNote = Object.keys(artifacts).length
    ? h('p', {class: 'muted small'}, `Input artifacts (${Object.keys(artifacts).join(', ')}) cannot be given from this form.`)
    : null;
  const el = h('fieldset', {class: 'param-form'},
    h('legend', null, 'Run parameters'),
    rows.length ? rows : h('p', {class: 'empty'}, 'This pipeline takes no parameters.'),
    artifactNote);

  const values = () => {
    const out = {};
    let firstBad = null;
    for (const f of fields) {
      f.err.textContent = '';
      f.input.removeAttribute('aria-invalid');
      const fail = (msg) => {
        f.err.textContent = msg;
        f.input.setAttribute('aria-invalid', 'true');
        if (!firstBad) firstBad = new Error(`${f.name}: ${msg}`);
      };
      if (f.type === 'BOOLEAN') {
        out[f.name] = f.input.checked;
        continue;
      }
      const raw = f.input.value.trim();
      if (raw === '') {
        if (f.required) fail('a value is required');
        continue;
      }
      if (f.type === 'NUMBER_INTEGER') {
        const n = Number(raw);
        if (!Number.isInteger(n)) fail('must be a whole number');
        else out[f.name] = n;
      } else if (f.type === 'NUMBER_DOUBLE') {
        const n = Number(raw);
        if (!Number.isFinite(n)) fail('must be a number');
        else out[f.name] = n;
      } else if (f.type === 'LIST' || f.type === 'STRUCT') {
        try {
          const v = JSON.parse(raw);
          if (f.type === 'LIST' && !Array.isArray(v)) fail('must be a JSON list, like [1, 2]');
          else if (f.type === 'STRUCT' && (v === null || typeof v !== 'object' || Array.isArray(v))) fail('must be a JSON object, like {"k": 1}');
          else out[f.name] = v;
        } catch (e) {
          fail(`not valid JSON (${e.message})`);
        }
      } else {
        out[f.name] = f.input.value;
      }
    }
    if (firstBad) throw firstBad;
    return out;
  };
  return {el, values};
}
