// Placeholders for the parts of Kubeflow Oxflow does not have yet.

import {h, pageHeader, add} from '../dom.js';

const WHAT = {
  notebooks: ['Notebooks', 'Jupyter notebook servers started and stopped from here, with their own volumes.'],
  contributors: ['Contributors', 'Who may use a namespace, and with which role.'],
};

export function render(ctx) {
  const key = ctx.params[0];
  const [title, text] = WHAT[key] || [key, ''];
  ctx.setTitle(title);
  add(ctx.main, 
    pageHeader(title),
    h('div', {class: 'coming-card'},
      h('span', {class: 'soon big'}, 'coming'),
      h('p', null, `${title} is not part of Oxflow yet.`),
      h('p', {class: 'muted'}, text),
      h('p', null, 'Pipelines, runs, experiments, recurring runs, artifacts, Katib and Models work today: ',
        h('a', {href: '#/pipelines'}, 'start with a pipeline'), '.')));
}
