"""A real `oxflow up` and a real headless Chromium (Debian's chromium and
chromedriver, driven by selenium) for the dashboard tests.

The server wants its token on every request: `Server.api` sends it
(`Authorization: Bearer`, from `<home>/token`), and the `browser` logs in
once, with the one-time link `oxflow up` printed, before any test uses it."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def session_cookies(driver):
    """The names of the browser's Oxflow session cookies."""
    return [c['name'] for c in driver.get_cookies() if c['name'].startswith('oxflow_session_')]


def oxflow_bin() -> str:
    explicit = os.environ.get('OXFLOW_BIN')
    if explicit:
        # The server runs in its own working directory: make a relative path absolute.
        return str(Path(explicit).resolve())
    target = os.environ.get('CARGO_TARGET_DIR', str(ROOT / 'target'))
    return str(Path(target) / 'debug' / 'oxflow')


def screenshot_dir() -> Path:
    d = Path(os.environ.get('OXFLOW_SCREENSHOTS') or ROOT / 'target' / 'dashboard-screenshots')
    d.mkdir(parents=True, exist_ok=True)
    return d


class Server:
    """`oxflow up --addr 127.0.0.1:0` on a fresh OXFLOW_HOME, working in `workdir`."""

    def __init__(self, home: str, workdir: str):
        self.home = home
        self.workdir = workdir
        env = dict(os.environ, OXFLOW_HOME=home)
        # Lightweight components run with the Python that runs the tests (it has kfp).
        env['PATH'] = str(Path(sys.executable).parent) + os.pathsep + env.get('PATH', '')
        env.pop('OXFLOW_DATABASE', None)
        env.pop('OXFLOW_AUTH', None)
        # Models the tests write live in the work directory.
        self.proc = subprocess.Popen([oxflow_bin(), 'up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0',
                                      '--model-root', workdir], env=env, cwd=workdir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        deadline = time.time() + 60
        self.url = None
        self.login_url = None
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if self.url:
                # The line after the address: the one-time dashboard login link.
                m = re.search(r'\(this link logs in once\): (http://\S+)', line)
                self.login_url = m.group(1) if m else None
                break
            m = re.search(r'serving on (http://\S+)', line)
            if m:
                self.url = m.group(1)
        if self.url is None or self.login_url is None:
            self.proc.kill()
            raise RuntimeError('oxflow up did not report its address and login link:\n' + ''.join(self.lines))
        # Keep reading its log so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        self.token = (Path(home) / 'token').read_text().strip()
        self.auth = {'Authorization': f'Bearer {self.token}'}

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={'Content-Type': 'application/json', **self.auth})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b'{}')

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope='session')
def workdir():
    with tempfile.TemporaryDirectory(prefix='oxflow-dashboard-') as d:
        yield Path(d)


@pytest.fixture(scope='session')
def server(workdir):
    home = workdir / 'home'
    home.mkdir()
    s = Server(str(home), str(workdir))
    yield s
    s.stop()


@pytest.fixture(scope='session')
def compiled(workdir):
    out = workdir / 'pipelines'
    subprocess.run([sys.executable, '-W', 'ignore', str(ROOT / 'tests/pipelines/build.py'), str(out)], check=True)
    return out


def _chromium() -> str:
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail('no chromium on PATH: scripts/test installs Debian\'s chromium and chromium-driver')


def new_browser():
    """A headless Chromium with a profile of its own (no cookies)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Never let Selenium Manager try to download a browser or driver.
    os.environ['SE_OFFLINE'] = 'true'
    driver_path = shutil.which('chromedriver')
    if not driver_path:
        pytest.fail('no chromedriver on PATH: scripts/test installs Debian\'s chromium-driver')
    opts = webdriver.ChromeOptions()
    opts.binary_location = _chromium()
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                '--window-size=1440,1000', '--no-first-run', '--disable-extensions',
                '--disable-background-networking', '--disable-component-update',
                # `evil.test` plays an attacker's domain that resolves to this
                # machine (what DNS rebinding achieves): tests/dashboard/test_edge.py.
                '--host-resolver-rules=MAP evil.test 127.0.0.1, MAP *.evil.test 127.0.0.1'):
        opts.add_argument(arg)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    d = webdriver.Chrome(service=Service(driver_path), options=opts)
    d.set_page_load_timeout(60)
    return d


@pytest.fixture(scope='session')
def browser(server):
    """The browser every dashboard test drives, logged in with the link
    `oxflow up` printed (it lands on the dashboard)."""
    from selenium.webdriver.support.ui import WebDriverWait
    d = new_browser()
    try:
        d.get(server.login_url)
        WebDriverWait(d, 30, poll_frequency=0.1).until(
            lambda d: d.current_url.split('#', 1)[0] == server.url + '/' and session_cookies(d),
            message=f'the login link did not log in: {d.current_url}')
        yield d
    finally:
        d.quit()


@pytest.fixture(scope='session')
def shots():
    return screenshot_dir()
