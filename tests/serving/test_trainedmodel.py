"""KServe TrainedModels under `oxflow up`: a model-less scikit-learn
InferenceService and two TrainedModels (real scikit-learn models, trained
here and saved with joblib) applied from one file with `oxflow apply
--wait`, each answering at its status URL with scikit-learn's own
predictions, by gRPC model name too; a deleted one 404s while the other
still answers."""
import json
import urllib.error
import urllib.request

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from conftest import Up


def http(up, method, url, body=None):
    """(status, JSON body) of a request to `url` on `up`, with its token."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={'Content-Type': 'application/json', **up.auth})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b'null')
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'null')


FILE = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-mms
spec:
  predictor:
    sklearn:
      protocolVersion: v1
---
apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata:
  name: iris-logreg
spec:
  inferenceService: sklearn-mms
  model:
    storageUri: {logreg}
    framework: sklearn
    memory: 64Mi
---
apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata:
  name: iris-tree
spec:
  inferenceService: sklearn-mms
  model:
    storageUri: {tree}
    framework: sklearn
    memory: 64Mi
"""


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two different scikit-learn models of iris, each saved as model.joblib
    in a directory of its own; and rows on which their answers differ."""
    x, y = load_iris(return_X_y=True)
    # Only petal-free features and a shallow tree: the two models disagree
    # on some rows, so a request reaching the wrong one would show.
    x = x[:, :2]
    logreg = LogisticRegression(max_iter=500).fit(x, y)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y)
    dirs = {}
    for name, model in [('logreg', logreg), ('tree', tree)]:
        d = tmp_path_factory.mktemp(name)
        joblib.dump(model, d / 'model.joblib')
        dirs[name] = d
    rows = x[::7]
    assert (logreg.predict(rows) != tree.predict(rows)).any(), 'the models must differ somewhere'
    return {'dirs': dirs, 'rows': rows, 'logreg': logreg, 'tree': tree}


@pytest.fixture(scope='module')
def up(trained, tmp_path_factory):
    home = tmp_path_factory.mktemp('tm-home')
    u = Up(home)
    f = home / 'mms.yaml'
    f.write_text(FILE.format(logreg=trained['dirs']['logreg'], tree=trained['dirs']['tree']))
    out = u.cli('apply', '-f', str(f), '--wait', '180')
    assert 'inferenceservice.serving.kserve.io/sklearn-mms created' in out.stdout, out.stdout
    for name in ['iris-logreg', 'iris-tree']:
        assert f'trainedmodel.serving.kserve.io/{name} created' in out.stdout, out.stdout
        url = u.url(f'/serving/default/sklearn-mms/v1/models/{name}:predict')
        assert f'trained model {name} is ready at {url}' in out.stdout, out.stdout
    yield u
    u.stop()


def status_url(up, name):
    v = json.loads(up.cli('tm', 'get', name, '-o', 'json').stdout)
    assert {c['type']: c['status'] for c in v['status']['conditions']} == {
        'FrameworkSupported': 'True', 'InferenceServiceReady': 'True', 'IsMMSPredictor': 'True',
        'MemoryResourceAvailable': 'True', 'Ready': 'True'}, v['status']
    assert v['status']['address']['url'] == v['status']['url']
    return v['status']['url']


def test_each_trained_model_answers_with_its_own_predictions(up, trained):
    rows = trained['rows']
    for name, model in [('iris-logreg', trained['logreg']), ('iris-tree', trained['tree'])]:
        code, body = http(up, 'POST', status_url(up, name), {'instances': rows.tolist()})
        assert code == 200, body
        assert body['predictions'] == model.predict(rows).tolist(), name
    # The service itself is ready and serves no model of its own name.
    isvc = json.loads(up.cli('isvc', 'get', 'sklearn-mms', '-o', 'json').stdout)
    assert {c['type']: c['status'] for c in isvc['status']['conditions']}['Ready'] == 'True'
    code, _ = http(up, 'POST', up.url('/serving/default/sklearn-mms/v1/models/sklearn-mms:predict'),
                   {'instances': rows.tolist()})
    assert code == 404


def test_grpc_reaches_a_trained_model_by_name(up, trained):
    import tritonclient.grpc as grpcclient
    client = up.triton_grpc()
    assert client.is_model_ready('iris-tree')
    rows = trained['rows'].astype(np.float32)
    inp = grpcclient.InferInput('input-0', list(rows.shape), 'FP32')
    inp.set_data_from_numpy(rows)
    result = client.infer('iris-tree', [inp], outputs=[grpcclient.InferRequestedOutput('predict')])
    np.testing.assert_array_equal(result.as_numpy('predict'), trained['tree'].predict(trained['rows']))


def test_lists_and_remote_get(up):
    listed = json.loads(up.cli('tm', 'list', '-o', 'json', remote=True).stdout)
    assert sorted(i['metadata']['name'] for i in listed) == ['iris-logreg', 'iris-tree']
    assert all(i['spec']['inferenceService'] == 'sklearn-mms' for i in listed)
    text = up.cli('trainedmodel', 'get', 'iris-tree').stdout
    assert 'sklearn-mms' in text and 'ready             True' in text, text


def test_serving_runtimes_are_refused_with_a_reason(up, tmp_path):
    f = tmp_path / 'runtime.yaml'
    f.write_text('apiVersion: serving.kserve.io/v1alpha1\nkind: ServingRuntime\nmetadata: {name: rt}\n'
                 'spec:\n  supportedModelFormats: [{name: sklearn}]\n'
                 '  containers: [{name: kserve-container, image: img}]\n')
    out = up.cli('apply', '-f', str(f), check=False)
    assert out.returncode != 0
    assert 'ServingRuntime' in out.stderr and 'applies no ServingRuntimes' in out.stderr, out.stderr


def test_a_deleted_trained_model_404s_while_the_other_answers(up, trained):
    rows = trained['rows']
    tree_url = status_url(up, 'iris-tree')
    logreg_url = status_url(up, 'iris-logreg')
    out = up.cli('tm', 'delete', 'iris-logreg', remote=True)
    assert 'trainedmodel.serving.kserve.io "iris-logreg" deleted' in out.stdout, out.stdout
    code, body = http(up, 'POST', logreg_url, {'instances': rows.tolist()})
    assert code == 404, body
    code, body = http(up, 'POST', tree_url, {'instances': rows.tolist()})
    assert code == 200, body
    assert body['predictions'] == trained['tree'].predict(rows).tolist()
    out = up.cli('tm', 'get', 'iris-logreg', check=False)
    assert out.returncode != 0 and 'iris-logreg' in out.stderr, out.stderr


def test_trained_models_survive_a_restart(up, trained):
    # Last in this module: the server is replaced by a new one on the same data.
    up.stop()
    again = Up(up.home)
    try:
        rows = trained['rows']
        # The request waits while the model loads again.
        code, body = http(again, 'POST', again.url('/serving/default/sklearn-mms/v1/models/iris-tree:predict'),
                          {'instances': rows.tolist()})
        assert code == 200, body
        assert body['predictions'] == trained['tree'].predict(rows).tolist()
        code, body = http(again, 'POST', again.url('/serving/default/sklearn-mms/v1/models/iris-logreg:predict'),
                          {'instances': rows.tolist()})
        assert code == 404, body
    finally:
        again.stop()
