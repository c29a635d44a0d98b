"""KServe's kinds through the Kubernetes API of `oxflow up`, with the
clients KServe users have: kubectl (apply, get with KServe's printer
columns, wait, describe, delete) and KServe's own Python SDK
(`KServeClient`: create with and without watch, get, wait_isvc_ready, patch,
replace, delete), with the kubeconfig `oxflow up` writes. The services they
create are served: an inference through the status URL answers."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import kubectl_binaries
from test_kubectl import Kubectl, short

BINARIES = kubectl_binaries()


@pytest.fixture(scope='module')
def model_uri(server):
    """A real XGBoost model under the data directory's models/ (a
    storageUri Oxflow may read)."""
    import numpy as np
    import xgboost as xgb
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    d = Path(server.home, 'models', 'xgb')
    d.mkdir(parents=True, exist_ok=True)
    booster = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y)
    booster.save_model(str(d / 'model.json'))
    return str(d)


def isvc_yaml(name, uri, extra_meta=''):
    return (f'apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n{extra_meta}'
            f'spec:\n  predictor:\n    model:\n      modelFormat:\n        name: xgboost\n'
            f'      protocolVersion: v2\n      storageUri: {uri}\n')


def infer(server, url):
    """A V2 inference through the service's status URL (its path on the server)."""
    path = url.split('://', 1)[1]
    path = path[path.index('/'):]
    name = path.rstrip('/').split('/')[-1]
    body = {'inputs': [{'name': 'x', 'shape': [1, 2], 'datatype': 'FP32', 'data': [1.0, 0.0]}]}
    return server.request('POST', f'{path}/v2/models/{name}/infer', body)


@pytest.mark.parametrize('binary', BINARIES, ids=short)
def test_kubectl_applies_waits_for_and_deletes_an_inference_service(server, model_uri, binary):
    kubectl = Kubectl(binary, server)
    name = f'iris-{short(binary)}'
    out = kubectl.run('apply', '-f', '-', stdin=isvc_yaml(name, model_uri)).stdout
    assert f'inferenceservice.serving.kserve.io/{name} created' in out
    kubectl.run('wait', '--for=condition=Ready', f'isvc/{name}', '--timeout=120s', timeout=150)

    # KServe's printer columns, by short name.
    table = kubectl.run('get', 'isvc', name).stdout.splitlines()
    assert table[0].split() == ['NAME', 'URL', 'READY', 'PREV', 'LATEST', 'PREVROLLEDOUTREVISION',
                                'LATESTREADYREVISION', 'AGE'], table
    row = table[1].split()
    assert row[0] == name and row[2] == 'True' and f'{name}-predictor-00001' in row, table
    url = kubectl.run('get', 'inferenceservice', name, '-o', 'jsonpath={.status.url}').stdout
    status, out, _ = infer(server, url)
    assert status == 200, out
    assert len(out['outputs'][0]['data']) >= 1

    # Applying the same file again changes nothing; an annotation is a
    # change of metadata, not of the spec (the generation stays).
    out = kubectl.run('apply', '-f', '-', stdin=isvc_yaml(name, model_uri)).stdout
    assert 'unchanged' in out, out
    out = kubectl.run('apply', '-f', '-',
                      stdin=isvc_yaml(name, model_uri, '  annotations:\n    team: a\n')).stdout
    assert 'configured' in out, out
    got = json.loads(kubectl.run('get', 'isvc', name, '-o', 'json').stdout)
    assert got['metadata']['generation'] == 1
    assert got['metadata']['annotations']['team'] == 'a'
    assert 'kubectl.kubernetes.io/last-applied-configuration' in got['metadata']['annotations']

    described = kubectl.run('describe', 'isvc', name).stdout
    assert f'Name:         {name}' in described and 'Ready' in described, described
    # The controller's event, found by kubectl's own involvedObject query.
    assert 'InferenceServiceReady' in described and 'inferenceservice-controller' in described, described

    # Server-side apply (one PATCH, create or merge) of the same spec.
    out = kubectl.run('apply', '--server-side', '-f', '-', stdin=isvc_yaml(name, model_uri)).stdout
    assert 'serverside-applied' in out, out
    # Strict validation names an unknown field.
    bad = isvc_yaml(name, model_uri).replace('storageUri', 'storageUrl')
    p = kubectl.run('apply', '-f', '-', stdin=bad, check=False)
    assert p.returncode != 0 and 'storageUrl' in p.stderr, p.stderr

    kubectl.run('delete', 'isvc', name)
    kubectl.run('wait', f'isvc/{name}', '--for=delete', '--timeout=60s')
    p = kubectl.run('get', 'isvc', name, check=False)
    assert p.returncode != 0 and 'NotFound' in p.stderr, p.stderr


def test_the_kserve_sdk_manages_inference_services(server, model_uri):
    from kserve import (KServeClient, V1beta1InferenceService, V1beta1InferenceServiceSpec,
                        V1beta1ModelFormat, V1beta1ModelSpec, V1beta1PredictorSpec, constants)
    from kubernetes import client

    def service(name, min_replicas=None):
        return V1beta1InferenceService(
            api_version=constants.KSERVE_V1BETA1, kind=constants.KSERVE_KIND_INFERENCESERVICE,
            metadata=client.V1ObjectMeta(name=name, namespace='default'),
            spec=V1beta1InferenceServiceSpec(predictor=V1beta1PredictorSpec(
                min_replicas=min_replicas,
                model=V1beta1ModelSpec(model_format=V1beta1ModelFormat(name='xgboost'),
                                       protocol_version='v2', storage_uri=model_uri))))

    kc = KServeClient(config_file=server.kubeconfig)
    created = kc.create(service('sdk-a'))
    assert created['metadata']['name'] == 'sdk-a' and created['metadata']['generation'] == 1
    kc.wait_isvc_ready('sdk-a', namespace='default', timeout_seconds=120, polling_interval=1)
    got = kc.get('sdk-a', namespace='default')
    assert kc.is_isvc_ready('sdk-a', namespace='default')
    status, out, _ = infer(server, got['status']['url'])
    assert status == 200, out

    # patch (a merge patch of the model's to_dict) and replace (with the
    # resourceVersion read): each a new generation that becomes ready.
    patched = kc.patch('sdk-a', service('sdk-a', min_replicas=2), namespace='default')
    assert patched['metadata']['generation'] == 2, patched['metadata']
    kc.wait_isvc_ready('sdk-a', namespace='default', timeout_seconds=120, polling_interval=1,
                       expected_generation=2)
    current = kc.get('sdk-a', namespace='default')
    replacement = service('sdk-a', min_replicas=1)
    replacement.metadata.resource_version = current['metadata']['resourceVersion']
    replaced = kc.replace('sdk-a', replacement, namespace='default')
    assert replaced['metadata']['generation'] == 3
    # A replace with a stale resourceVersion is refused (409 Conflict).
    with pytest.raises(RuntimeError, match='409|Conflict'):
        kc.replace('sdk-a', replacement, namespace='default')

    # create(watch=True) follows a watch until the service is Ready.
    kc.create(service('sdk-b'), watch=True, timeout_seconds=120)
    assert kc.is_isvc_ready('sdk-b', namespace='default')
    kc.wait_isvc_ready('sdk-b', namespace='default', watch=True, timeout_seconds=60)

    for name in ('sdk-a', 'sdk-b'):
        kc.delete(name, namespace='default')
        with pytest.raises(RuntimeError):
            kc.get(name, namespace='default')
