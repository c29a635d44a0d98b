"""The unmodified kfp.Client (from PyPI) against `oxflow up`."""
import json
import os
import urllib.error
import urllib.request

import pytest
from kfp import dsl


def wait(client, run_id, timeout=120):
    return client.wait_for_run_completion(run_id, timeout=timeout, sleep_duration=0.2)


def test_healthz(client):
    h = client.get_kfp_healthz()
    assert h.multi_user is False


def test_experiments(client):
    e = client.create_experiment('exp-a', description='first')
    assert e.display_name == 'exp-a'
    again = client.create_experiment('exp-a')  # the client looks it up by name first
    assert again.experiment_id == e.experiment_id
    got = client.get_experiment(experiment_name='exp-a')
    assert got.experiment_id == e.experiment_id
    assert got.description == 'first'
    client.archive_experiment(e.experiment_id)
    assert client.get_experiment(experiment_id=e.experiment_id).storage_state == 'ARCHIVED'
    client.unarchive_experiment(e.experiment_id)
    assert client.get_experiment(experiment_id=e.experiment_id).storage_state == 'AVAILABLE'
    names = [x.display_name for x in client.list_experiments(page_size=100).experiments]
    assert 'exp-a' in names


def test_run_from_package_with_task_details(client, compiled):
    result = client.create_run_from_pipeline_package(
        str(compiled / 'params.yaml'), arguments={'a': 5, 'name': 'x'}, run_name='run-1',
        experiment_name='demo-exp', enable_caching=False)
    run = wait(client, result.run_id)
    assert run.state == 'SUCCEEDED', run
    assert run.display_name == 'run-1'
    assert run.runtime_config.parameters['a'] == 5
    tasks = {t.display_name: t for t in run.run_details.task_details}
    assert {'add', 'describe', 'stats', 'shout'} <= set(tasks)
    assert all(t.state == 'SUCCEEDED' for t in tasks.values())
    exp = client.get_experiment(experiment_name='demo-exp')
    assert run.experiment_id == exp.experiment_id


def test_run_from_pipeline_func(client, tmp_path):
    @dsl.component
    def double(x: int) -> int:
        return 2 * x

    @dsl.pipeline(name='func-pipeline')
    def pipe(x: int = 4) -> int:
        return double(x=x).output

    result = client.create_run_from_pipeline_func(pipe, arguments={'x': 21}, experiment_name='funcs')
    run = wait(client, result.run_id)
    assert run.state == 'SUCCEEDED'


def test_failed_run_and_retry_reruns_only_failed_tasks(client, compiled, tmp_path):
    markers = tmp_path / 'markers'
    markers.mkdir()
    (markers / 'fail-second').write_text('1')
    result = client.create_run_from_pipeline_package(
        str(compiled / 'slow.yaml'), arguments={'marker_dir': str(markers)}, run_name='retry-me')
    run = wait(client, result.run_id)
    assert run.state == 'FAILED'
    states = {t.display_name: t.state for t in run.run_details.task_details}
    assert states['sleeper'] == 'SUCCEEDED' and states['sleeper-2'] == 'FAILED', states
    (markers / 'fail-second').unlink()
    # kfp.Client has no retry helper; its generated API object does.
    client._run_api.run_service_retry_run(result.run_id)
    run = wait(client, result.run_id)
    assert run.state == 'SUCCEEDED', run.error
    assert (markers / 'started-first').read_text() == '1', 'succeeded tasks are not re-run'
    assert (markers / 'started-second').read_text() == '2'
    assert (markers / 'started-third').read_text() == '1'


def test_list_runs_paging_sorting_filtering(client, compiled):
    exp = client.create_experiment('paging')
    ids = []
    for i in range(5):
        r = client.create_run_from_pipeline_package(
            str(compiled / 'seq10.yaml'), arguments={'x': i}, run_name=f'page-{i}',
            experiment_id=exp.experiment_id)
        ids.append(r.run_id)
    seen = []
    token = ''
    while True:
        page = client.list_runs(experiment_id=exp.experiment_id, page_size=2, page_token=token,
                                sort_by='created_at desc')
        seen += [r.run_id for r in (page.runs or [])]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))
    assert page.total_size == 5
    flt = json.dumps({'predicates': [{'operation': 'EQUALS', 'key': 'display_name', 'string_value': 'page-3'}]})
    only = client.list_runs(experiment_id=exp.experiment_id, filter=flt)
    assert [r.display_name for r in only.runs] == ['page-3']
    for rid in ids:
        assert wait(client, rid).state == 'SUCCEEDED'


def test_upload_pipeline_versions_and_run_from_version(client, compiled):
    p = client.upload_pipeline(str(compiled / 'params.yaml'), pipeline_name='params-pipe',
                               description='params demo')
    assert p.display_name == 'params-pipe'
    v2 = client.upload_pipeline_version(str(compiled / 'params.yaml'), pipeline_version_name='v2',
                                        pipeline_id=p.pipeline_id)
    versions = client.list_pipeline_versions(p.pipeline_id).pipeline_versions
    assert [v.display_name for v in versions] == ['params-pipe', 'v2']
    assert client.get_pipeline_id('params-pipe') == p.pipeline_id
    exp = client.create_experiment('from-versions')
    r = client.run_pipeline(exp.experiment_id, 'from-version', pipeline_id=p.pipeline_id,
                            version_id=v2.pipeline_version_id, params={'a': 1})
    run = wait(client, r.run_id)
    assert run.state == 'SUCCEEDED'
    assert run.pipeline_version_reference.pipeline_version_id == v2.pipeline_version_id
    names = [x.display_name for x in client.list_pipelines(page_size=50).pipelines]
    assert 'params-pipe' in names


def test_terminate_archive_delete(client, compiled, tmp_path):
    markers = tmp_path / 'm'
    markers.mkdir()
    (markers / 'sleep-second').write_text('120')
    r = client.create_run_from_pipeline_package(str(compiled / 'slow.yaml'),
                                                arguments={'marker_dir': str(markers)}, run_name='to-stop')
    client.terminate_run(r.run_id)
    import time
    deadline = time.time() + 60
    while client.get_run(r.run_id).state not in ('CANCELED', 'FAILED', 'SUCCEEDED'):
        assert time.time() < deadline
        time.sleep(0.1)
    assert client.get_run(r.run_id).state == 'CANCELED'
    client.archive_run(r.run_id)
    assert client.get_run(r.run_id).storage_state == 'ARCHIVED'
    client.unarchive_run(r.run_id)
    client.delete_run(r.run_id)
    with pytest.raises(Exception):
        client.get_run(r.run_id)


def post(server, path, body, content_type='application/json'):
    req = urllib.request.Request(server.url + path, data=body, method='POST',
                                 headers={'Content-Type': content_type, **server.auth})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read() or b'{}')
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'{}')


def test_bad_requests_name_the_field(server):
    code, body = post(server, '/apis/v2beta1/runs', b'{not json')
    assert code == 400 and 'not valid JSON' in body['message']
    code, body = post(server, '/apis/v2beta1/runs', json.dumps({'display_name': 'x'}).encode())
    assert code == 400 and 'pipeline_spec' in body['message']
    code, body = post(server, '/apis/v2beta1/runs', json.dumps(
        {'display_name': 'x', 'pipeline_spec': {'schemaVersion': '9.9.9'}}).encode())
    assert code == 400 and 'schemaVersion' in body['message']
    code, body = post(server, '/apis/v2beta1/experiments', json.dumps({'description': 'no name'}).encode())
    assert code == 400 and 'display_name' in body['message']
    code, body = post(server, '/apis/v2beta1/runs/nope:explode', b'')
    assert code == 404
    big = b'{"display_name": "' + b'x' * (33 * 1024 * 1024) + b'"}'
    code, _ = post(server, '/apis/v2beta1/experiments', big)
    assert code == 413


def test_killing_the_server_mid_run_loses_nothing(compiled, tmp_path):
    """kill -9 `oxflow up` while a run executes; the next start finishes it."""
    import time
    import kfp
    from conftest import Server
    home = tmp_path / 'home'
    home.mkdir()
    markers = tmp_path / 'markers'
    markers.mkdir()
    (markers / 'sleep-second').write_text('120')
    first = Server(str(home))
    try:
        c = kfp.Client(host=first.url, existing_token=first.token)
        r = c.create_run_from_pipeline_package(str(compiled / 'slow.yaml'),
                                               arguments={'marker_dir': str(markers)}, run_name='survivor')
        deadline = time.time() + 60
        while not (markers / 'started-second').exists():
            assert time.time() < deadline, 'the second task never started'
            time.sleep(0.02)
    finally:
        first.proc.kill()
        first.proc.wait()
    (markers / 'sleep-second').write_text('0')
    second = Server(str(home))
    try:
        c = kfp.Client(host=second.url, existing_token=second.token)
        run = c.wait_for_run_completion(r.run_id, timeout=120, sleep_duration=0.2)
        assert run.state == 'SUCCEEDED', run.error
        assert (markers / 'started-first').read_text() == '1', 'finished work is kept'
        assert (markers / 'started-second').read_text() == '2', 'the interrupted task ran again'
        history = [h.state for h in run.state_history]
        assert history[0] == 'PENDING' and history[-1] == 'SUCCEEDED', history
    finally:
        second.stop()


def test_ctrl_c_stops_the_server_cleanly(tmp_path):
    """SIGINT (Ctrl-C) ends `oxflow up` with exit code 0 and frees the port."""
    import signal
    import socket
    import time
    from urllib.parse import urlparse
    from conftest import Server
    s = Server(str(tmp_path))
    port = urlparse(s.url).port
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(timeout=20) == 0
    deadline = time.time() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(('127.0.0.1', port)) != 0:
                break
        assert time.time() < deadline, 'the port is still served after Ctrl-C'
        time.sleep(0.05)
