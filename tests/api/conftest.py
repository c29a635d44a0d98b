"""Starts a real `oxflow up` for the API tests and gives them a real kfp.Client."""
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def oxflow_bin() -> str:
    explicit = os.environ.get('OXFLOW_BIN')
    if explicit:
        return explicit
    target = os.environ.get('CARGO_TARGET_DIR', str(ROOT / 'target'))
    return str(Path(target) / 'debug' / 'oxflow')


class Server:
    def __init__(self, home: str):
        self.home = home
        env = dict(os.environ, OXFLOW_HOME=home)
        # Lightweight components run with the Python that runs the tests (it has kfp).
        env['PATH'] = str(Path(sys.executable).parent) + os.pathsep + env.get('PATH', '')
        env.pop('OXFLOW_DATABASE', None)
        self.proc = subprocess.Popen([oxflow_bin(), 'up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0'], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        self.url = None
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r'serving on (http://\S+)', line)
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            self.proc.kill()
            raise RuntimeError('oxflow up did not report its address')

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
    return kfp.Client(host=server.url)


@pytest.fixture(scope='session')
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp('pipelines')
    subprocess.run([sys.executable, '-W', 'ignore', str(ROOT / 'tests/pipelines/build.py'), str(out)], check=True)
    return out
