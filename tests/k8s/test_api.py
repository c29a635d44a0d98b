"""The Kubernetes API of `oxflow up` through the `kubernetes` Python client
(what every Kubeflow SDK is built on) and raw requests: conflicts between
racing writers, a watch resumed across a restart, and bad input answered
with a Status that names what is wrong."""
import json
import ssl
import threading
import urllib.request

import pytest


@pytest.fixture(scope='module')
def core(server):
    from kubernetes import client, config
    api_client = config.new_client_from_config(config_file=server.kubeconfig)
    return client.CoreV1Api(api_client)


def cm(name, data, labels=None):
    return {'apiVersion': 'v1', 'kind': 'ConfigMap',
            'metadata': {'name': name, 'labels': labels or {'suite': 'api'}}, 'data': data}


def test_the_python_client_creates_reads_lists_patches_and_deletes(core):
    from kubernetes.client.rest import ApiException
    created = core.create_namespaced_config_map('default', cm('py-a', {'k': 'v'}))
    assert created.metadata.uid and created.metadata.resource_version
    assert core.read_namespaced_config_map('py-a', 'default').data == {'k': 'v'}
    listed = core.list_namespaced_config_map('default', label_selector='suite=api')
    assert [i.metadata.name for i in listed.items] == ['py-a']
    assert listed.metadata.resource_version
    patched = core.patch_namespaced_config_map('py-a', 'default', {'data': {'k2': 'v2'}})
    assert patched.data == {'k': 'v', 'k2': 'v2'}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map('default', cm('py-a', {}))
    assert e.value.status == 409
    assert json.loads(e.value.body)['reason'] == 'AlreadyExists'
    core.delete_namespaced_config_map('py-a', 'default')
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map('py-a', 'default')
    assert e.value.status == 404
    assert json.loads(e.value.body)['message'] == 'configmaps "py-a" not found'
    names = [n.metadata.name for n in core.list_namespace().items]
    assert 'default' in names


def test_secrets_through_the_python_client_are_base64_and_never_logged(core, server):
    import base64
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    value = 'pw-7f3a9c-never-in-logs'
    body = client.V1Secret(metadata=client.V1ObjectMeta(name='py-secret', labels={'suite': 'secrets'}),
                           string_data={'password': value}, type='Opaque')
    created = core.create_namespaced_secret('default', body)
    assert created.string_data is None
    assert base64.b64decode(created.data['password']).decode() == value
    read = core.read_namespaced_secret('py-secret', 'default')
    assert read.type == 'Opaque' and read.data == created.data
    listed = core.list_namespaced_secret('default', label_selector='suite=secrets')
    assert [s.metadata.name for s in listed.items] == ['py-secret']
    patched = core.patch_namespaced_secret('py-secret', 'default', {'stringData': {'user': 'admin'}})
    assert sorted(patched.data) == ['password', 'user']
    # A value that is not base64 is refused naming the key; nothing is written.
    with pytest.raises(ApiException) as e:
        core.create_namespaced_secret('default', {'metadata': {'name': 'py-bad'}, 'data': {'k': 'not base64!'}})
    assert e.value.status == 422
    assert [c['field'] for c in json.loads(e.value.body)['details']['causes']] == ['data[k]']
    with pytest.raises(ApiException) as e:
        core.read_namespaced_secret('py-bad', 'default')
    assert e.value.status == 404
    core.delete_namespaced_secret('py-secret', 'default')
    assert not core.list_namespaced_secret('default', label_selector='suite=secrets').items
    encoded = created.data['password']
    assert not [line for line in server.log if value in line or encoded in line]


def test_the_python_client_watch_stream(core):
    from kubernetes import watch
    core.create_namespaced_config_map('default', cm('py-w', {'n': '0'}, {'suite': 'watch'}))
    w = watch.Watch()
    seen = []
    changed = threading.Event()

    def change():
        changed.wait(30)
        core.patch_namespaced_config_map('py-w', 'default', {'data': {'n': '1'}})
        core.delete_namespaced_config_map('py-w', 'default')

    threading.Thread(target=change, daemon=True).start()
    # Without a resourceVersion the stream starts with the objects there
    # are (KServe's watch relies on this).
    for event in w.stream(core.list_namespaced_config_map, 'default', label_selector='suite=watch',
                          timeout_seconds=30):
        seen.append((event['type'], event['object'].data))
        if len(seen) == 1:
            changed.set()
        if event['type'] == 'DELETED':
            w.stop()
    assert seen == [('ADDED', {'n': '0'}), ('MODIFIED', {'n': '1'}), ('DELETED', {'n': '1'})]


def test_two_writers_racing_a_put_one_gets_409(server):
    status, obj, _ = server.request('POST', '/api/v1/namespaces/default/configmaps', cm('race', {'v': '0'}))
    assert status == 201, obj
    results = []

    def put(value):
        body = dict(obj, data={'v': value})
        results.append(server.request('PUT', '/api/v1/namespaces/default/configmaps/race', body)[:2])

    threads = [threading.Thread(target=put, args=(str(i),)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r[0] for r in results)
    assert codes == [200, 409], results
    loser = next(r[1] for r in results if r[0] == 409)
    assert loser['reason'] == 'Conflict' and 'has been modified' in loser['message']
    server.request('DELETE', '/api/v1/namespaces/default/configmaps/race')


def watch_lines(server, path, count, timeout=30):
    """Reads `count` watch events from `path` over HTTPS."""
    req = urllib.request.Request(server.https + path, headers={'Authorization': f'Bearer {server.token}'})
    ctx = ssl.create_default_context(cafile=server.ca)
    events = []
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
        assert resp.headers['Content-Type'].startswith('application/json')
        for line in resp:
            events.append(json.loads(line))
            if len(events) == count:
                break
    return events


def test_a_watch_resumes_across_a_restart(server):
    status, a, _ = server.request('POST', '/api/v1/namespaces/default/configmaps', cm('before', {'x': '1'}))
    assert status == 201
    rv = a['metadata']['resourceVersion']
    server.request('PATCH', '/api/v1/namespaces/default/configmaps/before', {'data': {'x': '2'}},
                   headers={'Content-Type': 'application/merge-patch+json'})
    server.restart()
    status, _, _ = server.request('POST', '/api/v1/namespaces/default/configmaps', cm('after', {'y': '1'}))
    assert status == 201
    events = watch_lines(server, f'/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}', 2)
    assert [(e['type'], e['object']['metadata']['name']) for e in events] == [
        ('MODIFIED', 'before'), ('ADDED', 'after')]
    for name in ['before', 'after']:
        server.request('DELETE', f'/api/v1/namespaces/default/configmaps/{name}')


@pytest.mark.parametrize('path,want', [
    ('/api/v1/namespaces/default/configmaps?labelSelector=a+in+(x', 'position'),
    ('/api/v1/namespaces/default/configmaps?fieldSelector=spec.x%3D1', 'spec.x'),
    ('/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=abc', 'resourceVersion'),
    ('/api/v1/namespaces/default/configmaps?watch=maybe', 'watch'),
    ('/api/v1/namespaces/default/configmaps?limit=-1', 'limit'),
    ('/api/v1/namespaces/default/configmaps?continue=zz', 'continue'),
    ('/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=soon', 'timeoutSeconds'),
])
def test_malformed_queries_are_400_naming_the_parameter(server, path, want):
    status, body, _ = server.request('GET', path)
    assert status == 400, body
    assert body['kind'] == 'Status' and body['reason'] == 'BadRequest'
    assert want in body['message'], body


def test_bad_writes_name_the_field_and_store_nothing(server):
    base = '/api/v1/namespaces/default/configmaps'
    status, body, _ = server.request('POST', base + '?fieldValidation=Strict',
                                     dict(cm('strict', {}), dataa={'x': '1'}))
    assert status == 400, body
    assert [c['field'] for c in body['details']['causes']] == ['dataa']
    status, body, _ = server.request('POST', base, cm('Bad_Name', {}))
    assert status == 422 and body['reason'] == 'Invalid'
    assert body['details']['causes'][0]['field'] == 'metadata.name'
    status, body, _ = server.request('POST', base, raw=b'k8s\x00',
                                     headers={'Content-Type': 'application/vnd.kubernetes.protobuf'})
    assert status == 415 and 'apply' in body['message'], body
    status, body, _ = server.request('POST', base, raw=b'{"metadata": ')
    assert status == 400 and 'line 1' in body['message'], body
    status, body, _ = server.request('POST', base, dict(cm('x', {}), data={'n': 1}))
    assert status == 422 and body['details']['causes'][0]['field'] == 'data.n', body
    status, created, _ = server.request('POST', base, cm('patched', {'a': '1'}))
    assert status == 201
    status, body, _ = server.request('PATCH', base + '/patched', raw=b'[{"op": "replace", "path": "/data/zz", "value": 1}]',
                                     headers={'Content-Type': 'application/json-patch+json'})
    assert status == 400 and '/data/zz' in body['message'], body
    status, body, _ = server.request('PATCH', base + '/patched', raw=b'{}',
                                     headers={'Content-Type': 'text/plain'})
    assert status == 415, body
    status, after, _ = server.request('GET', base + '/patched')
    assert after['metadata']['resourceVersion'] == created['metadata']['resourceVersion'], 'nothing half-written'
    status, listed, _ = server.request('GET', base)
    names = [i['metadata']['name'] for i in listed['items']]
    assert 'strict' not in names and 'Bad_Name' not in names and 'x' not in names
    server.request('DELETE', base + '/patched')


def test_table_output_and_pages(server):
    base = '/api/v1/namespaces/default/configmaps'
    for i in range(5):
        assert server.request('POST', base, cm(f'page-{i}', {}, {'suite': 'pages'}))[0] == 201
    seen, token = [], None
    while True:
        q = f'{base}?labelSelector=suite%3Dpages&limit=2' + (f'&continue={token}' if token else '')
        status, page, _ = server.request('GET', q)
        assert status == 200
        seen += [i['metadata']['name'] for i in page['items']]
        token = page['metadata'].get('continue')
        if not token:
            break
    assert seen == [f'page-{i}' for i in range(5)]
    status, tab, hdrs = server.request('GET', f'{base}?labelSelector=suite%3Dpages',
                                       headers={'Accept': 'application/json;as=Table;v=v1;g=meta.k8s.io'})
    assert status == 200 and tab['kind'] == 'Table'
    assert [c['name'] for c in tab['columnDefinitions']] == ['Name', 'Age']
    assert [r['cells'][0] for r in tab['rows']] == seen
    assert tab['rows'][0]['object']['kind'] == 'PartialObjectMetadata'
    for i in range(5):
        server.request('DELETE', f'{base}/page-{i}')


AGG = ('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,'
       'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json')


@pytest.mark.parametrize('version', ['v2', 'v2beta1'])
def test_aggregated_discovery_lists_every_kind_in_one_answer(server, version):
    accept = AGG if version == 'v2' else AGG.split(',', 1)[1]
    status, body, headers = server.request('GET', '/apis', headers={'Accept': accept})
    assert status == 200, body
    assert headers['Content-Type'] == f'application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList'
    assert body['kind'] == 'APIGroupDiscoveryList' and body['apiVersion'] == f'apidiscovery.k8s.io/{version}'
    groups = {g['metadata']['name']: g for g in body['items']}
    assert '' not in groups, 'the core group is /api'
    serving = {v['version']: v for v in groups['serving.kserve.io']['versions']}
    isvc = next(r for r in serving['v1beta1']['resources'] if r['resource'] == 'inferenceservices')
    assert isvc['scope'] == 'Namespaced' and isvc['shortNames'] == ['isvc']
    assert isvc['responseKind'] == {'group': 'serving.kserve.io', 'version': 'v1beta1', 'kind': 'InferenceService'}
    assert isvc['subresources'][0]['subresource'] == 'status'
    assert 'v1alpha1' in serving
    status, core, _ = server.request('GET', '/api', headers={'Accept': accept})
    assert [g['metadata']['name'] for g in core['items']] == ['']
    kinds = {r['resource']: r['scope'] for r in core['items'][0]['versions'][0]['resources']}
    assert kinds['namespaces'] == 'Cluster' and kinds['configmaps'] == 'Namespaced'
    # Without the aggregated Accept, the legacy lists.
    status, legacy, _ = server.request('GET', '/apis')
    assert legacy['kind'] == 'APIGroupList'
