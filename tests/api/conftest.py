"""Starts a real `oxflow up` for the API tests and gives them a real kfp.Client.

Every request to `oxflow up` carries the data directory's token
(`Authorization: Bearer`, read from `<home>/token`); `Server.auth` is that
header and `Server.login_url` the one-time dashboard link the server printed.
"""
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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


class Server:
    """`oxflow up` on ephemeral ports over the data directory `home`; its
    stderr is collected in `lines`."""

    def __init__(self, home: str, extra=()):
        self.home = home
        env = dict(os.environ, OXFLOW_HOME=home)
        # Lightweight components run with the Python that runs the tests (it has kfp).
        env['PATH'] = str(Path(sys.executable).parent) + os.pathsep + env.get('PATH', '')
        env.pop('OXFLOW_DATABASE', None)
        env.pop('OXFLOW_SERVER', None)
        env.pop('OXFLOW_TOKEN', None)
        env.pop('OXFLOW_AUTH', None)
        self.env = env
        self.proc = subprocess.Popen([oxflow_bin(), 'up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0',
                                      *extra], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.url = None
        self.login_url = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if self.url:
                # The line after the address: the one-time dashboard login
                # link (`--auth none` says that authentication is off).
                m = re.search(r'\(this link logs in once\): (http://\S+)', line)
                self.login_url = m.group(1) if m else None
                break
            m = re.search(r'serving on (http://\S+)', line)
            if m:
                self.url = m.group(1)
        if self.url is None:
            self.proc.kill()
            raise RuntimeError('oxflow up did not report its address:\n' + ''.join(self.lines))
        # Keep reading its log so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        self.token = read_token(home)
        self.auth = bearer(self.token)

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope='session')
def server():
    with tempfile.TemporaryDirectory() as home:
        s = Server(home)
        yield s
        s.stop()


@pytest.fixture(scope='session')
def client(server):
    import kfp
    # No ~/.config/kfp context may leak in: a fresh HOME for the client.
    return kfp.Client(host=server.url, existing_token=server.token)


@pytest.fixture(scope='session')
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp('pipelines')
    subprocess.run([sys.executable, '-W', 'ignore', str(ROOT / 'tests/pipelines/build.py'), str(out)], check=True)
    return out
