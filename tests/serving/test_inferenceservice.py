"""KServe InferenceServices under `oxflow up`: applied with the CLI or the
REST API, served at their status URL (and by Host header), checked with
KServe's and Triton's own clients against the frameworks' predictions, and
still served after a restart."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from conftest import Up

FORMATS = {'xgb': 'xgboost', 'lgb': 'lightgbm', 'sk': 'sklearn', 'onnx': 'onnx'}
SERVED = ['xgb-binary', 'xgb-multi', 'lgb-binary', 'sk-logreg', 'onnx-rf']


def isvc_yaml(name, uri, fmt=None):
    fmt = fmt or FORMATS[name.split('-')[0]]
    return (f'apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n'
            f'metadata:\n  name: {name}\nspec:\n  predictor:\n    model:\n'
            f'      modelFormat:\n        name: {fmt}\n      storageUri: {uri}\n')


def http(up, method, url, body=None, headers=None):
    """(status, JSON body) of a request to `url` on `up`, with its token."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers={**(headers or {}), **up.auth})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b'null')
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'null')


@pytest.fixture(scope='module')
def up(models, tmp_path_factory):
    home = tmp_path_factory.mktemp('up-home')
    u = Up(home)
    # All but one applied with the CLI on the data directory (the running
    # server picks them up from the store), in one multi-document file.
    docs = '---\n'.join(isvc_yaml(n, models / 'repo' / n) for n in SERVED[:-1])
    (home / 'isvcs.yaml').write_text(docs)
    out = u.cli('apply', '-f', str(home / 'isvcs.yaml'), '--wait', '120')
    for n in SERVED[:-1]:
        assert f'inferenceservice.serving.kserve.io/{n} created' in out.stdout, out.stdout
        assert f'{n} is ready at {u.url("/serving/default/" + n)}' in out.stdout, out.stdout
    # The last one through the REST API, as JSON.
    code, body = http(u, 'POST', u.url('/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices'),
                      isvc_yaml(SERVED[-1], models / 'repo' / SERVED[-1]),
                      {'Content-Type': 'application/yaml'})
    assert code == 201, body
    yield u
    u.stop()


def test_status_is_kserves(up):
    out = up.cli('isvc', 'list', '-o', 'json', remote=True)
    items = {i['metadata']['name']: i for i in json.loads(out.stdout)}
    assert sorted(items) == sorted(SERVED)
    xgb = items['xgb-binary']
    assert xgb['apiVersion'] == 'serving.kserve.io/v1beta1' and xgb['kind'] == 'InferenceService'
    status = xgb['status']
    assert status['url'] == up.url('/serving/default/xgb-binary')
    assert {c['type']: c['status'] for c in status['conditions']} == {
        'IngressReady': 'True', 'PredictorReady': 'True', 'Ready': 'True'}
    assert status['modelStatus']['transitionStatus'] == 'UpToDate'
    assert status['modelStatus']['states']['activeModelState'] == 'Loaded'
    assert status['components']['predictor']['traffic'] == [
        {'revisionName': 'xgb-binary-predictor-00001', 'percent': 100, 'latestRevision': True}]
    text = up.cli('isvc', 'list').stdout
    assert 'xgb-binary' in text and 'True' in text, text


def test_kserve_client_at_each_status_url(up, models):
    out = subprocess.run([sys.executable, str(Path(__file__).with_name('kserve_client_check.py')),
                          up.url('/serving/default/{model}'), str(models / 'fixtures.json')],
                         env={**os.environ, 'OXFLOW_TOKEN': up.token}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == 'ok'


@pytest.mark.parametrize('binary', [True, False], ids=['binary', 'json'])
@pytest.mark.parametrize('model', ['onnx-rf', 'sk-logreg', 'lgb-binary'])
def test_triton_client_through_the_service_path(up, fixtures, model, binary):
    client = up.triton_http(f'{up.addr}/serving/default/{model}')
    assert client.is_model_ready(model)
    rows = np.asarray(fixtures[model]['rows'], dtype=np.float32)
    inp = httpclient.InferInput('input-0', list(rows.shape), 'FP32')
    inp.set_data_from_numpy(rows, binary_data=binary)
    output = 'label' if model.startswith('onnx') else 'predict'
    result = client.infer(model, [inp], outputs=[httpclient.InferRequestedOutput(output, binary_data=binary)])
    np.testing.assert_array_equal(result.as_numpy(output), np.asarray(fixtures[model]['outputs'][output]))


@pytest.mark.parametrize('model', ['xgb-multi', 'onnx-rf', 'sk-logreg'])
def test_triton_grpc_client_by_model_name(up, fixtures, model):
    import tritonclient.grpc as grpcclient
    client = up.triton_grpc()
    assert client.is_server_live()
    assert client.is_model_ready(model)
    rows = np.asarray(fixtures[model]['rows'], dtype=np.float32)
    inp = grpcclient.InferInput('input-0', list(rows.shape), 'FP32')
    inp.set_data_from_numpy(rows)
    output = 'label' if model.startswith('onnx') else 'predict'
    result = client.infer(model, [inp], outputs=[grpcclient.InferRequestedOutput(output)])
    np.testing.assert_array_equal(result.as_numpy(output), np.asarray(fixtures[model]['outputs'][output]))


def test_grpc_authority_picks_the_service(up, fixtures):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException
    # KServe's way: the service's host as :authority; the request's model
    # name is then the service's own.
    client = up.triton_grpc(channel_args=[('grpc.default_authority', 'xgb-binary.default.example.com')])
    assert client.get_model_metadata('xgb-binary').name == 'xgb-binary'
    other = up.triton_grpc(channel_args=[('grpc.default_authority', 'xgb-binary.team-b.example.com')])
    with pytest.raises(InferenceServerException) as e:
        other.get_model_metadata('nope')
    assert 'no inference service nope' in str(e.value)


def test_host_header_routes_as_kserves_ingress(up, fixtures):
    rows = fixtures['xgb-multi']['rows']
    code, body = http(up, 'POST', up.url('/v1/models/xgb-multi:predict'), json.dumps({'instances': rows}),
                      {'Host': 'xgb-multi.default.example.com', 'Content-Type': 'application/json'})
    assert code == 200, body
    assert body['predictions'] == fixtures['xgb-multi']['outputs']['predict']
    # Another namespace's host does not reach it.
    code, body = http(up, 'POST', up.url('/v1/models/xgb-multi:predict'), json.dumps({'instances': rows}),
                      {'Host': 'xgb-multi.team-b.example.com'})
    assert code == 404, body


def test_bad_files_are_refused_whole(up, models, tmp_path):
    good = isvc_yaml('never-applied', models / 'repo' / 'xgb-reg', 'xgboost')
    bad = isvc_yaml('broken', models / 'repo' / 'xgb-reg', 'xgboost').replace('modelFormat', 'modelFormats')
    f = tmp_path / 'mixed.yaml'
    f.write_text(good + '---\n' + bad)
    out = up.cli('apply', '-f', str(f), check=False)
    assert out.returncode != 0
    assert '[document 2].spec.predictor.model.modelFormats: unknown field' in out.stderr, out.stderr
    assert 'never-applied' not in up.cli('isvc', 'list').stdout


def test_a_failed_model_reports_why_and_delete_unloads(up, tmp_path):
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'model.json').write_text('{"learner": "not a booster"}')
    f = tmp_path / 'broken.yaml'
    f.write_text(isvc_yaml('broken-xgb', broken, 'xgboost'))
    out = up.cli('apply', '-f', str(f), '--wait', '60', remote=True, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'broken-xgb failed: ModelLoadFailed' in out.stderr, out.stderr
    got = json.loads(up.cli('isvc', 'get', 'broken-xgb', '-o', 'json').stdout)
    assert got['status']['modelStatus']['transitionStatus'] == 'BlockedByFailedLoad'
    code, body = http(up, 'GET', up.url('/serving/default/broken-xgb/v2/models/broken-xgb/ready'))
    assert code == 503, body
    assert up.cli('isvc', 'delete', 'broken-xgb', remote=True).stdout.strip() == \
        'inferenceservice.serving.kserve.io "broken-xgb" deleted'
    code, body = http(up, 'GET', up.url('/serving/default/broken-xgb/v2/models/broken-xgb/ready'))
    assert code == 404, body


@pytest.fixture
def moto(models):
    """moto's S3-compatible server with an IAM user allowed s3:*, a bucket
    holding the xgb-binary model, and authentication enforced."""
    import socket
    import boto3
    from botocore.config import Config
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, '-m', 'moto.server', '-H', '127.0.0.1', '-p', str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, 'moto did not start'
                time.sleep(0.05)

        def client(service, key=('testing', 'testing')):
            return boto3.client(service, endpoint_url=endpoint, region_name='us-east-1',
                                aws_access_key_id=key[0], aws_secret_access_key=key[1],
                                config=Config(s3={'addressing_style': 'path'}))
        iam = client('iam')
        iam.create_user(UserName='oxflow')
        iam.put_user_policy(UserName='oxflow', PolicyName='s3', PolicyDocument=json.dumps(
            {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}]}))
        k = iam.create_access_key(UserName='oxflow')['AccessKey']
        key = (k['AccessKeyId'], k['SecretAccessKey'])
        s3 = client('s3', key)
        s3.create_bucket(Bucket='models')
        s3.put_object(Bucket='models', Key='xgb/model.json',
                      Body=(models / 'repo' / 'xgb-binary' / 'model.json').read_bytes())
        urllib.request.urlopen(urllib.request.Request(
            endpoint + '/moto-api/reset-auth', data=b'0', method='POST',
            headers={'Content-Type': 'text/plain'})).read()
        yield endpoint, key
    finally:
        proc.kill()
        proc.wait()


def test_s3_models_with_credentials_from_a_secret(up, fixtures, moto, tmp_path):
    endpoint, (key_id, secret_key) = moto

    def service(name, account):
        return isvc_yaml(name, 's3://models/xgb', 'xgboost').replace(
            '  predictor:\n', f'  predictor:\n    serviceAccountName: {account}\n')

    # No such secret: the status says how to create it.
    f = tmp_path / 'nosecret.yaml'
    f.write_text(service('s3-missing', 'nobody'))
    out = up.cli('apply', '-f', str(f), '--wait', '60', check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'oxflow secrets create nobody' in out.stderr, out.stderr

    # KServe's S3 variables, held in a secret named like the service account.
    up.cli('secrets', 'create', 's3creds', '--from-literal', f'AWS_ACCESS_KEY_ID={key_id}',
           '--from-literal', f'AWS_SECRET_ACCESS_KEY={secret_key}',
           '--from-literal', f'S3_ENDPOINT={endpoint}')
    f = tmp_path / 's3.yaml'
    f.write_text(service('s3-xgb', 's3creds'))
    out = up.cli('apply', '-f', str(f), '--wait', '120', check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = fixtures['xgb-binary']['rows']
    code, body = http(up, 'POST', up.url('/serving/default/s3-xgb/v1/models/s3-xgb:predict'),
                      json.dumps({'instances': rows}), {'Content-Type': 'application/json'})
    assert code == 200, body
    assert body['predictions'] == fixtures['xgb-binary']['outputs']['predict']


def test_the_repository_api_cannot_change_a_services_models(up, fixtures):
    # Through the service's path, its Host, and gRPC: refused, nothing changes.
    name = 'xgb-binary'
    for verb in ['unload', 'load']:
        for url, headers in [(up.url(f'/serving/default/{name}/v2/repository/models/{name}/{verb}'), {}),
                             (up.url(f'/v2/repository/models/{name}/{verb}'),
                              {'Host': f'{name}.default.example.com'})]:
            code, body = http(up, 'POST', url, '{}', headers)
            assert code == 403, body
            assert body['error'] == (
                f'the models of InferenceService default/{name} are managed by its controller and cannot '
                f'be loaded or unloaded through the repository API; change the InferenceService '
                f'default/{name} instead'), body
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException
    client = up.triton_grpc()
    for call in [client.unload_model, client.load_model]:
        with pytest.raises(InferenceServerException) as e:
            call(name)
        assert 'managed by its controller' in str(e.value), e.value
        assert e.value.status() == 'StatusCode.PERMISSION_DENIED', e.value.status()
    # Still served, and the status that says Ready is still true.
    assert client.is_model_ready(name)
    rows = fixtures[name]['rows']
    code, body = http(up, 'POST', up.url(f'/serving/default/{name}/v1/models/{name}:predict'),
                      json.dumps({'instances': rows}), {'Content-Type': 'application/json'})
    assert code == 200 and body['predictions'] == fixtures[name]['outputs']['predict'], body
    got = json.loads(up.cli('isvc', 'get', name, '-o', 'json').stdout)
    assert {c['type']: c['status'] for c in got['status']['conditions']}['Ready'] == 'True'


def test_host_files_are_refused_as_storage_uris(up, tmp_path):
    first = Path('/etc/passwd').read_text().splitlines()[0]
    for name, uri in [('passwd', '/etc/passwd'), ('passwd-file', 'file:///etc/passwd')]:
        code, body = http(up, 'POST', up.url('/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices'),
                          isvc_yaml(name, uri, 'xgboost'), {'Content-Type': 'application/yaml'})
        assert code == 201, body
        deadline = time.time() + 60
        while time.time() < deadline:
            code, got = http(up, 'GET', up.url(f'/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{name}'))
            failure = got.get('status', {}).get('modelStatus', {}).get('lastFailureInfo')
            if failure:
                break
            time.sleep(0.05)
        assert failure, got
        assert failure['message'].startswith(f'storageUri {uri}: /etc/passwd is outside the directories '
                                             'models may be read from ('), failure
        assert '--model-root DIR' in failure['message'], failure
        assert first not in json.dumps(got), got
        assert up.cli('isvc', 'delete', name, remote=True).returncode == 0
    # A copy of it under a model root is read, and its error does not quote it.
    copy = tmp_path / 'copy'
    copy.mkdir()
    (copy / 'model.json').write_text(Path('/etc/passwd').read_text())
    f = tmp_path / 'copy.yaml'
    f.write_text(isvc_yaml('passwd-copy', copy, 'xgboost'))
    out = up.cli('apply', '-f', str(f), '--wait', '60', check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'the file is text, but neither JSON nor a LightGBM text model' in out.stderr, out.stderr
    got = up.cli('isvc', 'get', 'passwd-copy', '-o', 'json').stdout
    assert first not in got and first not in out.stderr, got
    up.cli('isvc', 'delete', 'passwd-copy', remote=True)


def sklearn_workers(up):
    """The scikit-learn worker processes of this server (their sockets are
    named after its process id)."""
    out = subprocess.run(['pgrep', '-f', f'oxflow-sk-{up.proc.pid}-'], capture_output=True, text=True)
    return len(out.stdout.split())


def test_sklearn_workers_scale_with_requests_per_second(up, models, fixtures, tmp_path):
    # rps with a target of 1 per worker: any steady stream of requests asks
    # for the maximum; a 6 s window (Knative's minimum) keeps the test short.
    name = 'sk-scaled'
    doc = isvc_yaml(name, models / 'repo' / 'sk-logreg', 'sklearn').replace(
        '  name: sk-scaled\n',
        '  name: sk-scaled\n  annotations:\n    autoscaling.knative.dev/window: 6s\n').replace(
        '  predictor:\n', '  predictor:\n    scaleMetric: rps\n    scaleTarget: 1\n    maxReplicas: 3\n')
    (tmp_path / 'scaled.yaml').write_text(doc)
    up.cli('apply', '-f', str(tmp_path / 'scaled.yaml'), '--wait', '120')
    assert up.replica_metrics(name) == {'oxflow_serving_replicas': 1,
                                        'oxflow_serving_ready_replicas': 1,
                                        'oxflow_serving_desired_replicas': 1}
    before = sklearn_workers(up)

    import threading
    stop = threading.Event()
    wrong = []
    body = json.dumps({'instances': fixtures['sk-logreg']['rows'][:1]})
    want = {'predictions': fixtures['sk-logreg']['outputs']['predict'][:1]}

    def client():
        while not stop.is_set():
            got = http(up, 'POST', up.url(f'/serving/default/{name}/v1/models/{name}:predict'), body,
                       {'Content-Type': 'application/json'})
            if got != (200, want):
                wrong.append(got)

    clients = [threading.Thread(target=client) for _ in range(2)]
    for c in clients:
        c.start()
    try:
        deadline = time.time() + 90
        while time.time() < deadline and up.replica_metrics(name).get('oxflow_serving_ready_replicas') != 3:
            time.sleep(0.2)
        seen, during = up.replica_metrics(name), sklearn_workers(up)
    finally:
        stop.set()
        for c in clients:
            c.join()
    assert wrong == [], wrong[:3]
    assert seen == {'oxflow_serving_replicas': 3, 'oxflow_serving_ready_replicas': 3,
                    'oxflow_serving_desired_replicas': 3}, seen
    assert during == before + 2

    # Idle again: back to one worker, and the others are stopped.
    deadline = time.time() + 90
    while time.time() < deadline and (up.replica_metrics(name).get('oxflow_serving_replicas') != 1
                                      or sklearn_workers(up) != before):
        time.sleep(0.2)
    assert up.replica_metrics(name)['oxflow_serving_replicas'] == 1
    assert sklearn_workers(up) == before
    assert http(up, 'POST', up.url(f'/serving/default/{name}/v1/models/{name}:predict'), body,
                {'Content-Type': 'application/json'}) == (200, want)
    up.cli('isvc', 'delete', name, remote=True)


def test_services_survive_a_restart(up, fixtures):
    # Last in this module: the server is replaced by a new one on the same data.
    up.stop()
    again = Up(up.home)
    try:
        name = 'sk-logreg'
        client = again.triton_http(f'{again.addr}/serving/default/{name}')
        rows = np.asarray(fixtures[name]['rows'], dtype=np.float32)
        inp = httpclient.InferInput('input-0', list(rows.shape), 'FP32')
        inp.set_data_from_numpy(rows)
        # The request waits while the model loads again.
        result = client.infer(name, [inp])
        np.testing.assert_array_equal(result.as_numpy('predict'), np.asarray(fixtures[name]['outputs']['predict']))
    finally:
        again.stop()
