"""Starts a real `oxflow serve` over models trained by the real frameworks."""
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def oxflow_bin() -> str:
    explicit = os.environ.get('OXFLOW_BIN')
    if explicit:
        return explicit
    target = os.environ.get('CARGO_TARGET_DIR', str(ROOT / 'target'))
    return str(Path(target) / 'debug' / 'oxflow')


class Serve:
    """`oxflow serve` on ephemeral ports; stderr is collected in `lines`."""

    def __init__(self, home, models, extra=()):
        env = dict(os.environ, OXFLOW_HOME=str(home))
        self.proc = subprocess.Popen(
            [oxflow_bin(), 'serve', *models, '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0',
             '--python', sys.executable, *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.http = self.grpc = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r'on http://(\S+) \(REST V1/V2\) and (\S+) \(gRPC V2\)', line)
            if m:
                self.http, self.grpc = m.group(1), m.group(2)
                break
        if self.http is None:
            self.proc.kill()
            raise RuntimeError('oxflow serve did not report its addresses:\n' + ''.join(self.lines))
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def url(self, path=''):
        return f'http://{self.http}{path}'

    def wait_ready(self, timeout=120):
        """Waits until the server says every model is ready (or one failed)."""
        import urllib.request
        import urllib.error
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url('/v2/health/ready')) as r:
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

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Up:
    """`oxflow up` on an ephemeral port over the data directory `home`."""

    def __init__(self, home):
        self.home = home
        self.env = dict(os.environ, OXFLOW_HOME=str(home))
        self.env.pop('OXFLOW_SERVER', None)
        self.proc = subprocess.Popen(
            [oxflow_bin(), 'up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0', '--python', sys.executable],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.addr = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r'oxflow is serving on http://(\S+) .*inference gRPC on ([^\s)]+)', line)
            if m:
                self.addr, self.grpc = m.group(1), m.group(2)
                break
        if self.addr is None:
            self.proc.kill()
            raise RuntimeError('oxflow up did not report its address:\n' + ''.join(self.lines))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def url(self, path=''):
        return f'http://{self.addr}{path}'

    def cli(self, *args, remote=False, check=True, timeout=180):
        """Runs the oxflow CLI on this data directory (or through the server's API)."""
        extra = ['--server', self.url()] if remote else []
        out = subprocess.run([oxflow_bin(), *extra, *args], env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f'oxflow {" ".join(args)} exited {out.returncode}:\n'
                                 f'{out.stdout}\n{out.stderr}\nserver:\n{"".join(self.lines[-30:])}')
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


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
