"""Acknowledged writes survive other SQLite clients and a kill -9: while
`oxflow up` takes writes through the KFP API, another process keeps opening
and closing its database (as the sqlite3 shell or a backup script would);
then the server is killed with SIGKILL and started again."""
import json
import os
import signal
import sqlite3
import tempfile
import threading
import urllib.request

from conftest import Server


def post(server, path, body):
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method='POST',
                                 headers={'Content-Type': 'application/json', **server.auth})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def get(server, path):
    req = urllib.request.Request(server.url + path, headers=server.auth)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def deleted_wal_fds(pid):
    out = []
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            target = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        if ('-wal' in target or '-shm' in target) and target.endswith('(deleted)'):
            out.append(target)
    return out


def test_outside_sqlite_clients_and_kill_9_lose_no_acknowledged_write():
    with tempfile.TemporaryDirectory() as home:
        server = Server(home)
        db = os.path.join(home, 'oxflow.db')
        stop = threading.Event()
        opened = []

        def outside_client():
            while not stop.is_set():
                c = sqlite3.connect(db, timeout=5)
                c.execute('SELECT COUNT(*) FROM experiments').fetchone()
                c.close()
                opened.append(1)

        reader = threading.Thread(target=outside_client, daemon=True)
        reader.start()
        acknowledged = []
        try:
            for i in range(150):
                e = post(server, '/apis/v2beta1/experiments', {'display_name': f'durable-{i}'})
                acknowledged.append(e['experiment_id'])
                if i % 25 == 0:
                    assert deleted_wal_fds(server.proc.pid) == [], 'the live WAL was unlinked under the server'
        finally:
            stop.set()
            reader.join()
        assert len(opened) > 10, 'the outside client hardly ran'
        assert deleted_wal_fds(server.proc.pid) == []
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()

        again = Server(home)
        try:
            assert again.token == server.token, 'the data directory keeps its token across restarts'
            for eid in acknowledged:
                got = get(again, f'/apis/v2beta1/experiments/{eid}')
                assert got['experiment_id'] == eid
            print(f'{len(acknowledged)} acknowledged writes, {len(opened)} outside opens, 0 lost')
        finally:
            again.stop()


def test_a_server_whose_stderr_is_gone_still_stops_on_sigterm():
    """The parent that started `oxflow up` died: nobody reads its stderr.
    SIGTERM must still stop it (printing "stopping..." used to panic the
    task that stops the server, which then ran on)."""
    import subprocess
    from conftest import oxflow_bin
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.Popen([oxflow_bin(), 'up', '--addr', '127.0.0.1:0', '--grpc-addr', '127.0.0.1:0'],
                                env=dict(os.environ, OXFLOW_HOME=home), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            while b'serving on' not in proc.stderr.readline():
                assert proc.poll() is None, 'oxflow up exited before serving'
            proc.stderr.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
