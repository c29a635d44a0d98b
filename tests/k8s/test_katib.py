"""Katib's kinds through the Kubernetes API of `oxflow up`, with the clients
Katib users have: kubectl (apply, get with Katib's printer columns, get
trials by label, wait, describe with events, delete with the trials going
too) and Katib's own Python SDK (`KatibClient` 0.19.0: create, get, list,
wait, optimal hyperparameters, trials, budget edit, delete), with the
kubeconfig `oxflow up` writes. The experiments they create are run: trials
are processes whose printed metric becomes the objective."""
import json

import pytest

from conftest import kubectl_binaries
from test_kubectl import Kubectl, short

BINARIES = kubectl_binaries()


def experiment_yaml(name, max_trials=3, resume='Never', extra_spec=''):
    """Random search over lr; each trial prints `loss=<lr>`, so the best
    trial is the one with the smallest lr."""
    return f'''apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
  parallelTrialCount: 2
  maxTrialCount: {max_trials}
  maxFailedTrialCount: 1
  resumePolicy: {resume}
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {{min: "0.01", max: "0.1"}}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: learningRate
        reference: lr
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: python:3.11
                command: ["sh", "-c", "echo loss=${{trialParameters.learningRate}}"]
            restartPolicy: Never
{extra_spec}'''


@pytest.mark.parametrize('binary', BINARIES, ids=short)
def test_kubectl_runs_an_experiment_to_the_end_and_deletes_it(server, binary):
    kubectl = Kubectl(binary, server)
    name = f'random-{short(binary)}'.replace('.', '-')
    out = kubectl.run('apply', '-f', '-', stdin=experiment_yaml(name)).stdout
    assert f'experiment.kubeflow.org/{name} created' in out
    kubectl.run('wait', '--for=condition=Succeeded', f'experiment/{name}', '--timeout=120s', timeout=150)

    # Katib's printer columns: the newest condition.
    table = kubectl.run('get', 'experiments', name).stdout.splitlines()
    assert table[0].split() == ['NAME', 'TYPE', 'STATUS', 'AGE'], table
    assert table[1].split()[:3] == [name, 'Succeeded', 'True'], table
    # The trials, by the label Katib puts on them, each owned by the experiment.
    trials = json.loads(kubectl.run('get', 'trials', '-l', f'katib.kubeflow.org/experiment={name}',
                                    '-o', 'json').stdout)['items']
    assert len(trials) == 3
    uid = kubectl.run('get', 'experiment', name, '-o', 'jsonpath={.metadata.uid}').stdout
    for t in trials:
        assert t['metadata']['ownerReferences'][0]['uid'] == uid
        assert t['status']['conditions'][-1]['type'] == 'Succeeded', t['status']
    # The best trial is the smallest lr, as its printed loss says.
    lr = {t['metadata']['name']: float(t['spec']['parameterAssignments'][0]['value']) for t in trials}
    best = kubectl.run('get', 'experiment', name, '-o',
                       'jsonpath={.status.currentOptimalTrial.bestTrialName}').stdout
    assert best == min(lr, key=lr.get)
    assert kubectl.run('get', 'suggestion', name, '-o', 'jsonpath={.status.suggestionCount}').stdout == '3'
    # Each trial ran as a pod with Katib's labels; its log is what it printed.
    pods = json.loads(kubectl.run('get', 'pods', '-l', f'katib.kubeflow.org/experiment={name}',
                                  '-o', 'json').stdout)['items']
    assert sorted(p['metadata']['labels']['katib.kubeflow.org/trial'] for p in pods) == sorted(lr)
    assert all(p['status']['phase'] == 'Succeeded' for p in pods), [p['status'] for p in pods]
    pod = next(p for p in pods if p['metadata']['labels']['katib.kubeflow.org/trial'] == best)
    state = pod['status']['containerStatuses'][0]
    assert state['name'] == 'training-container' and state['state']['terminated']['exitCode'] == 0, state
    table = kubectl.run('get', 'pods', pod['metadata']['name']).stdout.splitlines()
    assert table[0].split() == ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'], table
    assert table[1].split()[1:4] == ['0/1', 'Succeeded', '0'], table
    out = kubectl.run('logs', pod['metadata']['name'], '-c', 'training-container').stdout
    assert float(out.strip().split('=')[1]) == pytest.approx(lr[best]), out
    out = kubectl.run('logs', '-f', '--tail=1', pod['metadata']['name']).stdout
    assert out.startswith('loss='), out
    p = kubectl.run('logs', pod['metadata']['name'], '-c', 'sidecar', check=False)
    assert p.returncode != 0 and 'container sidecar is not valid' in p.stderr, p.stderr
    # As Katib's webhook: after creation only the budget may change.
    p = kubectl.run('patch', 'experiment', name, '--type', 'merge', '-p',
                    '{"spec": {"algorithm": {"algorithmName": "tpe"}, "maxFailedTrialCount": 2}}', check=False)
    assert p.returncode != 0 and 'spec.algorithm' in p.stderr, p.stderr
    assert 'maxFailedTrialCount' not in p.stderr.split('spec.algorithm')[0], p.stderr
    assert kubectl.run('get', 'experiment', name, '-o', 'jsonpath={.spec.algorithm.algorithmName}').stdout == 'random'
    # Events from the experiment controller, as describe shows them.
    described = kubectl.run('describe', 'experiment', name).stdout
    assert 'ExperimentRunning' in described and 'ExperimentMaxTrialsReached' in described, described

    # A spec Katib's webhook would refuse is refused, naming the field.
    bad = experiment_yaml(f'{name}-bad').replace('maxFailedTrialCount: 1', 'maxFailedTrialCount: 9')
    p = kubectl.run('apply', '-f', '-', stdin=bad, check=False)
    assert p.returncode != 0
    assert 'spec.maxFailedTrialCount' in p.stderr, p.stderr
    assert kubectl.run('get', 'experiment', f'{name}-bad', check=False).returncode != 0

    # Deleting the experiment deletes its trials, their pods and its suggestion.
    kubectl.run('delete', '-f', '-', stdin=experiment_yaml(name))
    kubectl.run('wait', f'experiment/{name}', '--for=delete', '--timeout=60s')
    left = kubectl.run('get', 'trials', '-l', f'katib.kubeflow.org/experiment={name}', '-o', 'name').stdout
    assert left.strip() == ''
    assert kubectl.run('get', 'suggestion', name, check=False).returncode != 0
    left = kubectl.run('get', 'pods', '-l', f'katib.kubeflow.org/experiment={name}', '-o', 'name').stdout
    assert left.strip() == ''


def test_the_katib_sdk_creates_waits_for_resumes_and_deletes_experiments(server):
    from kubeflow.katib import (KatibClient, V1beta1AlgorithmSpec, V1beta1Experiment,
                                V1beta1ExperimentSpec, V1beta1FeasibleSpace, V1beta1ObjectiveSpec,
                                V1beta1ParameterSpec, V1beta1TrialParameterSpec, V1beta1TrialTemplate)
    from kubernetes import watch
    from kubernetes.client import V1ObjectMeta

    name = 'sdk-exp'
    exp = V1beta1Experiment(
        api_version='kubeflow.org/v1beta1',
        kind='Experiment',
        metadata=V1ObjectMeta(name=name),
        spec=V1beta1ExperimentSpec(
            max_trial_count=3,
            parallel_trial_count=2,
            max_failed_trial_count=1,
            resume_policy='LongRunning',
            algorithm=V1beta1AlgorithmSpec(algorithm_name='random'),
            objective=V1beta1ObjectiveSpec(type='maximize', objective_metric_name='accuracy'),
            parameters=[V1beta1ParameterSpec(name='lr', parameter_type='double',
                                             feasible_space=V1beta1FeasibleSpace(min='0.1', max='0.9'))],
            trial_template=V1beta1TrialTemplate(
                primary_container_name='training-container',
                trial_parameters=[V1beta1TrialParameterSpec(name='learningRate', reference='lr')],
                trial_spec={
                    'apiVersion': 'batch/v1', 'kind': 'Job',
                    'spec': {'template': {'spec': {'restartPolicy': 'Never', 'containers': [{
                        'name': 'training-container', 'image': 'python:3.11',
                        'command': ['sh', '-c', 'echo accuracy=${trialParameters.learningRate}'],
                    }]}}},
                },
            ),
        ),
    )
    kc = KatibClient(config_file=server.kubeconfig, namespace='default')
    kc.create_experiment(exp)
    with pytest.raises(Exception, match='already exists'):
        kc.create_experiment(exp)
    with pytest.raises(RuntimeError, match='Failed to get Katib Experiment'):
        kc.get_experiment('nope')
    assert name in [e.metadata.name for e in kc.list_experiments()]

    done = kc.wait_for_experiment_condition(name, timeout=120, polling_interval=1)
    assert kc.is_experiment_succeeded(name)
    assert done.status.trials == 3
    optimal = kc.get_optimal_hyperparameters(name)
    trials = kc.list_trials(name)
    assert len(trials) == 3
    accuracy = {t.metadata.name: float(t.spec.parameter_assignments[0].value) for t in trials}
    assert optimal.best_trial_name == max(accuracy, key=accuracy.get)
    assert [m.name for m in optimal.observation.metrics] == ['accuracy']
    assert float(optimal.observation.metrics[0].latest) == pytest.approx(max(accuracy.values()))

    # A trial's output through its pod, as the SDK finds it (pods by label,
    # then pods/NAME/log, also followed).
    best = optimal.best_trial_name
    lines = list(kc.get_job_logs(name, best))
    assert [float(x.split('=')[1]) for x in lines if x.startswith('accuracy=')] == [accuracy[best]], lines
    followed = ''.join(kc.get_job_logs(name, best, follow=True))
    assert 'accuracy=' in followed, followed

    # Katib's budget edit: a merge patch of the whole object, stale status
    # and resourceVersion included; the experiment restarts and runs one more.
    kc.edit_experiment_budget(name, max_trial_count=4)
    # Watched (the kubernetes client's watch) until the fourth trial exists:
    # by then the restart has turned the old Succeeded condition False.
    for event in watch.Watch().stream(kc.custom_api.list_namespaced_custom_object, 'kubeflow.org', 'v1beta1',
                                      'default', 'experiments', field_selector=f'metadata.name={name}',
                                      timeout_seconds=120):
        if event['object'].get('status', {}).get('trials') == 4:
            break
    else:
        pytest.fail('the experiment did not restart for its raised budget')
    now = kc.wait_for_experiment_condition(name, timeout=120, polling_interval=1)
    assert now.metadata.generation == 2
    assert [c.type for c in now.status.conditions if c.status == 'True'] == ['Created', 'Succeeded']
    assert len(kc.list_trials(name)) == 4

    # Deleting answers once the experiment and its trials are gone.
    kc.delete_experiment(name)
    assert name not in [e.metadata.name for e in kc.list_experiments()]
    with pytest.raises(RuntimeError, match='Failed to get Katib Experiment'):
        kc.get_experiment(name)
    status, trials, _ = server.request(
        'GET', f'/apis/kubeflow.org/v1beta1/namespaces/default/trials?labelSelector=katib.kubeflow.org/experiment={name}')
    assert status == 200 and trials['items'] == [], trials
