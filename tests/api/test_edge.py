"""Every listener of `oxflow up` refuses foreign Hosts (DNS rebinding) and
state changes from pages on other origins, and keeps serving real clients
while slow ones hold connections. Raw sockets, so nothing normalises the
headers under test. Every request carries the server's token, so what
refuses it is the edge's Host and Origin checks, never authentication
(which comes after them)."""
import json
import socket
import threading
import time
import urllib.parse

import pytest

KATIB_EXPERIMENT = {
    'apiVersion': 'kubeflow.org/v1beta1',
    'kind': 'Experiment',
    'metadata': {'name': 'pwned', 'namespace': 'default'},
    'spec': {
        'objective': {'type': 'minimize', 'objectiveMetricName': 'loss'},
        'algorithm': {'algorithmName': 'random'},
        'maxTrialCount': 1,
        'parallelTrialCount': 1,
        'parameters': [{'name': 'x', 'parameterType': 'double',
                        'feasibleSpace': {'min': '0', 'max': '1'}}],
        'trialTemplate': {
            'primaryContainerName': 'main',
            'trialParameters': [{'name': 'x', 'reference': 'x'}],
            'trialSpec': {'apiVersion': 'batch/v1', 'kind': 'Job', 'spec': {'template': {'spec': {
                'containers': [{'name': 'main', 'image': 'python',
                                'command': ['sh', '-c', 'touch /tmp/oxflow-pwned; echo loss=1']}]}}}},
        },
    },
}


def raw(url, request: bytes) -> tuple[int, bytes]:
    """Sends `request` as is to the server at `url`; returns (status, whole answer)."""
    u = urllib.parse.urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    answer = b''.join(chunks)
    status = int(answer.split(b' ', 2)[1]) if answer.startswith(b'HTTP/') else 0
    return status, answer


def request(method, path, host, body=b'', headers=(), token=None):
    lines = [f'{method} {path} HTTP/1.1']
    if host is not None:
        lines.append(f'Host: {host}')
    if token is not None:
        lines.append(f'Authorization: Bearer {token}')
    lines += list(headers)
    lines += [f'Content-Length: {len(body)}', 'Connection: close', '', '']
    return '\r\n'.join(lines).encode() + body


def host_of(url):
    return urllib.parse.urlparse(url).netloc


def count(server, path, key):
    status, answer = raw(server.url, request('GET', path, host_of(server.url), token=server.token))
    assert status == 200, answer
    return len(json.loads(answer.split(b'\r\n\r\n', 1)[1]).get(key) or [])


def test_foreign_and_missing_hosts_are_refused(server):
    for host in ['attacker.test', f'rebind.attacker.test:{urllib.parse.urlparse(server.url).port}', '']:
        status, answer = raw(server.url, request('GET', '/apis/v2beta1/runs', host, token=server.token))
        assert status == 403, (host, answer)
    status, _ = raw(server.url, f'GET /apis/v2beta1/runs HTTP/1.0\r\nAuthorization: Bearer {server.token}\r\n\r\n'
                    .encode())
    assert status == 403
    # The server's own names still answer.
    port = urllib.parse.urlparse(server.url).port
    for host in [host_of(server.url), f'localhost:{port}']:
        status, answer = raw(server.url, request('GET', '/apis/v2beta1/runs', host, token=server.token))
        assert status == 200, (host, answer)


def test_cross_origin_posts_change_nothing(server):
    host = host_of(server.url)
    before = (count(server, '/apis/kubeflow.org/v1beta1/namespaces/default/experiments', 'items'),
              count(server, '/apis/v2beta1/pipelines', 'pipelines'),
              count(server, '/apis/v2beta1/experiments', 'experiments'))
    evil = ['Origin: http://evil.test', 'Sec-Fetch-Site: cross-site']
    # A `fetch(..., {mode: 'no-cors'})` sends text/plain with no preflight.
    katib = json.dumps(KATIB_EXPERIMENT).encode()
    status, answer = raw(server.url, request(
        'POST', '/apis/kubeflow.org/v1beta1/namespaces/default/experiments', host, katib,
        ['Content-Type: text/plain'] + evil, token=server.token))
    assert status == 403, answer
    assert b'cross-origin' in answer
    status, _ = raw(server.url, request(
        'POST', '/apis/v2beta1/experiments', host, b'{"display_name": "pwned"}',
        ['Content-Type: text/plain'] + evil, token=server.token))
    assert status == 403
    # A multipart form posted by a page on another origin.
    form = (b'--b\r\nContent-Disposition: form-data; name="uploadfile"; filename="p.yaml"\r\n'
            b'Content-Type: application/octet-stream\r\n\r\npipelineInfo: {name: pwned}\r\n--b--\r\n')
    status, _ = raw(server.url, request(
        'POST', '/apis/v2beta1/pipelines/upload?name=pwned', host, form,
        ['Content-Type: multipart/form-data; boundary=b'] + evil, token=server.token))
    assert status == 403
    # A DNS-rebinding page: its own name in Host and Origin.
    status, _ = raw(server.url, request(
        'POST', '/apis/v2beta1/experiments', 'attacker.test:8080', b'{"display_name": "pwned"}',
        ['Content-Type: text/plain', 'Origin: http://attacker.test:8080'], token=server.token))
    assert status == 403
    # Another local port is another origin.
    status, _ = raw(server.url, request(
        'DELETE', '/apis/v2beta1/experiments/x', host, b'', ['Origin: http://127.0.0.1:1'], token=server.token))
    assert status == 403
    after = (count(server, '/apis/kubeflow.org/v1beta1/namespaces/default/experiments', 'items'),
             count(server, '/apis/v2beta1/pipelines', 'pipelines'),
             count(server, '/apis/v2beta1/experiments', 'experiments'))
    assert after == before

    # The dashboard's own requests (same origin) and clients without an
    # Origin (kfp.Client, the CLI, curl) still change state.
    status, answer = raw(server.url, request(
        'POST', '/apis/v2beta1/experiments', host, b'{"display_name": "edge-same-origin"}',
        ['Content-Type: application/json', f'Origin: {server.url}', 'Sec-Fetch-Site: same-origin'],
        token=server.token))
    assert status == 200, answer
    status, answer = raw(server.url, request(
        'POST', '/apis/v2beta1/experiments', host, b'{"display_name": "edge-no-origin"}',
        ['Content-Type: application/json'], token=server.token))
    assert status == 200, answer


def test_slow_clients_never_make_the_server_unreachable(server):
    """1,100 connections that trickle a request header never complete it;
    meanwhile every real request is answered."""
    u = urllib.parse.urlparse(server.url)
    slow = []
    for _ in range(1100):
        s = socket.create_connection((u.hostname, u.port), timeout=10)
        s.sendall(b'GET /apis/v2beta1/runs HTTP/1.1\r\nX-Slow: ')
        slow.append(s)
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for s in slow:
                try:
                    s.sendall(b'a')
                except OSError:
                    pass
            stop.wait(1)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        worst = 0.0
        for _ in range(30):
            started = time.monotonic()
            status, _ = raw(server.url, request('GET', '/apis/v2beta1/runs', host_of(server.url), token=server.token))
            worst = max(worst, time.monotonic() - started)
            assert status == 200
        print(f'slowest of 30 requests with 1,100 slow clients: {worst * 1000:.0f} ms')
        assert worst < 5, f'a request waited {worst:.1f} s behind slow clients'
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()
