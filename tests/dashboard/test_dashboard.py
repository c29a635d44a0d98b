"""The dashboard in a real headless Chromium against a real `oxflow up`.

Every wait is on DOM state with a deadline (WebDriverWait), never a fixed
sleep. Screenshots of the main pages go to $OXFLOW_SCREENSHOTS (default
target/dashboard-screenshots/).
"""
import json
import re
import time

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

DONE = {'SUCCEEDED', 'CACHED'}


def wait(driver, cond, timeout=30, what='condition'):
    # The page re-renders lists as data arrives: an element found a moment
    # ago may be gone, which only means "look again".
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                         ).until(cond, message=f'timed out waiting for {what}')


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def one(driver, selector, timeout=30):
    return wait(driver, lambda d: (css(d, selector) or [None])[0], timeout, selector)


def leaf_states(driver):
    return {n.get_attribute('data-path'): n.get_attribute('data-state')
            for n in css(driver, 'svg.graph g.node:not(.group)')}


def click(driver, selector):
    """Clicks an element after scrolling it to the middle of the window (clear of the sticky header)."""
    el = one(driver, selector)
    driver.execute_script('arguments[0].scrollIntoView({block: "center"})', el)
    el.click()
    return el


def go(driver, server, fragment):
    driver.get(f'{server.url}/#{fragment}')


def severe_errors(driver):
    """Console errors from the page's own scripts (a JS error fails the test)."""
    out = []
    for entry in driver.get_log('browser'):
        if entry['level'] == 'SEVERE' and 'favicon' not in entry['message']:
            out.append(entry['message'])
    return out


@pytest.fixture(scope='module')
def uploaded(server, browser, compiled, shots):
    """Uploads the `artifacts` pipeline through the upload form; returns its page URL fragment."""
    d = browser
    go(d, server, '/pipelines')
    one(d, '#upload-toggle').click()
    one(d, '#upload-file').send_keys(str(compiled / 'artifacts.yaml'))
    one(d, '#upload-name').send_keys('artifacts-e2e')
    one(d, '#upload-desc').send_keys('uploaded by the dashboard test')
    d.find_element(By.CSS_SELECTOR, 'form[aria-label="Upload a pipeline"] button[type=submit]').click()
    wait(d, lambda d: d.current_url.split('#', 1)[-1].startswith('/pipelines/0'), what='the pipeline page')
    one(d, 'svg.graph g.node[data-path="train"]')
    return d.current_url.split('#', 1)[1]


def test_upload_shows_the_pipeline_graph_and_list(server, browser, uploaded, shots):
    d = browser
    nodes = {n.get_attribute('data-path') for n in css(d, 'svg.graph g.node')}
    assert {'make-data', 'train', 'evaluate', 'importer', 'show'} <= nodes, nodes
    # The pipeline's parameters, with their types and defaults.
    params = one(d, 'section[aria-labelledby="inputs-h"] table').text
    assert 'threshold' in params and 'number' in params and '0.5' in params
    # A node opens the component's details.
    click(d, 'g.node[data-path="train"]')
    panel = one(d, 'aside.side-panel:not([hidden])')
    wait(d, lambda d: 'python:3.11' in panel.text and 'threshold' in panel.text, what='component details')
    d.save_screenshot(str(shots / 'pipeline-graph.png'))

    go(d, server, '/pipelines')
    wait(d, lambda d: any(a.text == 'artifacts-e2e' for a in css(d, 'a.pipeline-link')), what='the pipeline in the list')
    assert 'uploaded by the dashboard test' in one(d, 'table[aria-label="Pipelines"]').text
    d.save_screenshot(str(shots / 'pipelines-list.png'))


def test_run_from_the_form_turns_green_with_logs_and_artifacts(server, browser, uploaded, workdir, shots):
    d = browser
    imported = workdir / 'imported.txt'
    imported.write_text('imported for the dashboard test\n')
    go(d, server, uploaded)
    one(d, '#create-run').click()
    one(d, '#start-run')
    # The form is generated from the root inputDefinitions: typed inputs with defaults.
    n = one(d, 'input[name="n"]')
    assert n.get_attribute('type') == 'number' and n.get_attribute('step') == '1'
    assert n.get_attribute('value') == '20'
    threshold = one(d, 'input[name="threshold"]')
    assert threshold.get_attribute('step') == 'any' and threshold.get_attribute('value') == '0.5'
    n.clear()
    n.send_keys('30')
    uri = one(d, 'input[name="import_uri"]')
    uri.clear()
    uri.send_keys(str(imported))
    run_name = one(d, '#run-name')
    run_name.clear()
    run_name.send_keys('dashboard-run-1')
    one(d, '#start-run').click()
    wait(d, lambda d: d.current_url.split('#', 1)[-1].startswith('/runs/'), what='the run page')
    run_id = d.current_url.split('#/runs/', 1)[1].split('?')[0]

    # The graph's nodes turn green.
    wait(d, lambda d: (s := leaf_states(d)) and all(v in DONE for v in s.values()), timeout=120,
         what='every task to succeed')
    assert set(leaf_states(d)) == {'make-data', 'train', 'evaluate', 'importer', 'show'}
    wait(d, lambda d: one(d, '#run-state').text == 'succeeded', what='the run badge')
    wait(d, lambda d: 'imported for the dashboard test|external' in one(d, 'section.run-details').text,
         what='the pipeline output')
    d.save_screenshot(str(shots / 'run-detail.png'))

    # The task panel: inputs, then the log, then artifact previews.
    click(d, 'g.node[data-path="train"]')
    panel = one(d, '#task-panel:not([hidden])')
    wait(d, lambda d: 'threshold' in panel.text and '0.5' in panel.text, what='the task inputs')
    click(d, '#tab-logs')
    log = one(d, '#task-log')
    wait(d, lambda d: '--function_to_execute train' in log.text and log.get_attribute('data-streaming') == 'false',
         what='the task log')
    click(d, '#tab-artifacts')
    metrics = one(d, '.metrics-table')
    wait(d, lambda d: 'accuracy' in metrics.text, what='the metrics table')
    wait(d, lambda d: any(h.text == 'Report' for h in css(d, '.markdown h1')), what='the rendered Markdown')
    assert re.fullmatch(r'\d\.\d{3}', one(d, '.markdown strong').text)
    confusion = one(d, 'table.confusion')
    assert 'neg' in confusion.text and 'pos' in confusion.text
    assert css(d, 'svg.roc polyline.curve')
    frame = one(d, 'iframe.html-preview')
    assert frame.get_attribute('sandbox') == ''
    assert '<h1>accuracy' in frame.get_attribute('srcdoc')
    # The Model's first bytes as text.
    wait(d, lambda d: any('"threshold": 0.5' in p.text for p in css(d, 'pre.text-preview')), what='the model preview')
    d.execute_script('window.scrollTo(0, 0); arguments[0].scrollTop = 0', panel)
    d.save_screenshot(str(shots / 'artifact-preview.png'))
    d.execute_script('arguments[0].scrollTop = arguments[1].offsetTop - 80', panel, one(d, '.markdown'))
    d.save_screenshot(str(shots / 'artifact-preview-markdown-html.png'))

    # An imported artifact outside the store is not served.
    click(d, 'g.node[data-path="importer"]')
    click(d, '#tab-artifacts')
    wait(d, lambda d: 'cannot be previewed' in one(d, '#task-panel').text, what='the external artifact note')

    # The API refuses it too.
    import urllib.error
    import urllib.request
    from urllib.parse import quote
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(f'{server.url}/oxflow/v1/artifacts?uri={quote(str(imported))}',
                                                      headers=server.auth))
    assert e.value.code == 403
    assert 'artifact store' in json.loads(e.value.read())['message']

    assert run_id
    assert not severe_errors(d)


def test_run_graph_updates_live(server, browser, compiled, workdir):
    """Opened while a task runs, the page shows it running, then done, from the event stream alone."""
    d = browser
    marker = workdir / 'slow-markers'
    marker.mkdir()
    (marker / 'sleep-first').write_text('2.5')
    spec = _load_spec(compiled / 'slow.yaml')
    run = server.api('POST', '/apis/v2beta1/runs', {
        'display_name': 'live-run', 'pipeline_spec': spec,
        'runtime_config': {'parameters': {'marker_dir': str(marker)}}})
    go(d, server, f'/runs/{run["run_id"]}')
    one(d, 'svg.graph g.node[data-path="sleeper"]')
    wait(d, lambda d: leaf_states(d).get('sleeper') == 'RUNNING', timeout=60, what='the first task to run')
    assert one(d, '#live-indicator').get_attribute('data-live') in ('on', 'connecting')
    wait(d, lambda d: all(v in DONE for v in leaf_states(d).values()), timeout=120, what='every task to succeed')
    wait(d, lambda d: one(d, '#live-indicator').get_attribute('data-live') == 'final', what='the stream to end')
    assert one(d, '#run-state').text == 'succeeded'
    # The page never reloaded: the list of runs below the graph still shows no error.
    assert not css(d, '.alert-error')


@pytest.fixture(scope='module')
def two_runs(server, compiled):
    """Two finished runs of the `params` pipeline with different parameters (submitted through the API)."""
    spec = _load_spec(compiled / 'params.yaml')
    ids = []
    for name, a in (('list-run-a', 3), ('list-run-b', 5)):
        run = server.api('POST', '/apis/v2beta1/runs', {
            'display_name': name, 'pipeline_spec': spec, 'runtime_config': {'parameters': {'a': a}}})
        ids.append(run['run_id'])
    deadline = time.time() + 120
    while time.time() < deadline:
        states = [server.api('GET', f'/apis/v2beta1/runs/{i}')['state'] for i in ids]
        if all(s == 'SUCCEEDED' for s in states):
            return ids
        assert not any(s in ('FAILED', 'CANCELED') for s in states), states
        time.sleep(0.2)
    pytest.fail('the params runs did not finish in time')


def test_run_list_filters_and_compare(server, browser, two_runs, shots):
    d = browser
    go(d, server, '/runs')
    one(d, 'table.runs-table')
    wait(d, lambda d: len(css(d, 'tr[data-state="SUCCEEDED"]')) >= 2, what='succeeded runs in the list')
    d.save_screenshot(str(shots / 'run-list.png'))
    Select(one(d, '#state-filter')).select_by_value('FAILED')
    wait(d, lambda d: not css(d, 'tr[data-state="SUCCEEDED"]'), what='the state filter')
    Select(one(d, '#state-filter')).select_by_value('')
    search = one(d, '#run-search')
    search.send_keys('list-run')
    wait(d, lambda d: sorted(a.text for a in css(d, 'table.runs-table a.run-link')) == ['list-run-a', 'list-run-b'],
         what='the name filter')
    for b in css(d, 'table.runs-table tbody input[type=checkbox]'):
        b.click()
    compare = one(d, '#compare-btn')
    wait(d, lambda d: compare.is_enabled(), what='the compare button')
    compare.click()
    params = one(d, 'table[aria-label="Parameters"]')
    assert len(css(d, 'table[aria-label="Parameters"] thead th')) == 3
    # The parameter that differs is marked.
    differs = [r.find_element(By.TAG_NAME, 'th').text for r in css(d, 'table[aria-label="Parameters"] tr.differs')]
    assert differs == ['a'], differs
    assert params is not None
    d.save_screenshot(str(shots / 'compare.png'))


def test_recurring_runs_create_and_disable(server, browser, uploaded, shots):
    """With the recurring-runs API: create one from the form, then disable it. Without it: a clear notice."""
    d = browser
    go(d, server, '/recurring')
    wait(d, lambda d: css(d, '#recurring-unavailable') or css(d, '#recurring-list table') or css(d, '#recurring-list .empty'),
         what='the recurring runs page')
    if css(d, '#recurring-unavailable'):
        assert '404' in one(d, '#recurring-unavailable').text
        assert not one(d, '#new-recurring').is_enabled()
        return
    click(d, '#new-recurring')
    one(d, '#rr-name').send_keys('nightly-e2e')
    Select(one(d, '#rr-pipeline')).select_by_visible_text('artifacts-e2e')
    wait(d, lambda d: Select(one(d, '#rr-version')).options and css(d, '#rr-version option'), what='the versions')
    one(d, 'input[name="import_uri"]')  # the parameter form of the chosen version
    cron = one(d, '#rr-cron')
    cron.clear()
    cron.send_keys('0 0 2 * * *')
    click(d, 'form[aria-label="Create a recurring run"] button[type=submit]')
    row = 'tr[data-recurring-id]'
    wait(d, lambda d: any('nightly-e2e' in r.text and 'enabled' in r.text for r in css(d, row)), what='the new schedule')
    assert 'cron 0 0 2 * * *' in one(d, row).text
    d.save_screenshot(str(shots / 'recurring-runs.png'))
    disable = next(b for b in css(d, f'{row} button') if b.text == 'Disable')
    disable.click()
    wait(d, lambda d: any('nightly-e2e' in r.text and 'disabled' in r.text for r in css(d, row)), what='the schedule to be disabled')


def test_recurring_runs_page_explains_a_missing_api(server, browser):
    """A server without /apis/v2beta1/recurringruns (404): the page says so instead of failing."""
    d = browser
    go(d, server, '/')
    one(d, '.cards .card')
    # Answer every recurring-runs request with the 404 an older server gives.
    d.execute_script("""
        const real = window.fetch;
        window.fetch = (url, opts) => String(url).includes('/recurringruns')
          ? Promise.resolve(new Response(JSON.stringify({code: 5, message: 'no such route'}),
                                         {status: 404, headers: {'Content-Type': 'application/json'}}))
          : real(url, opts);
        window.location.hash = '#/recurring';
    """)
    note = one(d, '#recurring-unavailable')
    assert '404' in note.text and 'not available' in note.text
    assert not one(d, '#new-recurring').is_enabled()
    d.refresh()  # drops the stub


def test_navigation_and_placeholders(server, browser):
    d = browser
    go(d, server, '/')
    one(d, '.cards .card')
    labels = [a.text for a in css(d, '#nav-list a')]
    for want in ('Home', 'Pipelines', 'Runs', 'Experiments', 'Recurring runs', 'Artifacts', 'Notebooks', 'Katib', 'Models', 'Contributors'):
        assert any(want in x for x in labels), labels
    assert Select(one(d, '#namespace-select')).first_selected_option.text == 'default'
    go(d, server, '/notebooks')
    wait(d, lambda d: 'not part of Oxflow yet' in one(d, 'main').text, what='the Notebooks placeholder')
    go(d, server, '/experiments')
    one(d, 'main h1')
    go(d, server, '/artifacts')
    wait(d, lambda d: css(d, 'table[aria-label="Artifacts"]'), what='the artifacts list')
    assert not severe_errors(d)


def _load_spec(path):
    import yaml
    with open(path) as f:
        docs = [x for x in yaml.safe_load_all(f) if x]
    return docs[0]
