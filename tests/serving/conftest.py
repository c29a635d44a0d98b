"""Starts a real `oxflow serve` over models trained by the real frameworks.

Every request carries the data directory's token (`<home>/token`): `auth`
is the header for urllib, `triton_http()` / `triton_grpc()` give Triton's
clients with the token registered as a plugin, and `grpc_metadata` is the
same for a bare gRPC stub."""
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def oxflow_bin() -> str:
    explicit = os.environ.get('OXFLOW_BIN')
    if explicit:
        return str(Path(explicit).resolve())
    target = os.environ.get('CARGO_TARGET_DIR', str(ROOT / 'target'))
    return str(Path(target) / 'debug' / 'oxflow')


def read_token(home) -> str:
    """The data directory's token (what clients send as `Authorization: Bearer`)."""
    return (Path(home) / 'token').read_text().strip()


def bearer(token: str) -> dict:
    return {'Authorization': f'Bearer {token}'}


def _bearer_plugin(token):
    from tritonclient._plugin import InferenceServerClientPlugin

    class Bearer(InferenceServerClientPlugin):
        """Adds the token to every request of a Triton client (HTTP headers or gRPC metadata)."""

        def __call__(self, request):
            request.headers['authorization'] = f'Bearer {token}'

    return Bearer()


def triton_http(url, token, **kwargs):
    """tritonclient.http's client for `url` (HOST:PORT[/PATH]), sending `token`."""
    import tritonclient.http as httpclient
    client = httpclient.InferenceServerClient(url=url, **kwargs)
    client.register_plugin(_bearer_plugin(token))
    return client


def triton_grpc(url, token, **kwargs):
    """tritonclient.grpc's client for `url` (HOST:PORT), sending `token`."""
    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(url=url, **kwargs)
    client.register_plugin(_bearer_plugin(token))
    return client


class Process:
    """A long-running oxflow command whose stderr is collected in `lines`."""

    def triton_http(self, url=None, **kwargs):
        return triton_http(url or self.http_addr, self.token, **kwargs)

    def triton_grpc(self, url=None, **kwargs):
        return triton_grpc(url or self.grpc, self.token, **kwargs)

    def _credentials(self, home):
        self.token = read_token(home)
        self.auth = bearer(self.token)
        self.grpc_metadata = (('authorization', f'Bearer {self.token}'),)

    def start(self, args, env, ready, what):
        """Starts `oxflow ARGS` and waits (60 s at most) for the stderr line
        that matches `ready`; returns its match."""
        self.proc = subprocess.Popen([oxflow_bin(), *args], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(ready, line)
            if m:
                # Keep reading, so that a chatty server never blocks on a full pipe.
                threading.Thread(target=self._drain, daemon=True).start()
                return m
        self.proc.kill()
        raise RuntimeError(f'oxflow {what} did not report its address:\n' + ''.join(self.lines))

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Serve(Process):
    """`oxflow serve` on ephemeral ports."""

    def __init__(self, home, models, extra=()):
        self.home = home
        env = dict(os.environ, OXFLOW_HOME=str(home))
        env.pop('OXFLOW_AUTH', None)
        m = self.start(['serve', *models, '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0',
                        '--python', sys.executable, *extra],
                       env, r'on http://(\S+) \(REST V1/V2\) and (\S+) \(gRPC V2\)', 'serve')
        self.http, self.grpc = m.group(1), m.group(2)
        self.http_addr = self.http
        self._credentials(home)

    def url(self, path=''):
        return f'http://{self.http}{path}'

    def wait_ready(self, timeout=120):
        """Waits until the server says every model is ready (or one failed)."""
        import urllib.request
        import urllib.error
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(urllib.request.Request(self.url('/v2/health/ready'),
                                                                   headers=self.auth)) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as e:
                body = json.loads(e.read() or b'{}')
                if 'failed' in body.get('error', ''):
                    raise RuntimeError(body['error'])
            if self.proc.poll() is not None:
                raise RuntimeError('oxflow serve exited:\n' + ''.join(self.lines))
            time.sleep(0.05)
        raise RuntimeError('models not ready in time:\n' + ''.join(self.lines))


class Up(Process):
    """`oxflow up` on ephemeral ports over the data directory `home`."""

    def __init__(self, home, model_roots=None):
        self.home = home
        self.env = dict(os.environ, OXFLOW_HOME=str(home))
        self.env.pop('OXFLOW_SERVER', None)
        self.env.pop('OXFLOW_MODEL_ROOTS', None)
        self.env.pop('OXFLOW_TOKEN', None)
        self.env.pop('OXFLOW_AUTH', None)
        # Local storageUri paths must lie under a model root: by default
        # pytest's base temporary directory, where the tests' models are.
        if model_roots is None:
            model_roots = [Path(home).parent]
        roots = [arg for root in model_roots for arg in ('--model-root', str(root))]
        m = self.start(['up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0', '--python', sys.executable,
                        *roots],
                       self.env, r'oxflow is serving on http://(\S+) .*inference gRPC on ([^\s)]+)', 'up')
        self.addr, self.grpc = m.group(1), m.group(2)
        self.http_addr = self.addr
        self._credentials(home)

    def url(self, path=''):
        return f'http://{self.addr}{path}'

    def replica_metrics(self, name):
        """A service's replica gauges, {metric: value}, for its one revision
        with processes (a command's copies or a scikit-learn model's workers)."""
        text = urllib.request.urlopen(urllib.request.Request(self.url(
            f'/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{name}/metrics'),
            headers=self.auth), timeout=10).read().decode()
        out = {}
        for line in text.splitlines():
            for metric in ['oxflow_serving_replicas', 'oxflow_serving_ready_replicas',
                           'oxflow_serving_desired_replicas']:
                if line.startswith(metric + '{'):
                    out[metric] = int(line.rsplit(' ', 1)[1])
        return out

    def cli(self, *args, remote=False, check=True, timeout=180):
        """Runs the oxflow CLI on this data directory (or through the server's API)."""
        extra = ['--server', self.url()] if remote else []
        out = subprocess.run([oxflow_bin(), *extra, *args], env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f'oxflow {" ".join(args)} exited {out.returncode}:\n'
                                 f'{out.stdout}\n{out.stderr}\nserver:\n{"".join(self.lines[-30:])}')
        return out


@pytest.fixture(scope='session')
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp('models')
    subprocess.run([sys.executable, '-W', 'ignore', str(HERE / 'models.py'), str(out)], check=True)
    return out


@pytest.fixture(scope='session')
def fixtures(models):
    return json.loads((models / 'fixtures.json').read_text())


@pytest.fixture(scope='session')
def server(models, tmp_path_factory):
    # The repository directory: one model per subdirectory.
    s = Serve(tmp_path_factory.mktemp('home'), [str(models / 'repo')])
    s.wait_ready()
    yield s
    s.stop()
