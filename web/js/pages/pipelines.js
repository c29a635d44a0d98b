// Pipelines: the list, and uploading a compiled package.

import {h, pageHeader, table, fmtTime, errorBox, empty, toast, button, replace, add} from '../dom.js';
import {api, KFP, kfpFilter} from '../api.js';

export function uploadForm({pipelineId, onDone} = {}) {
  const file = h('input', {id: 'upload-file', type: 'file', name: 'uploadfile', accept: '.yaml,.yml,.json', required: true});
  const name = h('input', {id: 'upload-name', type: 'text', name: 'name', placeholder: pipelineId ? 'version name (default: file name)' : 'default: the pipeline\'s own name'});
  const desc = h('input', {id: 'upload-desc', type: 'text', name: 'description'});
  const status = h('div', {class: 'form-status', role: 'status'});
  const submit = h('button', {type: 'submit', class: 'btn btn-primary'}, pipelineId ? 'Upload version' : 'Upload');
  const form = h('form', {class: 'card-form', 'aria-label': pipelineId ? 'Upload a pipeline version' : 'Upload a pipeline'},
    h('div', {class: 'field'}, h('label', {for: 'upload-file'}, 'Compiled pipeline (YAML or JSON from the kfp compiler)'), file),
    h('div', {class: 'field-row'},
      h('div', {class: 'field'}, h('label', {for: 'upload-name'}, pipelineId ? 'Version name' : 'Name'), name),
      h('div', {class: 'field'}, h('label', {for: 'upload-desc'}, 'Description'), desc)),
    h('div', {class: 'form-actions'}, submit, status));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!file.files.length) {
      status.textContent = 'Choose a file first.';
      return;
    }
    const body = new FormData();
    body.append('uploadfile', file.files[0], file.files[0].name);
    submit.disabled = true;
    status.textContent = 'Uploading…';
    try {
      const query = {name: name.value.trim(), description: desc.value.trim()};
      let res;
      if (pipelineId) {
        res = await api(`${KFP}/pipelines/upload_version`, {method: 'POST', query: {...query, pipelineid: pipelineId}, body});
      } else {
        res = await api(`${KFP}/pipelines/upload`, {method: 'POST', query, body});
      }
      status.textContent = '';
      toast(pipelineId ? `Version ${res.display_name} uploaded.` : `Pipeline ${res.display_name} uploaded.`, 'success');
      if (onDone) onDone(res);
    } catch (err) {
      status.textContent = '';
      add(status, errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export async function render(ctx) {
  ctx.setTitle('Pipelines');
  const {main, query} = ctx;
  const uploadBox = h('div', {class: 'upload-box', hidden: !query.upload});
  add(uploadBox, h('h2', null, 'Upload a pipeline'), uploadForm({
    onDone: (p) => ctx.navigate(`#/pipelines/${encodeURIComponent(p.pipeline_id)}`),
  }));
  const toggle = button('Upload pipeline', () => {
    uploadBox.hidden = !uploadBox.hidden;
    if (!uploadBox.hidden) uploadBox.querySelector('input').focus();
  }, {class: 'btn btn-primary', 'aria-expanded': String(Boolean(query.upload)), id: 'upload-toggle'});
  const search = h('input', {type: 'search', id: 'pipeline-search', placeholder: 'Filter by name', value: query.q || ''});
  const listBox = h('div');
  add(main, 
    pageHeader('Pipelines', toggle),
    uploadBox,
    h('div', {class: 'toolbar'}, h('label', {for: 'pipeline-search', class: 'sr-only'}, 'Filter pipelines by name'), search),
    listBox);

  const load = async () => {
    replace(listBox, h('p', {class: 'muted'}, 'Loading…'));
    try {
      const res = await api(`${KFP}/pipelines`, {query: {
        namespace: ctx.namespace, page_size: 200, sort_by: 'created_at desc',
        filter: kfpFilter([['display_name', 'IS_SUBSTRING', search.value.trim()]]),
      }});
      const list = res.pipelines || [];
      if (!list.length) {
        replace(listBox, empty(search.value ? 'No pipeline matches.' : 'No pipelines yet. Upload one compiled with the kfp SDK.'));
        return;
      }
      replace(listBox, table(['Name', 'Description', 'Uploaded', ''], list.map((p) => h('tr', {'data-pipeline-id': p.pipeline_id},
        h('td', null, h('a', {href: `#/pipelines/${encodeURIComponent(p.pipeline_id)}`, class: 'pipeline-link'}, p.display_name || p.name)),
        h('td', null, p.description || ''),
        h('td', null, fmtTime(p.created_at)),
        h('td', {class: 'row-actions'}, h('a', {class: 'btn btn-small', href: `#/pipelines/${encodeURIComponent(p.pipeline_id)}/run`}, 'Create run')))),
      {class: 'table', 'aria-label': 'Pipelines'}));
    } catch (err) {
      replace(listBox, errorBox(err));
    }
  };
  let timer = null;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      ctx.setQuery({q: search.value.trim()});
      load();
    }, 250);
  });
  await load();
  return () => clearTimeout(timer);
}
