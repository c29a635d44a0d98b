"""Custom predictors, transformers and explainers under `oxflow up`: real
kserve.Model scripts run as commands, chained as KServe chains them
(client → transformer → predictor, :explain → explainer → predictor),
supervised (a killed predictor is restarted) and stopped on delete."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import Up

HERE = Path(__file__).resolve().parent / 'components'


def post(up, url, body, headers=None):
    """(status, JSON body) of a POST to `url` on `up`, with its token."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST',
                                 headers={'Content-Type': 'application/json', **(headers or {}), **up.auth})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'null')


def container(script, *args):
    return {'name': 'kserve-container', 'image': f'example.com/{script}:latest',
            'command': ['python', str(HERE / f'{script}.py')], 'args': list(args)}


def pids(pattern):
    out = subprocess.run(['pgrep', '-f', pattern], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.fixture(scope='module')
def up(models, tmp_path_factory):
    home = tmp_path_factory.mktemp('components-home')
    u = Up(home)
    services = [
        {'apiVersion': 'serving.kserve.io/v1beta1', 'kind': 'InferenceService',
         'metadata': {'name': 'doubler'},
         'spec': {'predictor': {'containers': [container('doubler', '--model_name', 'doubler')]}}},
        {'apiVersion': 'serving.kserve.io/v1beta1', 'kind': 'InferenceService',
         'metadata': {'name': 'chained'},
         'spec': {'predictor': {'model': {'modelFormat': {'name': 'xgboost'},
                                          'storageUri': str(models / 'repo' / 'xgb-binary')}},
                  'transformer': {'containers': [container('renamer')]},
                  'explainer': {'containers': [container('explainer')]}}},
    ]
    f = home / 'components.json'
    # A JSON document per service, as `kubectl apply -f` also takes JSON.
    f.write_text('\n---\n'.join(json.dumps(s) for s in services))
    out = u.cli('apply', '-f', str(f), '--wait', '180')
    assert 'doubler is ready' in out.stdout and 'chained is ready' in out.stdout, out.stdout + out.stderr
    yield u
    u.stop()


def test_a_kserve_model_script_is_a_custom_predictor(up):
    code, body = post(up, up.url('/serving/default/doubler/v1/models/doubler:predict'),
                      {'instances': [[1, 2.5], [-3, 0]]})
    assert code == 200, body
    assert body == {'predictions': [[2, 5.0], [-6, 0]]}


def test_requests_go_through_the_transformer_to_the_predictor(up, fixtures):
    rows = fixtures['xgb-binary']['rows']
    want = fixtures['xgb-binary']['outputs']['predict']
    code, body = post(up, up.url('/serving/default/chained/v1/models/chained:predict'), {'rows': rows})
    assert code == 200, body
    assert body == {'labels': want, 'via': 'transformer'}
    # The predictor's own host skips the transformer.
    code, body = post(up, up.url('/v1/models/chained:predict'), {'instances': rows},
                      {'Host': 'chained-predictor.default.example.com'})
    assert code == 200, body
    assert body == {'predictions': want}


def test_explain_goes_to_the_explainer(up, fixtures):
    rows = fixtures['xgb-binary']['rows']
    want = fixtures['xgb-binary']['outputs']['predict']
    code, body = post(up, up.url('/serving/default/chained/v1/models/chained:explain'), {'instances': rows})
    assert code == 200, body
    assert body == {'explanations': [{'row': i, 'positive': w == 1} for i, w in enumerate(want)]}


def test_status_has_every_component(up):
    got = json.loads(up.cli('isvc', 'get', 'chained', '-o', 'json').stdout)['status']
    conditions = {c['type']: c['status'] for c in got['conditions']}
    assert conditions == {'IngressReady': 'True', 'PredictorReady': 'True', 'TransformerReady': 'True',
                          'ExplainerReady': 'True', 'Ready': 'True'}, got
    assert got['components']['transformer']['latestReadyRevision'] == 'chained-transformer-00001'
    assert got['components']['explainer']['latestReadyRevision'] == 'chained-explainer-00001'


def test_logs_of_each_command(up):
    # Through the API (--server) and from the data directory.
    for remote in (True, False):
        out = up.cli('isvc', 'logs', 'chained', '--component', 'transformer', remote=remote)
        assert 'chained:predict' in out.stdout, out.stdout[-2000:]
        out = up.cli('isvc', 'logs', 'doubler', remote=remote)
        assert 'doubler:predict' in out.stdout, out.stdout[-2000:]
    # A model predictor is not a command: no log, and the error says why.
    out = up.cli('isvc', 'logs', 'chained', remote=True, check=False)
    assert out.returncode != 0 and 'only commands' in out.stderr, out.stderr
    # One revision by name; an unknown one lists the revisions with a log.
    for remote in (True, False):
        out = up.cli('isvc', 'logs', 'chained', '--revision', 'chained-transformer-00001', remote=remote)
        assert 'chained:predict' in out.stdout, out.stdout[-2000:]
        out = up.cli('isvc', 'logs', 'chained', '--revision', 'chained-predictor-00009', remote=remote,
                     check=False)
        assert out.returncode != 0, out.stdout
        assert 'logs exist for: chained-explainer-00001, chained-transformer-00001' in out.stderr, out.stderr
    out = up.cli('isvc', 'logs', 'chained', '--revision', '../doubler/doubler-predictor-00001', remote=True,
                 check=False)
    assert out.returncode != 0 and 'not a revision name' in out.stderr, out.stderr


def command_pods(up, service):
    out = up.cli('get', 'pods', '-l', f'serving.kserve.io/inferenceservice={service}', '-o', 'json', remote=True)
    doc = json.loads(out.stdout)
    return {p['metadata']['labels']['component']: p for p in doc.get('items', [doc] if 'metadata' in doc else [])}


def test_command_copies_are_pods_with_logs_and_a_deleted_pod_is_replaced(up):
    pods = command_pods(up, 'chained')
    # The predictor is a model served in-process; the transformer and the
    # explainer are commands, each copy a pod as KServe labels them.
    assert sorted(pods) == ['explainer', 'transformer'], pods
    t = pods['transformer']
    assert t['metadata']['name'].startswith('chained-transformer-00001-')
    assert t['metadata']['labels']['serving.knative.dev/revision'] == 'chained-transformer-00001'
    assert t['metadata']['ownerReferences'][0]['kind'] == 'InferenceService'
    assert t['spec']['containers'][0]['name'] == 'kserve-container'
    assert t['status']['phase'] == 'Running'
    assert t['status']['containerStatuses'][0]['ready'] is True
    log = up.cli('logs', t['metadata']['name'], remote=True).stdout
    assert log == (Path(up.home) / 'logs/serving/default/chained/chained-transformer-00001.log').read_text()

    # Deleting the pod ends its process; a new copy starts under a new pod.
    [pid] = pids(str(HERE / 'renamer.py'))
    up.cli('delete', 'pod', t['metadata']['name'], remote=True)
    deadline = time.time() + 90
    new = None
    while time.time() < deadline:
        now = command_pods(up, 'chained').get('transformer')
        if (now and now['metadata']['name'] != t['metadata']['name']
                and now['status']['containerStatuses'][0]['ready'] is True):
            new = now
            break
        time.sleep(0.1)
    assert new is not None, command_pods(up, 'chained')
    assert pids(str(HERE / 'renamer.py')) not in ([], [pid])
    assert up.cli('get', 'pod', t['metadata']['name'], remote=True, check=False).returncode != 0


def test_min_replicas_runs_that_many_copies_of_a_command(up, tmp_path):
    spec = {'apiVersion': 'serving.kserve.io/v1beta1', 'kind': 'InferenceService',
            'metadata': {'name': 'twins'},
            'spec': {'predictor': {'minReplicas': 2,
                                   'containers': [container('doubler', '--model_name', 'twins')]}}}
    f = tmp_path / 'twins.json'
    f.write_text(json.dumps(spec))
    up.cli('apply', '-f', str(f), '--wait', '120')
    assert len(pids('model_name twins')) == 2
    for _ in range(4):
        code, body = post(up, up.url('/serving/default/twins/v1/models/twins:predict'), {'instances': [[1]]})
        assert (code, body) == (200, {'predictions': [[2]]})
    # Requests went to both copies: each one's log shows some.
    logs = Path(up.home) / 'logs' / 'serving' / 'default' / 'twins'
    for log in ['twins-predictor-00001.log', 'twins-predictor-00001-1.log']:
        assert 'twins:predict' in (logs / log).read_text(), log
    twins = up.cli('get', 'pods', '-l', 'serving.kserve.io/inferenceservice=twins', '-o', 'name', remote=True)
    assert len(twins.stdout.split()) == 2, twins.stdout
    up.cli('isvc', 'delete', 'twins', remote=True)
    deadline = time.time() + 30
    while pids('model_name twins') and time.time() < deadline:
        time.sleep(0.1)
    assert pids('model_name twins') == []
    # Their pods went with them.
    deadline = time.time() + 30
    left = twins.stdout
    while left.strip() and time.time() < deadline:
        left = up.cli('get', 'pods', '-l', 'serving.kserve.io/inferenceservice=twins', '-o', 'name',
                      remote=True).stdout
        time.sleep(0.1)
    assert left.strip() == ''


def test_a_killed_predictor_is_restarted_and_delete_stops_it(up):
    [pid] = pids(str(HERE / 'doubler.py'))
    os.kill(pid, signal.SIGKILL)
    seen_failure = None
    deadline = time.time() + 90
    while time.time() < deadline:
        status = json.loads(up.cli('isvc', 'get', 'doubler', '-o', 'json').stdout)['status']
        ready = {c['type']: c for c in status['conditions']}['Ready']
        if ready['status'] == 'False' and 'signal 9' in ready.get('message', ''):
            seen_failure = ready['message']
        if seen_failure and ready['status'] == 'True':
            break
        time.sleep(0.1)
    assert seen_failure and 'restarting' in seen_failure, seen_failure
    assert ready['status'] == 'True', status
    code, body = post(up, up.url('/serving/default/doubler/v1/models/doubler:predict'), {'instances': [[4]]})
    assert (code, body) == (200, {'predictions': [[8]]})
    [new_pid] = pids(str(HERE / 'doubler.py'))
    assert new_pid != pid

    up.cli('isvc', 'delete', 'doubler')
    # The local CLI deleted the record; the server notices on its next
    # resync (2 s) and stops the command.
    deadline = time.time() + 30
    while pids(str(HERE / 'doubler.py')) and time.time() < deadline:
        time.sleep(0.1)
    assert pids(str(HERE / 'doubler.py')) == []


def test_load_scales_a_command_out_to_max_replicas_and_back_in(up, tmp_path):
    # Knative's KPA with a 6 s window (its minimum): one request in flight
    # per copy is the target, so four concurrent clients ask for more than
    # maxReplicas allows.
    spec = {'apiVersion': 'serving.kserve.io/v1beta1', 'kind': 'InferenceService',
            'metadata': {'name': 'busy', 'annotations': {'autoscaling.knative.dev/window': '6s'}},
            'spec': {'predictor': {
                'scaleMetric': 'concurrency', 'scaleTarget': 1, 'maxReplicas': 3,
                'containers': [{'name': 'kserve-container', 'image': 'example.com/busy:1',
                                'command': ['python', str(HERE / 'busy.py'), '--port', '$(PORT)',
                                            '--service', 'busy']}]}}}
    f = tmp_path / 'busy.json'
    f.write_text(json.dumps(spec))
    up.cli('apply', '-f', str(f), '--wait', '120')
    assert len(pids('busy.py --port')) == 1
    assert up.replica_metrics('busy') == {'oxflow_serving_replicas': 1,
                                           'oxflow_serving_ready_replicas': 1,
                                           'oxflow_serving_desired_replicas': 1}

    import threading
    stop = threading.Event()
    answered, failures = set(), []

    def client():
        while not stop.is_set():
            code, body = post(up, up.url('/serving/default/busy/v1/models/busy:predict'),
                              {'instances': [[1]]})
            if code == 200:
                answered.add(body['predictions'][0])
            else:
                failures.append((code, body))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for c in clients:
        c.start()
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not (
                up.replica_metrics('busy').get('oxflow_serving_ready_replicas') == 3
                and len(answered) == 3):
            time.sleep(0.2)
        seen = up.replica_metrics('busy')
    finally:
        stop.set()
        for c in clients:
            c.join()
    assert failures == []
    assert seen == {'oxflow_serving_replicas': 3, 'oxflow_serving_ready_replicas': 3,
                    'oxflow_serving_desired_replicas': 3}, seen
    # Three processes, and every one of them served requests.
    running = set(pids('busy.py --port'))
    assert len(running) == 3 and answered == running, (running, answered)

    # Idle: back to minReplicas once the panic and stable windows pass,
    # and the copies scaled away are stopped.
    deadline = time.time() + 90
    while time.time() < deadline and (up.replica_metrics('busy').get('oxflow_serving_replicas') != 1
                                      or len(pids('busy.py --port')) != 1):
        time.sleep(0.2)
    assert up.replica_metrics('busy')['oxflow_serving_replicas'] == 1
    assert len(pids('busy.py --port')) == 1
    code, body = post(up, up.url('/serving/default/busy/v1/models/busy:predict'), {'instances': [[1]]})
    assert code == 200 and body['predictions'][0] in running
    up.cli('isvc', 'delete', 'busy', remote=True)
