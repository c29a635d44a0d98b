"""Secrets stay with the task that uses them: after a pipeline with
kfp-kubernetes' use_secret_as_volume and use_secret_as_env, no secret value
is in any file of the data directory (the database aside), in any API answer
about the run or in the server's log (at debug level); tasks' internal files
are never served; and a run deleted through the KFP API leaves nothing
behind."""
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from kfp import dsl, kubernetes

from conftest import bearer, oxflow_bin, read_token


class LoggedServer:
    """`oxflow up` logging everything (OXFLOW_LOG=debug) to a file."""

    def __init__(self, home: Path):
        self.home = home
        self.log = home.parent / 'server.log'
        env = dict(os.environ, OXFLOW_HOME=str(home), OXFLOW_LOG='debug')
        env['PATH'] = str(Path(sys.executable).parent) + os.pathsep + env.get('PATH', '')
        env.pop('OXFLOW_DATABASE', None)
        env.pop('OXFLOW_SERVER', None)
        env.pop('OXFLOW_TOKEN', None)
        self.env = env
        self.log_file = open(self.log, 'w')
        self.proc = subprocess.Popen(
            [oxflow_bin(), 'up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0'],
            env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        self.url = None
        while self.url is None and time.time() < deadline and self.proc.poll() is None:
            m = re.search(r'serving on (http://\S+)', self.log.read_text(errors='replace'))
            if m:
                self.url = m.group(1)
            else:
                time.sleep(0.05)
        if self.url is None:
            self.stop()
            raise RuntimeError('oxflow up did not report its address:\n' + self.log.read_text())
        self.token = read_token(home)
        self.auth = bearer(self.token)

    def oxflow(self, *args):
        out = subprocess.run([oxflow_bin(), *args], env=self.env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def get(self, path, **query):
        """(status, body bytes) of a GET."""
        url = self.url + path + ('?' + urllib.parse.urlencode(query) if query else '')
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=self.auth), timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log_file.close()


@pytest.fixture
def logged_server(tmp_path):
    home = tmp_path / 'home'
    home.mkdir()
    s = LoggedServer(home)
    yield s
    s.stop()


def files_under(root: Path):
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            if p.is_file() and not p.is_symlink():
                yield p


def test_secret_values_appear_nowhere_and_deleted_runs_leave_nothing(logged_server, tmp_path):
    import kfp
    s = logged_server
    crt = 'CRT-' + uuid.uuid4().hex
    password = 'PW-' + uuid.uuid4().hex
    secrets = [crt.encode(), password.encode()]
    s.oxflow('secrets', 'create', 'tls-e2e', '--from-literal', f'crt={crt}')
    s.oxflow('secrets', 'create', 'db-e2e', '--from-literal', f'password={password}')
    mount = str(tmp_path / 'mnt' / 'tls')

    @dsl.component
    def read_secrets(mount: str) -> str:
        import hashlib
        import os
        crt = open(os.path.join(mount, 'crt')).read()
        password = os.environ['DB_PASSWORD']
        # Only lengths and digests: the value itself is never printed.
        print(f'crt {len(crt)} bytes sha256 {hashlib.sha256(crt.encode()).hexdigest()}; '
              f'password {len(password)} bytes sha256 {hashlib.sha256(password.encode()).hexdigest()}')
        return hashlib.sha256((crt + '|' + password).encode()).hexdigest()

    @dsl.pipeline(name='secret-reader')
    def pipe() -> str:
        t = read_secrets(mount=mount)
        t.set_caching_options(False)
        kubernetes.use_secret_as_volume(t, secret_name='tls-e2e', mount_path=mount)
        kubernetes.use_secret_as_env(t, secret_name='db-e2e', secret_key_to_env={'password': 'DB_PASSWORD'})
        return t.output

    client = kfp.Client(host=s.url, existing_token=s.token)
    result = client.create_run_from_pipeline_func(pipe, experiment_name='secrets-e2e')
    run = client.wait_for_run_completion(result.run_id, timeout=120, sleep_duration=0.2)
    assert run.state == 'SUCCEEDED', run
    run_id = result.run_id

    # The component read both values (it printed only their digests).
    status, detail = s.get(f'/oxflow/v1/runs/{run_id}')
    assert status == 200
    detail = json.loads(detail)
    task = next(t for t in detail['tasks'] if t['name'] == 'read-secrets')
    status, log = s.get(f'/oxflow/v1/runs/{run_id}/tasks/{task["path"]}/log')
    assert status == 200
    sha = lambda v: hashlib.sha256(v.encode()).hexdigest()
    assert f'crt {len(crt)} bytes sha256 {sha(crt)}' in log.decode(), log
    assert f'password {len(password)} bytes sha256 {sha(password)}' in log.decode(), log

    # No file of the data directory holds a value (the database stores the
    # secrets themselves), including the secret scratch space after the task.
    artifacts = s.home / 'artifacts'
    run_dirs = list(artifacts.glob(f'*/{run_id}'))
    assert len(run_dirs) == 1, run_dirs
    scanned = 0
    for f in files_under(s.home):
        if f.name.startswith('oxflow.db'):
            continue
        data = f.read_bytes()
        scanned += 1
        assert not any(v in data for v in secrets), f'a secret value in {f}'
    assert scanned > 3
    scratch = s.home / 'scratch' / 'secrets'
    assert not any(files_under(scratch)), list(files_under(scratch))

    # No API answer about the run holds a value: the run (both APIs), the
    # run list, artifact records, the task logs, the event stream, and every
    # file and listing the artifact API serves from the root down.
    answers = [
        s.get(f'/apis/v2beta1/runs/{run_id}'),
        s.get('/apis/v2beta1/runs', page_size='100'),
        s.get(f'/oxflow/v1/runs/{run_id}'),
        s.get('/oxflow/v1/artifacts', run_id=run_id),
        s.get(f'/oxflow/v1/runs/{run_id}/events'),
    ]
    for t in detail['tasks']:
        answers.append(s.get(f'/oxflow/v1/runs/{run_id}/tasks/{t["path"]}/log'))
    served, todo = 0, [str(artifacts)]
    while todo:
        uri = todo.pop()
        status, body = s.get('/oxflow/v1/artifacts', uri=uri)
        assert status == 200, (uri, body)
        answers.append((status, body))
        served += 1
        try:
            listing = json.loads(body)
        except ValueError:
            continue
        if isinstance(listing, dict) and listing.get('kind') == 'directory':
            names = [e['name'] for e in listing['entries']]
            assert '.kfp' not in names, (uri, names)
            todo += [e['uri'] for e in listing['entries'] if e['kind'] in ('directory', 'file')]
    assert served >= 4, served  # root, namespace, run, task
    for status, body in answers:
        assert status == 200, body
        assert not any(v in body for v in secrets), body[:2000]

    # Tasks' internal files are refused, however the URI is spelt.
    task_dir = run_dirs[0] / task['path']
    assert (task_dir / '.kfp' / 'log').exists()
    for uri in [task_dir / '.kfp', task_dir / '.kfp' / 'log', task_dir / '.kfp' / 'executor_output.json',
                f'file://{task_dir}/.kfp/log', f'{task_dir}//.kfp/work']:
        status, body = s.get('/oxflow/v1/artifacts', uri=str(uri))
        assert status == 403, (uri, status, body)
        assert b'.kfp' in body

    # Deleting through the KFP API removes the run's directory as the CLI does.
    client.delete_run(run_id)
    assert not run_dirs[0].exists()
    assert not any(run_id in str(p) for p in artifacts.rglob('*'))
    status, _ = s.get(f'/apis/v2beta1/runs/{run_id}')
    assert status == 404

    # Oxflow's own log (at debug level) never held a value.
    s.stop()
    server_log = s.log.read_bytes()
    assert b'Run finished' in server_log, server_log[-2000:]
    assert not any(v in server_log for v in secrets)
    # Nor the token every request carried.
    assert s.token.encode() not in server_log
