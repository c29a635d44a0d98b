"""Oxflow's pipelines engine against its anchor, kfp.local (issue #2).

Usage (bench/pipelines/run.sh runs it with the right arguments):

    python anchor.py --oxflow target/release/oxflow --pipelines DIR [--runs N] [--out DIR]
                     [--only seq10,fanout20]

In ONE process, on the same machine and in the same run, it times each
pipeline package compiled by the real kfp SDK:

* kfp.local: `kfp.local.init(runner=SubprocessRunner(use_venv=False))`, the
  compiled YAML loaded with `kfp.components.load_component_from_file` and
  called; wall time around the call, stdout captured, kfp imported before
  timing starts (as the issue's anchor was first measured).
* oxflow: `oxflow run PIPELINE.yaml --no-cache -o json`, wall time of the CLI
  process, with a persistent OXFLOW_HOME (bench/out/oxflow-home: the SQLite
  store and any cached Python envs already exist; one untimed run per
  pipeline warms it) and this venv first on PATH.
* oxflow cold: the first run in a fresh, empty data directory, reported
  separately.

Samples are interleaved (kfp.local, oxflow, kfp.local, oxflow, ...) so that a
burst of load on the host hits both sides. It prints a markdown table with
medians, every sample and the ratio, and writes the raw results to
OUT/anchor.json (and a timestamped copy).
"""

import argparse
import builtins
import contextlib
import datetime
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

warnings.filterwarnings('ignore')

# What each anchor pipeline must return, so that a fast wrong answer never counts.
EXPECTED = {'seq10': 10, 'fanout20': sum(i * i for i in range(20))}
GOAL_RATIO = 30.0
# kfp.local medians measured before on another 2-vCPU host under load (shared reference notes,
# kfp-pipelines.md §3.1). Shown for context only; the goal is judged against this run's kfp.local.
REFERENCE_KFP_LOCAL_S = {'seq10': 16.36, 'fanout20': 34.30}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--oxflow', required=True, help='the oxflow binary (a release build)')
    p.add_argument('--pipelines', required=True, help='directory with the compiled test pipelines')
    p.add_argument('--runs', type=int, default=int(os.environ.get('OXFLOW_BENCH_RUNS', '3')),
                   help='samples per pipeline and side (default 3, or $OXFLOW_BENCH_RUNS)')
    p.add_argument('--out', default='bench/out', help='where raw results go (default bench/out)')
    p.add_argument('--only', default='seq10,fanout20', help='comma-separated pipelines (default seq10,fanout20)')
    return p.parse_args()


def venv_path():
    """PATH with this interpreter's bin directory first (not resolved: a venv's python is a symlink)."""
    bindir = os.path.dirname(os.path.abspath(sys.executable))
    return bindir + os.pathsep + os.environ.get('PATH', '')


def git_describe(repo):
    try:
        rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=repo, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain'], cwd=repo, capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + ('+dirty' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


class KfpLocal:
    """kfp.local with the SubprocessRunner, set up once (kfp imported before any timing)."""

    def __init__(self, root):
        from kfp import components, local
        self.components = components
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, raise_on_error=True)

    def run(self, yaml_path):
        comp = self.components.load_component_from_file(yaml_path)
        buf = io.StringIO()
        error = None
        output = None
        original_print = builtins.print
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(buf):
                task = comp()
            output = task.output
        except Exception as e:  # kfp.local raises RuntimeError when a task fails
            error = strip_ansi(f'{type(e).__name__}: {e}')
        wall = time.perf_counter() - t0
        # kfp.local indents output by swapping builtins.print from its loop
        # threads; racing threads can leave the indenting one installed.
        builtins.print = original_print
        return {'wall_s': round(wall, 3), 'output': output, 'error': error,
                'stdout_tail': buf.getvalue()[-2000:] if error else None}


def oxflow_run(binary, yaml_path, home, path):
    env = dict(os.environ, OXFLOW_HOME=home, PATH=path)
    env.pop('OXFLOW_LOG', None)
    cmd = [binary, 'run', yaml_path, '--no-cache', '-o', 'json']
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    sample = {'wall_s': round(wall, 3), 'rc': proc.returncode, 'output': None, 'error': None}
    try:
        doc = json.loads(proc.stdout)
        sample['state'] = doc.get('state')
        outs = doc.get('outputs') or {}
        sample['output'] = outs.get('Output') if 'Output' in outs else outs
        sample['engine_ms'] = doc.get('duration_ms')
        sample['tasks'] = len(doc.get('tasks') or [])
        if doc.get('error'):
            sample['error'] = doc['error']
    except (ValueError, AttributeError):
        sample['error'] = f'exit {proc.returncode}; no JSON on stdout'
    if proc.returncode != 0 and not sample['error']:
        sample['error'] = f'exit {proc.returncode}'
    if sample['error']:
        sample['stderr_tail'] = proc.stderr[-2000:]
    return sample


def strip_ansi(text):
    return re.sub(r'\x1b\[[0-9;]*m', '', text)


def same_number(a, b):
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def check(sample, name, who):
    """Marks a sample that failed or returned the wrong answer."""
    ok = sample.get('error') is None and same_number(sample.get('output'), EXPECTED[name])
    sample['ok'] = ok
    status = 'ok' if ok else f"FAILED ({sample.get('error') or 'output ' + repr(sample.get('output'))})"
    print(f'  {who:<10} {name:<9} {sample["wall_s"]:8.3f} s  {status}', file=sys.stderr, flush=True)
    return sample


def median(samples):
    return statistics.median(s['wall_s'] for s in samples) if samples else float('nan')


def fmt_samples(samples):
    return ', '.join(f"{s['wall_s']:.2f}" + ('' if s['ok'] else '✗') for s in samples)


def main():
    args = parse_args()
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    binary = os.path.abspath(args.oxflow)
    names = [n for n in args.only.split(',') if n]
    for n in names:
        if n not in EXPECTED:
            sys.exit(f'unknown anchor pipeline {n!r}; known: {", ".join(EXPECTED)}')
    yamls = {n: os.path.abspath(os.path.join(args.pipelines, f'{n}.yaml')) for n in names}
    path = venv_path()

    import kfp
    host = {
        'nproc': os.cpu_count(),
        'cpu': platform.processor() or platform.machine(),
        'python': sys.version.split()[0],
        'kfp': kfp.__version__,
        'loadavg_start': os.getloadavg(),
    }
    print(f'host: {host["nproc"]} CPUs, Python {host["python"]}, kfp {host["kfp"]}, '
          f'load average {host["loadavg_start"][0]:.2f}', file=sys.stderr, flush=True)

    scratch = tempfile.mkdtemp(prefix='oxflow-anchor-')
    try:
        # Cold: the first run in an empty data directory (creates the store, probes Python).
        print('oxflow, cold data directory:', file=sys.stderr, flush=True)
        cold = {}
        for n in names:
            home = os.path.join(scratch, f'cold-{n}')
            cold[n] = check(oxflow_run(binary, yamls[n], home, path), n, 'oxflow cold')

        # Warm: a persistent data directory, warmed by one untimed run per pipeline.
        warm_home = os.path.join(out, 'oxflow-home')
        os.makedirs(warm_home, exist_ok=True)
        print('oxflow, warming the persistent data directory (untimed):', file=sys.stderr, flush=True)
        for n in names:
            check(oxflow_run(binary, yamls[n], warm_home, path), n, 'warm-up')

        kfp_local = KfpLocal(os.path.join(scratch, 'kfp-local-root'))
        samples = {n: {'kfp_local': [], 'oxflow': []} for n in names}
        for i in range(args.runs):
            print(f'round {i + 1}/{args.runs}:', file=sys.stderr, flush=True)
            for n in names:
                samples[n]['kfp_local'].append(check(kfp_local.run(yamls[n]), n, 'kfp.local'))
                samples[n]['oxflow'].append(check(oxflow_run(binary, yamls[n], warm_home, path), n, 'oxflow'))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    host['loadavg_end'] = os.getloadavg()

    rows = []
    for n in names:
        k, o = samples[n]['kfp_local'], samples[n]['oxflow']
        km, om = median(k), median(o)
        rows.append({
            'pipeline': n,
            'kfp_local_median_s': km,
            'oxflow_median_s': om,
            'ratio': km / om if om > 0 else float('nan'),
            'oxflow_cold_s': cold[n]['wall_s'],
            'kfp_local_ok': all(s['ok'] for s in k),
            'oxflow_ok': all(s['ok'] for s in o) and cold[n]['ok'],
        })

    lines = [
        f'### oxflow run vs kfp.local ({host["nproc"]} CPUs, {args.runs} runs each, medians; '
        f'load average {host["loadavg_start"][0]:.2f} → {host["loadavg_end"][0]:.2f})',
        '',
        '| pipeline | kfp.local median (s) | oxflow median (s) | ratio | goal ≥30× | kfp.local samples (s) '
        '| oxflow samples (s) | oxflow cold, first run (s) | earlier anchor (s) → ratio |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        n = r['pipeline']
        lines.append(
            f"| {n} | {r['kfp_local_median_s']:.2f} | {r['oxflow_median_s']:.3f} | **{r['ratio']:.1f}×** | "
            f"{'met' if r['ratio'] >= GOAL_RATIO else 'MISSED'} | {fmt_samples(samples[n]['kfp_local'])} | "
            f"{fmt_samples(samples[n]['oxflow'])} | {cold[n]['wall_s']:.3f}"
            + ('' if cold[n]['ok'] else '✗')
            + f" | {REFERENCE_KFP_LOCAL_S[n]:.2f} → {REFERENCE_KFP_LOCAL_S[n] / r['oxflow_median_s']:.0f}× |")
    failures = [(n, who, s.get('error') or f"output {s.get('output')!r}")
                for n in names for who in ('kfp_local', 'oxflow') for s in samples[n][who] if not s['ok']]
    failures += [(n, 'oxflow cold', cold[n].get('error')) for n in names if not cold[n]['ok']]
    if failures:
        lines.append('')
        lines.append('✗ = the run failed or returned a wrong answer (its time still counts in the median):')
        seen = set()
        for n, who, err in failures:
            first = (err or '').strip().splitlines()[-1:] or ['']
            key = (n, who, first[0])
            if key not in seen:
                seen.add(key)
                lines.append(f'- {n}, {who}: {first[0][:300]}')
    table = '\n'.join(lines)
    print(table)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    result = {
        'bench': 'pipelines-anchor',
        'date_utc': stamp,
        'command': 'bench/pipelines/run.sh',
        'git': git_describe(repo),
        'oxflow': binary,
        'runs': args.runs,
        'host': host,
        'rows': rows,
        'cold': cold,
        'samples': samples,
        'table_markdown': table,
    }
    for name in ('anchor.json', f'anchor-{stamp}.json'):
        with open(os.path.join(out, name), 'w') as f:
            json.dump(result, f, indent=1, default=str)
    print(f'\nraw results: {os.path.join(out, "anchor.json")}', file=sys.stderr)
    # A kfp.local failure is the anchor's problem (reported above); an oxflow failure is ours.
    return 0 if all(r['oxflow_ok'] for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
