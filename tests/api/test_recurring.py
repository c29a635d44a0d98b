"""Recurring runs through the unmodified kfp.Client against `oxflow up`: the
schedule really creates runs, and they succeed."""
import json
import time
import urllib.error
import urllib.request

import pytest

TERMINAL = {'SUCCEEDED', 'FAILED', 'SKIPPED', 'CANCELED'}


def runs_of(client, rr_id):
    """Every run the recurring run created (list_runs filtered on recurring_run_id)."""
    flt = json.dumps({'predicates': [
        {'operation': 'EQUALS', 'key': 'recurring_run_id', 'string_value': rr_id}]})
    out, token = [], ''
    while True:
        page = client.list_runs(page_size=100, page_token=token, filter=flt)
        out += page.runs or []
        token = page.next_page_token
        if not token:
            return out


def poll(what, check, timeout=60):
    """Returns check()'s first truthy value; fails after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f'timed out waiting for {what}'
        time.sleep(0.2)


def succeeded(client, rr_id, n):
    runs = runs_of(client, rr_id)
    ok = [r for r in runs if r.state == 'SUCCEEDED']
    return runs if len(ok) >= n else None


def all_finished(client, rr_id):
    runs = runs_of(client, rr_id)
    return runs if all(r.state in TERMINAL for r in runs) else None


def test_cron_every_second_from_package(client, compiled):
    exp = client.create_experiment('recurring-cron')
    rr = client.create_recurring_run(
        exp.experiment_id, 'every-second', cron_expression='*/1 * * * * *',
        pipeline_package_path=str(compiled / 'params.yaml'), params={'a': 2, 'name': 'cron'},
        max_concurrency=2, description='each second')
    rid = rr.recurring_run_id
    assert rr.status == 'ENABLED' and rr.mode == 'ENABLE'
    assert rr.trigger.cron_schedule.cron == '*/1 * * * * *'
    assert int(rr.max_concurrency) == 2 and rr.no_catchup is False

    got = client.get_recurring_run(rid)
    assert got.display_name == 'every-second' and got.description == 'each second'
    assert got.experiment_id == exp.experiment_id
    assert got.pipeline_spec['pipelineInfo']['name'] == 'params'
    assert got.runtime_config.parameters == {'a': 2, 'name': 'cron'}

    runs = poll('two succeeded runs', lambda: succeeded(client, rid, 2))
    for r in runs:
        assert r.recurring_run_id == rid
        assert r.experiment_id == exp.experiment_id
        assert r.display_name.startswith('every-second-')
        assert r.runtime_config.parameters['a'] == 2
    slots = [r.scheduled_at for r in runs]
    assert len(set(slots)) == len(slots), 'one run per slot'

    # Disabled: the active runs finish and no new ones come.
    client.disable_recurring_run(rid)
    assert client.get_recurring_run(rid).status == 'DISABLED'
    quiet = len(poll('runs to finish', lambda: all_finished(client, rid)))
    time.sleep(2.5)  # an observation window: several slots pass
    assert len(runs_of(client, rid)) == quiet, 'a disabled recurring run created runs'

    # Enabled again: it resumes (without back-filling the disabled period).
    client.enable_recurring_run(rid)
    assert client.get_recurring_run(rid).status == 'ENABLED'
    poll('a run after enabling', lambda: len(runs_of(client, rid)) > quiet, timeout=30)

    client.delete_recurring_run(rid)
    with pytest.raises(Exception):
        client.get_recurring_run(rid)
    assert len(runs_of(client, rid)) > quiet, 'its runs are kept'


def test_periodic_from_pipeline_version(client, compiled):
    p = client.upload_pipeline(str(compiled / 'params.yaml'), pipeline_name='recurring-params')
    version = client.list_pipeline_versions(p.pipeline_id).pipeline_versions[0]
    exp = client.create_experiment('recurring-periodic')
    rr = client.create_recurring_run(
        exp.experiment_id, 'every-1s', interval_second=1, pipeline_id=p.pipeline_id,
        version_id=version.pipeline_version_id, params={'a': 4}, no_catchup=True)
    rid = rr.recurring_run_id
    assert int(rr.trigger.periodic_schedule.interval_second) == 1
    assert rr.no_catchup is True
    assert rr.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id

    runs = poll('a succeeded run', lambda: succeeded(client, rid, 1))
    assert runs[0].pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    assert runs[0].runtime_config.parameters['a'] == 4

    listed = client.list_recurring_runs(experiment_id=exp.experiment_id)
    assert [x.recurring_run_id for x in listed.recurring_runs] == [rid]
    assert listed.total_size == 1
    client.disable_recurring_run(rid)
    client.delete_recurring_run(rid)


def test_list_paging_sorting_filtering_and_disabled_creation(client, compiled):
    exp = client.create_experiment('recurring-list')
    ids = []
    for i in range(3):
        rr = client.create_recurring_run(
            exp.experiment_id, f'listed-{i}', cron_expression='0 0 9 ? * 2-6',
            pipeline_package_path=str(compiled / 'params.yaml'), enabled=False,
            start_time='2026-01-01T00:00:00Z')
        assert rr.status == 'DISABLED' and rr.mode == 'DISABLE'
        assert rr.trigger.cron_schedule.start_time is not None
        ids.append(rr.recurring_run_id)
    seen, token = [], ''
    while True:
        page = client.list_recurring_runs(experiment_id=exp.experiment_id, page_size=2,
                                          page_token=token, sort_by='created_at desc')
        seen += [r.recurring_run_id for r in page.recurring_runs or []]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))
    flt = json.dumps({'predicates': [
        {'operation': 'EQUALS', 'key': 'display_name', 'string_value': 'listed-1'}]})
    only = client.list_recurring_runs(experiment_id=exp.experiment_id, filter=flt)
    assert [r.display_name for r in only.recurring_runs] == ['listed-1']
    everywhere = client.list_recurring_runs(page_size=100, filter=flt)
    assert [r.recurring_run_id for r in everywhere.recurring_runs] == [ids[1]]
    assert all(runs_of(client, i) == [] for i in ids), 'disabled recurring runs created runs'
    for i in ids:
        client.delete_recurring_run(i)


def request(server, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={'Content-Type': 'application/json', **server.auth})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read() or b'{}')
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'{}')


def test_bad_requests_name_the_field(server, compiled):
    import yaml
    spec = yaml.safe_load((compiled / 'params.yaml').read_text())
    base = {'display_name': 'bad', 'pipeline_spec': spec,
            'trigger': {'cron_schedule': {'cron': '0 0 2 * * *'}}}
    path = '/apis/v2beta1/recurringruns'
    cases = [
        ({'trigger': {'cron_schedule': {'cron': '0 0 2 * *'}}}, 'trigger.cron_schedule.cron'),
        ({'trigger': {'cron_schedule': {'cron': 'every day'}}}, 'trigger.cron_schedule.cron'),
        ({'trigger': {'periodic_schedule': {'interval_second': 0}}}, 'trigger.periodic_schedule.interval_second'),
        ({'trigger': {'periodic_schedule': {'interval_second': 'x'}}}, 'trigger.periodic_schedule.interval_second'),
        ({'trigger': None}, 'trigger'),
        ({'max_concurrency': 11}, 'max_concurrency'),
        ({'max_concurrency': '0'}, 'max_concurrency'),
        ({'pipeline_spec': None}, 'pipeline_spec'),
        ({'display_name': ''}, 'display_name'),
        ({'mode': 'SOMETIMES'}, 'mode'),
        ({'experiment_id': 'no-such-experiment'}, 'experiment_id'),
        ({'runtime_config': {'parameters': {'a': 'not a number'}}}, 'parameters.a'),
    ]
    for change, field in cases:
        code, body = request(server, 'POST', path, {**base, **change})
        assert code == 400, (change, body)
        assert field in body['message'], (change, body)
    code, body = request(server, 'POST', path, {**base, 'max_concurrency': '3'})
    assert code == 200 and body['max_concurrency'] == 3 and body['status'] == 'ENABLED'
    rid = body['recurring_run_id']
    code, listed = request(server, 'GET', path + '?page_size=100')
    assert code == 200 and rid in [r['recurring_run_id'] for r in listed['recurringRuns']]
    assert request(server, 'POST', f'{path}/{rid}:explode')[0] == 404
    assert request(server, 'DELETE', f'{path}/{rid}')[0] == 200
    assert request(server, 'GET', f'{path}/{rid}')[0] == 404
    assert request(server, 'DELETE', f'{path}/{rid}')[0] == 404
    assert request(server, 'POST', f'{path}/{rid}:enable')[0] == 404
