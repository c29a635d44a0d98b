"""Compiles Oxflow's end-to-end test pipelines with the real kfp SDK.

Usage: python build.py OUT_DIR
Each pipeline is written to OUT_DIR/<name>.yaml. The Rust end-to-end tests
(crates/oxflow/tests/) run them with the oxflow binary and check the results.
"""
import os
import sys
from typing import Dict, List, NamedTuple, Optional

from kfp import compiler, dsl, kubernetes
from kfp.dsl import (Artifact, ClassificationMetrics, Dataset, HTML, Input, InputPath, Markdown,
                     Metrics, Model, Output, OutputPath, PipelineTaskFinalStatus)


# --- parameters of every type -------------------------------------------------------------

@dsl.component
def add(a: int, b: float) -> float:
    return a + b


@dsl.component
def describe(name: str, flag: bool, items: List[int], cfg: Dict[str, int], total: float) -> str:
    # Integers must stay integers, also inside lists and dicts.
    assert all(isinstance(i, int) for i in items), items
    assert all(isinstance(v, int) for v in cfg.values()), cfg
    return f"{name}:{flag}:{sum(items)}:{sorted(cfg.items())}:{total}"


@dsl.component
def stats(items: List[int]) -> NamedTuple('Outputs', [('count', int), ('mean', float), ('labels', List[str])]):
    from collections import namedtuple
    out = namedtuple('Outputs', ['count', 'mean', 'labels'])
    return out(len(items), sum(items) / len(items), [f"x{i}" for i in items])


@dsl.component
def shout(msg: str, count: int, mean: float, labels: list) -> str:
    assert isinstance(count, int)
    return f"{msg.upper()} n={count} mean={mean} labels={labels}"


@dsl.pipeline(name='params')
def params(a: int = 3, b: float = 0.5, name: str = 'demo', flag: bool = True,
           items: List[int] = [1, 2, 3], cfg: Dict[str, int] = {'k': 1}) -> str:
    t1 = add(a=a, b=b)
    t2 = describe(name=name, flag=flag, items=items, cfg=cfg, total=t1.output)
    t3 = stats(items=items)
    t4 = shout(msg=t2.output, count=t3.outputs['count'], mean=t3.outputs['mean'], labels=t3.outputs['labels'])
    return t4.output


# --- artifacts ----------------------------------------------------------------------------

@dsl.component
def make_data(n: int, data: Output[Dataset]):
    with open(data.path, 'w') as f:
        f.write('x,y\n')
        for i in range(n):
            x = (i * 37 % 100) / 100
            f.write(f'{x},{int(x > 0.5)}\n')
    data.metadata['rows'] = n


@dsl.component
def train(data: Input[Dataset], threshold: float, model: Output[Model], metrics: Output[Metrics],
          cm: Output[ClassificationMetrics], report: Output[Markdown], page: Output[HTML]):
    import json
    rows = [l.strip().split(',') for l in open(data.path).readlines()[1:]]
    xs = [float(r[0]) for r in rows]
    ys = [int(r[1]) for r in rows]
    preds = [int(x > threshold) for x in xs]
    acc = sum(int(p == y) for p, y in zip(preds, ys)) / len(ys)
    with open(model.path, 'w') as f:
        json.dump({'threshold': threshold}, f)
    model.metadata['framework'] = 'threshold'
    metrics.log_metric('accuracy', acc)
    metrics.log_metric('n', len(ys))
    tp = sum(1 for p, y in zip(preds, ys) if p == 1 and y == 1)
    fp = sum(1 for p, y in zip(preds, ys) if p == 1 and y == 0)
    fn = sum(1 for p, y in zip(preds, ys) if p == 0 and y == 1)
    tn = sum(1 for p, y in zip(preds, ys) if p == 0 and y == 0)
    cm.log_confusion_matrix(['neg', 'pos'], [[tn, fp], [fn, tp]])
    cm.log_roc_curve(fpr=[0.0, 0.5, 1.0], tpr=[0.0, 0.8, 1.0], threshold=[1.0, 0.5, 0.0])
    with open(report.path, 'w') as f:
        f.write(f'# Report\n\naccuracy **{acc:.3f}**\n')
    with open(page.path, 'w') as f:
        f.write(f'<h1>accuracy {acc:.3f}</h1>')


@dsl.component
def evaluate(model: Input[Model], data_path: InputPath('Dataset'), summary_path: OutputPath(str)) -> float:
    import json
    thr = json.load(open(model.path))['threshold']
    n = len(open(data_path).readlines()) - 1
    with open(summary_path, 'w') as f:
        f.write(f'thr={thr} n={n} framework={model.metadata["framework"]}')
    return thr


@dsl.component
def show(a: Input[Artifact]) -> str:
    return open(a.path).read().strip() + '|' + a.metadata.get('source', '')


@dsl.pipeline(name='artifacts')
def artifacts(n: int = 20, threshold: float = 0.5, import_uri: str = 'import_me.txt') -> str:
    d = make_data(n=n)
    t = train(data=d.outputs['data'], threshold=threshold)
    evaluate(model=t.outputs['model'], data_path=d.outputs['data'])
    imp = dsl.importer(artifact_uri=import_uri, artifact_class=dsl.Artifact, reimport=False,
                       metadata={'source': 'external'})
    return show(a=imp.output).output


# --- container components and placeholders ------------------------------------------------

@dsl.container_component
def write_lines(n: int, prefix: str, out: Output[Dataset]):
    return dsl.ContainerSpec(
        image='python:3.11-slim',
        command=['sh', '-c'],
        args=['mkdir -p "$(dirname "$2")" && for i in $(seq 1 "$0"); do echo "$1-$i"; done > "$2"',
              n, prefix, out.path],
    )


@dsl.container_component
def count_lines(inp: Input[Dataset], count: OutputPath(int), note: OutputPath(str), verbose: bool = False,
                tag: Optional[str] = None):
    return dsl.ContainerSpec(
        image='python:3.11-slim',
        command=['python3', '-c',
                 'import sys,os; n=len(open(sys.argv[1]).readlines()); '
                 'open(sys.argv[2],"w").write(str(n)); open(sys.argv[3],"w").write(" ".join(sys.argv[4:]))'],
        args=[inp.path, count, note,
              dsl.IfPresentPlaceholder(input_name='verbose', then=['--verbose', verbose], else_=['--quiet']),
              dsl.IfPresentPlaceholder(input_name='tag', then=['--tag', tag]),
              dsl.ConcatPlaceholder(['uri=', inp.uri]),
              dsl.PIPELINE_TASK_NAME_PLACEHOLDER, dsl.PIPELINE_JOB_ID_PLACEHOLDER],
    )


@dsl.container_component
def write_executor_output(executor_output: str = dsl.PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER):
    return dsl.ContainerSpec(
        image='alpine',
        command=['sh', '-c', 'mkdir -p "$(dirname "$0")" && echo \'{"parameterValues": {}}\' > "$0"'],
        args=[executor_output],
    )


@dsl.component
def job_info(job: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER, rid: str = dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER,
             jid: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER, task: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
             tid: str = dsl.PIPELINE_TASK_ID_PLACEHOLDER, created: str = dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
             root: str = dsl.PIPELINE_ROOT_PLACEHOLDER) -> str:
    return '|'.join([job, rid, jid, task, tid, created, root])


@dsl.pipeline(name='containers')
def containers(n: int = 5, prefix: str = 'line') -> int:
    w = write_lines(n=n, prefix=prefix)
    c = count_lines(inp=w.outputs['out'], verbose=True)
    write_executor_output().after(c)
    job_info().set_caching_options(False)
    return c.outputs['count']


# --- control flow -------------------------------------------------------------------------

@dsl.component
def flip(seed: int) -> str:
    return ['heads', 'tails', 'edge'][seed % 3]


@dsl.component
def score(x: int) -> int:
    return x * 7 % 100


@dsl.component
def say(msg: str) -> str:
    print(msg)
    return msg


@dsl.pipeline(name='conditions')
def conditions(seed: int = 1, x: int = 9) -> str:
    f = flip(seed=seed)
    with dsl.If(f.output == 'heads', name='is-heads'):
        a = say(msg='heads!')
    with dsl.Elif(f.output == 'tails'):
        b = say(msg='tails!')
    with dsl.Else():
        c = say(msg='edge?!')
    s = score(x=x)
    with dsl.If(s.output > 50):
        say(msg='high score')
    with dsl.If(s.output <= 50):
        say(msg='low score')
    return dsl.OneOf(a.output, b.output, c.output)


@dsl.component
def make_list(n: int) -> List[int]:
    return list(range(n))


@dsl.component
def square(x: int) -> int:
    assert isinstance(x, int), x
    return x * x


@dsl.component
def total(xs: List[int]) -> int:
    return sum(xs)


@dsl.component
def make_shard(name: str, shard: Output[Dataset]):
    open(shard.path, 'w').write(name)


@dsl.component
def merge(shards: Input[List[Dataset]]) -> str:
    return '+'.join(open(s.path).read() for s in shards)


@dsl.component
def pair(a: str, b: str) -> str:
    return f'{a}{b}'


@dsl.component
def join_strs(xs: List[str]) -> str:
    return ','.join(xs)


@dsl.pipeline(name='loops')
def loops(n: int = 4, names: List[str] = ['a', 'b', 'c']) -> int:
    with dsl.ParallelFor(items=[{'a': 'x', 'b': 1}, {'a': 'y', 'b': 2}], parallelism=1) as item:
        p = pair(a=item.a, b=item.b)
    join_strs(xs=dsl.Collected(p.output))
    with dsl.ParallelFor(items=names) as nm:
        sh = make_shard(name=nm)
    merge(shards=dsl.Collected(sh.outputs['shard']))
    lst = make_list(n=n)
    with dsl.ParallelFor(items=lst.output, parallelism=2) as x:
        sq = square(x=x)
    return total(xs=dsl.Collected(sq.output)).output


@dsl.component
def notify(status: PipelineTaskFinalStatus, who: str) -> str:
    print('exit task', who, status.state, status.pipeline_task_name, status.error_code, status.error_message)
    return f'{who}:{status.state}'


@dsl.component
def work(fail: bool) -> str:
    if fail:
        raise RuntimeError('boom')
    return 'ok'


@dsl.pipeline(name='exit-handler')
def exit_handler(fail: bool = False, who: str = 'ops'):
    exit_task = notify(who=who)
    with dsl.ExitHandler(exit_task, name='guarded'):
        w = work(fail=fail)
        work(fail=False).after(w)


@dsl.component
def produce(x: int, out: Output[Dataset]) -> int:
    open(out.path, 'w').write(str(x))
    return x + 1


@dsl.component
def consume(ds: Input[Dataset], y: int) -> str:
    return open(ds.path).read() + f'/{y}'


@dsl.pipeline(name='inner')
def inner(x: int) -> int:
    return produce(x=x).outputs['Output']


@dsl.pipeline(name='inner-artifact')
def inner_art(x: int) -> Dataset:
    return produce(x=x).outputs['out']


@dsl.pipeline(name='nested')
def nested(x: int = 10) -> str:
    i1 = inner(x=x)
    i2 = inner_art(x=i1.output)
    return consume(ds=i2.output, y=i1.output).output


# --- task configuration -------------------------------------------------------------------

@dsl.component
def env_echo(key: str) -> str:
    import os
    return os.environ.get(key, '<unset>')


@dsl.component(packages_to_install=['six==1.16.0'])
def with_pkgs(x: int) -> str:
    import six
    import sys
    return f'{six.__version__}:{sys.prefix}'


@dsl.component
def flaky(marker_dir: str) -> int:
    """Fails twice, then succeeds: the attempt count lives in a file."""
    import os
    path = os.path.join(marker_dir, 'attempts')
    n = int(open(path).read()) + 1 if os.path.exists(path) else 1
    open(path, 'w').write(str(n))
    if n < 3:
        raise RuntimeError(f'attempt {n} fails')
    return n


@dsl.component
def stamp(marker_dir: str, tag: str) -> str:
    """Counts its real executions, so cache hits are visible."""
    import os
    path = os.path.join(marker_dir, f'runs-{tag}')
    n = int(open(path).read()) + 1 if os.path.exists(path) else 1
    open(path, 'w').write(str(n))
    return tag


@dsl.pipeline(name='task-config')
def task_config(marker_dir: str, key: str = 'MY_VAR') -> str:
    e = env_echo(key=key)
    e.set_env_variable('MY_VAR', 'hello')
    e.set_display_name('print env')
    w = with_pkgs(x=1)
    w.set_cpu_request('500m').set_cpu_limit('1').set_memory_request('256Mi').set_memory_limit('2Gi')
    f = flaky(marker_dir=marker_dir)
    f.set_retry(num_retries=3, backoff_duration='0s', backoff_factor=2.0, backoff_max_duration='1s')
    f.set_caching_options(False)
    cached = stamp(marker_dir=marker_dir, tag='cached')
    uncached = stamp(marker_dir=marker_dir, tag='uncached')
    uncached.set_caching_options(False)
    return e.output


@dsl.component
def sleeper(marker_dir: str, name: str) -> str:
    """Records each start, sleeps as long as the file sleep-<name> says (0 if absent), fails if fail-<name> exists."""
    import os
    import time
    starts = os.path.join(marker_dir, f'started-{name}')
    n = int(open(starts).read()) + 1 if os.path.exists(starts) else 1
    open(starts, 'w').write(str(n))
    delay = os.path.join(marker_dir, f'sleep-{name}')
    time.sleep(float(open(delay).read()) if os.path.exists(delay) else 0.0)
    if os.path.exists(os.path.join(marker_dir, f'fail-{name}')):
        raise RuntimeError(f'{name} told to fail')
    return name


@dsl.pipeline(name='slow')
def slow(marker_dir: str) -> str:
    a = sleeper(marker_dir=marker_dir, name='first')
    b = sleeper(marker_dir=marker_dir, name='second').after(a)
    c = sleeper(marker_dir=marker_dir, name='third').after(b)
    for t in (a, b, c):
        t.set_caching_options(False)
    return c.output


# --- kfp-kubernetes platform spec ---------------------------------------------------------

@dsl.component
def use_secret(path: str) -> str:
    import os
    files = sorted(os.listdir('/etc/oxflow-test-tls')) if os.path.isdir('/etc/oxflow-test-tls') else []
    crt = open('/etc/oxflow-test-tls/crt').read() if 'crt' in files else ''
    open(os.path.join(path, 'written'), 'w').write('data')
    return f"{os.environ.get('DB_PASSWORD', '')}|{files}|{crt}|{os.environ.get('POD_NAME', '')[:0]}"


@dsl.component
def read_volume(path: str) -> str:
    import os
    return open(os.path.join(path, 'written')).read()


@dsl.pipeline(name='k8s-platform')
def k8s_platform(pvc_size: str = '1Gi') -> str:
    pvc = kubernetes.CreatePVC(pvc_name_suffix='-scratch', access_modes=['ReadWriteOnce'], size=pvc_size,
                               storage_class_name='standard')
    t = use_secret(path='/oxflow-test-data')
    kubernetes.use_secret_as_env(t, secret_name='db-creds', secret_key_to_env={'password': 'DB_PASSWORD'})
    kubernetes.use_secret_as_volume(t, secret_name='tls', mount_path='/etc/oxflow-test-tls')
    kubernetes.mount_pvc(t, pvc_name=pvc.outputs['name'], mount_path='/oxflow-test-data')
    kubernetes.add_node_selector(t, label_key='cloud.google.com/gke-accelerator', label_value='nvidia-tesla-t4')
    kubernetes.add_toleration(t, key='nvidia.com/gpu', operator='Exists', effect='NoSchedule')
    kubernetes.add_pod_label(t, 'team', 'ml')
    kubernetes.use_field_path_as_env(t, env_name='POD_NAME', field_path='metadata.name')
    kubernetes.set_timeout(t, 600)
    r = read_volume(path='/oxflow-test-data').after(t)
    kubernetes.mount_pvc(r, pvc_name=pvc.outputs['name'], mount_path='/oxflow-test-data')
    kubernetes.DeletePVC(pvc_name=pvc.outputs['name']).after(r)
    return t.output



# --- concurrency and limits ---------------------------------------------------------------

@dsl.component
def rendezvous(marker_dir: str, me: str, other: str) -> str:
    """Succeeds only if `other` runs at the same time (independent tasks run in parallel)."""
    import os
    import time
    open(os.path.join(marker_dir, f'here-{me}'), 'w').write('1')
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(marker_dir, f'here-{other}')):
        if time.time() > deadline:
            raise RuntimeError(f'{other} never ran alongside {me}')
        time.sleep(0.01)
    return me


@dsl.component
def one_at_a_time(marker_dir: str, i: int) -> int:
    """Returns how many iterations were running when it started."""
    import os
    import time
    mine = os.path.join(marker_dir, f'running-{i}')
    open(mine, 'w').write('1')
    now = len([f for f in os.listdir(marker_dir) if f.startswith('running-')])
    time.sleep(0.1)
    os.remove(mine)
    return now


@dsl.component
def max_of(xs: List[int]) -> int:
    return max(xs)


@dsl.pipeline(name='concurrency')
def concurrency(marker_dir: str) -> int:
    a = rendezvous(marker_dir=marker_dir, me='a', other='b')
    b = rendezvous(marker_dir=marker_dir, me='b', other='a')
    with dsl.ParallelFor(items=[0, 1, 2, 3], parallelism=1) as i:
        o = one_at_a_time(marker_dir=marker_dir, i=i)
        o.set_caching_options(False)
    m = max_of(xs=dsl.Collected(o.output))
    for t in (a, b, m):
        t.set_caching_options(False)
    return m.output


@dsl.component
def hog(mb: int) -> int:
    data = bytearray(mb * 1024 * 1024)
    return len(data)


@dsl.component
def nap(seconds: float) -> str:
    import time
    time.sleep(seconds)
    return 'woke up'


@dsl.pipeline(name='limits')
def limits(mb: int = 2048, seconds: float = 60.0):
    h = hog(mb=mb)
    h.set_memory_limit('1Gi')
    h.set_caching_options(False)
    n = nap(seconds=seconds)
    n.set_caching_options(False)
    kubernetes.set_timeout(n, 1)


# --- performance anchors (also used by bench/) --------------------------------------------

@dsl.component
def inc(x: int) -> int:
    return x + 1


@dsl.pipeline(name='seq10')
def seq10(x: int = 0) -> int:
    t = inc(x=x)
    for _ in range(9):
        t = inc(x=t.output)
    return t.output


@dsl.component
def sq(x: int) -> int:
    return x * x


@dsl.component
def sum_ints(xs: List[int]) -> int:
    return sum(xs)


@dsl.pipeline(name='fanout20')
def fanout20() -> int:
    with dsl.ParallelFor(items=list(range(20))) as i:
        s = sq(x=i)
    return sum_ints(xs=dsl.Collected(s.output)).output


PIPELINES = {
    'params': params, 'artifacts': artifacts, 'containers': containers, 'conditions': conditions,
    'loops': loops, 'exit_handler': exit_handler, 'nested': nested, 'task_config': task_config,
    'slow': slow, 'k8s_platform': k8s_platform, 'seq10': seq10, 'fanout20': fanout20,
    'concurrency': concurrency, 'limits': limits,
}

if __name__ == '__main__':
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, fn in PIPELINES.items():
        compiler.Compiler().compile(fn, os.path.join(out, f'{name}.yaml'))
