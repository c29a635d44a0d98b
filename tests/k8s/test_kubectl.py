"""kubectl, unmodified, against `oxflow up` with the kubeconfig it writes:
the sequences of shared/reference/kubernetes-api.md on a built-in kind
(ConfigMap) and namespaces. Every test runs with the version dispatcher on
PATH and with the oldest versioned kubectl called directly."""
import json
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import kubectl_binaries

BINARIES = kubectl_binaries()


def short(binary: str) -> str:
    return Path(binary).name.replace('.', '-').replace('_', '-')


class Kubectl:
    def __init__(self, binary, server):
        self.binary = binary
        self.server = server
        self.cache = tempfile.mkdtemp(prefix='kubectl-cache-')

    def env(self):
        env = dict(os.environ, KUBECONFIG=self.server.kubeconfig)
        env.pop('KUBECTL_EXTERNAL_DIFF', None)
        return env

    def run(self, *args, stdin=None, check=True, timeout=60):
        p = subprocess.run([self.binary, '--cache-dir', self.cache, *args], input=stdin, env=self.env(),
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert p.returncode == 0, f'kubectl {" ".join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}'
        return p

    def popen(self, *args):
        return subprocess.Popen([self.binary, '--cache-dir', self.cache, *args], env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(params=BINARIES, ids=short)
def kubectl(request, server):
    if not BINARIES:
        pytest.fail('no kubectl on this machine; scripts/test expects the preinstalled 1.27-1.33 clients')
    return Kubectl(request.param, server)


def manifest(name, data, labels=None, extra=''):
    labels = labels or {'app': 'demo'}
    lines = [f'apiVersion: v1', 'kind: ConfigMap', 'metadata:', f'  name: {name}', '  labels:']
    lines += [f'    {k}: "{v}"' for k, v in labels.items()]
    lines += ['data:'] + [f'  {k}: "{v}"' for k, v in data.items()]
    return '\n'.join(lines) + '\n' + extra


def test_version_discovery_and_namespaces(kubectl):
    out = kubectl.run('version', '-o', 'json').stdout
    assert json.loads(out)['serverVersion']['minor'] == '33'
    resources = kubectl.run('api-resources').stdout
    assert 'configmaps' in resources and 'cm' in resources
    assert 'default' in kubectl.run('get', 'ns', '-o', 'name').stdout


def test_openapi_v3_explains_kinds_and_keeps_server_side_validation(kubectl, server):
    status, root, _ = server.request('GET', '/openapi/v3')
    assert status == 200 and 'apis/kubeflow.org/v1beta1' in root['paths'] and 'api/v1' in root['paths']
    url = root['paths']['apis/kubeflow.org/v1beta1']['serverRelativeURL']
    status, doc, _ = server.request('GET', url)
    assert status == 200
    post = doc['paths']['/apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments']['post']
    assert [p['name'] for p in post['parameters']] == ['fieldValidation']
    explained = kubectl.run('explain', 'experiment').stdout
    assert 'Experiment' in explained and 'spec' in explained and 'status' in explained, explained
    assert 'string' in kubectl.run('explain', 'secret.type').stdout
    # kubectl still asks the server to validate: an unknown field is refused.
    bad = kubectl.run('apply', '-f', '-', check=False, stdin=manifest(f'v3-{short(kubectl.binary)}', {'a': '1'},
                                                                      extra='dataa:\n  y: "2"\n'))
    assert bad.returncode != 0 and 'dataa' in bad.stderr, bad.stderr


def test_apply_get_label_patch_replace_delete(kubectl):
    name = f'cfg-{short(kubectl.binary)}'
    m = manifest(name, {'a': '1'})
    assert 'created' in kubectl.run('apply', '-f', '-', stdin=m).stdout
    assert 'unchanged' in kubectl.run('apply', '-f', '-', stdin=m).stdout
    assert 'configured' in kubectl.run('apply', '-f', '-', stdin=manifest(name, {'a': '2'})).stdout
    obj = json.loads(kubectl.run('get', 'cm', name, '-o', 'json').stdout)
    assert obj['data'] == {'a': '2'}
    assert obj['metadata']['uid'] and int(obj['metadata']['resourceVersion']) > 0
    assert 'kubectl.kubernetes.io/last-applied-configuration' in obj['metadata']['annotations']
    assert kubectl.run('get', 'cm', name, '-o', 'jsonpath={.data.a}').stdout == '2'
    assert 'resourceVersion:' in kubectl.run('get', 'cm', name, '-o', 'yaml').stdout
    assert kubectl.run('get', 'cm', '-o', 'name').stdout.split() .count(f'configmap/{name}') == 1

    kubectl.run('label', 'cm', name, f'owner={short(kubectl.binary)}')
    listed = kubectl.run('get', 'cm', '-l', f'owner={short(kubectl.binary)}', '-o', 'name').stdout.split()
    assert listed == [f'configmap/{name}']
    assert kubectl.run('get', 'cm', '-l', 'owner=nobody', '-o', 'name').stdout.strip() == ''
    table = kubectl.run('get', 'cm', '-A').stdout
    assert 'NAMESPACE' in table and name in table

    kubectl.run('patch', 'cm', name, '--type=merge', '-p', '{"data":{"b":"3"}}')
    kubectl.run('patch', 'cm', name, '--type=json', '-p', '[{"op":"replace","path":"/data/a","value":"9"}]')
    assert json.loads(kubectl.run('get', 'cm', name, '-o', 'json').stdout)['data'] == {'a': '9', 'b': '3'}

    current = json.loads(kubectl.run('get', 'cm', name, '-o', 'json').stdout)
    current['data'] = {'replaced': 'yes'}
    kubectl.run('replace', '-f', '-', stdin=json.dumps(current))
    assert json.loads(kubectl.run('get', 'cm', name, '-o', 'json').stdout)['data'] == {'replaced': 'yes'}

    assert 'serverside-applied' in kubectl.run('apply', '--server-side', '-f', '-',
                                               stdin=manifest(name, {'ssa': '1'})).stdout
    assert json.loads(kubectl.run('get', 'cm', name, '-o', 'json').stdout)['data']['ssa'] == '1'

    described = kubectl.run('describe', 'cm', name).stdout
    assert f'Name:         {name}' in described

    assert 'deleted' in kubectl.run('delete', 'cm', name).stdout
    missing = kubectl.run('get', 'cm', name, check=False)
    assert missing.returncode != 0
    assert f'configmaps "{name}" not found' in missing.stderr


def test_secrets(kubectl):
    import base64
    name = f'sec-{short(kubectl.binary)}'
    kubectl.run('create', 'secret', 'generic', name, '--from-literal=password=s3cret', '--from-literal=user=me')
    table = kubectl.run('get', 'secrets', name).stdout.splitlines()
    assert table[0].split() == ['NAME', 'TYPE', 'DATA', 'AGE'], table
    assert table[1].split()[:3] == [name, 'Opaque', '2'], table
    encoded = kubectl.run('get', 'secret', name, '-o', 'jsonpath={.data.password}').stdout
    assert base64.b64decode(encoded).decode() == 's3cret'
    # describe shows sizes, never values.
    described = kubectl.run('describe', 'secret', name).stdout
    assert 'password:  6 bytes' in described and 's3cret' not in described, described
    # The usual "edit by re-applying" idiom.
    regenerated = kubectl.run('create', 'secret', 'generic', name, '--from-literal=password=rotated',
                              '--dry-run=client', '-o', 'yaml').stdout
    kubectl.run('apply', '-f', '-', stdin=regenerated)
    obj = json.loads(kubectl.run('get', 'secret', name, '-o', 'json').stdout)
    assert base64.b64decode(obj['data']['password']).decode() == 'rotated'
    registry = f'reg-{short(kubectl.binary)}'
    kubectl.run('create', 'secret', 'docker-registry', registry, '--docker-server=registry.local:5000',
                '--docker-username=u', '--docker-password=p')
    assert kubectl.run('get', 'secret', registry, '-o', 'jsonpath={.type}').stdout == 'kubernetes.io/dockerconfigjson'
    bad = kubectl.run('apply', '-f', '-', check=False,
                      stdin=f'apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-bad\ntype: kubernetes.io/tls\n'
                            'stringData:\n  tls.crt: x\n')
    assert bad.returncode != 0 and 'tls.key' in bad.stderr, bad.stderr
    kubectl.run('delete', 'secret', name, registry)


def test_persistent_volume_claims_are_bound_and_reclaimed(kubectl, server):
    name = f'pvc-{short(kubectl.binary)}'
    kubectl.run('apply', '-f', '-', stdin=f"""apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 2Gi
""")
    kubectl.run('wait', '--for=jsonpath={.status.phase}=Bound', f'pvc/{name}', '--timeout=60s')
    table = kubectl.run('get', 'pvc', name).stdout.splitlines()
    assert table[0].split()[:4] == ['NAME', 'STATUS', 'VOLUME', 'CAPACITY'], table
    assert table[1].split()[:2] == [name, 'Bound'] and '2Gi' in table[1], table
    volume = Path(server.home, 'volumes', 'default', name)
    assert volume.is_dir()
    bad = kubectl.run('patch', 'pvc', name, '--type=merge', '-p', '{"spec":{"accessModes":["ReadWriteMany"]}}',
                      check=False)
    assert bad.returncode != 0 and 'immutable' in bad.stderr, bad.stderr
    # kubectl waits for the object to go, which is after its directory.
    kubectl.run('delete', 'pvc', name)
    assert not volume.exists()


def test_create_generators_for_configmaps_and_namespaces(kubectl):
    # These send protobuf bodies, as `create secret` does.
    ns = f'gen-{short(kubectl.binary)}'
    kubectl.run('create', 'namespace', ns)
    kubectl.run('create', 'configmap', 'settings', '-n', ns, '--from-literal=mode=fast', '--from-literal=level=3')
    obj = json.loads(kubectl.run('get', 'cm', 'settings', '-n', ns, '-o', 'json').stdout)
    assert obj['data'] == {'mode': 'fast', 'level': '3'}
    assert obj['metadata']['namespace'] == ns
    kubectl.run('delete', 'cm', 'settings', '-n', ns)
    kubectl.run('delete', 'namespace', ns)


def test_sort_by_and_errors(kubectl):
    base = f'sort-{short(kubectl.binary)}'
    for suffix in ['b', 'a', 'c']:
        kubectl.run('apply', '-f', '-', stdin=manifest(f'{base}-{suffix}', {'x': suffix}))
    names = kubectl.run('get', 'cm', '-l', 'app=demo', '--sort-by=.metadata.name', '-o', 'name').stdout.split()
    mine = [n for n in names if n.startswith(f'configmap/{base}')]
    assert mine == [f'configmap/{base}-a', f'configmap/{base}-b', f'configmap/{base}-c']
    dup = kubectl.run('create', '-f', '-', stdin=manifest(f'{base}-a', {'x': 'a'}), check=False)
    assert dup.returncode != 0 and 'AlreadyExists' in dup.stderr
    # kubectl validates on the server (fieldValidation=Strict): an unknown
    # field is refused, naming it.
    bad = kubectl.run('apply', '-f', '-', stdin=manifest(f'{base}-bad', {'x': '1'}, extra='dataa:\n  y: "2"\n'),
                      check=False)
    assert bad.returncode != 0 and 'dataa' in bad.stderr, bad.stderr
    assert kubectl.run('get', 'cm', f'{base}-bad', check=False).returncode != 0, 'nothing half-written'
    kubectl.run('delete', 'cm', f'{base}-a', f'{base}-b', f'{base}-c')


def read_lines(proc, out):
    for line in proc.stdout:
        out.put(line)


def test_watch_sees_every_change_in_order(kubectl):
    name = f'watched-{short(kubectl.binary)}'
    kubectl.run('apply', '-f', '-', stdin=manifest(name, {'n': '0'}))
    # kubectl lists first (the object comes as ADDED), then watches from
    # the list's resourceVersion, so no change made after the first line
    # can be missed.
    w = kubectl.popen('get', 'cm', '-w', '-o', 'json', '--output-watch-events',
                      '--field-selector', f'metadata.name={name}')
    lines = queue.Queue()
    threading.Thread(target=read_lines, args=(w, lines), daemon=True).start()
    events = []
    try:
        events.append(json.loads(lines.get(timeout=30)))
        kubectl.run('label', 'cm', name, 'step=1')
        kubectl.run('delete', 'cm', name)
        while len(events) < 3:
            events.append(json.loads(lines.get(timeout=30)))
    finally:
        w.kill()
    types = [e['type'] for e in events]
    assert types == ['ADDED', 'MODIFIED', 'DELETED'], types
    assert events[1]['object']['metadata']['labels']['step'] == '1'
    versions = [int(e['object']['metadata']['resourceVersion']) for e in events]
    assert versions == sorted(versions)


def test_wait_for_a_field_and_for_deletion(kubectl):
    name = f'waited-{short(kubectl.binary)}'
    kubectl.run('apply', '-f', '-', stdin=manifest(name, {'ready': 'no'}))
    waiter = kubectl.popen('wait', f'cm/{name}', '--for=jsonpath={.data.ready}=yes', '--timeout=60s')
    kubectl.run('patch', 'cm', name, '--type=merge', '-p', '{"data":{"ready":"yes"}}')
    assert waiter.wait(timeout=90) == 0, waiter.stderr.read()
    gone = kubectl.popen('wait', f'cm/{name}', '--for=delete', '--timeout=60s')
    kubectl.run('delete', 'cm', name, '--wait=false')
    assert gone.wait(timeout=90) == 0, gone.stderr.read()
