"""The attacker's and the unlucky operator's probe of issue #12, as a script.

Starts real `oxflow up` / `oxflow serve` processes on loopback, attacks them
and counts what must be zero. Every loop is bounded in count and time; all
traffic goes to 127.0.0.1. Requests carry the data directory's token
(`<home>/token`), as every client of a server with authentication does,
the attacks too: what refuses them is then the check under test (Host,
Origin, bounds), not the missing token; a probe of its own counts requests
without a valid token that were answered. Prints a markdown table (for
BENCHMARKS.md) and exits non-zero when a figure that must be zero is not.

    python bench/reliability/probe.py --oxflow target/debug/oxflow [--quick]
"""
import argparse
import atexit
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = []
# Every server this script starts, killed at exit whatever happened.
STARTED = []
atexit.register(lambda: [p.kill() for p in STARTED if p.poll() is None])


def result(name, value, must_be_zero=False, note=''):
    RESULTS.append((name, value, must_be_zero, note))
    print(f'  {name}: {value} {note}', file=sys.stderr, flush=True)


class Up:
    def __init__(self, oxflow, home, *extra):
        env = dict(os.environ, OXFLOW_HOME=str(home))
        env['PATH'] = str(Path(sys.executable).parent) + os.pathsep + env.get('PATH', '')
        for k in ('OXFLOW_DATABASE', 'OXFLOW_SERVER', 'OXFLOW_TOKEN', 'OXFLOW_AUTH'):
            env.pop(k, None)
        # Beside the data directory, not in it: the disk-full probe fills
        # the data directory's filesystem.
        self.log_path = Path(tempfile.gettempdir()) / f'oxflow-probe-{Path(home).name}.log'
        self.log = open(self.log_path, 'a')
        self.proc = subprocess.Popen([oxflow, 'up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0', *extra],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        STARTED.append(self.proc)
        deadline = time.time() + 120
        self.url = None
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.write(line)
            m = re.search(r'serving on (http://\S+)', line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            raise RuntimeError('oxflow up did not start')
        threading.Thread(target=self._drain, daemon=True).start()
        self.token = read_token(home)

    def call(self, path, *args, **kwargs):
        """`call` of a path on this server, with its token."""
        return call(self.url + path, *args, token=self.token, **kwargs)

    def _drain(self):
        for line in self.proc.stderr:
            self.log.write(line)
        self.log.flush()

    @property
    def hostport(self):
        return urllib.parse.urlparse(self.url).netloc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def read_token(home):
    """The data directory's token (what clients send as `Authorization: Bearer`)."""
    return (Path(home) / 'token').read_text().strip()


def call(url, method='GET', body=None, headers=None, timeout=30, token=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    headers = dict(headers or {'Content-Type': 'application/json'})
    if token is not None:
        headers['Authorization'] = f'Bearer {token}'
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def raw(hostport, request: bytes, timeout=30):
    host, port = hostport.rsplit(':', 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    answer = b''.join(chunks)
    return (int(answer.split(b' ', 2)[1]) if answer.startswith(b'HTTP/') else 0), answer


def http(method, path, host, headers=(), body=b'', token=None):
    lines = [f'{method} {path} HTTP/1.1']
    if host is not None:
        lines.append(f'Host: {host}')
    if token is not None:
        lines.append(f'Authorization: Bearer {token}')
    lines += list(headers) + [f'Content-Length: {len(body)}', 'Connection: close', '', '']
    return '\r\n'.join(lines).encode() + body


# 1. Lost acknowledged writes --------------------------------------------------

def probe_outside_readers(oxflow, cycles, writes):
    """Writes through the API while python's sqlite3 opens and closes the
    database; kill -9; restart; count acknowledged writes that are gone."""
    with tempfile.TemporaryDirectory() as home:
        acked, opens = [], [0]
        for _ in range(cycles):
            up = Up(oxflow, home)
            stop = threading.Event()

            def reader():
                while not stop.is_set():
                    c = sqlite3.connect(os.path.join(home, 'oxflow.db'), timeout=5)
                    c.execute('SELECT COUNT(*) FROM experiments').fetchone()
                    c.close()
                    opens[0] += 1

            t = threading.Thread(target=reader)
            t.start()
            for i in range(writes):
                status, body = up.call('/apis/v2beta1/experiments', 'POST',
                                    {'display_name': f'w-{len(acked)}-{i}-{random.random()}'})
                if status == 200:
                    acked.append(json.loads(body)['experiment_id'])
            stop.set()
            t.join()
            up.kill9()
        up = Up(oxflow, home)
        lost = sum(1 for e in acked if up.call(f'/apis/v2beta1/experiments/{e}')[0] != 200)
        up.stop()
    result('lost acknowledged writes, outside SQLite readers + kill -9', lost, True,
           f'({len(acked)} acknowledged, {opens[0]} outside opens, {cycles} kill -9)')


def probe_disk_full(oxflow):
    """OXFLOW_HOME on a 24 MiB tmpfs: fill it, write, free it, write, kill -9,
    restart. Needs root (mount); skipped otherwise."""
    home = tempfile.mkdtemp()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', home]).returncode != 0:
        result('disk full', 'skipped (mount needs root)')
        return
    try:
        up = Up(oxflow, home)
        filler = Path(home) / 'filler'
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        for size in (65536, 512):
            try:
                while True:
                    os.write(fd, b'\0' * size)
            except OSError:
                pass
        os.close(fd)
        acked, failed_full = [], 0
        pad = 'x' * 4000
        for i in range(60):
            status, body = up.call('/apis/v2beta1/experiments', 'POST',
                                {'display_name': f'full-{i}', 'description': pad})
            if status == 200:
                acked.append(json.loads(body)['experiment_id'])
            else:
                failed_full += 1
        filler.unlink()
        failed_after = 0
        for i in range(60):
            status, body = up.call('/apis/v2beta1/experiments', 'POST', {'display_name': f'after-{i}'})
            if status == 200:
                acked.append(json.loads(body)['experiment_id'])
            else:
                failed_after += 1
        up.kill9()
        up = Up(oxflow, home)
        lost = sum(1 for e in acked if up.call(f'/apis/v2beta1/experiments/{e}')[0] != 200)
        up.stop()
        result('lost acknowledged writes, disk full then freed + kill -9', lost, True,
               f'({failed_full} of 60 refused while full, {len(acked)} acknowledged)')
        result('writes failing after space returned (no restart)', failed_after, True, '(of 60)')
    finally:
        subprocess.run(['umount', '-l', home])
        os.rmdir(home)


# 2. Secrets ------------------------------------------------------------------

SECRET_PIPELINE = '''
import sys
from kfp import compiler, dsl, kubernetes

@dsl.component
def use(out: dsl.Output[dsl.Artifact]):
    import hashlib, os, pathlib
    v = pathlib.Path('/etc/probe-secret/token').read_text()
    e = os.environ['PROBE_TOKEN']
    assert v == e, 'the volume and the env var disagree'
    print('secret sha256', hashlib.sha256(v.encode()).hexdigest())
    pathlib.Path(out.path).write_text('done')

@dsl.pipeline(name='secret-probe')
def p():
    t = use()
    kubernetes.use_secret_as_env(t, secret_name='probe', secret_key_to_env={'token': 'PROBE_TOKEN'})
    kubernetes.use_secret_as_volume(t, secret_name='probe', mount_path='/etc/probe-secret')

compiler.Compiler().compile(p, sys.argv[1])
'''


def probe_secrets(oxflow):
    value = 'probe-' + os.urandom(12).hex()
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as work:
        src = Path(work) / 'p.py'
        src.write_text(SECRET_PIPELINE)
        pkg = Path(work) / 'p.yaml'
        subprocess.run([sys.executable, '-W', 'ignore', str(src), str(pkg)], check=True)
        env = dict(os.environ, OXFLOW_HOME=home)
        env.pop('OXFLOW_TOKEN', None)  # the CLI sends the data directory's token to --server
        subprocess.run([oxflow, 'secrets', 'create', 'probe', '--from-literal', f'token={value}'],
                       env=env, check=True, capture_output=True)
        up = Up(oxflow, home)
        first_log = up.log_path
        out = subprocess.run([oxflow, '--server', up.url, 'run', str(pkg)], env=env, capture_output=True,
                             text=True, timeout=600)
        m = re.search(r'[0-9a-f]{8}-[0-9a-f-]{27}', out.stdout + out.stderr)
        run_id = m.group(0) if m else None
        found = []
        needle = value.encode()
        for path in Path(home).rglob('*'):
            if path.is_file() and not path.is_symlink() and path.name != 'oxflow.db' \
                    and not path.name.startswith('oxflow.db-'):
                try:
                    if needle in path.read_bytes():
                        found.append(str(path.relative_to(home)))
                except OSError:
                    pass
        answers = []
        if run_id:
            for p in [f'/apis/v2beta1/runs/{run_id}', f'/oxflow/v1/runs/{run_id}',
                      f'/oxflow/v1/artifacts?uri={urllib.parse.quote(home + "/artifacts")}']:
                answers.append(up.call(p)[1])
        for a in answers:
            if needle in a:
                found.append('an API answer')
        # A listing of the artifact root, walked three levels down.
        up.stop()
        deleted_left = None
        if run_id:
            up = Up(oxflow, home)
            up.call(f'/apis/v2beta1/runs/{run_id}', 'DELETE')
            deleted_left = sum(1 for p in Path(home, 'artifacts').rglob('*') if run_id in str(p))
            up.stop()
        for log in {first_log, up.log_path}:
            if needle in log.read_bytes():
                found.append('server log')
    result('run with use_secret_as_volume/env succeeded', out.returncode == 0 and run_id is not None)
    result('places a secret value was found (data dir, API answers, server log)', len(found), True,
           ', '.join(found))
    if deleted_left is not None:
        result('paths of a run left under artifacts after DELETE through the API', deleted_left, True)


# 3. Cross-origin and foreign-Host state changes -------------------------------

def probe_cross_origin(oxflow):
    with tempfile.TemporaryDirectory() as home:
        up = Up(oxflow, home)

        def counts():
            out = []
            for p, key in [('/apis/v2beta1/experiments', 'experiments'), ('/apis/v2beta1/pipelines', 'pipelines'),
                           ('/apis/kubeflow.org/v1beta1/namespaces/default/experiments', 'items'),
                           ('/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices', 'items')]:
                out.append(len(json.loads(up.call(p)[1]).get(key) or []))
            return out

        before = counts()
        attempts = 0
        accepted = 0
        bodies = [
            ('/apis/v2beta1/experiments', b'{"display_name": "evil"}', 'text/plain'),
            ('/apis/kubeflow.org/v1beta1/namespaces/default/experiments',
             json.dumps({'apiVersion': 'kubeflow.org/v1beta1', 'kind': 'Experiment', 'metadata': {'name': 'evil'},
                         'spec': {'objective': {'type': 'minimize', 'objectiveMetricName': 'l'},
                                  'algorithm': {'algorithmName': 'random'}, 'maxTrialCount': 1,
                                  'parameters': [{'name': 'x', 'parameterType': 'double',
                                                  'feasibleSpace': {'min': '0', 'max': '1'}}],
                                  'trialTemplate': {'primaryContainerName': 'm',
                                                    'trialParameters': [{'name': 'x', 'reference': 'x'}],
                                                    'trialSpec': {'apiVersion': 'batch/v1', 'kind': 'Job', 'spec': {
                                                        'template': {'spec': {'containers': [
                                                            {'name': 'm', 'image': 'p',
                                                             'command': ['sh', '-c', 'echo l=1']}]}}}}}}}).encode(),
             'text/plain'),
            ('/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices',
             json.dumps({'apiVersion': 'serving.kserve.io/v1beta1', 'kind': 'InferenceService',
                         'metadata': {'name': 'evil'}, 'spec': {'predictor': {'containers': [
                             {'name': 'kserve-container', 'image': 'x', 'command': ['true']}]}}}).encode(),
             'text/plain'),
            ('/apis/v2beta1/pipelines/upload?name=evil',
             b'--b\r\nContent-Disposition: form-data; name="uploadfile"; filename="p.yaml"\r\n\r\n'
             b'pipelineInfo: {name: evil}\r\n--b--\r\n', 'multipart/form-data; boundary=b'),
        ]
        variants = [
            (up.hostport, ['Origin: http://evil.test', 'Sec-Fetch-Site: cross-site']),
            (up.hostport, ['Origin: null']),
            (up.hostport, ['Origin: http://127.0.0.1:1']),
            ('evil.test:' + up.hostport.rsplit(':', 1)[1], ['Origin: http://evil.test']),
            ('evil.test', []),
            ('', []),
            (None, []),
        ]
        for path, body, ctype in bodies:
            for host, headers in variants:
                attempts += 1
                status, _ = raw(up.hostport, http('POST', path, host, [f'Content-Type: {ctype}', *headers], body,
                                                  token=up.token))
                if status < 300:
                    accepted += 1
        after = counts()
        up.stop()
        changed = sum(a - b for a, b in zip(after, before))
    result('cross-origin or foreign-Host state changes', changed + accepted, True,
           f'({attempts} attempts on 4 create routes: foreign/null/other-port Origin, rebound Host, empty and no Host)')


# 4. Fuzzing -------------------------------------------------------------------

# The route prefixes the fuzzer and the authentication probe pick from.
PREFIXES = ['/apis/v2beta1/runs', '/apis/v2beta1/experiments', '/apis/v2beta1/pipelines',
            '/apis/v2beta1/recurringruns', '/apis/v2beta1/pipelines/upload', '/oxflow/v1/runs', '/oxflow/v1/artifacts',
            '/api/v1/namespaces', '/apis/kubeflow.org/v1beta1/namespaces/default/experiments',
            '/apis/kubeflow.org/v1beta1/namespaces/default/trials',
            '/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices',
            '/apis/serving.kserve.io/v1alpha1/namespaces/default/trainedmodels', '/serving/default/x/v2/models',
            '/openapi.json', '/']


def probe_fuzz(oxflow, n):
    rng = random.Random(12)
    with tempfile.TemporaryDirectory() as home:
        up = Up(oxflow, home)
        prefixes = PREFIXES
        junk = ['', '{}', '[]', 'null', '{"display_name": 1}', '{"a":' * 50, '\x00\xff', 'x' * 5000,
                '{"pipeline_spec": {"root": {}}}', '{"metadata": {"name": "../../etc"}}', '%', '{"page_size": -1}']
        five = 0
        codes = {}
        for i in range(n):
            path = rng.choice(prefixes)
            if rng.random() < 0.5:
                path += '/' + rng.choice(['x', '..', '%2e%2e', 'a' * 300, '0' * 36, ':terminate', ':retry', '%00'])
            if rng.random() < 0.4:
                path += '?' + rng.choice(['page_size=-5', 'page_token=@@', 'filter=%7B', 'uri=/etc/passwd',
                                          'sort_by=x%20desc', 'limit=0', 'continue=zz', 'namespace=../x'])
            method = rng.choice(['GET', 'POST', 'PUT', 'DELETE', 'PATCH'])
            body = rng.choice(junk).encode('latin-1')
            ctype = rng.choice(['application/json', 'text/plain', 'multipart/form-data; boundary=z', ''])
            try:
                status, _ = raw(up.hostport, http(method, path, up.hostport,
                                                  [f'Content-Type: {ctype}'] if ctype else [], body,
                                                  token=up.token))
            except OSError:
                status = -1
            codes[status] = codes.get(status, 0) + 1
            if status >= 500 or status <= 0:
                five += 1
        up.stop()
    result('5xx (or no answer) under fuzzing', five, True,
           f'({n} requests; codes {dict(sorted(codes.items()))})')


# 4b. Authentication -------------------------------------------------------------

def probe_unauthenticated(oxflow, n):
    """Requests with no token, a wrong one, a truncated one or another
    scheme, on every API and the inference paths: each must be 401 and
    change nothing."""
    rng = random.Random(13)
    with tempfile.TemporaryDirectory() as home:
        up = Up(oxflow, home)
        before = len(json.loads(up.call('/apis/v2beta1/experiments?page_size=1000')[1]).get('experiments') or [])
        credentials = [None, 'Bearer oxf_' + '0' * 64, f'Bearer {up.token[:-1]}', f'Bearer {up.token}x',
                       'Bearer ', f'Basic {up.token}', up.token]
        answered, codes = 0, {}
        for _ in range(n):
            path = rng.choice(PREFIXES) + rng.choice(['', '/x', '/' + '0' * 36, ':terminate'])
            method = rng.choice(['GET', 'POST', 'PUT', 'DELETE', 'PATCH'])
            cred = rng.choice(credentials)
            headers = ['Content-Type: application/json'] + ([f'Authorization: {cred}'] if cred else [])
            try:
                status, _ = raw(up.hostport, http(method, path, up.hostport, headers, b'{"display_name": "anon"}'))
            except OSError:
                status = -1
            codes[status] = codes.get(status, 0) + 1
            answered += status != 401
        after = len(json.loads(up.call('/apis/v2beta1/experiments?page_size=1000')[1]).get('experiments') or [])
        up.stop()
    result('requests without a valid token answered other than 401', answered + (after - before), True,
           f'({n} requests: none, wrong, truncated, extended, empty, Basic, no scheme; codes {dict(sorted(codes.items()))})')


# 5. Slow clients --------------------------------------------------------------

def probe_slow_clients(oxflow, clients, seconds):
    with tempfile.TemporaryDirectory() as home:
        up = Up(oxflow, home)
        host, port = up.hostport.rsplit(':', 1)
        slow = []
        for _ in range(clients):
            try:
                s = socket.create_connection((host, int(port)), timeout=10)
                s.sendall(b'GET /apis/v2beta1/runs HTTP/1.1\r\nX-Slow: ')
                slow.append(s)
            except OSError:
                pass
        stop = threading.Event()

        def trickle():
            while not stop.is_set():
                for s in list(slow):
                    try:
                        s.sendall(b'a')
                    except OSError:
                        pass
                stop.wait(1)

        t = threading.Thread(target=trickle)
        t.start()
        failures, worst, probes = 0, 0.0, 0
        deadline = time.time() + seconds
        while time.time() < deadline:
            started = time.monotonic()
            try:
                status, _ = raw(up.hostport, http('GET', '/apis/v2beta1/runs', up.hostport, token=up.token),
                                timeout=5)
                ok = status == 200
            except OSError:
                ok = False
            worst = max(worst, time.monotonic() - started)
            failures += not ok
            probes += 1
            time.sleep(0.2)
        stop.set()
        t.join()
        for s in slow:
            s.close()
        up.stop()
    result('requests unanswered while slow clients held connections', failures, True,
           f'({probes} probes over {seconds} s with {len(slow)} slow clients; slowest {worst * 1000:.0f} ms)')


# 6. Bounds --------------------------------------------------------------------

def rss_kib(pid):
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0


def probe_bounds(oxflow, loads):
    with tempfile.TemporaryDirectory() as home:
        up = Up(oxflow, home)
        status, _ = up.call('/apis/v2beta1/experiments', 'POST',
                         {'display_name': 'big', 'description': 'x' * (30 << 20)}, timeout=120)
        result('HTTP status of a 30 MB description', status, note='(400 expected: refused, nothing stored)')
        sizes = [len(up.call('/apis/v2beta1/experiments')[1])]
        result('largest list answer after it, bytes', max(sizes))
        up.stop()
    # 20,000 loads of names `oxflow serve` never had.
    with tempfile.TemporaryDirectory() as home:
        model_dir = Path(home) / 'm'
        model_dir.mkdir()
        env = dict(os.environ, OXFLOW_HOME=home)
        env.pop('OXFLOW_AUTH', None)
        # Any model will do: a tiny XGBoost JSON (one stump) written by hand.
        (model_dir / 'model.json').write_text(json.dumps({
            'learner': {'attributes': {}, 'feature_names': [], 'feature_types': [],
                        'gradient_booster': {'model': {'gbtree_model_param': {'num_trees': '1', 'num_parallel_tree': '1'},
                                                       'tree_info': [0], 'trees': [{
                                                           'base_weights': [0.0, -1.0, 1.0], 'categories': [],
                                                           'categories_nodes': [], 'categories_segments': [],
                                                           'categories_sizes': [], 'default_left': [0, 0, 0],
                                                           'id': 0, 'left_children': [1, -1, -1],
                                                           'loss_changes': [1.0, 0.0, 0.0], 'parents': [2147483647, 0, 0],
                                                           'right_children': [2, -1, -1],
                                                           'split_conditions': [0.5, -1.0, 1.0],
                                                           'split_indices': [0, 0, 0], 'split_type': [0, 0, 0],
                                                           'sum_hessian': [2.0, 1.0, 1.0],
                                                           'tree_param': {'num_deleted': '0', 'num_feature': '1',
                                                                          'num_nodes': '3', 'size_leaf_vector': '1'}}]},
                                               'name': 'gbtree'},
                        'learner_model_param': {'base_score': '5E-1', 'boost_from_average': '1', 'num_class': '0',
                                                'num_feature': '1', 'num_target': '1'},
                        'objective': {'name': 'reg:squarederror', 'reg_loss_param': {'scale_pos_weight': '1'}}},
            'version': [2, 1, 0]}))
        proc = subprocess.Popen([oxflow, 'serve', f'm={model_dir}', '--format', 'xgboost', '--addr', '127.0.0.1:0',
                                 '--grpc-addr', '127.0.0.1:0'], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        STARTED.append(proc)
        addr = None
        deadline = time.time() + 60
        while time.time() < deadline and addr is None:
            line = proc.stderr.readline()
            m = re.search(r'on http://(\S+) \(REST', line)
            addr = m.group(1) if m else None
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        token = read_token(home)
        before = rss_kib(proc.pid)
        not_found = 0
        for i in range(loads):
            status, _ = call(f'http://{addr}/v2/repository/models/unknown-{i}-{"n" * 150}/load', 'POST', b'',
                             token=token)
            not_found += status == 404
        after = rss_kib(proc.pid)
        ready, _ = call(f'http://{addr}/v2/health/ready', token=token)
        proc.terminate()
        proc.wait()
    result(f'RSS of oxflow serve before/after {loads} unknown-name loads', f'{before / 1024:.1f} / {after / 1024:.1f} MiB',
           note=f'({not_found} answered 404; /v2/health/ready then {ready})')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--oxflow', default=str(Path(os.environ.get('CARGO_TARGET_DIR', ROOT / 'target')) / 'debug' / 'oxflow'))
    ap.add_argument('--quick', action='store_true', help='smaller counts, for a smoke run')
    args = ap.parse_args()
    q = args.quick
    print('== durability', file=sys.stderr)
    probe_outside_readers(args.oxflow, cycles=2 if q else 5, writes=40 if q else 150)
    probe_disk_full(args.oxflow)
    print('== secrets', file=sys.stderr)
    probe_secrets(args.oxflow)
    print('== cross-origin', file=sys.stderr)
    probe_cross_origin(args.oxflow)
    print('== fuzzing', file=sys.stderr)
    probe_fuzz(args.oxflow, 1000 if q else 10000)
    print('== authentication', file=sys.stderr)
    probe_unauthenticated(args.oxflow, 500 if q else 2000)
    print('== slow clients', file=sys.stderr)
    probe_slow_clients(args.oxflow, 1100, 10 if q else 30)
    print('== bounds', file=sys.stderr)
    probe_bounds(args.oxflow, 2000 if q else 20000)
    print('| probe | figure | |\n|---|---|---|')
    bad = 0
    for name, value, must_be_zero, note in RESULTS:
        flag = ''
        if must_be_zero:
            flag = 'must be 0' + (' — FAILED' if value != 0 else '')
            bad += value != 0
        print(f'| {name} | {value} {note} | {flag} |')
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
