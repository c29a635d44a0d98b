"""A page on another origin, in a real browser, cannot change anything, and
a page under a rebound name cannot even read: headless Chromium resolves
`evil.test` to 127.0.0.1 (see the browser fixture), as DNS rebinding makes
an attacker's name do."""
import functools
import http.server
import threading
import time

import pytest

ATTACK = """<!doctype html><title>loading</title><script>
const target = %(target)r;
const simple = (path, body, type) => fetch(target + path, {
  method: 'POST', mode: 'no-cors', body, headers: type ? {'Content-Type': type} : {}}).catch(() => null);
const form = new FormData();
form.append('uploadfile', new Blob(['pipelineInfo: {name: evil-pipeline}\\n']), 'p.yaml');
Promise.all([
  simple('/apis/v2beta1/experiments', JSON.stringify({display_name: 'evil-experiment'}), 'text/plain'),
  simple('/apis/kubeflow.org/v1beta1/namespaces/default/experiments', %(katib)r, 'text/plain'),
  simple('/apis/v2beta1/pipelines/upload?name=evil-pipeline', form, null),
  simple('/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices',
         JSON.stringify({apiVersion: 'serving.kserve.io/v1beta1', kind: 'InferenceService',
                         metadata: {name: 'evil'}, spec: {predictor: {containers: [{name: 'kserve-container',
                         image: 'x', command: ['sh', '-c', 'touch /tmp/evil']}]}}}), 'text/plain'),
]).then(() => { document.title = 'done'; });
</script>"""

KATIB = ('{"apiVersion":"kubeflow.org/v1beta1","kind":"Experiment","metadata":{"name":"evil-katib"},'
         '"spec":{"objective":{"type":"minimize","objectiveMetricName":"loss"},'
         '"algorithm":{"algorithmName":"random"},"maxTrialCount":1,"parameters":[{"name":"x",'
         '"parameterType":"double","feasibleSpace":{"min":"0","max":"1"}}],"trialTemplate":{'
         '"primaryContainerName":"main","trialParameters":[{"name":"x","reference":"x"}],'
         '"trialSpec":{"apiVersion":"batch/v1","kind":"Job","spec":{"template":{"spec":{"containers":'
         '[{"name":"main","image":"python","command":["sh","-c","echo loss=1"]}]}}}}}}}')


@pytest.fixture
def attacker_site(tmp_path, server):
    (tmp_path / 'attack.html').write_text(ATTACK % {'target': server.url, 'katib': KATIB})
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://evil.test:{httpd.server_address[1]}'
    httpd.shutdown()


def names(server):
    return {
        'experiments': {e['display_name'] for e in server.api('GET', '/apis/v2beta1/experiments').get('experiments', [])},
        'pipelines': {p['display_name'] for p in server.api('GET', '/apis/v2beta1/pipelines').get('pipelines', [])},
        'katib': {e['metadata']['name'] for e in server.api(
            'GET', '/apis/kubeflow.org/v1beta1/namespaces/default/experiments').get('items', [])},
        'isvc': {e['metadata']['name'] for e in server.api(
            'GET', '/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices').get('items', [])},
    }


def test_a_page_on_another_origin_changes_nothing(browser, server, attacker_site):
    browser.get(attacker_site + '/attack.html')
    deadline = time.time() + 30
    while browser.title != 'done' and time.time() < deadline:
        time.sleep(0.05)
    assert browser.title == 'done', 'the attack page did not finish sending'
    found = names(server)
    assert 'evil-experiment' not in found['experiments']
    assert 'evil-pipeline' not in found['pipelines']
    assert 'evil-katib' not in found['katib']
    assert 'evil' not in found['isvc']


def test_a_rebound_name_reads_nothing(browser, server):
    port = server.url.rsplit(':', 1)[1]
    # The attacker's page, once its name points at this machine, is served
    # by Oxflow itself: same origin as the API, if the server answered.
    browser.get(f'http://evil.test:{port}/')
    assert 'not a name this server answers to' in browser.page_source
    status = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch('/apis/v2beta1/experiments').then(r => done(r.status), e => done(String(e)));")
    assert status == 403
    # The real dashboard, on a name the server answers to, still reads.
    browser.get(server.url + '/')
    status = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch('/apis/v2beta1/experiments').then(r => done(r.status), e => done(String(e)));")
    assert status == 200
