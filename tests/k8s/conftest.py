"""Starts a real `oxflow up` for the Kubernetes API tests, with the
kubeconfig it writes, and finds the kubectl binaries to drive it."""
import glob
import os
import re
import shutil
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
        return explicit
    target = os.environ.get('CARGO_TARGET_DIR', str(ROOT / 'target'))
    return str(Path(target) / 'debug' / 'oxflow')


class Server:
    """`oxflow up` on ephemeral ports over `home` (kept across restarts)."""

    def __init__(self, home: str):
        self.home = home
        self.proc = None
        self.start()

    def start(self):
        env = dict(os.environ, OXFLOW_HOME=self.home)
        env.pop('OXFLOW_DATABASE', None)
        env['PATH'] = str(Path(sys.executable).parent) + os.pathsep + env.get('PATH', '')
        self.proc = subprocess.Popen([oxflow_bin(), 'up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0'],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = None
        deadline = time.time() + 60
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
        # Everything the server logs, kept so tests can check what it never says.
        self.log = getattr(self, 'log', [])
        threading.Thread(target=lambda p=self.proc, log=self.log: [log.append(line) for line in p.stderr],
                         daemon=True).start()
        self.token = Path(self.home, 'token').read_text().strip()
        self.kubeconfig = str(Path(self.home, 'kubeconfig'))
        # The kubeconfig points at TLS on the same port.
        self.https = self.url.replace('http://', 'https://')
        self.ca = str(Path(self.home, 'tls', 'ca.crt'))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        self.start()

    def request(self, method, path, body=None, headers=None, raw=None, timeout=30):
        """One HTTPS request with the token; returns (status, parsed JSON or text, headers)."""
        import json
        import ssl
        import urllib.error
        import urllib.request
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {'Authorization': f'Bearer {self.token}', 'Accept': 'application/json'}
        if data is not None:
            h['Content-Type'] = 'application/json'
        h.update(headers or {})
        req = urllib.request.Request(self.https + path, data=data, method=method, headers=h)
        ctx = ssl.create_default_context(cafile=self.ca)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                text = resp.read().decode()
                status, hdrs = resp.status, resp.headers
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            status, hdrs = e.code, e.headers
        try:
            return status, json.loads(text), hdrs
        except ValueError:
            return status, text, hdrs


@pytest.fixture(scope='module')
def server():
    with tempfile.TemporaryDirectory() as home:
        s = Server(home)
        yield s
        s.stop()


def kubectl_binaries():
    """The dispatcher on PATH (picks the client matching the server's
    version) and, called directly, the oldest versioned client installed."""
    found = []
    if shutil.which('kubectl'):
        found.append(shutil.which('kubectl'))
    versioned = sorted(glob.glob('/usr/lib/google-cloud-sdk/bin/kubectl.1.*') +
                       [p for d in os.environ.get('PATH', '').split(os.pathsep)
                        for p in glob.glob(os.path.join(d, 'kubectl.1.*'))])
    if versioned:
        found.append(versioned[0])
    return found
