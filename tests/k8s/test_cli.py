"""`oxflow get`, `describe` and `delete`: any registry kind, named as
kubectl names them, against a running server (`--server`, its Kubernetes
API) and against the same data directory without one."""
import json
import os
import subprocess

import pytest

from conftest import oxflow_bin


def oxflow(server, *args, remote=True, check=True):
    env = dict(os.environ, OXFLOW_HOME=server.home)
    env.pop('OXFLOW_SERVER', None)
    env.pop('OXFLOW_DATABASE', None)
    pre = ['--server', server.url, '--token', server.token] if remote else []
    p = subprocess.run([oxflow_bin(), *pre, *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, f'oxflow {" ".join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}'
    return p


def make_cm(server, name, labels, data):
    status, out, _ = server.request('POST', '/api/v1/namespaces/default/configmaps', {
        'apiVersion': 'v1', 'kind': 'ConfigMap',
        'metadata': {'name': name, 'labels': labels}, 'data': data})
    assert status == 201, out


@pytest.mark.parametrize('remote', [True, False], ids=['server', 'local'])
def test_get_describe_and_delete_any_kind(server, remote):
    tag = 'r' if remote else 'l'
    make_cm(server, f'cli-a-{tag}', {'app': f'cli-{tag}', 'tier': 'web'}, {'k': 'v'})
    make_cm(server, f'cli-b-{tag}', {'app': f'cli-{tag}', 'tier': 'db'}, {'k': 'w'})

    names = oxflow(server, 'get', 'cm', '-l', f'app=cli-{tag}', '-o', 'name', remote=remote).stdout.split()
    assert names == [f'configmaps/cli-a-{tag}', f'configmaps/cli-b-{tag}']
    only = oxflow(server, 'get', 'configmaps', '-l', f'app=cli-{tag},tier!=web', '-o', 'name', remote=remote)
    assert only.stdout.split() == [f'configmaps/cli-b-{tag}']
    one = json.loads(oxflow(server, 'get', 'configmap', f'cli-a-{tag}', '-o', 'json', remote=remote).stdout)
    assert one['data'] == {'k': 'v'} and one['metadata']['labels']['tier'] == 'web'

    # The kind's printer columns: NAME and AGE for config maps, KServe's
    # for inference services; namespaces are cluster-scoped.
    table = oxflow(server, 'get', 'cm', '-l', f'app=cli-{tag}', remote=remote).stdout.splitlines()
    assert table[0].split() == ['NAME', 'AGE'] and table[1].startswith(f'cli-a-{tag}'), table
    ns = oxflow(server, 'get', 'ns', '-A', remote=remote).stdout.splitlines()
    assert ns[0].split() == ['NAME', 'STATUS', 'AGE'] and any(l.startswith('default ') for l in ns), ns
    empty = oxflow(server, 'get', 'isvc', '-n', 'nobody-here', remote=remote)
    assert 'No resources found in nobody-here namespace' in empty.stderr, empty.stderr

    described = oxflow(server, 'describe', 'cm', f'cli-a-{tag}', remote=remote).stdout
    assert f'Name:         cli-a-{tag}' in described and 'tier=web' in described, described
    assert 'Events:       <none>' in described

    out = oxflow(server, 'delete', 'cm', f'cli-a-{tag}', f'cli-b-{tag}', remote=remote).stdout
    assert f'configmaps "cli-a-{tag}" deleted' in out and f'configmaps "cli-b-{tag}" deleted' in out
    again = oxflow(server, 'delete', 'cm', f'cli-a-{tag}', remote=remote, check=False)
    assert again.returncode == 1 and 'NotFound' in again.stderr
    status, _, _ = server.request('GET', f'/api/v1/namespaces/default/configmaps/cli-a-{tag}')
    assert status == 404


def test_unknown_kinds_and_bad_selectors_are_named(server):
    p = oxflow(server, 'get', 'widgets', check=False)
    assert p.returncode != 0 and '"widgets"' in p.stderr and 'inferenceservices (isvc)' in p.stderr, p.stderr
    p = oxflow(server, 'get', 'cm', '-l', 'app in (a', check=False)
    assert p.returncode != 0 and '--selector' in p.stderr, p.stderr
