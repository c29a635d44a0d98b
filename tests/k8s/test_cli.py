"""`oxflow get`, `describe` and `delete`: any registry kind, named as
kubectl names them, against a running server (`--server`, its Kubernetes
API) and against the same data directory without one."""
import json
import os
import subprocess

import pytest

from conftest import oxflow_bin
from test_api import watch_lines


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


@pytest.mark.parametrize('remote', [True, False], ids=['server', 'local'])
def test_apply_takes_any_kind_and_checks_every_document_first(server, remote, tmp_path):
    tag = 'r' if remote else 'l'
    good = (f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied-{tag}\n  labels: {{app: applied}}\n'
            f'data:\n  k: "1"\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-{tag}\n')
    f = tmp_path / 'objects.yaml'
    f.write_text(good)
    out = oxflow(server, 'apply', '-f', str(f), remote=remote).stdout
    assert f'configmap/applied-{tag} created' in out and f'namespace/team-{tag} created' in out, out
    out = oxflow(server, 'apply', '-f', str(f), remote=remote).stdout
    assert f'configmap/applied-{tag} unchanged' in out, out
    f.write_text(good.replace('k: "1"', 'k: "2"'))
    out = oxflow(server, 'apply', '-f', str(f), remote=remote).stdout
    assert f'configmap/applied-{tag} configured' in out, out
    status, cm, _ = server.request('GET', f'/api/v1/namespaces/default/configmaps/applied-{tag}')
    assert status == 200 and cm['data'] == {'k': '2'}, cm

    # A bad second document: refused naming it and the field, and the
    # first (a new object) is not stored either.
    f.write_text(f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: never-{tag}\ndata:\n  k: "1"\n---\n'
                 f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad-{tag}\ndata:\n  k: 3\n')
    p = oxflow(server, 'apply', '-f', str(f), remote=remote, check=False)
    assert p.returncode != 0 and 'document 2' in p.stderr and 'data.k' in p.stderr, p.stderr
    status, _, _ = server.request('GET', f'/api/v1/namespaces/default/configmaps/never-{tag}')
    assert status == 404
    f.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndta:\n  k: "1"\n')
    p = oxflow(server, 'apply', '-f', str(f), remote=remote, check=False)
    assert p.returncode != 0 and 'dta: unknown field' in p.stderr, p.stderr
    f.write_text('apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n')
    p = oxflow(server, 'apply', '-f', str(f), remote=remote, check=False)
    assert p.returncode != 0 and '"Widget"' in p.stderr and 'document 1' in p.stderr, p.stderr
    oxflow(server, 'delete', 'cm', f'applied-{tag}', remote=remote)
    oxflow(server, 'delete', 'ns', f'team-{tag}', remote=remote)


def experiment(name, command):
    return {
        'apiVersion': 'kubeflow.org/v1beta1', 'kind': 'Experiment', 'metadata': {'name': name},
        'spec': {
            'objective': {'type': 'minimize', 'objectiveMetricName': 'loss'},
            'algorithm': {'algorithmName': 'random'},
            'parallelTrialCount': 1, 'maxTrialCount': 1,
            'parameters': [{'name': 'lr', 'parameterType': 'double',
                            'feasibleSpace': {'min': '0.01', 'max': '0.1'}}],
            'trialTemplate': {
                'primaryContainerName': 'main',
                'trialParameters': [{'name': 'lr', 'reference': 'lr'}],
                'trialSpec': {'apiVersion': 'batch/v1', 'kind': 'Job', 'spec': {'template': {'spec': {
                    'restartPolicy': 'Never',
                    'containers': [{'name': 'main', 'image': 'python:3.11',
                                    'command': ['sh', '-c', command]}]}}}},
            },
        },
    }


def experiment_pod(server, name):
    """The name of the experiment's (one) trial pod: the first event of a
    watch of its pods (the ADDED of one that exists, or its creation)."""
    path = f'/api/v1/namespaces/default/pods?watch=true&labelSelector=katib.kubeflow.org/experiment%3D{name}'
    [event] = watch_lines(server, path, 1, timeout=60)
    return event['object']['metadata']['name']


@pytest.mark.parametrize('remote', [True, False], ids=['server', 'local'])
def test_logs_prints_and_follows_a_pod(server, remote, tmp_path):
    tag = 'r' if remote else 'l'
    name = f'cli-logs-{tag}'
    go = tmp_path / 'go'
    # The trial prints a line, waits for the test's go-ahead, prints more.
    command = f'echo first; while [ ! -e {go} ]; do sleep 0.02; done; echo second; echo loss=${{trialParameters.lr}}'
    status, out, _ = server.request('POST', '/apis/kubeflow.org/v1beta1/namespaces/default/experiments',
                                    experiment(name, command))
    assert status == 201, out
    pod = experiment_pod(server, name)
    env = dict(os.environ, OXFLOW_HOME=server.home)
    env.pop('OXFLOW_SERVER', None)
    pre = ['--server', server.url, '--token', server.token] if remote else []
    follow = subprocess.Popen([oxflow_bin(), *pre, 'logs', '-f', f'pod/{pod}'], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # What the pod wrote so far arrives while it still runs ...
        assert follow.stdout.readline() == 'first\n'
        assert follow.poll() is None
        go.touch()
        # ... then the rest, and the command ends with the pod.
        rest, err = follow.communicate(timeout=60)
    finally:
        follow.kill()
    assert follow.returncode == 0, err
    assert rest.startswith('second\nloss=0.0') and rest.count('\n') == 2, rest
    # Ended: the whole log, its tail, a byte limit, the container by name.
    assert oxflow(server, 'logs', pod, remote=remote).stdout == 'first\n' + rest
    assert oxflow(server, 'logs', pod, '--tail', '1', remote=remote).stdout == rest.split('\n')[1] + '\n'
    assert oxflow(server, 'logs', pod, '--limit-bytes', '3', remote=remote).stdout == 'fir'
    assert oxflow(server, 'logs', pod, '-c', 'main', remote=remote).stdout.startswith('first\n')
    # Bad input names what is wrong.
    p = oxflow(server, 'logs', pod, '-c', 'sidecar', remote=remote, check=False)
    assert p.returncode != 0 and 'container sidecar is not valid' in p.stderr, p.stderr
    p = oxflow(server, 'logs', f'job/{pod}', remote=remote, check=False)
    assert p.returncode != 0 and 'only pods have logs here' in p.stderr, p.stderr
    p = oxflow(server, 'logs', 'no-such-pod', remote=remote, check=False)
    assert p.returncode != 0 and 'no-such-pod' in p.stderr, p.stderr
