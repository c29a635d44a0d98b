"""Authentication on the data planes: `oxflow serve` over REST (V1, V2,
health, repository) and gRPC, and `oxflow up`'s inference paths and gRPC
port, answer only requests that carry the data directory's token; Triton's
own clients get 401 / UNAUTHENTICATED without it and the framework's
predictions with it."""
import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from conftest import Up, triton_grpc, triton_http

WRONG = 'oxf_' + '0' * 64


def call(url, method='GET', body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={'Content-Type': 'application/json', **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def assert_401(status, headers, body, what):
    assert status == 401, (what, status, body[:300])
    answer = json.loads(body)
    assert answer['reason'] == 'Unauthorized' and answer['code'] == 401, (what, answer)
    assert 'Bearer' in headers.get('WWW-Authenticate', headers.get('www-authenticate', '')), (what, headers)


def v2_body(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return {'inputs': [{'name': 'input-0', 'shape': list(rows.shape), 'datatype': 'FP32',
                        'data': rows.flatten().tolist()}]}


def test_oxflow_serve_rest_wants_the_token(server, fixtures):
    rows = fixtures['xgb-binary']['rows']
    want = fixtures['xgb-binary']['outputs']['predict']
    requests = [
        ('POST', '/v2/models/xgb-binary/infer', v2_body(rows)),
        ('POST', '/v1/models/xgb-binary:predict', {'instances': rows}),
        ('GET', '/v2/health/ready', None),
        ('GET', '/v2/health/live', None),
        ('GET', '/v2/models/xgb-binary/ready', None),
        ('GET', '/v2/models/xgb-binary', None),
        ('GET', '/v1/models/xgb-binary', None),
        ('POST', '/v2/repository/index', {}),
        ('GET', '/metrics', None),
    ]
    for method, path, body in requests:
        for headers, what in [({}, 'no token'), ({'Authorization': f'Bearer {WRONG}'}, 'a wrong token'),
                              ({'Authorization': f'Bearer {server.token[:-2]}'}, 'a truncated token')]:
            assert_401(*call(server.url(path), method, body, headers), (method, path, what))
    # A browser gets the 401 too: `oxflow serve` has no login page to send it to.
    status, headers, body = call(server.url('/v2/health/ready'), headers={'Accept': 'text/html'})
    assert_401(status, headers, body, 'text/html')
    status, _, _ = call(server.url('/login'), headers={'Accept': 'text/html'})
    assert status == 401

    # Refused state changes changed nothing: the model is still loaded.
    assert_401(*call(server.url('/v2/repository/models/xgb-binary/unload'), 'POST', {}), 'unload')
    status, _, body = call(server.url('/v2/models/xgb-binary/ready'), headers=server.auth)
    assert status == 200, body

    for method, path, body in requests:
        status, _, answer = call(server.url(path), method, body, server.auth)
        assert status == 200, (method, path, answer[:300])
    status, _, answer = call(server.url('/v2/models/xgb-binary/infer'), 'POST', v2_body(rows), server.auth)
    assert json.loads(answer)['outputs'][0]['data'] == want
    status, _, answer = call(server.url('/v1/models/xgb-binary:predict'), 'POST', {'instances': rows}, server.auth)
    assert json.loads(answer)['predictions'] == want


def test_triton_http_client_without_the_token_is_refused(server, fixtures):
    rows = np.asarray(fixtures['xgb-binary']['rows'], dtype=np.float32)
    for client in (httpclient.InferenceServerClient(url=server.http), triton_http(server.http, WRONG)):
        inp = httpclient.InferInput('input-0', list(rows.shape), 'FP32')
        inp.set_data_from_numpy(rows)
        with pytest.raises(InferenceServerException) as e:
            client.infer('xgb-binary', [inp])
        assert 'authentication required' in str(e.value) or 'not this server' in str(e.value), e.value
        assert not client.is_server_ready()
    client = server.triton_http()
    inp = httpclient.InferInput('input-0', list(rows.shape), 'FP32')
    inp.set_data_from_numpy(rows)
    result = client.infer('xgb-binary', [inp], outputs=[httpclient.InferRequestedOutput('predict')])
    np.testing.assert_array_equal(result.as_numpy('predict'), fixtures['xgb-binary']['outputs']['predict'])


def grpc_infer(client, fixtures, model='xgb-binary'):
    rows = np.asarray(fixtures[model]['rows'], dtype=np.float32)
    inp = grpcclient.InferInput('input-0', list(rows.shape), 'FP32')
    inp.set_data_from_numpy(rows)
    return client.infer(model, [inp], outputs=[grpcclient.InferRequestedOutput('predict')])


def test_oxflow_serve_grpc_wants_the_token(server, fixtures):
    for client in (grpcclient.InferenceServerClient(url=server.grpc), triton_grpc(server.grpc, WRONG)):
        with pytest.raises(InferenceServerException) as e:
            grpc_infer(client, fixtures)
        assert e.value.status() == 'StatusCode.UNAUTHENTICATED', e.value
        for call in (client.is_server_live, lambda: client.is_model_ready('xgb-binary'),
                     lambda: client.unload_model('xgb-binary')):
            with pytest.raises(InferenceServerException) as e:
                call()
            assert e.value.status() == 'StatusCode.UNAUTHENTICATED', e.value
    client = server.triton_grpc()
    assert client.is_model_ready('xgb-binary'), 'the refused unload changed nothing'
    result = grpc_infer(client, fixtures)
    np.testing.assert_array_equal(result.as_numpy('predict'), fixtures['xgb-binary']['outputs']['predict'])


def server_live(target, metadata=()):
    with grpc.insecure_channel(target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        return stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10, metadata=metadata).live


def test_oxflow_up_data_planes_want_the_token(tmp_path_factory):
    up = Up(tmp_path_factory.mktemp('auth-home'))
    try:
        # Before routing: no service needs to exist for the answer to be 401.
        for path, headers in [
            ('/serving/default/any/v2/health/ready', {}),
            ('/serving/default/any/v1/models/any:predict', {}),
            ('/v1/models/any:predict', {'Host': 'any.default.example.com'}),
            ('/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices', {}),
        ]:
            method = 'POST' if path.endswith(':predict') else 'GET'
            body = {'instances': [[1.0]]} if method == 'POST' else None
            assert_401(*call(up.url(path), method, body, headers), path)
            assert_401(*call(up.url(path), method, body, {**headers, 'Authorization': f'Bearer {WRONG}'}), path)
            status, _, answer = call(up.url(path), method, body, {**headers, **up.auth})
            assert status != 401, (path, answer)
        for metadata in [(), (('authorization', f'Bearer {WRONG}'),)]:
            with pytest.raises(grpc.RpcError) as e:
                server_live(up.grpc, metadata)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, e.value
        assert server_live(up.grpc, up.grpc_metadata) is True
    finally:
        up.stop()
