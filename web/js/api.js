// The APIs the dashboard talks to: KFP v2beta1 (/apis/v2beta1), Katib's
// kubeflow.org/v1beta1 resources and Oxflow's own (/oxflow/v1). Same origin,
// JSON, errors as {code, message}. The session cookie (HttpOnly) goes with
// every request; requests that change state also carry the session's CSRF
// token, which only a page of this origin can read.

export class ApiError extends Error {
  /** `causes`: a Kubernetes Status's `details.causes` ({field, message, reason}). */
  constructor(status, message, causes = []) {
    super(message);
    this.status = status;
    this.causes = causes;
  }
}

function buildUrl(path, query) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== '') url.searchParams.set(k, v);
  }
  return url;
}

/**
 * The session's CSRF token, from its cookie (`oxflow_csrf_<id>`). With
 * several Oxflow servers on one host there may be several such cookies;
 * the server accepts the one that is its own.
 */
export function csrfToken() {
  return document.cookie.split(';')
    .map((c) => c.trim())
    .filter((c) => c.startsWith('oxflow_csrf_'))
    .map((c) => c.slice(c.indexOf('=') + 1))
    .join(',');
}

/** Headers for a request with `method`: the CSRF token unless it only reads. */
export function stateHeaders(method, headers = {}) {
  const m = (method || 'GET').toUpperCase();
  if (m === 'GET' || m === 'HEAD') return headers;
  return {...headers, 'X-CSRF-Token': csrfToken()};
}

/** The session ended (or never began): to the login page, then back here. */
function toLogin() {
  const here = window.location.pathname + window.location.search + window.location.hash;
  window.location.assign(`/login?next=${encodeURIComponent(here)}`);
}

async function failure(resp) {
  if (resp.status === 401) toLogin();
  let message = '';
  let causes = [];
  try {
    const j = await resp.json();
    message = j.message || j.error || '';
    causes = (j.details && Array.isArray(j.details.causes)) ? j.details.causes : [];
  } catch (_) {
    // Not JSON: the status line says enough.
  }
  return new ApiError(resp.status, message || `${resp.status} ${resp.statusText}`, causes);
}

/** fetch + JSON. `body` may be an object (sent as JSON) or FormData. */
export async function api(path, {method = 'GET', query, body, signal, accept = 'application/json'} = {}) {
  const opts = {method, signal, headers: stateHeaders(method, {Accept: accept})};
  if (body instanceof FormData) {
    opts.body = body;
  } else if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers['Content-Type'] = 'application/json';
  }
  const resp = await fetch(buildUrl(path, query), opts);
  if (!resp.ok) throw await failure(resp);
  const text = await resp.text();
  return text ? JSON.parse(text) : {};
}

/**
 * Sends text as it is (Katib YAML, with `Content-Type: application/yaml`)
 * and parses the JSON answer; errors as ApiError.
 */
export async function sendText(path, text, {method = 'POST', contentType = 'application/yaml'} = {}) {
  const resp = await fetch(buildUrl(path), {
    method,
    body: text,
    headers: stateHeaders(method, {Accept: 'application/json', 'Content-Type': contentType}),
  });
  if (!resp.ok) throw await failure(resp);
  const body = await resp.text();
  return body ? JSON.parse(body) : {};
}

/** fetch returning the Response (for bytes and streams); errors as ApiError. */
export async function fetchRaw(path, {query, signal} = {}) {
  const resp = await fetch(buildUrl(path, query), {signal});
  if (!resp.ok) throw await failure(resp);
  return resp;
}

export const KFP = '/apis/v2beta1';
export const OX = '/oxflow/v1';
export const KATIB = '/apis/kubeflow.org/v1beta1';
/** What kubectl asks a list for: the server's Table with the kind's printer columns. */
export const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io';

/** KFP's list filter: [[key, op, value], …] → the JSON the API takes. */
export function kfpFilter(preds) {
  const list = preds.filter(([, , v]) => v !== null && v !== undefined && v !== '');
  if (!list.length) return undefined;
  return JSON.stringify({
    predicates: list.map(([key, operation, value]) => ({key, operation, string_value: value})),
  });
}

export function artifactUrl(uri, extra = {}) {
  const url = buildUrl(`${OX}/artifacts`, {uri, ...extra});
  return url.pathname + url.search;
}

/** The compiled PipelineSpec inside what the API stores (bare, or wrapped with a platform spec). */
export function pipelineSpecOf(stored) {
  if (!stored || typeof stored !== 'object') return null;
  if (stored.pipeline_spec && typeof stored.pipeline_spec === 'object') return stored.pipeline_spec;
  return stored;
}

/** Every page of a Kubernetes-style list (`metadata.continue`), as one
 * list object with all the items (bounded). */
export async function listKube(path, max = 5000) {
  const items = [];
  let token;
  let first;
  do {
    const page = await api(path, {query: token ? {continue: token} : {}});
    first = first || page;
    items.push(...(page.items || []));
    token = page.metadata && page.metadata.continue;
  } while (token && items.length < max);
  return {...first, items};
}

/** All pages of a KFP list call (bounded). */
export async function listAll(path, key, query = {}, max = 500) {
  const out = [];
  let token;
  do {
    const page = await api(path, {query: {...query, page_size: 100, page_token: token}});
    out.push(...(page[key] || []));
    token = page.next_page_token;
  } while (token && out.length < max);
  return out;
}
