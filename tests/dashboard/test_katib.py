"""The Katib pages in a real headless Chromium against a real `oxflow up`:
creating experiments from YAML and from the form, the inline error for a
refused field, the detail page of a finished search (trials, best trial,
both charts, a trial's log), and stop / resume / delete.

Every wait is on DOM state with a deadline (WebDriverWait), never a fixed
sleep. Trials run the test's own Python (`sys.executable`).
"""
import json
import re
import shlex
import sys

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from page import wait, css, one, click, go, fragment, set_text, get_status, js_errors

EXPERIMENTS = '/apis/kubeflow.org/v1beta1/namespaces/default/experiments'
# What the form's and the test's trials print: the objective is smallest for lr closest to 0.05.
LOSS_CODE = 'import sys; lr = float(sys.argv[1]); print(f"loss={(lr - 0.05) ** 2:.8f}")'
















def fill(el, text):
    el.clear()
    el.send_keys(text)


def state(driver):
    return one(driver, '#katib-state .badge').get_attribute('data-state')


def row_states(driver):
    return {r.get_attribute('data-trial'): r.get_attribute('data-state')
            for r in css(driver, 'table#trials tbody tr[data-trial]')}


def names(server):
    return [e['metadata']['name'] for e in server.api('GET', EXPERIMENTS)['items']]






@pytest.fixture(scope='module', autouse=True)
def drain_console(browser):
    # The 400s and 404s provoked here are logged by Chromium; leave none for other modules.
    yield
    browser.get_log('browser')


def edited_example(driver, **edits):
    """The YAML editor's prefilled example with `old → new` edits, each required to apply."""
    text = one(driver, '#katib-yaml').get_attribute('value')
    for old, new in edits.values():
        assert re.search(old, text, re.M), f'the example has no {old!r}:\n{text}'
        text = re.sub(old, new, text, count=1, flags=re.M)
    return text


def test_yaml_with_a_bad_field_is_refused_inline(server, browser, shots):
    d = browser
    go(d, server, '/katib/new')
    editor = one(d, '#katib-yaml')
    assert 'kind: Experiment' in editor.get_attribute('value'), 'the editor starts with an example'
    bad = edited_example(d, name=(r'name: lr-search-\w+$', 'name: ui-bad'),
                         ptype=(r'parameterType: double$', 'parameterType: float'))
    set_text(d, editor, bad)
    click(d, '#katib-create-yaml')
    err = one(d, '#katib-yaml-error')
    assert one(d, '#katib-yaml-error code.field-path').text == 'spec.parameters[0].parameterType', err.text
    assert 'float' in err.text
    assert editor.get_attribute('aria-invalid') == 'true'
    # The page stays, with the text as the user left it, and nothing was created.
    assert fragment(d).startswith('/katib/new')
    assert 'parameterType: float' in one(d, '#katib-yaml').get_attribute('value')
    d.save_screenshot(str(shots / 'katib-yaml-error.png'))
    assert 'ui-bad' not in names(server)
    assert get_status(server, f'{EXPERIMENTS}/ui-bad') == 404
    assert not js_errors(d)


@pytest.fixture(scope='module')
def finished(server, browser):
    """The editor's example (random search over lr), run with this test's Python, 4 trials, 2 at a time;
    created from the YAML editor, waited for on the detail page. Returns (experiment, trials) from the API."""
    d = browser
    go(d, server, '/katib/new')
    text = edited_example(d, name=(r'name: lr-search-\w+$', 'name: ui-random'),
                          python=(r'^(\s+)- python3$', rf'\1- {json.dumps(sys.executable)}'),
                          max=(r'maxTrialCount: \d+$', 'maxTrialCount: 4'),
                          parallel=(r'parallelTrialCount: \d+$', 'parallelTrialCount: 2'))
    set_text(d, one(d, '#katib-yaml'), text)
    click(d, '#katib-create-yaml')
    wait(d, lambda d: fragment(d) == '/katib/experiments/ui-random', what='the experiment page')
    wait(d, lambda d: state(d) == 'Succeeded', timeout=60, what='the experiment to succeed')
    exp = server.api('GET', f'{EXPERIMENTS}/ui-random')
    trials = server.api('GET', f'{EXPERIMENTS}/ui-random/trials')['items']
    return exp, trials


def test_finished_experiment_shows_trials_best_and_plots(server, browser, finished, shots):
    d = browser
    exp, trials = finished
    assert len(trials) == 4
    assert all(t['status']['conditions'][-1]['type'] == 'Succeeded' for t in trials), trials
    # The best trial is the one whose lr is closest to 0.05 (ties share its value).
    lr = {t['metadata']['name']: float(t['spec']['parameterAssignments'][0]['value']) for t in trials}
    objective = {t['metadata']['name']: t['status']['oxflow']['objective'] for t in trials}
    best = exp['status']['currentOptimalTrial']['bestTrialName']
    predicted = min(lr, key=lambda n: abs(lr[n] - 0.05))
    assert objective[best] == objective[predicted] == min(objective.values())

    wait(d, lambda d: len(row_states(d)) == 4 and set(row_states(d).values()) == {'Succeeded'}, what='4 succeeded rows')
    highlighted = [r.get_attribute('data-trial') for r in css(d, 'table#trials tbody tr.best')]
    assert highlighted == [best]
    assert one(d, '#best-trial').get_attribute('data-trial') == best
    # Every parameter and the objective have a column; the best row shows its lr and loss.
    head = one(d, 'table#trials thead').text
    assert 'LR' in head.upper() and 'LOSS' in head.upper()
    row = one(d, f'table#trials tr[data-trial="{best}"]')
    assigned = {t['metadata']['name']: t['spec']['parameterAssignments'][0]['value'] for t in trials}
    lr_cell = row.find_element(By.CSS_SELECTOR, 'td[data-param="lr"]')
    assert lr_cell.get_attribute('title') == assigned[best]
    assert float(lr_cell.text) == pytest.approx(float(assigned[best]), rel=1e-5)
    assert float(row.find_element(By.CSS_SELECTOR, 'td.objective').text) == pytest.approx(objective[best], rel=1e-5, abs=1e-12)
    cond = one(d, '#katib-condition').text
    assert 'ExperimentMaxTrialsReached' in cond, cond

    # Both charts: one point and one polyline per trial with a metric, the best one marked.
    with_metric = [n for n, v in objective.items() if v is not None]
    points = css(d, 'svg.katib-objective circle.trial-point')
    assert sorted(p.get_attribute('data-trial') for p in points) == sorted(with_metric)
    assert [p.get_attribute('data-trial') for p in css(d, 'svg.katib-objective circle.trial-point.best')] == [best]
    assert css(d, 'svg.katib-objective path.best-line')
    lines = css(d, 'svg.katib-parallel polyline.pc-line')
    assert sorted(x.get_attribute('data-trial') for x in lines) == sorted(with_metric)
    axes = [g.get_attribute('data-axis') for g in css(d, 'svg.katib-parallel g.pc-axis')]
    assert axes == ['lr', 'loss']
    # The experiment as YAML and JSON.
    click(d, '#experiment-json summary')
    shown = json.loads(one(d, '#experiment-json-text').get_attribute('textContent'))
    assert shown['metadata']['name'] == 'ui-random' and shown['status']['currentOptimalTrial']['bestTrialName'] == best
    assert 'algorithmName: random' in one(d, '#experiment-yaml-text').get_attribute('textContent')
    d.execute_script('window.scrollTo(0, 0)')
    d.save_screenshot(str(shots / 'katib-experiment.png'))
    assert not js_errors(d)


def test_trial_log_shows_what_the_trial_printed(server, browser, finished, shots):
    d = browser
    exp, trials = finished
    best = exp['status']['currentOptimalTrial']['bestTrialName']
    click(d, f'table#trials tr[data-trial="{best}"] button.trial-log-btn')
    log = one(d, '#trial-log')
    wait(d, lambda d: log.get_attribute('data-trial') == best and log.get_attribute('data-loaded') == 'true', what='the log')
    text = log.get_attribute('textContent')
    printed = re.search(r'loss=(\S+)', text)
    assert printed, text
    t = next(t for t in trials if t['metadata']['name'] == best)
    assert float(printed.group(1)) == pytest.approx(t['status']['oxflow']['objective'])
    assert best in one(d, '#trial-log-h').text
    d.save_screenshot(str(shots / 'katib-trial-log.png'))


def test_list_shows_state_trials_and_best(server, browser, finished, shots):
    d = browser
    exp, _ = finished
    go(d, server, '/katib')
    row = one(d, 'table[aria-label="Katib experiments"] tr[data-experiment="ui-random"]')
    assert row.get_attribute('data-state') == 'Succeeded'
    assert row.find_element(By.CSS_SELECTOR, '.trials-count').text == '4/4'
    assert row.find_element(By.CSS_SELECTOR, '.best-trial').text == exp['status']['currentOptimalTrial']['bestTrialName']
    assert 'random' in row.text and 'ExperimentMaxTrialsReached' in row.text
    d.save_screenshot(str(shots / 'katib-list.png'))
    # The name links to the detail page.
    row.find_element(By.CSS_SELECTOR, 'a.exp-link').click()
    wait(d, lambda d: fragment(d) == '/katib/experiments/ui-random', what='the detail page')
    # The nav entry is a real page now, not a placeholder.
    nav = one(d, '#nav-list a[data-path="/katib"]')
    assert 'coming' not in (nav.get_attribute('class') or '') and nav.get_attribute('aria-current') == 'page'


def test_form_builds_the_experiment(server, browser, shots):
    d = browser
    go(d, server, '/katib/new?tab=form')
    fill(one(d, '#kf-name'), 'ui-form')
    Select(one(d, '#kf-algorithm')).select_by_value('sobol')
    fill(one(d, '#kf-max-trials'), '2')
    fill(one(d, '#kf-parallel'), '2')
    fill(one(d, '#kf-command'), shlex.join([sys.executable, '-c', LOSS_CODE]))
    fill(one(d, '#kf-args'), '${trialParameters.lr}')
    # A second parameter, passed as --NAME=VALUE because the command does not use it.
    click(d, '#kf-add-param')
    row = css(d, '#kf-params tr.param-row')[-1]
    fill(row.find_element(By.CSS_SELECTOR, '.p-name'), 'opt')
    Select(row.find_element(By.CSS_SELECTOR, '.p-type')).select_by_value('categorical')
    fill(row.find_element(By.CSS_SELECTOR, '.p-list'), 'sgd, adam')
    # An empty range first: the server's message names the field, inline; nothing is created.
    lr_max = css(d, '#kf-params tr.param-row')[0].find_element(By.CSS_SELECTOR, '.p-max')
    fill(lr_max, '0.001')
    click(d, '#kf-create')
    err = one(d, '#katib-form-error')
    assert 'spec.parameters[0]' in err.text, err.text
    assert fragment(d).startswith('/katib/new') and 'ui-form' not in names(server)
    d.save_screenshot(str(shots / 'katib-form-error.png'))
    fill(lr_max, '0.1')
    click(d, '#kf-create')
    wait(d, lambda d: fragment(d) == '/katib/experiments/ui-form', what='the new experiment page')

    spec = server.api('GET', f'{EXPERIMENTS}/ui-form')['spec']
    assert spec['algorithm']['algorithmName'] == 'sobol'
    assert (spec['maxTrialCount'], spec['parallelTrialCount']) == (2, 2)
    assert [(p['name'], p['parameterType']) for p in spec['parameters']] == [('lr', 'double'), ('opt', 'categorical')]
    assert spec['parameters'][1]['feasibleSpace']['list'] == ['sgd', 'adam']
    template = spec['trialTemplate']
    assert [(p['name'], p['reference']) for p in template['trialParameters']] == [('lr', 'lr'), ('opt', 'opt')]
    container = template['trialSpec']['spec']['template']['spec']['containers'][0]
    assert container['name'] == 'training-container' == template['primaryContainerName']
    assert container['command'] == [sys.executable, '-c', LOSS_CODE]
    assert container['args'] == ['${trialParameters.lr}', '--opt=${trialParameters.opt}']

    wait(d, lambda d: state(d) == 'Succeeded', timeout=60, what='the form experiment to succeed')
    assert len(row_states(d)) == 2
    # Both parameters are columns and axes, the categorical one with its values.
    assert [g.get_attribute('data-axis') for g in css(d, 'svg.katib-parallel g.pc-axis')] == ['lr', 'opt', 'loss']
    go(d, server, '/katib')
    wait(d, lambda d: css(d, 'tr[data-experiment="ui-form"]'), what='the form experiment in the list')
    assert not js_errors(d)


def test_stop_resume_and_delete(server, browser, shots):
    d = browser
    code = 'import sys, time; print("sleeping with lr", sys.argv[1], flush=True); time.sleep(30)'
    body = {
        'apiVersion': 'kubeflow.org/v1beta1', 'kind': 'Experiment', 'metadata': {'name': 'ui-stop'},
        'spec': {
            'objective': {'type': 'minimize', 'objectiveMetricName': 'loss'},
            'algorithm': {'algorithmName': 'random'},
            'parallelTrialCount': 2, 'maxTrialCount': 6,
            'parameters': [{'name': 'lr', 'parameterType': 'double', 'feasibleSpace': {'min': '0.01', 'max': '0.1'}}],
            'trialTemplate': {
                'primaryContainerName': 'training-container',
                'trialParameters': [{'name': 'lr', 'reference': 'lr'}],
                'trialSpec': {'apiVersion': 'batch/v1', 'kind': 'Job', 'spec': {'template': {'spec': {
                    'containers': [{'name': 'training-container',
                                    'command': [sys.executable, '-c', code, '${trialParameters.lr}']}],
                    'restartPolicy': 'Never'}}}},
            },
        },
    }
    server.api('POST', EXPERIMENTS, body)
    go(d, server, '/katib/experiments/ui-stop')
    wait(d, lambda d: state(d) == 'Running' and list(row_states(d).values()).count('Running') == 2,
         what='two running trials')
    d.save_screenshot(str(shots / 'katib-running.png'))

    click(d, '#katib-stop')
    wait(d, lambda d: state(d) == 'Stopped' and 'Running' not in row_states(d).values()
         and 'Killed' in row_states(d).values(), what='the experiment to stop and its trials to be killed')
    assert 'ExperimentStopped' in one(d, '#katib-condition').text
    assert server.api('GET', f'{EXPERIMENTS}/ui-stop')['status'].get('trialsKilled', 0) == 2

    click(d, '#katib-resume')
    wait(d, lambda d: state(d) == 'Running' and 'Running' in row_states(d).values(), what='the experiment to run again')
    click(d, '#katib-stop')
    wait(d, lambda d: state(d) == 'Stopped' and 'Running' not in row_states(d).values(), what='the second stop')

    click(d, '#katib-delete')
    WebDriverWait(d, 10).until(EC.alert_is_present(), message='the delete confirmation')
    d.switch_to.alert.accept()
    wait(d, lambda d: fragment(d) == '/katib', what='the list after the delete')
    wait(d, lambda d: css(d, 'table[aria-label="Katib experiments"]') and not css(d, 'tr[data-experiment="ui-stop"]'),
         what='the list without the deleted experiment')
    assert get_status(server, f'{EXPERIMENTS}/ui-stop') == 404
    assert not js_errors(d)


def test_resume_after_max_trials_asks_for_a_larger_count(server, browser):
    d = browser
    body = {
        'apiVersion': 'kubeflow.org/v1beta1', 'kind': 'Experiment', 'metadata': {'name': 'ui-longrunning'},
        'spec': {
            'objective': {'type': 'minimize', 'objectiveMetricName': 'loss'},
            'algorithm': {'algorithmName': 'random'},
            'parallelTrialCount': 1, 'maxTrialCount': 1, 'resumePolicy': 'LongRunning',
            'parameters': [{'name': 'lr', 'parameterType': 'double', 'feasibleSpace': {'min': '0.01', 'max': '0.1'}}],
            'trialTemplate': {
                'primaryContainerName': 'training-container',
                'trialParameters': [{'name': 'lr', 'reference': 'lr'}],
                'trialSpec': {'apiVersion': 'batch/v1', 'kind': 'Job', 'spec': {'template': {'spec': {
                    'containers': [{'name': 'training-container',
                                    'command': [sys.executable, '-c', LOSS_CODE, '${trialParameters.lr}']}],
                    'restartPolicy': 'Never'}}}},
            },
        },
    }
    server.api('POST', EXPERIMENTS, body)
    go(d, server, '/katib/experiments/ui-longrunning')
    wait(d, lambda d: state(d) == 'Succeeded' and len(row_states(d)) == 1, what='the first trial')
    # Reached maxTrialCount: resuming needs a larger one, offered in an input.
    count = one(d, '#katib-resume-max')
    assert int(count.get_attribute('min')) == 2
    fill(count, '2')
    click(d, '#katib-resume')
    wait(d, lambda d: state(d) == 'Succeeded' and list(row_states(d).values()) == ['Succeeded', 'Succeeded'],
         what='the resumed experiment to finish its second trial')
    assert server.api('GET', f'{EXPERIMENTS}/ui-longrunning')['spec']['maxTrialCount'] == 2
    assert not js_errors(d)
