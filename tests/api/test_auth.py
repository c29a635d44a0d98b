"""Authentication on `oxflow up`: every route wants the data directory's
token (or a dashboard session), the one-time login link and the login form
give a session whose state changes need the CSRF header, `--auth none` is
only for loopback, and the token, `oxflow token` and the kubeconfig agree.
Raw HTTP (http.client), so no client adds or follows anything on its own."""
import base64
import http.client
import json
import os
import re
import ssl
import stat
import subprocess
import urllib.parse
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import Server, oxflow_bin

KATIB = '/apis/kubeflow.org/v1beta1/namespaces/default/experiments'
KSERVE = '/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices'
# (method, path, body) of routes of every API `oxflow up` serves.
ROUTES = [
    ('GET', '/apis/v2beta1/runs', None),
    ('GET', '/apis/v2beta1/experiments', None),
    ('POST', '/apis/v2beta1/experiments', {'display_name': 'auth-probe'}),
    ('GET', '/apis/v2beta1/pipelines', None),
    ('GET', '/apis/v2beta1/healthz', None),
    ('GET', '/api/v1/namespaces', None),
    ('GET', KATIB, None),
    ('GET', KSERVE, None),
    ('GET', '/openapi.json', None),
    ('GET', '/', None),
]


def fetch(url, method, path, headers=None, body=None):
    """(status, headers, body) of one request; redirects are not followed."""
    u = urllib.parse.urlparse(url)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        headers.setdefault('Content-Type', 'application/json')
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def experiment_names(server):
    status, _, body = fetch(server.url, 'GET', '/apis/v2beta1/experiments?page_size=1000', server.auth)
    assert status == 200, body
    return {e['display_name'] for e in json.loads(body).get('experiments') or []}


def assert_unauthorized(status, headers, body, what):
    assert status == 401, (what, status, body[:500])
    status_obj = json.loads(body)
    assert status_obj['kind'] == 'Status' and status_obj['reason'] == 'Unauthorized', (what, status_obj)
    assert status_obj['code'] == 401 and status_obj['message'] and status_obj['error'], (what, status_obj)
    assert headers.get('WWW-Authenticate', '').startswith('Bearer'), (what, dict(headers))


def wrong_tokens(token):
    flipped = token[:-1] + ('0' if token[-1] != '0' else '1')
    return {
        'another token': 'oxf_' + '0' * 64,
        'the token with one character changed': flipped,
        'the token with more after it': token + 'x',
        'a prefix of the token': token[:20],
        'an empty token': '',
    }


def test_every_api_wants_the_token(server):
    before = experiment_names(server)
    for method, path, body in ROUTES:
        status, headers, answer = fetch(server.url, method, path, body=body)
        assert_unauthorized(status, headers, answer, (method, path, 'no token'))
        for what, wrong in wrong_tokens(server.token).items():
            status, headers, answer = fetch(server.url, method, path, {'Authorization': f'Bearer {wrong}'}, body)
            assert_unauthorized(status, headers, answer, (method, path, what))
        # The token in another scheme is not a bearer token.
        basic = base64.b64encode(f'oxflow:{server.token}'.encode()).decode()
        status, headers, answer = fetch(server.url, method, path, {'Authorization': f'Basic {basic}'}, body)
        assert_unauthorized(status, headers, answer, (method, path, 'Basic'))
    # None of the refused POSTs created anything.
    assert 'auth-probe' not in experiment_names(server)
    assert experiment_names(server) == before

    for method, path, body in ROUTES:
        status, _, answer = fetch(server.url, method, path, server.auth, body)
        assert status == 200, (method, path, answer[:500])
    # The scheme is case-insensitive, as RFC 7235 says.
    status, _, answer = fetch(server.url, 'GET', '/apis/v2beta1/runs', {'Authorization': f'bearer {server.token}'})
    assert status == 200, answer
    assert 'auth-probe' in experiment_names(server)


def test_kfp_client_without_the_token_gets_401(server):
    import kfp
    from kfp_server_api.exceptions import ApiException
    # A namespace, so that the constructor does not ask healthz first (it
    # retries that for 25 s and then raises a TimeoutError of its own).
    for kwargs in ({}, {'existing_token': 'oxf_' + 'f' * 64}):
        c = kfp.Client(host=server.url, namespace='default', **kwargs)
        for call in (c.list_experiments, c.list_runs, lambda: c._healthz_api.healthz_service_get_healthz()):
            with pytest.raises(ApiException) as e:
                call()
            assert e.value.status == 401, e.value
            assert json.loads(e.value.body)['reason'] == 'Unauthorized'
    # With it, the same calls work.
    c = kfp.Client(host=server.url, namespace='default', existing_token=server.token)
    assert c.list_experiments() is not None and c.list_runs() is not None
    assert c.get_kfp_healthz().multi_user is False


def test_a_browser_without_a_session_is_sent_to_the_login_page(server):
    for path in ['/', '/apis/v2beta1/runs?page_size=1']:
        status, headers, _ = fetch(server.url, 'GET', path,
                                   {'Accept': 'text/html,application/xhtml+xml,*/*;q=0.8'})
        assert status == 303, (path, status)
        location = urllib.parse.urlparse(headers['Location'])
        assert (location.scheme, location.netloc, location.path) == ('', '', '/login'), headers['Location']
        assert urllib.parse.parse_qs(location.query) == {'next': [path]}, headers['Location']
    # The login page itself is served without credentials: a form for the token.
    status, headers, body = fetch(server.url, 'GET', '/login?next=%2F', {'Accept': 'text/html'})
    assert status == 200
    assert headers['Content-Type'].startswith('text/html')
    assert b'name="token"' in body and b'action="/login"' in body
    # A script-less client (no text/html) gets the 401 it can read instead.
    status, headers, body = fetch(server.url, 'GET', '/', {'Accept': 'application/json'})
    assert_unauthorized(status, headers, body, 'GET / as JSON')


def cookies_of(headers):
    """{name: (value, attributes)} of the Set-Cookie headers."""
    out = {}
    for line in headers.get_all('Set-Cookie') or []:
        pair, _, attrs = line.partition(';')
        name, _, value = pair.strip().partition('=')
        out[name] = (value, attrs)
    return out


def session_of(headers):
    """(Cookie header value, CSRF token) from a login's answer."""
    cookies = cookies_of(headers)
    session = [n for n in cookies if n.startswith('oxflow_session_')]
    csrf = [n for n in cookies if n.startswith('oxflow_csrf_')]
    assert len(session) == 1 and len(csrf) == 1, cookies
    s_value, s_attrs = cookies[session[0]]
    c_value, c_attrs = cookies[csrf[0]]
    assert 'httponly' in s_attrs.lower(), s_attrs
    assert 'httponly' not in c_attrs.lower(), 'the page must be able to read its CSRF token'
    assert s_value and c_value
    return f'{session[0]}={s_value}; {csrf[0]}={c_value}', c_value


def test_the_login_link_works_once_and_gives_a_session_that_needs_the_csrf_header(server):
    assert server.login_url, ''.join(server.lines)
    link = urllib.parse.urlparse(server.login_url)
    assert link.path == '/login' and re.fullmatch(r'code=[0-9a-f]{16,}', link.query), server.login_url
    path = f'{link.path}?{link.query}'
    status, headers, _ = fetch(server.url, 'GET', path)
    assert status == 303
    assert headers['Location'] == '/'
    cookie, csrf = session_of(headers)

    # A second use of the link is refused, and gives no session.
    status, headers, body = fetch(server.url, 'GET', path)
    assert status == 401, body
    assert not cookies_of(headers)
    assert b'already used' in body

    # The session reads.
    status, _, body = fetch(server.url, 'GET', '/apis/v2beta1/experiments', {'Cookie': cookie})
    assert status == 200, body
    status, headers, body = fetch(server.url, 'GET', '/', {'Cookie': cookie, 'Accept': 'text/html'})
    assert status == 200 and headers['Content-Type'].startswith('text/html'), (status, body[:300])

    # A state change needs the CSRF header, with the session's own value.
    name = f'session-{uuid.uuid4().hex[:8]}'
    for headers in ({'Cookie': cookie},
                    {'Cookie': cookie, 'X-CSRF-Token': 'f' * len(csrf)},
                    {'Cookie': cookie, 'X-CSRF-Token': ''}):
        status, _, body = fetch(server.url, 'POST', '/apis/v2beta1/experiments', headers, {'display_name': name})
        assert status == 403, (headers, body)
        assert b'CSRF' in body
    assert name not in experiment_names(server)
    status, _, body = fetch(server.url, 'POST', '/apis/v2beta1/experiments',
                            {'Cookie': cookie, 'X-CSRF-Token': csrf}, {'display_name': name})
    assert status == 200, body
    experiment_id = json.loads(body)['experiment_id']
    assert name in experiment_names(server)
    status, _, body = fetch(server.url, 'DELETE', f'/apis/v2beta1/experiments/{experiment_id}', {'Cookie': cookie})
    assert status == 403, body
    status, _, body = fetch(server.url, 'DELETE', f'/apis/v2beta1/experiments/{experiment_id}',
                            {'Cookie': cookie, 'X-CSRF-Token': csrf})
    assert status == 200, body

    # Even with a session, a page on another origin changes nothing.
    status, _, body = fetch(server.url, 'POST', '/apis/v2beta1/experiments',
                            {'Cookie': cookie, 'X-CSRF-Token': csrf, 'Origin': 'http://evil.test'},
                            {'display_name': name + '-evil'})
    assert status == 403, body
    assert name + '-evil' not in experiment_names(server)

    # A forged or altered session cookie is no session.
    session_name, session_value = cookie.split(';')[0].split('=', 1)
    for forged in [session_value[:-1] + ('0' if session_value[-1] != '0' else '1'), 'x', '']:
        status, headers, body = fetch(server.url, 'GET', '/apis/v2beta1/experiments',
                                      {'Cookie': f'{session_name}={forged}'})
        assert_unauthorized(status, headers, body, ('forged session', forged))


def test_the_login_form_takes_the_token(server):
    form = {'Content-Type': 'application/x-www-form-urlencoded'}
    for wrong in ['oxf_' + '0' * 64, '', server.token[:-1]]:
        status, headers, body = fetch(server.url, 'POST', '/login', form,
                                      urllib.parse.urlencode({'token': wrong, 'next': '/runs'}).encode())
        assert status == 401, body
        assert not cookies_of(headers)
        assert b"not this server's token" in body
    status, headers, _ = fetch(server.url, 'POST', '/login', form,
                               urllib.parse.urlencode({'token': server.token, 'next': '/#/runs'}).encode())
    assert status == 303
    assert headers['Location'] == '/#/runs'
    cookie, csrf = session_of(headers)
    status, _, body = fetch(server.url, 'GET', '/apis/v2beta1/runs', {'Cookie': cookie})
    assert status == 200, body
    # `next` only ever leads to a path on this server.
    for evil in ['//evil.example/x', 'https://evil.example/', '/\\evil.example']:
        status, headers, _ = fetch(server.url, 'POST', '/login', form,
                                   urllib.parse.urlencode({'token': server.token, 'next': evil}).encode())
        assert status == 303 and headers['Location'] == '/', (evil, headers['Location'])


def test_the_token_file_oxflow_token_and_the_kubeconfig(server):
    home = Path(server.home)
    token_file = home / 'token'
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600, oct(token_file.stat().st_mode)
    assert re.fullmatch(r'oxf_[0-9a-f]{64}\n?', token_file.read_text()), 'one line: oxf_ and 64 hex digits'
    env = dict(os.environ, OXFLOW_HOME=str(home))
    env.pop('OXFLOW_TOKEN', None)
    out = subprocess.run([oxflow_bin(), 'token'], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == server.token

    out = subprocess.run([oxflow_bin(), 'kubeconfig'], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path == home / 'kubeconfig'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, 'the kubeconfig holds the token'
    config = yaml.safe_load(path.read_text())
    [cluster] = config['clusters']
    [user] = config['users']
    port = urllib.parse.urlparse(server.url).port
    assert cluster['cluster']['server'] == f'https://127.0.0.1:{port}'
    assert user['user']['token'] == server.token
    ca = base64.b64decode(cluster['cluster']['certificate-authority-data']).decode()
    assert ca.startswith('-----BEGIN CERTIFICATE-----'), ca[:100]
    [context] = config['contexts']
    assert config['current-context'] == context['name']
    assert context['context']['cluster'] == cluster['name'] and context['context']['user'] == user['name']

    # What kubectl does with it: TLS on the same port, verified against that
    # CA, with the token.
    tls = ssl.create_default_context(cadata=ca)
    for headers, want in [({'Authorization': f'Bearer {server.token}'}, 200), ({}, 401)]:
        conn = http.client.HTTPSConnection('127.0.0.1', port, context=tls, timeout=30)
        try:
            conn.request('GET', '/api/v1/namespaces', headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == want, (headers.keys(), resp.status, body[:300])
        finally:
            conn.close()


def test_the_token_is_never_printed(server):
    log = ''.join(server.lines)
    assert 'serving on' in log
    assert server.token not in log, 'the token is in the server log'


def test_the_cli_sends_the_data_directorys_token(server):
    env = dict(os.environ, OXFLOW_HOME=server.home)
    env.pop('OXFLOW_TOKEN', None)
    out = subprocess.run([oxflow_bin(), '--server', server.url, 'runs', 'list'], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([oxflow_bin(), '--server', server.url, '--token', 'oxf_' + '0' * 64, 'runs', 'list'],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0, out.stdout
    assert '401 Unauthorized' in out.stderr, out.stderr


def up_args(home, *args, extra_env=None):
    env = dict(os.environ, OXFLOW_HOME=str(home), **(extra_env or {}))
    for name in ('OXFLOW_SERVER', 'OXFLOW_TOKEN', 'OXFLOW_DATABASE'):
        env.pop(name, None)
    if extra_env is None:
        env.pop('OXFLOW_AUTH', None)
    return [oxflow_bin(), 'up', *args], env


@pytest.mark.parametrize('how', [
    ('flag', ['--auth', 'none', '--addr', '0.0.0.0:0', '--grpc-addr', '127.0.0.1:0'], None),
    ('env', ['--addr', '0.0.0.0:0', '--grpc-addr', '127.0.0.1:0'], {'OXFLOW_AUTH': 'none'}),
    ('grpc', ['--auth', 'none', '--addr', '127.0.0.1:0', '--grpc-addr', '0.0.0.0:0'], None),
], ids=lambda h: h[0])
def test_auth_none_is_refused_off_loopback(tmp_path, how):
    _, args, extra_env = how
    cmd, env = up_args(tmp_path, *args, extra_env=extra_env)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f'oxflow up {" ".join(args)} kept running:\n{err}')
    assert proc.returncode != 0, err
    assert 'without authentication' in err, err
    assert 'serving on' not in err + out, err


def test_auth_none_on_loopback_answers_without_a_token(tmp_path):
    s = Server(str(tmp_path), extra=['--auth', 'none'])
    try:
        assert s.login_url is None
        assert any('authentication is off' in line for line in s.lines), s.lines
        status, _, body = fetch(s.url, 'GET', '/apis/v2beta1/runs')
        assert status == 200, body
        status, _, body = fetch(s.url, 'POST', '/apis/v2beta1/experiments', body={'display_name': 'open'})
        assert status == 200, body
        import kfp
        names = [e.display_name for e in kfp.Client(host=s.url).list_experiments().experiments or []]
        assert 'open' in names, names
        # The edge still refuses foreign names and origins.
        status, _, _ = fetch(s.url, 'GET', '/apis/v2beta1/runs', {'Host': 'attacker.test'})
        assert status == 403
        status, _, _ = fetch(s.url, 'POST', '/apis/v2beta1/experiments', {'Origin': 'http://evil.test'},
                             {'display_name': 'evil'})
        assert status == 403
    finally:
        s.stop()


def test_a_trials_metrics_token_opens_its_own_push_only(server, tmp_path):
    """Katib trials get OXFLOW_METRICS_TOKEN: good for POSTing their own
    metrics, and for nothing else."""
    import time
    out = tmp_path / 'token'
    experiment = {
        'apiVersion': 'kubeflow.org/v1beta1', 'kind': 'Experiment', 'metadata': {'name': 'scoped-token'},
        'spec': {
            'objective': {'type': 'minimize', 'objectiveMetricName': 'loss'},
            'algorithm': {'algorithmName': 'random'}, 'maxTrialCount': 1, 'parallelTrialCount': 1,
            'parameters': [{'name': 'x', 'parameterType': 'double', 'feasibleSpace': {'min': '0', 'max': '1'}}],
            'trialTemplate': {
                'primaryContainerName': 'main',
                'trialParameters': [{'name': 'x', 'reference': 'x'}],
                'trialSpec': {'apiVersion': 'batch/v1', 'kind': 'Job', 'spec': {'template': {'spec': {
                    'containers': [{'name': 'main', 'image': 'python', 'command': [
                        'sh', '-c', f'printf %s "$OXFLOW_METRICS_TOKEN" > {out}; echo loss=${{trialParameters.x}}']}]}}}},
            },
        },
    }
    status, _, body = fetch(server.url, 'POST', KATIB, server.auth, experiment)
    assert status in (200, 201), body
    deadline = time.time() + 60
    while True:
        status, _, body = fetch(server.url, 'GET', f'{KATIB}/scoped-token/trials', server.auth)
        assert status == 200, body
        trials = json.loads(body)['items']
        if trials and any(c['type'] == 'Succeeded' and c['status'] == 'True'
                          for c in trials[0].get('status', {}).get('conditions', [])):
            break
        assert time.time() < deadline, trials
        time.sleep(0.1)
    trial = trials[0]['metadata']['name']
    scoped = out.read_text()
    assert scoped and scoped != server.token
    own = f'/apis/kubeflow.org/v1beta1/namespaces/default/trials/{trial}/metrics'
    push = {'metrics': {'loss': '0.5'}, 'timestamp': '2026-01-01T00:00:00Z'}
    headers = {'Authorization': f'Bearer {scoped}'}
    for method, path, body in [
        ('GET', '/apis/v2beta1/runs', None),
        ('POST', '/apis/v2beta1/experiments', {'display_name': 'from-a-trial'}),
        ('GET', f'{KATIB}/scoped-token', None),
        ('DELETE', f'{KATIB}/scoped-token', None),
        ('GET', own, None),
        ('POST', own.replace(trial, trial + 'x'), push),
        ('POST', own.replace('/namespaces/default/', '/namespaces/team-b/'), push),
        ('POST', own + '/', push),
    ]:
        status, headers_, answer = fetch(server.url, method, path, headers, body)
        assert_unauthorized(status, headers_, answer, (method, path))
    # Its own push is let through (the trial has finished, so the server
    # itself turns it down, with a reason).
    status, _, answer = fetch(server.url, 'POST', own, headers, push)
    assert status not in (401, 403), answer
    assert b'only a running trial' in answer, answer
    # Nor does it open the login form.
    status, _, _ = fetch(server.url, 'POST', '/login', {'Content-Type': 'application/x-www-form-urlencoded'},
                         urllib.parse.urlencode({'token': scoped}).encode())
    assert status == 401
