"""KServe's own Python client (kserve.InferenceRESTClient, V1 and V2)
against `oxflow serve`, compared with the frameworks' predictions."""
import os
import subprocess
import sys
from pathlib import Path


def test_kserve_rest_client_v1_and_v2(server, models):
    # Its own interpreter: kserve and tritonclient register the same protobuf names.
    out = subprocess.run([sys.executable, str(Path(__file__).with_name('kserve_client_check.py')),
                          server.url(), str(models / 'fixtures.json')],
                         env={**os.environ, 'OXFLOW_TOKEN': server.token}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == 'ok'
