"""The Open Inference Protocol with Triton's own clients: tritonclient.http
(binary tensor extension, its default, and JSON) and tritonclient.grpc
(raw contents). Every answer is compared with the framework's prediction.
The clients send the server's token through a registered plugin
(conftest's triton_http / triton_grpc)."""
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

# model → (outputs to request, the input's datatype)
CASES = {
    'onnx-logreg': ['label', 'probabilities'],
    'onnx-rf': ['label', 'probabilities'],
    'xgb-binary': ['predict', 'predict_proba'],
    'xgb-multi': ['predict', 'predict_proba'],
    'xgb-reg': ['predict'],
    'lgb-binary': ['predict', 'predict_proba'],
    'lgb-multi': ['predict', 'predict_proba'],
    'sk-logreg': ['predict', 'predict_proba'],
}


def check(fixture, name, got):
    want = np.asarray(fixture['outputs'][name])
    assert got.shape == want.shape, (name, got.shape, want.shape)
    if want.dtype.kind in 'iub':
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('binary', [True, False], ids=['binary', 'json'])
@pytest.mark.parametrize('model', sorted(CASES))
def test_http_matches_the_framework(server, fixtures, model, binary):
    client = server.triton_http()
    rows = np.asarray(fixtures[model]['rows'], dtype=np.float32)
    inp = httpclient.InferInput('input-0', list(rows.shape), 'FP32')
    inp.set_data_from_numpy(rows, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(o, binary_data=binary) for o in CASES[model]]
    result = client.infer(model, [inp], outputs=outputs, request_id='req-1')
    assert result.get_response()['id'] == 'req-1'
    for o in CASES[model]:
        check(fixtures[model], o, result.as_numpy(o))


@pytest.mark.parametrize('model', sorted(CASES))
def test_grpc_matches_the_framework(server, fixtures, model):
    client = server.triton_grpc()
    rows = np.asarray(fixtures[model]['rows'], dtype=np.float32)
    inp = grpcclient.InferInput('input-0', list(rows.shape), 'FP32')
    inp.set_data_from_numpy(rows)
    outputs = [grpcclient.InferRequestedOutput(o) for o in CASES[model]]
    result = client.infer(model, [inp], outputs=outputs)
    for o in CASES[model]:
        check(fixtures[model], o, result.as_numpy(o))


def test_health_and_metadata_with_both_clients(server):
    for client in (server.triton_http(),
                   server.triton_grpc()):
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready('xgb-binary')
        assert not client.is_model_ready('no-such-model') if client.__module__.startswith('tritonclient.http') else True
    meta = server.triton_http().get_model_metadata('onnx-rf')
    assert meta['platform'] == 'onnx_onnxv1'
    assert meta['inputs'][0]['shape'] == [-1, 8]
    gmeta = server.triton_grpc().get_model_metadata('xgb-multi', as_json=True)
    assert gmeta['outputs'][1] == {'name': 'predict_proba', 'datatype': 'FP32', 'shape': ['-1', '3']}
    smeta = server.triton_http().get_server_metadata()
    assert 'binary_tensor_data' in smeta['extensions']


def test_errors_reach_the_clients_as_messages(server, fixtures):
    http = server.triton_http()
    rows = np.asarray(fixtures['xgb-binary']['rows'], dtype=np.float32)[:, :5]
    inp = httpclient.InferInput('input-0', list(rows.shape), 'FP32')
    inp.set_data_from_numpy(rows)
    with pytest.raises(InferenceServerException, match=r'needs \[rows, 8\]'):
        http.infer('xgb-binary', [inp])
    with pytest.raises(InferenceServerException, match='Model nope not found'):
        http.infer('nope', [inp])
    grpc = server.triton_grpc()
    ginp = grpcclient.InferInput('input-0', list(rows.shape), 'FP32')
    ginp.set_data_from_numpy(rows)
    with pytest.raises(InferenceServerException, match='StatusCode.INVALID_ARGUMENT') as e:
        grpc.infer('xgb-binary', [ginp])
    assert 'needs [rows, 8]' in str(e.value)
    # The server goes on serving.
    assert http.is_server_ready()


def test_repository_unload_and_load(server):
    for client in (server.triton_http(),
                   server.triton_grpc()):
        client.unload_model('xgb-reg')
        assert not client.is_model_ready('xgb-reg')
        client.load_model('xgb-reg')
        assert client.is_model_ready('xgb-reg')
    index = server.triton_http().get_model_repository_index()
    assert {m['name'] for m in index} >= set(CASES)
