"""`oxflow serve` beyond the protocol clients: V1, batching, model URIs,
worker crashes, bad models and bad requests."""
import concurrent.futures
import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from conftest import Serve


def call(server, path, body=None, headers=None):
    """(status, body) of a request to `server` (with its token)."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(server.url(path), data=data,
                                 headers={**(headers or {'Content-Type': 'application/json'}), **server.auth})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def v2_body(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return {'inputs': [{'name': 'input-0', 'shape': list(rows.shape), 'datatype': 'FP32',
                        'data': rows.flatten().tolist()}]}


@pytest.mark.parametrize('model', ['xgb-binary', 'lgb-multi', 'sk-logreg', 'xgb-reg'])
def test_v1_predict_returns_the_frameworks_predict(server, fixtures, model):
    status, body = call(server, f'/v1/models/{model}:predict', {'instances': fixtures[model]['rows']})
    assert status == 200, body
    got = np.asarray(json.loads(body)['predictions'])
    want = np.asarray(fixtures[model]['outputs']['predict'])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    status, body = call(server, f'/v1/models/{model}')
    assert json.loads(body) == {'name': model, 'ready': True}


def test_bad_requests_get_json_errors_and_the_server_keeps_serving(server, fixtures):
    cases = [
        ('/v2/models/xgb-binary/infer', b'{"inputs": [', 400, 'invalid inference request'),
        ('/v2/models/xgb-binary/infer', {'inputs': [{'name': 'x', 'shape': [1, 8], 'datatype': 'BYTES',
                                                     'data': ['a'] * 8}]}, 400, 'needs numbers'),
        ('/v2/models/xgb-binary/infer', {'inputs': [{'name': 'x', 'shape': [2, 8], 'datatype': 'FP32',
                                                     'data': [1.0] * 8}]}, 400, 'needs 16 elements'),
        ('/v2/models/nope/infer', v2_body(fixtures['xgb-binary']['rows']), 404, 'Model nope not found'),
        ('/v1/models/sk-logreg:predict', {'instances': [[1.0, 2.0]]}, 400, 'features'),
        ('/v1/models/xgb-binary:predict', {'rows': []}, 400, 'needs "instances"'),
    ]
    for path, body, status, message in cases:
        got, reply = call(server, path, body)
        assert got == status, (path, reply)
        assert message in json.loads(reply)['error'], (path, reply)
    status, _ = call(server, '/v2/models/xgb-binary/infer', v2_body(fixtures['xgb-binary']['rows']))
    assert status == 200
    metrics = call(server, '/metrics')[1].decode()
    assert re.search(r'oxflow_inference_requests_total\{model="xgb-binary",protocol="v2",code="400"\} [1-9]', metrics)


def test_a_crashed_scikit_learn_worker_is_replaced(server, fixtures):
    body = v2_body(fixtures['sk-logreg']['rows'])
    assert call(server, '/v2/models/sk-logreg/infer', body)[0] == 200
    workers = subprocess.run(['pgrep', '-P', str(server.proc.pid), '-f', 'model.joblib'], capture_output=True,
                             text=True).stdout.split()
    assert len(workers) == 1, workers
    os.kill(int(workers[0]), signal.SIGKILL)
    status, reply = call(server, '/v2/models/sk-logreg/infer', body)
    assert status == 500, reply
    assert 'the scikit-learn worker exited (signal: 9' in json.loads(reply)['error']
    status, reply = call(server, '/v2/models/sk-logreg/infer', body)
    assert status == 200, reply
    got = json.loads(reply)['outputs'][0]['data']
    assert got == fixtures['sk-logreg']['outputs']['predict']


def test_concurrent_requests_are_batched(models, fixtures, tmp_path):
    s = Serve(tmp_path, [f'xgb={models}/repo/xgb-binary'],
              ['--max-batch-size', '4', '--max-latency-ms', '60000', '--max-body-mib', '1'])
    try:
        s.wait_ready()
        rows = fixtures['xgb-binary']['rows'][:4]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda r: call(s, '/v2/models/xgb/infer', v2_body([r])), rows))
        for (status, reply), want in zip(replies, fixtures['xgb-binary']['outputs']['predict'][:4]):
            assert status == 200, reply
            assert json.loads(reply)['outputs'][0]['data'] == [want]
        # Four one-row requests, one batch of four (the batch closes when full,
        # long before the minute-long latency).
        metrics = call(s, '/metrics')[1].decode()
        assert 'oxflow_inference_batch_size_count{model="xgb"} 1' in metrics, metrics
        assert 'oxflow_inference_batch_size_sum{model="xgb"} 4' in metrics, metrics
        # Bodies beyond --max-body-mib are refused with 413.
        status, reply = call(s, '/v2/models/xgb/infer', b' ' * (2 << 20))
        assert status == 413 and 'limit' in json.loads(reply)['error']
    finally:
        s.stop()


def test_models_from_http_uris_and_bad_models(models, fixtures, tmp_path):
    site = tmp_path / 'site'
    site.mkdir()
    shutil.copy(models / 'repo' / 'lgb-binary' / 'model.txt', site / 'model.txt')
    shutil.make_archive(str(site / 'onnx'), 'gztar', models / 'repo' / 'onnx-logreg')
    (site / 'broken.json').write_text('{"learner": 1}')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f'http://127.0.0.1:{httpd.server_address[1]}'
    s = Serve(tmp_path / 'home', [f'lgb={base}/model.txt', f'onnx={base}/onnx.tar.gz',
                                  f'broken={base}/broken.json', f'missing={base}/nope.txt'])
    try:
        with pytest.raises(RuntimeError, match='failed'):
            s.wait_ready()
        for name, fixture, output in [('lgb', 'lgb-binary', 'predict_proba'), ('onnx', 'onnx-logreg', 'probabilities')]:
            body = v2_body(fixtures[fixture]['rows'])
            body['outputs'] = [{'name': output}]
            status, reply = call(s, f'/v2/models/{name}/infer', body)
            assert status == 200, reply
            got = np.asarray(json.loads(reply)['outputs'][0]['data']).reshape(-1, 2)
            np.testing.assert_allclose(got, fixtures[fixture]['outputs'][output], rtol=1e-5, atol=1e-6)
        status, reply = call(s, '/v2/models/broken/ready')
        assert status == 503
        assert 'loading failed' in json.loads(reply)['error']
        status, reply = call(s, '/v2/models/missing/ready')
        assert status == 503
        assert 'the server answered 404' in json.loads(reply)['error']
        index = json.loads(call(s, '/v2/repository/index', {})[1])
        assert {m['name']: m['state'] for m in index} == {
            'broken': 'UNAVAILABLE', 'lgb': 'READY', 'missing': 'UNAVAILABLE', 'onnx': 'READY'}
    finally:
        s.stop()
        httpd.shutdown()
