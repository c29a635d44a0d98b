"""Benchmarks `oxflow up` (the KFP v2beta1 REST API) against issue #3's goals.

For each backend (SQLite in a temporary OXFLOW_HOME; PostgreSQL with a fresh
schema per server instance) it measures:

1. startup: exec of `oxflow up --addr 127.0.0.1:0` to the first 200 from
   GET /apis/v2beta1/healthz (median of --starts starts, after one warm-up);
2. idle RSS (VmRSS) after start, and again once N runs are stored and the
   controller has gone idle;
3. run creation: N x POST /apis/v2beta1/runs with an inline pipeline_spec,
   --clients keep-alive connections in threads, runs/s. Two setups:
   A. a one-task pipeline (container `true`, caching off), default
      --max-runs 8: the controller executes the runs while they are created;
   B. seq10 (10 Python tasks) with --max-runs 1: runs queue up, only one
      executes at a time, so creation competes little with execution;
4. list_runs: with N runs stored (setup A, after execution drained),
   GET /apis/v2beta1/runs?page_size=50&sort_by=created_at%20desc over one
   keep-alive connection: the first page, and deeper pages via page_token.

Every request carries the data directory's token (`Authorization: Bearer`,
from `<home>/token`), as every client of `oxflow up` does: the figures
include authenticating each request.

Prints a markdown table and writes raw JSON to --out.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

API = '/apis/v2beta1'
PG_BASE = 'postgres://oxflow_test:oxflow_test@127.0.0.1:5432/oxflow_test'


def log(*a):
    print('[bench]', *a, file=sys.stderr, flush=True)


def compile_specs(pipelines_dir):
    """The noop pipeline (compiled here) and seq10 (from tests/pipelines/build.py), as dicts."""
    import yaml
    from kfp import compiler, dsl

    @dsl.container_component
    def noop():
        return dsl.ContainerSpec(image='busybox', command=['true'])

    @dsl.pipeline(name='bench-noop')
    def bench_noop():
        noop().set_caching_options(False)

    path = os.path.join(pipelines_dir, 'bench_noop.yaml')
    compiler.Compiler().compile(bench_noop, path)
    with open(path) as f:
        noop_spec = yaml.safe_load(f)
    with open(os.path.join(pipelines_dir, 'seq10.yaml')) as f:
        seq10_spec = yaml.safe_load(f)
    return noop_spec, seq10_spec


def psql(sql):
    subprocess.run(['psql', '-q', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-c',
                    'SET client_min_messages TO warning; ' + sql],
                   check=True, stdout=subprocess.DEVNULL)


class Backend:
    """One storage: SQLite (temp home) or PostgreSQL (temp schema)."""

    def __init__(self, kind):
        self.kind = kind
        self.home = tempfile.mkdtemp(prefix=f'oxflow-bench-{kind}-')
        self.schema = None

    def fresh(self):
        """A fresh, empty store; returns the extra args for `oxflow up`."""
        if self.kind == 'sqlite':
            shutil.rmtree(self.home, ignore_errors=True)
            os.makedirs(self.home)
            return []
        self.drop()
        shutil.rmtree(self.home, ignore_errors=True)
        os.makedirs(self.home)
        self.schema = 'bench_' + uuid.uuid4().hex[:12]
        psql(f'CREATE SCHEMA {self.schema}')
        return ['--database', f'{PG_BASE}?options=-c%20search_path%3D{self.schema}']

    def drop(self):
        if self.schema:
            psql(f'DROP SCHEMA IF EXISTS {self.schema} CASCADE')
            self.schema = None

    def close(self):
        self.drop()
        shutil.rmtree(self.home, ignore_errors=True)


class TokenConnection(http.client.HTTPConnection):
    """A keep-alive connection that sends the server's token with every request."""

    def __init__(self, host, port, token, **kwargs):
        super().__init__(host, port, **kwargs)
        self.token = token

    def request(self, method, url, body=None, headers=None, **kwargs):
        headers = dict(headers or {})
        headers['Authorization'] = f'Bearer {self.token}'
        super().request(method, url, body=body, headers=headers, **kwargs)


class Server:
    def __init__(self, binary, backend, db_args, extra=()):
        env = dict(os.environ, OXFLOW_HOME=backend.home)
        env.pop('OXFLOW_AUTH', None)
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([binary, 'up', '--addr', '127.0.0.1:0', *db_args, *extra],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.addr = None
        line_seen = threading.Event()
        self.stderr_tail = []

        def reader():
            for line in self.proc.stderr:
                self.stderr_tail = (self.stderr_tail + [line])[-50:]
                if self.addr is None and 'oxflow is serving on http://' in line:
                    self.addr = line.split('http://', 1)[1].split()[0]
                    line_seen.set()
        threading.Thread(target=reader, daemon=True).start()
        if not line_seen.wait(30):
            self.stop()
            raise RuntimeError('server did not start: ' + ''.join(self.stderr_tail))
        self.t_bound = time.perf_counter()
        host, port = self.addr.rsplit(':', 1)
        self.host, self.port = host, int(port)
        # Written before the server says it serves.
        with open(os.path.join(backend.home, 'token')) as f:
            self.token = f.read().strip()
        while True:
            try:
                c = TokenConnection(self.host, self.port, self.token, timeout=5)
                c.request('GET', API + '/healthz')
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() - self.t0 > 30:
                raise RuntimeError('healthz never answered 200')
            time.sleep(0.001)
        self.t_ready = time.perf_counter()

    @property
    def startup_s(self):
        return self.t_ready - self.t0

    def conn(self):
        return TokenConnection(self.host, self.port, self.token, timeout=60)

    def rss_mib(self):
        with open(f'/proc/{self.proc.pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024
        return None

    def cpu_ticks(self):
        with open(f'/proc/{self.proc.pid}/stat') as f:
            parts = f.read().rsplit(')', 1)[1].split()
        return int(parts[11]) + int(parts[12])  # utime + stime

    def wait_idle(self, timeout, window=1.0, max_frac=0.02):
        """Waits until the server uses < max_frac of a CPU over `window` seconds."""
        hz = os.sysconf('SC_CLK_TCK')
        t_end = time.perf_counter() + timeout
        while time.perf_counter() < t_end:
            a = self.cpu_ticks()
            time.sleep(window)
            if (self.cpu_ticks() - a) / hz / window < max_frac:
                return True
        return False

    def stop(self, kill=False):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def request(conn, method, path, body=None):
    headers = {'Content-Type': 'application/json'} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f'{method} {path}: {r.status} {data[:300]!r}')
    return data


def create_runs(server, spec, n, clients):
    """n POSTs over `clients` keep-alive connections; returns (seconds, run ids, latencies)."""
    body = json.dumps({'display_name': 'bench', 'pipeline_spec': spec,
                       'runtime_config': {'parameters': {}}}).encode()
    counter = iter(range(n))
    lock = threading.Lock()
    ids, lats, errors = [], [], []

    def worker():
        c = server.conn()
        mine, my_lats = [], []
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                t = time.perf_counter()
                data = request(c, 'POST', API + '/runs', body)
                my_lats.append(time.perf_counter() - t)
                mine.append(json.loads(data)['run_id'])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        with lock:
            ids.extend(mine)
            lats.extend(my_lats)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f'{len(errors)} client errors, first: {errors[0]}')
    return dt, ids, lats, len(body)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def lat_stats(xs):
    ms = [x * 1000 for x in xs]
    return {'n': len(ms), 'p50_ms': pct(ms, 50), 'p99_ms': pct(ms, 99), 'max_ms': max(ms),
            'mean_ms': statistics.fmean(ms)}


def list_latency(server, requests):
    """`requests` first-page GETs, then `requests` GETs walking the pages via page_token."""
    c = server.conn()
    q = API + '/runs?page_size=50&sort_by=created_at%20desc'
    for _ in range(20):  # warm-up
        request(c, 'GET', q)
    first = []
    for _ in range(requests):
        t = time.perf_counter()
        data = request(c, 'GET', q)
        first.append(time.perf_counter() - t)
    page = json.loads(data)
    assert len(page.get('runs', [])) == 50, len(page.get('runs', []))
    total = page.get('total_size')
    deep, pages, token = [], 0, ''
    while len(deep) < requests:
        path = q + (f'&page_token={token}' if token else '')
        t = time.perf_counter()
        data = request(c, 'GET', path)
        deep.append(time.perf_counter() - t)
        page = json.loads(data)
        pages += 1
        token = page.get('next_page_token') or ''
        if not token:
            token = ''  # wrap around to the first page
    return {'first_page': lat_stats(first), 'walk_pages': lat_stats(deep),
            'total_size': total, 'pages_walked': pages}


def bench_backend(kind, args, noop_spec, seq10_spec):
    be = Backend(kind)
    res = {'backend': kind}
    try:
        # 1. Startup: fresh empty store, one warm-up start, then --starts timed ones.
        db = be.fresh()
        Server(args.oxflow, be, db).stop()
        starts, bound = [], []
        for _ in range(args.starts):
            s = Server(args.oxflow, be, db)
            starts.append(s.startup_s)
            bound.append(s.t_bound - s.t0)
            s.stop()
        res['startup_s'] = {'median': statistics.median(starts), 'samples': starts,
                            'to_serving_line_median': statistics.median(bound)}
        log(kind, 'startup median', f'{statistics.median(starts) * 1000:.1f} ms')

        # A. noop pipeline, default controller: create N, wait for execution, list, RSS.
        db = be.fresh()
        s = Server(args.oxflow, be, db)
        try:
            s.wait_idle(10)
            res['rss_idle_start_mib'] = s.rss_mib()
            dt, ids, lats, size = create_runs(s, noop_spec, args.runs, args.clients)
            res['create_A'] = {'pipeline': 'one container task (`true`), caching off',
                               'max_runs': 8, 'runs': len(ids), 'seconds': dt,
                               'runs_per_s': len(ids) / dt, 'body_bytes': size,
                               'latency': lat_stats(lats), 'rss_after_create_mib': s.rss_mib()}
            log(kind, 'A: created', len(ids), f'in {dt:.1f} s = {len(ids) / dt:.0f} runs/s')
            t = time.perf_counter()
            idle = s.wait_idle(args.drain_timeout, window=2.0)
            res['create_A']['drain_s'] = time.perf_counter() - t
            res['create_A']['drained'] = idle
            c = s.conn()
            last = json.loads(request(c, 'GET', f'{API}/runs/{ids[-1]}'))
            res['create_A']['last_run_state'] = last.get('state')
            log(kind, 'A: drained' if idle else 'A: NOT drained',
                f'after {res["create_A"]["drain_s"]:.1f} s; last run', last.get('state'))
            res['rss_idle_after_runs_mib'] = s.rss_mib()
            res['list'] = list_latency(s, args.list_requests)
            res['rss_after_list_mib'] = s.rss_mib()
            log(kind, 'list first page p99', f'{res["list"]["first_page"]["p99_ms"]:.2f} ms')
        finally:
            s.stop()

        # B. seq10, --max-runs 1: creation with little execution competing.
        db = be.fresh()
        s = Server(args.oxflow, be, db, ['--max-runs', '1'])
        try:
            s.wait_idle(10)
            dt, ids, lats, size = create_runs(s, seq10_spec, args.runs, args.clients)
            res['create_B'] = {'pipeline': 'seq10 (10 Python tasks)', 'max_runs': 1,
                               'runs': len(ids), 'seconds': dt, 'runs_per_s': len(ids) / dt,
                               'body_bytes': size, 'latency': lat_stats(lats),
                               'rss_after_create_mib': s.rss_mib()}
            log(kind, 'B: created', len(ids), f'in {dt:.1f} s = {len(ids) / dt:.0f} runs/s')
        finally:
            s.stop(kill=True)  # the queue would take hours to execute
    finally:
        be.close()
    return res


def table(results):
    cols = [r['backend'] for r in results]
    head = '| measurement | goal (issue #3) | ' + ' | '.join(
        'SQLite' if c == 'sqlite' else 'PostgreSQL' for c in cols) + ' |'
    rows = [head, '|---|---|' + '---|' * len(cols)]

    def row(name, goal, f):
        vals = []
        for r in results:
            try:
                vals.append(f(r))
            except (KeyError, TypeError):
                vals.append('—')
        rows.append(f'| {name} | {goal} | ' + ' | '.join(vals) + ' |')

    row('`oxflow up` to first healthz 200, median', '< 300 ms',
        lambda r: f"{r['startup_s']['median'] * 1000:.0f} ms")
    row('idle RSS after start', '< 50 MiB', lambda r: f"{r['rss_idle_start_mib']:.1f} MiB")
    row('idle RSS with N runs stored (after execution)', '< 50 MiB',
        lambda r: f"{r['rss_idle_after_runs_mib']:.1f} MiB")
    row('create runs, 1-task pipeline, executing (max-runs 8)', '≥ 500 runs/s',
        lambda r: f"{r['create_A']['runs_per_s']:.0f} runs/s (p99 {r['create_A']['latency']['p99_ms']:.0f} ms)")
    row('create runs, seq10, max-runs 1', '≥ 500 runs/s',
        lambda r: f"{r['create_B']['runs_per_s']:.0f} runs/s (p99 {r['create_B']['latency']['p99_ms']:.0f} ms)")
    row('list_runs first page (50, created_at desc) p50 / p99 / max', 'p99 < 20 ms',
        lambda r: '{p50_ms:.2f} / {p99_ms:.2f} / {max_ms:.2f} ms'.format(**r['list']['first_page']))
    row('list_runs walking pages via page_token p50 / p99 / max', 'p99 < 20 ms',
        lambda r: '{p50_ms:.2f} / {p99_ms:.2f} / {max_ms:.2f} ms'.format(**r['list']['walk_pages']))
    row('execution drain after creation (1-task runs)', '—',
        lambda r: f"{r['create_A']['drain_s']:.0f} s" + ('' if r['create_A']['drained'] else ' (not drained)'))
    return '\n'.join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--oxflow', required=True)
    ap.add_argument('--pipelines', required=True, help='dir with seq10.yaml (tests/pipelines/build.py)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--runs', type=int, default=10000)
    ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--starts', type=int, default=10)
    ap.add_argument('--list-requests', type=int, default=500,
                    help='GETs of the first page, and as many walking the pages')
    ap.add_argument('--drain-timeout', type=float, default=600)
    ap.add_argument('--only', choices=['sqlite', 'postgres'])
    args = ap.parse_args()
    noop_spec, seq10_spec = compile_specs(args.pipelines)
    results = []
    for kind in ['sqlite', 'postgres']:
        if args.only and kind != args.only:
            continue
        results.append(bench_backend(kind, args, noop_spec, seq10_spec))
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    path = os.path.join(args.out, f'server-{stamp}.json')
    with open(path, 'w') as f:
        json.dump({'args': vars(args), 'cpus': os.cpu_count(), 'results': results}, f, indent=2)
    print(table(results))
    print(f'\nraw results: {path}')


if __name__ == '__main__':
    main()
