"""Benchmarks the Kubernetes API of `oxflow up` against issue #13's goals,
on the generic path every kind takes (ConfigMaps: no kind-specific
validation, so the figures are the resource model's own cost).

1. create: N objects through POST /api/v1/namespaces/default/configmaps,
   --clients keep-alive TLS connections in threads: objects/s;
2. list as a Table: GET …/configmaps with kubectl's Table Accept header over
   TLS (what `kubectl get cm` sends), --lists times: p50/p99 latency; and
   `kubectl get cm` wall time end to end (a Go process start included);
3. watch latency: --watchers concurrent watch streams; --writes merge
   patches, one at a time; for each write, the time from sending it to each
   watcher reading its event: p50/p99 over all watchers and writes. With
   --watch-client go (the default) the watchers and the writer are Go
   goroutines (bench/k8s/watchers, built with the local Go toolchain), so
   the client's own cost stays out of the figure; --watch-client python
   runs them as Python threads, as the first measurement did;
4. Experiments: --experiments Katib Experiments created through POST
   /apis/kubeflow.org/v1beta1/namespaces/default/experiments by --clients
   connections: objects/s. Each is defaulted and validated by Katib's rules
   (the spec parser) on the way in, and the tuning controller starts each
   (one one-trial run apiece) while the rest are still being created, as
   on a real cluster, at its own bounded rate; then the time until every
   one has succeeded. Run last, so that those trials disturb no other
   figure.

Every request carries the data directory's token over TLS, as kubectl sends
it. Prints a markdown table; raw JSON to --out.

    bench/k8s/run.sh            # release build, 10,000 objects, 100 watchers
"""
import argparse
import http.client
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BASE = '/api/v1/namespaces/default/configmaps'
TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json'


def log(*a):
    print('[bench]', *a, file=sys.stderr, flush=True)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Server:
    def __init__(self, binary, home):
        self.home = home
        env = dict(os.environ, OXFLOW_HOME=home)
        env.pop('OXFLOW_DATABASE', None)
        self.proc = subprocess.Popen([binary, 'up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0'],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if 'serving on http://' in line:
                self.addr = line.split('serving on http://')[1].split()[0]
                break
        else:
            raise RuntimeError('oxflow up did not start')
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.host, port = self.addr.rsplit(':', 1)
        self.port = int(port)
        self.token = Path(home, 'token').read_text().strip()
        self.ctx = ssl.create_default_context(cafile=str(Path(home, 'tls', 'ca.crt')))

    def conn(self, timeout=60):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def headers(self, **extra):
        h = {'Authorization': f'Bearer {self.token}', 'Accept': 'application/json'}
        h.update(extra)
        return h

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def post_many(server, path, n, clients, body):
    """POSTs `body(client, i)` n times over `clients` keep-alive
    connections in threads; every answer must be 201. Objects/s."""
    per = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    errors = []

    def worker(c, count):
        conn = server.conn()
        for i in range(count):
            conn.request('POST', path, body=json.dumps(body(c, i)),
                         headers=server.headers(**{'Content-Type': 'application/json'}))
            r = conn.getresponse()
            text = r.read()
            if r.status != 201:
                errors.append((r.status, text[:200]))

    threads = [threading.Thread(target=worker, args=(c, per[c])) for c in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if errors:
        raise RuntimeError(f'{len(errors)} creates failed: {errors[:3]}')
    return {'objects': n, 'clients': clients, 'seconds': elapsed, 'per_second': n / elapsed}


def create(server, n, clients):
    return post_many(server, BASE, n, clients, lambda c, i: {
        'apiVersion': 'v1', 'kind': 'ConfigMap',
        'metadata': {'name': f'cm-{c}-{i}', 'labels': {'bench': 'k8s', 'client': str(c)}},
        'data': {'index': str(i), 'payload': 'x' * 200}})


EXPERIMENT = {
    'apiVersion': 'kubeflow.org/v1beta1', 'kind': 'Experiment',
    'spec': {
        'objective': {'type': 'minimize', 'objectiveMetricName': 'loss'},
        'algorithm': {'algorithmName': 'random'},
        'parallelTrialCount': 1, 'maxTrialCount': 1,
        'parameters': [{'name': 'lr', 'parameterType': 'double', 'feasibleSpace': {'min': '0.01', 'max': '0.1'}}],
        'trialTemplate': {
            'primaryContainerName': 'training-container',
            'trialParameters': [{'name': 'learningRate', 'reference': 'lr'}],
            'trialSpec': {'apiVersion': 'batch/v1', 'kind': 'Job', 'spec': {'template': {'spec': {
                'restartPolicy': 'Never',
                'containers': [{'name': 'training-container', 'image': 'python:3.11',
                                'command': ['sh', '-c', 'echo loss=${trialParameters.learningRate}']}]}}}},
        },
    },
}


def create_experiments(server, n, clients, finish_timeout=900):
    """Creates n Experiments (objects/s), then waits for every one to have
    succeeded (its one trial run): how long the controller took for the
    whole burst, from the first create."""
    path = '/apis/kubeflow.org/v1beta1/namespaces/default/experiments'
    t0 = time.perf_counter()
    result = post_many(server, path, n, clients, lambda c, i: dict(EXPERIMENT, metadata={'name': f'exp-{c}-{i}'}))
    conn = server.conn()
    while True:
        conn.request('GET', path, headers=server.headers())
        r = conn.getresponse()
        items = json.loads(r.read())['items']
        done = sum(1 for e in items if any(c['type'] == 'Succeeded' and c['status'] == 'True'
                                           for c in e.get('status', {}).get('conditions', [])))
        if done == n:
            break
        if time.perf_counter() - t0 > finish_timeout:
            raise RuntimeError(f'only {done} of {n} experiments succeeded in {finish_timeout} s')
        time.sleep(1)
    result['all_succeeded_seconds'] = time.perf_counter() - t0
    return result


def list_table(server, times, expect):
    conn = server.conn()
    # One list first: a server that has not served the kind yet reads it
    # into its object cache then (oxflow up does that at start).
    t = time.perf_counter()
    conn.request('GET', BASE, headers=server.headers(Accept=TABLE))
    r = conn.getresponse()
    r.read()
    first = (time.perf_counter() - t) * 1000
    samples = []
    for _ in range(times):
        t = time.perf_counter()
        conn.request('GET', BASE, headers=server.headers(Accept=TABLE))
        r = conn.getresponse()
        body = r.read()
        samples.append((time.perf_counter() - t) * 1000)
        assert r.status == 200
    rows = len(json.loads(body)['rows'])
    assert rows == expect, rows
    return {'rows': rows, 'times': times, 'p50_ms': pct(samples, 50), 'p99_ms': pct(samples, 99),
            'max_ms': max(samples), 'bytes': len(body), 'first_ms': first}


def kubectl_get(server, times):
    kubeconfig = str(Path(server.home, 'kubeconfig'))
    cache = tempfile.mkdtemp(prefix='kubectl-cache-')
    env = dict(os.environ, KUBECONFIG=kubeconfig)
    samples = []
    for _ in range(times):
        t = time.perf_counter()
        p = subprocess.run(['kubectl', '--cache-dir', cache, 'get', 'cm', '--no-headers'], env=env,
                           capture_output=True, text=True)
        samples.append((time.perf_counter() - t) * 1000)
        assert p.returncode == 0, p.stderr
    return {'times': times, 'p50_ms': pct(samples, 50), 'p99_ms': pct(samples, 99)}


def watch_latency(server, watchers, writes):
    # The object the writes change, and the version the watches start after.
    conn = server.conn()
    body = json.dumps({'metadata': {'name': 'watched'}, 'data': {'seq': '-1'}})
    conn.request('POST', BASE, body=body, headers=server.headers(**{'Content-Type': 'application/json'}))
    r = conn.getresponse()
    start_rv = json.loads(r.read())['metadata']['resourceVersion']
    sent = {}
    # Each watcher keeps (arrival time, raw line): parsing waits until the
    # end, so that 100 Python threads parsing JSON under one interpreter
    # lock do not add their queueing to the server's latency.
    lines = [[] for _ in range(watchers)]
    ready = threading.Barrier(watchers + 1)

    def watch(i):
        c = server.conn(timeout=300)
        c.request('GET', f'{BASE}?watch=true&resourceVersion={start_rv}&fieldSelector=metadata.name%3Dwatched',
                  headers=server.headers())
        resp = c.getresponse()
        assert resp.status == 200
        ready.wait()
        got = lines[i]
        for line in resp:
            got.append((time.perf_counter(), line))
            if len(got) == writes:
                return

    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(watchers)]
    for th in threads:
        th.start()
    ready.wait()
    for seq in range(writes):
        patch = json.dumps({'data': {'seq': str(seq)}})
        sent[seq] = time.perf_counter()
        conn.request('PATCH', f'{BASE}/watched', body=patch,
                     headers=server.headers(**{'Content-Type': 'application/merge-patch+json'}))
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        # Every watcher has this write before the next one is sent (one
        # event per write and watcher).
        deadline = time.perf_counter() + 30
        while any(len(got) <= seq for got in lines):
            if time.perf_counter() > deadline:
                raise RuntimeError(f'write {seq} did not reach every watcher')
            time.sleep(0.0002)
    for th in threads:
        th.join(timeout=30)
    received = [{int(json.loads(line)['object']['data']['seq']): t for t, line in got} for got in lines]
    lat = [(rec[s] - sent[s]) * 1000 for rec in received for s in range(writes)]
    return {'watchers': watchers, 'writes': writes, 'events': len(lat), 'p50_ms': pct(lat, 50),
            'p99_ms': pct(lat, 99), 'max_ms': max(lat)}


def watch_latency_go(server, watchers, writes):
    """The same measurement with native clients (bench/k8s/watchers)."""
    root = Path(__file__).resolve().parent
    binary = Path('bench/out/k8s-watchers').resolve()
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(['go', 'build', '-o', str(binary), '.'], cwd=root / 'watchers', check=True)
    out = subprocess.run([str(binary), '-url', f'https://{server.host}:{server.port}', '-token', server.token,
                          '-ca', str(Path(server.home, 'tls', 'ca.crt')), '-watchers', str(watchers),
                          '-writes', str(writes)], check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=os.environ.get('OXFLOW_BIN', 'target/release/oxflow'))
    ap.add_argument('--objects', type=int, default=10_000)
    ap.add_argument('--clients', type=int, default=4)
    ap.add_argument('--lists', type=int, default=50)
    ap.add_argument('--watchers', type=int, default=100)
    ap.add_argument('--writes', type=int, default=200)
    ap.add_argument('--watch-client', choices=['go', 'python'], default='go')
    ap.add_argument('--experiments', type=int, default=1000)
    ap.add_argument('--only-watch', action='store_true', help='skip create, list, kubectl get and experiments')
    ap.add_argument('--only-experiments', action='store_true', help='only the Experiments burst')
    ap.add_argument('--out', default='bench/out/k8s.json')
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        s = Server(a.bin, home)
        try:
            c = lst = kc = w = x = None
            if a.only_experiments:
                log(f'creating {a.experiments} Katib Experiments with {a.clients} clients')
                x = create_experiments(s, a.experiments, a.clients)
            elif not a.only_watch:
                log(f'creating {a.objects} objects with {a.clients} clients')
                c = create(s, a.objects, a.clients)
                log(f'listing {a.objects} objects as a Table, {a.lists} times')
                lst = list_table(s, a.lists, a.objects)
                log('kubectl get cm')
                kc = kubectl_get(s, 10)
            if not a.only_experiments:
                log(f'{a.watchers} watchers ({a.watch_client}), {a.writes} writes')
                if a.watch_client == 'go':
                    w = watch_latency_go(s, a.watchers, a.writes)
                else:
                    w = watch_latency(s, a.watchers, a.writes)
                w['client'] = a.watch_client
            if not a.only_watch and not a.only_experiments and a.experiments:
                log(f'creating {a.experiments} Katib Experiments with {a.clients} clients')
                x = create_experiments(s, a.experiments, a.clients)
        finally:
            s.stop()
    results = {'create': c, 'list_table': lst, 'kubectl_get': kc, 'watch': w, 'experiments': x}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2))
    print('| measure | result | goal |')
    print('|---|---|---|')
    if x is not None and c is None:
        print(f"| create {x['objects']} Katib Experiments ({x['clients']} clients; the controller starting them meanwhile) | **{x['per_second']:.0f} objects/s** | ≥ 1,000/s |")
        print(f"| … all {x['objects']} run to Succeeded (one trial each), from the first create | {x['all_succeeded_seconds']:.1f} s | — |")
        return
    if c is None:
        print(f"| watch ({w['client']} clients): {w['watchers']} watchers × {w['writes']} writes, write sent → event read | p50 {w['p50_ms']:.2f} ms, **p99 {w['p99_ms']:.2f} ms** | p99 < 10 ms |")
        return
    print(f"| create {c['objects']} objects ({c['clients']} clients) | **{c['per_second']:.0f} objects/s** | ≥ 1,000/s |")
    print(f"| list {lst['rows']} objects as a Table (request, TLS; {lst['times']} after a first one of {lst['first_ms']:.0f} ms) | p50 {lst['p50_ms']:.1f} ms, **p99 {lst['p99_ms']:.1f} ms** ({lst['bytes'] / 1e6:.1f} MB) | p99 < 50 ms |")
    print(f"| `kubectl get cm` of {lst['rows']} (process included) | p50 {kc['p50_ms']:.0f} ms, p99 {kc['p99_ms']:.0f} ms | — |")
    print(f"| watch ({w['client']} clients): {w['watchers']} watchers × {w['writes']} writes, write sent → event read | p50 {w['p50_ms']:.2f} ms, **p99 {w['p99_ms']:.2f} ms** | p99 < 10 ms |")
    if x is not None:
        print(f"| create {x['objects']} Katib Experiments ({x['clients']} clients; the controller starting them meanwhile) | **{x['per_second']:.0f} objects/s** | ≥ 1,000/s |")
        print(f"| … all {x['objects']} run to Succeeded (one trial each), from the first create | {x['all_succeeded_seconds']:.1f} s | — |")


if __name__ == '__main__':
    main()
