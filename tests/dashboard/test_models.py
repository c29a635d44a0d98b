"""The Models pages (KServe InferenceServices) in a real headless Chromium
against a real `oxflow up`: the list with readiness, reasons, models and
traffic; creating a service from the YAML form (and the inline error for a
refused field); the detail page's conditions, model status and traffic;
"try it" with V1 and V2 answered by a real XGBoost model; the metrics
sampled from the service's Prometheus endpoint; where command components
log; deleting from the list and from the detail page; a service of another
namespace picked from the selector; the TrainedModels of a multi-model
service on its detail page.

The model is a one-split XGBoost regression stump written from XGBoost's
JSON layout (the same file as `xgboost_stump` in
crates/serving/src/test_models.rs): rows with x0 < 0.5 predict
LEFT + 0.5, the others RIGHT + 0.5.

Every wait is on DOM state with a deadline (WebDriverWait), never a fixed
sleep.
"""
import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from page import wait, css, one, attr, text_of, click, go, fragment, set_text, get_status, js_errors

ISVCS = '/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices'
LEFT, RIGHT = 1.0, 2.0


def xgboost_stump(left: float, right: float) -> str:
    """A `reg:squarederror` XGBoost JSON model over two features with one split at x0 < 0.5."""
    return json.dumps({'learner': {
        'attributes': {}, 'feature_names': [], 'feature_types': [],
        'gradient_booster': {'name': 'gbtree', 'model': {
            'gbtree_model_param': {'num_parallel_tree': '1', 'num_trees': '1'},
            'iteration_indptr': [0, 1],
            'tree_info': [0],
            'trees': [{'id': 0,
                       'tree_param': {'num_deleted': '0', 'num_feature': '2', 'num_nodes': '3', 'size_leaf_vector': '1'},
                       'left_children': [1, -1, -1], 'right_children': [2, -1, -1],
                       'parents': [2147483647, 0, 0], 'split_indices': [0, 0, 0],
                       'split_conditions': [0.5, left, right], 'default_left': [1, 0, 0],
                       'split_type': [0, 0, 0], 'categories': [], 'categories_nodes': [],
                       'categories_segments': [], 'categories_sizes': [],
                       'base_weights': [0.0, left, right], 'loss_changes': [1.0, 0.0, 0.0],
                       'sum_hessian': [2.0, 1.0, 1.0]}]}},
        'learner_model_param': {'base_score': '[5E-1]', 'boost_from_average': '1',
                                'num_class': '0', 'num_feature': '2', 'num_target': '1'},
        'objective': {'name': 'reg:squarederror', 'reg_loss_param': {'scale_pos_weight': '1'}},
    }, 'version': [3, 2, 0]})


def stump_prediction(x0: float) -> float:
    return (LEFT if x0 < 0.5 else RIGHT) + 0.5
























def isvc(name, predictor, **spec):
    return {'apiVersion': 'serving.kserve.io/v1beta1', 'kind': 'InferenceService',
            'metadata': {'name': name}, 'spec': {'predictor': predictor, **spec}}


def xgboost_predictor(path, **extra):
    return {'model': {'modelFormat': {'name': 'xgboost'}, 'storageUri': str(path)}, **extra}


@pytest.fixture(scope='module', autouse=True)
def drain_console(browser):
    # The 400s and 404s provoked here are logged by Chromium; leave none for other modules.
    browser.get_log('browser')
    yield
    browser.get_log('browser')


@pytest.fixture(scope='module')
def stump_dir(workdir):
    d = workdir / 'models' / 'stump'
    d.mkdir(parents=True, exist_ok=True)
    (d / 'model.json').write_text(xgboost_stump(LEFT, RIGHT))
    return d


@pytest.fixture(scope='module')
def services(server, stump_dir):
    """Created through KServe's REST API: a ready XGBoost stump, one with a canary
    variant, and one whose format Oxflow has no runtime for."""
    server.api('POST', ISVCS, isvc('ui-stump', xgboost_predictor(stump_dir)))
    server.api('POST', ISVCS, isvc('ui-canary', xgboost_predictor(stump_dir),
                                   canary=[{'predictor': xgboost_predictor(stump_dir, name='v2'), 'trafficPercent': 20}]))
    server.api('POST', ISVCS, isvc('ui-tf', {'model': {'modelFormat': {'name': 'tensorflow'}, 'storageUri': str(stump_dir)}}))
    return ['ui-stump', 'ui-canary', 'ui-tf']


def api_isvc(server, name):
    return server.api('GET', f'{ISVCS}/{name}')


def test_list_shows_readiness_reasons_models_and_traffic(server, browser, services, stump_dir, shots):
    d = browser
    go(d, server, '/models')

    def row(name):
        return f'table.isvc-table tr[data-isvc="{name}"]'

    wait(d, lambda d: attr(d, row('ui-stump'), 'data-state') == 'Ready'
         and attr(d, row('ui-canary'), 'data-state') == 'Ready'
         and attr(d, row('ui-tf'), 'data-state') == 'NotReady', what='two ready services and one not ready')

    # Not ready, with the Ready condition's reason and message.
    tf = api_isvc(server, 'ui-tf')
    ready = next(c for c in tf['status']['conditions'] if c['type'] == 'Ready')
    assert ready['status'] == 'False' and ready['reason'] == 'NoSupportingRuntime'
    assert text_of(d, f'{row("ui-tf")} .isvc-reason') == 'NoSupportingRuntime'
    message = text_of(d, f'{row("ui-tf")} .isvc-message')
    assert message == ready['message'] and 'tensorflow' in message
    assert text_of(d, f'{row("ui-tf")} .isvc-format') == 'tensorflow'
    assert text_of(d, f'{row("ui-tf")} .isvc-url') == '—'

    # Ready: its URL, model and the whole traffic on its first revision.
    stump = api_isvc(server, 'ui-stump')
    assert text_of(d, f'{row("ui-stump")} .isvc-url') == stump['status']['url']
    assert stump['status']['url'].endswith('/serving/default/ui-stump')
    assert text_of(d, f'{row("ui-stump")} .isvc-format') == 'xgboost'
    assert text_of(d, f'{row("ui-stump")} .isvc-storage') == str(stump_dir)
    assert not css(d, f'{row("ui-stump")} .isvc-reason')
    traffic = [(li.get_attribute('data-kind'), li.get_attribute('data-revision'), li.get_attribute('data-percent'))
               for li in css(d, f'{row("ui-stump")} .traffic-list li')]
    assert traffic == [('predictor', 'ui-stump-predictor-00001', '100')]
    # The canary variant's share beside the predictor's.
    traffic = [(li.get_attribute('data-kind'), li.get_attribute('data-revision'), li.get_attribute('data-percent'))
               for li in css(d, f'{row("ui-canary")} .traffic-list li')]
    canary = api_isvc(server, 'ui-canary')['status']['canaryStatuses'][0]
    assert traffic == [('predictor', 'ui-canary-predictor-00001', '80'), ('canary', canary['revisionName'], '20')]
    assert re.fullmatch(r'\d+[smhd]', text_of(d, f'{row("ui-stump")} .isvc-age'))
    d.save_screenshot(str(shots / 'models-list.png'))

    # The nav entry is a real page now, not a placeholder; the name links to the detail page.
    nav = one(d, '#nav-list a[data-path="/models"]')
    assert 'coming' not in (nav.get_attribute('class') or '') and nav.get_attribute('aria-current') == 'page'
    click(d, f'{row("ui-stump")} a.isvc-link')
    wait(d, lambda d: fragment(d) == '/models/services/ui-stump', what='the detail page')
    assert not js_errors(d)


def test_new_form_shows_the_field_error_then_creates(server, browser, stump_dir, shots):
    d = browser
    go(d, server, '/models')
    click(d, '#isvc-new')
    wait(d, lambda d: fragment(d) == '/models/new', what='the New form')
    editor = one(d, '#isvc-yaml')
    example = editor.get_attribute('value')
    assert 'kind: InferenceService' in example and 'modelFormat:' in example

    def edited(**edits):
        text = example
        for old, new in edits.values():
            assert re.search(old, text, re.M), f'the example has no {old!r}:\n{text}'
            text = re.sub(old, new, text, count=1, flags=re.M)
        return text

    # A misspelt field: refused with its path, inline; nothing is created.
    set_text(d, editor, edited(name=(r'name: sklearn-iris-\w+$', 'name: ui-form-bad'),
                               field=(r'modelFormat:$', 'modelFormt:')))
    click(d, '#isvc-create')
    err = one(d, '#isvc-yaml-error')
    assert one(d, '#isvc-yaml-error code.field-path').text == 'spec.predictor.model.modelFormt', err.text
    assert 'modelFormat' in err.text, 'the message suggests the right name'
    assert editor.get_attribute('aria-invalid') == 'true'
    assert fragment(d) == '/models/new'
    d.save_screenshot(str(shots / 'models-new-error.png'))
    assert get_status(server, f'{ISVCS}/ui-form-bad') == 404

    # The example, pointed at the stump: created, and the page moves to it.
    set_text(d, editor, edited(name=(r'name: sklearn-iris-\w+$', 'name: ui-form'),
                               format=(r'name: sklearn$', 'name: xgboost'),
                               uri=(r'storageUri: .*$', f'storageUri: {json.dumps(str(stump_dir))}')))
    click(d, '#isvc-create')
    wait(d, lambda d: fragment(d) == '/models/services/ui-form', what='the new service page')
    wait(d, lambda d: attr(d, '#isvc-state .badge', 'data-state') == 'Ready', what='the new service to be ready')
    spec = api_isvc(server, 'ui-form')['spec']['predictor']['model']
    assert (spec['modelFormat']['name'], spec['storageUri']) == ('xgboost', str(stump_dir))
    go(d, server, '/models')
    wait(d, lambda d: attr(d, 'tr[data-isvc="ui-form"]', 'data-state') == 'Ready', what='the new service in the list')
    assert not js_errors(d)


def test_detail_shows_conditions_model_status_and_traffic(server, browser, services, shots):
    d = browser
    go(d, server, '/models/services/ui-tf')
    wait(d, lambda d: attr(d, '#isvc-state .badge', 'data-state') == 'NotReady', what='the not-ready badge')
    conditions = {r.get_attribute('data-type'): r for r in css(d, 'table#isvc-conditions tbody tr')}
    assert set(conditions) == {'IngressReady', 'PredictorReady', 'Ready'}
    assert conditions['IngressReady'].get_attribute('data-status') == 'True'
    ready = conditions['Ready']
    assert ready.get_attribute('data-status') == 'False'
    assert ready.find_element(By.CSS_SELECTOR, '.cond-reason').text == 'NoSupportingRuntime'
    assert 'tensorflow' in ready.find_element(By.CSS_SELECTOR, '.cond-message').text
    assert 'NoSupportingRuntime' in text_of(d, '#isvc-condition')
    assert text_of(d, '#model-transition') == 'InvalidSpec'
    assert text_of(d, '#model-failure-reason') == 'NoSupportingRuntime'
    # Nothing can answer it, so its metrics are not asked for.
    wait(d, lambda d: attr(d, '#isvc-metrics', 'data-state') == 'not-ready', what='the metrics to wait for readiness')
    d.save_screenshot(str(shots / 'models-not-ready.png'))

    go(d, server, '/models/services/ui-canary')
    wait(d, lambda d: attr(d, '#isvc-state .badge', 'data-state') == 'Ready', what='the ready badge')
    statuses = {r.get_attribute('data-type'): r.get_attribute('data-status') for r in css(d, 'table#isvc-conditions tbody tr')}
    assert statuses == {'IngressReady': 'True', 'PredictorReady': 'True', 'CanaryPredictorReady': 'True', 'Ready': 'True'}
    assert text_of(d, '#model-transition') == 'UpToDate'
    traffic = [(li.get_attribute('data-kind'), li.get_attribute('data-revision'), li.get_attribute('data-percent'))
               for li in css(d, '#isvc-traffic li')]
    assert traffic == [('predictor', 'ui-canary-predictor-00001', '80'), ('canary', 'ui-canary-v2-00001', '20')]
    components = {r.get_attribute('data-component'): r.text for r in css(d, 'table#isvc-components tbody tr')}
    assert 'ui-canary-predictor-00001' in components['predictor']
    assert 'ui-canary-v2-00001' in components['canary-v2']
    # The resource itself, as the API returns it.
    click(d, '#isvc-json summary')
    shown = json.loads(text_of(d, '#isvc-json-text'))
    assert shown['metadata']['name'] == 'ui-canary' and shown['status']['canaryStatuses'][0]['trafficPercent'] == 20
    assert 'kind: InferenceService' in text_of(d, '#isvc-yaml-text')
    # The model runs inside the server: no log files to point at.
    assert one(d, '#isvc-logs-none')
    d.execute_script('window.scrollTo(0, 0)')
    d.save_screenshot(str(shots / 'models-detail.png'))
    assert not js_errors(d)


def send(driver, body):
    """Sends `body` from the try-it form; returns (status, parsed response)."""
    previous = css(driver, '#try-response')
    set_text(driver, one(driver, '#try-body'), json.dumps(body))
    click(driver, '#try-send')
    if previous:
        wait(driver, EC.staleness_of(previous[0]), what='the previous answer to go')
    wait(driver, lambda d: attr(d, '#try-status', 'data-status') and css(d, '#try-response'), what='the answer')
    return int(attr(driver, '#try-status', 'data-status')), json.loads(text_of(driver, '#try-response'))


def test_try_it_predicts_with_v1_and_v2_and_the_metrics_count_it(server, browser, services, shots):
    d = browser
    go(d, server, '/models/services/ui-stump')
    wait(d, lambda d: attr(d, '#isvc-state .badge', 'data-state') == 'Ready', what='the ready badge')
    # The baseline sample first: requests are counted from there on.
    wait(d, lambda d: attr(d, '#isvc-metrics', 'data-state') == 'ok'
         and int(attr(d, '#isvc-metrics', 'data-samples') or 0) >= 1, what='the first metrics sample')
    # The bodies start from the model's V2 metadata: one FP32 input of two features.
    wait(d, lambda d: attr(d, '#try-metadata', 'data-loaded') == 'true', what='the model metadata')
    assert Select(one(d, '#try-protocol')).first_selected_option.get_attribute('value') == 'v1'
    assert json.loads(one(d, '#try-body').get_attribute('value')) == {'instances': [[0, 0]]}
    assert text_of(d, '#try-url') == 'POST /serving/default/ui-stump/v1/models/ui-stump:predict'

    rows = [[0.2, 0.0], [0.8, 1.0]]
    status, answer = send(d, {'instances': rows})
    assert status == 200
    assert answer == {'predictions': [stump_prediction(r[0]) for r in rows]} == {'predictions': [1.5, 2.5]}
    assert json.loads(text_of(d, '#try-result')) == [1.5, 2.5]

    Select(one(d, '#try-protocol')).select_by_value('v2')
    assert text_of(d, '#try-url') == 'POST /serving/default/ui-stump/v2/models/ui-stump/infer'
    v2 = json.loads(one(d, '#try-body').get_attribute('value'))
    assert v2 == {'inputs': [{'name': 'input-0', 'shape': [1, 2], 'datatype': 'FP32', 'data': [0, 0]}]}
    v2['inputs'][0]['data'] = [0.8, 1.0]
    status, answer = send(d, v2)
    assert status == 200
    assert answer['model_name'] == 'ui-stump'
    assert answer['outputs'][0]['data'] == [stump_prediction(0.8)] == [2.5]
    assert text_of(d, '#try-result') == 'predict: [2.5]'

    # A body the model refuses: the server's {"error": …} message, with its status.
    Select(one(d, '#try-protocol')).select_by_value('v1')
    status, answer = send(d, {'instances': 'x'})
    assert status == 400
    assert text_of(d, '#try-error') == answer['error'] and 'instances' in answer['error']
    d.save_screenshot(str(shots / 'models-try-it.png'))

    # Not JSON at all: said at once, nothing sent.
    set_text(d, one(d, '#try-body'), '{"instances": [[0.2, 0.0]')
    click(d, '#try-send')
    wait(d, lambda d: 'not valid JSON' in (text_of(d, '#try-error') if css(d, '#try-error') else ''), what='the JSON error')
    assert not css(d, '#try-response')

    # Three requests since the page opened, one of them refused, and the chart has them.
    wait(d, lambda d: int(attr(d, '#isvc-metrics', 'data-requests-window') or 0) == 3
         and int(attr(d, '#isvc-metrics', 'data-errors-window') or 0) == 1, what='the requests in the metrics')
    assert text_of(d, '#metrics-window-requests') == '3'
    rates = [float(c.get_attribute('data-value')) for c in css(d, 'svg.models-chart[data-series="rate"] circle.series-point')]
    assert rates and max(rates) > 0, rates
    errors = [float(c.get_attribute('data-value')) for c in css(d, 'svg.models-chart[data-series="errors"] circle.series-point')]
    assert sum(errors) == 1, errors
    latencies = [float(c.get_attribute('data-value')) for c in css(d, 'svg.models-chart[data-series="latency"] circle.series-point')]
    assert latencies and all(v > 0 for v in latencies), latencies
    codes = {r.get_attribute('data-code'): r.text.split()[-1] for r in css(d, 'table.codes-table tbody tr')}
    assert codes == {'200': '2', '400': '1'}
    d.execute_script('arguments[0].scrollIntoView()', one(d, '#isvc-metrics'))
    d.save_screenshot(str(shots / 'models-metrics.png'))
    assert not js_errors(d)


def test_a_predictor_that_scales_to_zero_is_sampled_without_waking_it(server, browser, stump_dir):
    d = browser
    server.api('POST', ISVCS, isvc('ui-zero', xgboost_predictor(stump_dir, minReplicas=0)))
    go(d, server, '/models/services/ui-zero')
    wait(d, lambda d: attr(d, '#isvc-state .badge', 'data-state') == 'Ready', what='the ready badge')
    # Metrics come from the control plane, which is not a request to the
    # service: sampled as for any other service, and nothing counted.
    assert one(d, '#metrics-sample').is_selected()
    wait(d, lambda d: attr(d, '#isvc-metrics', 'data-state') == 'ok'
         and int(attr(d, '#isvc-metrics', 'data-samples') or 0) >= 2, what='two metrics samples')
    assert attr(d, '#isvc-metrics', 'data-requests-window') == '0'
    with urllib.request.urlopen(urllib.request.Request(f'{server.url}{ISVCS}/ui-zero/metrics', headers=server.auth),
                                timeout=30) as r:
        metrics = r.read().decode()
    assert 'oxflow_inference_requests_total' in metrics and 'model="ui-zero"' not in metrics, metrics
    # The model's metadata (a request to it) is asked for once the user turns to the form.
    assert attr(d, '#try-metadata', 'data-loaded') is None
    click(d, '#try-body')
    wait(d, lambda d: attr(d, '#try-metadata', 'data-loaded') == 'true', what='the metadata on focus')
    server.api('DELETE', f'{ISVCS}/ui-zero')
    assert not js_errors(d)


# A custom predictor: a command that answers every POST with {"predictions": [42]}
# and logs each request to stderr (http.server's request log).
CUSTOM_SERVER = """
import http.server, json, os

class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(b"")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.reply(json.dumps({"predictions": [42]}).encode())

http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def test_custom_predictor_logs_are_named_and_shown(server, browser, shots):
    d = browser
    server.api('POST', ISVCS, isvc('ui-custom', {'containers': [
        {'name': 'kserve-container', 'image': 'python:3.12', 'command': [sys.executable, '-c', CUSTOM_SERVER]}]}))
    go(d, server, '/models/services/ui-custom')
    wait(d, lambda d: attr(d, '#isvc-state .badge', 'data-state') == 'Ready', timeout=60, what='the custom predictor')
    assert text_of(d, '#isvc-predictor-card .type-chip') == 'custom'
    rev = 'ui-custom-predictor-00001'
    row = one(d, f'table#isvc-log-files tr[data-revision="{rev}"]')
    path = row.find_element(By.CSS_SELECTOR, '.log-path').text
    assert path == f'$OXFLOW_HOME/logs/serving/default/ui-custom/{rev}.log'
    # The path shown is where the server writes it.
    assert (Path(server.home) / path.removeprefix('$OXFLOW_HOME/')).is_file()
    # A command's requests are not Oxflow's to count: the panel says so, and
    # shows the copies of the command instead.
    wait(d, lambda d: attr(d, '#isvc-metrics', 'data-state') == 'absent', what='the metrics panel to give up')
    replicas = f'table#isvc-replicas tr[data-revision="{rev}"]'
    wait(d, lambda d: [attr(d, replicas, f'data-{k}') for k in ('running', 'ready', 'wanted')] == ['1', '1', '1'],
         what="the command's one copy")
    # A request from the form, answered by the command; then its log shows the request.
    status, answer = send(d, {'instances': [[1.0, 2.0]]})
    assert (status, answer) == (200, {'predictions': [42]})
    click(d, f'table#isvc-log-files tr[data-revision="{rev}"] button.log-btn')
    wait(d, lambda d: attr(d, '#isvc-log', 'data-component') == 'predictor'
         and 'POST /v1/models/ui-custom:predict' in text_of(d, '#isvc-log'), what='the request in the log')
    assert text_of(d, '#isvc-log') in Path(server.home, path.removeprefix('$OXFLOW_HOME/')).read_text()
    d.save_screenshot(str(shots / 'models-custom-log.png'))
    server.api('DELETE', f'{ISVCS}/ui-custom')
    assert not js_errors(d)


def test_delete_from_the_list_and_from_the_detail_page(server, browser, stump_dir):
    d = browser
    for name in ('ui-doomed', 'ui-doomed-2'):
        server.api('POST', ISVCS, isvc(name, xgboost_predictor(stump_dir)))

    go(d, server, '/models')
    wait(d, lambda d: css(d, 'tr[data-isvc="ui-doomed"]') and css(d, 'tr[data-isvc="ui-doomed-2"]'), what='both rows')
    click(d, 'tr[data-isvc="ui-doomed"] button.isvc-delete')
    WebDriverWait(d, 10).until(EC.alert_is_present(), message='the delete confirmation')
    assert 'ui-doomed' in d.switch_to.alert.text
    d.switch_to.alert.accept()
    wait(d, lambda d: not css(d, 'tr[data-isvc="ui-doomed"]') and css(d, 'tr[data-isvc="ui-doomed-2"]'),
         what='the list without the deleted service')
    assert get_status(server, f'{ISVCS}/ui-doomed') == 404

    # Dismissing the confirmation keeps it.
    go(d, server, '/models/services/ui-doomed-2')
    click(d, '#isvc-delete')
    WebDriverWait(d, 10).until(EC.alert_is_present(), message='the delete confirmation')
    d.switch_to.alert.dismiss()
    assert get_status(server, f'{ISVCS}/ui-doomed-2') == 200
    click(d, '#isvc-delete')
    WebDriverWait(d, 10).until(EC.alert_is_present(), message='the delete confirmation')
    d.switch_to.alert.accept()
    wait(d, lambda d: fragment(d) == '/models', what='the list after the delete')
    wait(d, lambda d: css(d, 'table.isvc-table') and not css(d, 'tr[data-isvc="ui-doomed-2"]'),
         what='the list without the second deleted service')
    assert get_status(server, f'{ISVCS}/ui-doomed-2') == 404
    assert not js_errors(d)


def test_services_of_another_namespace_are_picked_from_the_selector(server, browser, services, stump_dir):
    d = browser
    team = '/apis/serving.kserve.io/v1beta1/namespaces/team-models/inferenceservices'
    server.api('POST', team, isvc('ui-team', xgboost_predictor(stump_dir)))
    go(d, server, '/models')
    select = '#namespace-select'
    wait(d, lambda d: 'team-models' in [o.get_attribute('value') for o in css(d, f'{select} option')],
         what='the new namespace in the selector')
    assert one(d, select).is_enabled()
    try:
        Select(one(d, select)).select_by_value('team-models')
        wait(d, lambda d: attr(d, 'tr[data-isvc="ui-team"]', 'data-state') == 'Ready',
             what="the other namespace's service, ready")
        assert not css(d, 'tr[data-isvc="ui-stump"]')
        assert text_of(d, 'tr[data-isvc="ui-team"] .isvc-url').endswith('/serving/team-models/ui-team')
    finally:
        Select(one(d, select)).select_by_value('default')
    wait(d, lambda d: css(d, 'tr[data-isvc="ui-stump"]') and not css(d, 'tr[data-isvc="ui-team"]'),
         what='the default namespace again')
    server.api('DELETE', f'{team}/ui-team')
    assert not js_errors(d)


def test_the_detail_page_lists_the_trained_models_of_a_multi_model_service(server, browser, services, stump_dir):
    d = browser
    tms = '/apis/serving.kserve.io/v1alpha1/namespaces/default/trainedmodels'

    def trained(name, framework):
        return {'apiVersion': 'serving.kserve.io/v1alpha1', 'kind': 'TrainedModel', 'metadata': {'name': name},
                'spec': {'inferenceService': 'ui-multi',
                         'model': {'storageUri': str(stump_dir), 'framework': framework, 'memory': '64Mi'}}}

    server.api('POST', ISVCS, isvc('ui-multi', {'model': {'modelFormat': {'name': 'xgboost'}}}))
    server.api('POST', tms, trained('ui-tm', 'xgboost'))
    server.api('POST', tms, trained('ui-tm-wrong', 'lightgbm'))
    go(d, server, '/models/services/ui-multi')
    row = 'tr[data-trained="{}"]'.format
    wait(d, lambda d: attr(d, row('ui-tm'), 'data-ready') == 'True'
         and attr(d, row('ui-tm-wrong'), 'data-ready') == 'False', what='one trained model ready, one refused')
    status = server.api('GET', f'{tms}/ui-tm')['status']
    assert text_of(d, f'{row("ui-tm")} .tm-url') == status['url']
    assert status['url'].endswith('/serving/default/ui-multi/v1/models/ui-tm:predict')
    assert text_of(d, f'{row("ui-tm")} .tm-framework') == 'xgboost'
    wrong = next(c for c in server.api('GET', f'{tms}/ui-tm-wrong')['status']['conditions'] if c['type'] == 'Ready')
    assert wrong['reason'] and wrong['reason'] in text_of(d, f'{row("ui-tm-wrong")} .tm-reason')
    # The model answers at its URL, as the stump predicts.
    req = urllib.request.Request(status['url'], data=json.dumps({'instances': [[0.0, 0.0]]}).encode(),
                                 headers={'Content-Type': 'application/json', **server.auth}, method='POST')
    with urllib.request.urlopen(req, timeout=30) as r:
        assert json.loads(r.read())['predictions'] == [stump_prediction(0.0)]
    # A service with no trained models says how to add them.
    go(d, server, '/models/services/ui-stump')
    wait(d, lambda d: 'TrainedModels' in text_of(d, '#isvc-trained-box'), what='the empty trained-models note')
    for name in ('ui-tm', 'ui-tm-wrong'):
        server.api('DELETE', f'{tms}/{name}')
    server.api('DELETE', f'{ISVCS}/ui-multi')
    assert not js_errors(d)
