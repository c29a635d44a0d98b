"""The generic resource views in a real browser: every kind the server
serves (from its discovery), a kind's objects with the kind's printer
columns (the server's Table), and one object with its conditions, events
and YAML; deleting it from there. Nothing in the page knows the kinds."""
from page import wait, css, one, attr, click, go, fragment, get_status, js_errors
from test_models import stump_dir  # noqa: F401  (the fixture: an XGBoost stump under the model root)

CMS = '/api/v1/namespaces/default/configmaps'


def test_kinds_lists_and_objects_come_from_the_registry(server, browser, shots):
    d = browser
    server.api('POST', CMS, {'apiVersion': 'v1', 'kind': 'ConfigMap',
                             'metadata': {'name': 'ui-generic', 'labels': {'app': 'ui'}},
                             'data': {'greeting': 'hello'}})
    go(d, server, '/resources')
    one(d, '#resource-kinds table')
    kinds = [e.get_attribute('data-kind') for e in css(d, '#resource-kinds tr[data-kind]')]
    for kind in ('Namespace', 'ConfigMap', 'Event', 'InferenceService', 'TrainedModel'):
        assert kind in kinds, kinds
    d.save_screenshot(str(shots / 'resources-kinds.png'))

    click(d, '#resource-kinds tr[data-kind="ConfigMap"] a')
    wait(d, lambda d: fragment(d) == '/resources/core/v1/configmaps', what='the config map list')
    one(d, '#resource-table tr[data-name="ui-generic"]')
    # (the stylesheet prints headers in capitals)
    headers = [th.text.upper() for th in css(d, '#resource-table th')]
    assert headers == ['NAME', 'AGE'], headers

    # A kind with printer columns of its own shows them (KServe's).
    go(d, server, '/resources/serving.kserve.io/v1beta1/inferenceservices')
    wait(d, lambda d: css(d, '#resource-list table th') or css(d, '#resource-list .empty'),
         what='the inference service list')

    go(d, server, '/resources/core/v1/configmaps/ui-generic')
    summary = one(d, '#resource-summary').text
    assert 'ui-generic' in summary and 'app=ui' in summary, summary
    assert 'greeting: hello' in one(d, '#resource-yaml').text
    assert 'No events.' in one(d, '#resource-events').text
    d.save_screenshot(str(shots / 'resources-object.png'))

    d.execute_script('window.confirm = () => true;')
    click(d, '#resource-delete')
    wait(d, lambda d: fragment(d) == '/resources/core/v1/configmaps', what='back to the list')
    assert get_status(server, f'{CMS}/ui-generic') == 404
    wait(d, lambda d: not css(d, '#resource-table tr[data-name="ui-generic"]'), what='the row to go')
    assert not js_errors(d)


def test_an_inference_service_shows_its_conditions_and_events(server, browser, stump_dir):
    d = browser
    server.api('POST', '/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices', {
        'apiVersion': 'serving.kserve.io/v1beta1', 'kind': 'InferenceService',
        'metadata': {'name': 'ui-generic-isvc'},
        'spec': {'predictor': {'model': {'modelFormat': {'name': 'xgboost'}, 'storageUri': str(stump_dir)}}}})
    go(d, server, '/resources/serving.kserve.io/v1beta1/inferenceservices')
    wait(d, lambda d: attr(d, '#resource-table tr[data-name="ui-generic-isvc"]', 'data-name'),
         what='the service in the list')
    headers = [th.text.upper() for th in css(d, '#resource-table th')]
    assert headers[:3] == ['NAME', 'URL', 'READY'], headers

    # The page shows what is stored when it loads: reload until the
    # controller has written Ready and its event.
    def ready(d):
        go(d, server, '/resources/serving.kserve.io/v1beta1/inferenceservices/ui-generic-isvc')
        one(d, '#resource-yaml')
        return (css(d, '#resource-conditions tr[data-type="Ready"]')
                and 'True' in one(d, '#resource-conditions tr[data-type="Ready"]').text
                and css(d, '#resource-events tr[data-reason="InferenceServiceReady"]'))
    wait(d, ready, what='Ready with its event')
    server.api('DELETE', '/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/ui-generic-isvc')
    assert not js_errors(d)


def test_a_trial_shows_its_pod_and_the_pod_its_log(server, browser, shots):
    d = browser
    server.api('POST', '/apis/kubeflow.org/v1beta1/namespaces/default/experiments', {
        'apiVersion': 'kubeflow.org/v1beta1', 'kind': 'Experiment', 'metadata': {'name': 'ui-pods'},
        'spec': {
            'objective': {'type': 'minimize', 'objectiveMetricName': 'loss'},
            'algorithm': {'algorithmName': 'random'},
            'parallelTrialCount': 1, 'maxTrialCount': 1,
            'parameters': [{'name': 'lr', 'parameterType': 'double', 'feasibleSpace': {'min': '0.1', 'max': '0.2'}}],
            'trialTemplate': {
                'primaryContainerName': 'training-container',
                'trialParameters': [{'name': 'lr', 'reference': 'lr'}],
                'trialSpec': {'apiVersion': 'batch/v1', 'kind': 'Job', 'spec': {'template': {'spec': {
                    'restartPolicy': 'Never',
                    'containers': [{'name': 'training-container', 'image': 'python:3.11',
                                    'command': ['sh', '-c', 'echo loss=${trialParameters.lr}']}]}}}},
            },
        }})

    def trial(_):
        items = server.api('GET', '/apis/kubeflow.org/v1beta1/namespaces/default/trials'
                                  '?labelSelector=katib.kubeflow.org%2Fexperiment%3Dui-pods')['items']
        done = [t for t in items if t.get('status', {}).get('conditions', [{}])[-1].get('type') == 'Succeeded']
        return done[0] if done else None

    t = wait(d, trial, timeout=60, what='the trial to succeed')
    name = t['metadata']['name']
    lr = t['spec']['parameterAssignments'][0]['value']
    go(d, server, f'/resources/kubeflow.org/v1beta1/trials/{name}')
    row = one(d, '#resource-pods tr[data-pod]')
    pod = row.get_attribute('data-pod')
    assert pod.startswith(f'{name}-'), pod
    assert 'Succeeded' in row.text
    click(d, f'#resource-pods tr[data-pod="{pod}"] button.pod-log-btn')
    wait(d, lambda d: attr(d, '#pod-log', 'data-pod') == pod, what='the log')
    assert one(d, '#pod-log').text.strip() == f'loss={lr}'
    d.save_screenshot(str(shots / 'resources-trial-pod.png'))
    # The pod's own page shows its log.
    click(d, f'#resource-pods tr[data-pod="{pod}"] a')
    wait(d, lambda d: fragment(d) == f'/resources/core/v1/pods/{pod}', what='the pod page')
    wait(d, lambda d: attr(d, '#pod-log', 'data-pod') == pod, what="the pod's log")
    assert one(d, '#pod-log').text.strip() == f'loss={lr}'
    assert not js_errors(d)
