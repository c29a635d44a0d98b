"""Push a trial's metrics to Oxflow (Katib's `kind: Push` collector).

Oxflow puts this module on every trial's PYTHONPATH, so a training script
needs one line, the same call Katib's SDK offers:

    import oxflow_katib; oxflow_katib.report_metrics({"accuracy": 0.93, "loss": 0.2})

The trial is named by KATIB_TRIAL_NAME (set by Oxflow, as Katib sets it) and
the server by OXFLOW_METRICS_URL, which takes OXFLOW_METRICS_TOKEN (a token
good for this trial's push only). Standard library only.
"""

import datetime
import json
import os
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["report_metrics"]


def report_metrics(metrics, timestamp=None, timeout=10.0):
    """Records `metrics` (a dict of metric name -> number or numeric string)
    for the running trial. Raises RuntimeError with the server's message when
    the report is refused."""
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError("metrics must be a non-empty dict of name -> value")
    base = os.environ.get("OXFLOW_METRICS_URL")
    trial = os.environ.get("KATIB_TRIAL_NAME")
    if not base or not trial:
        raise RuntimeError(
            "OXFLOW_METRICS_URL and KATIB_TRIAL_NAME are not set: report_metrics "
            "works inside a trial started by Oxflow"
        )
    namespace = os.environ.get("OXFLOW_NAMESPACE", "default")
    if timestamp is None:
        timestamp = datetime.datetime.now(datetime.timezone.utc)
    if isinstance(timestamp, datetime.datetime):
        timestamp = timestamp.isoformat().replace("+00:00", "Z")
    body = {
        "metrics": {str(k): (v if isinstance(v, str) else repr(float(v))) for k, v in metrics.items()},
        "timestamp": timestamp,
    }
    url = "%s/apis/kubeflow.org/v1beta1/namespaces/%s/trials/%s/metrics" % (
        base.rstrip("/"),
        urllib.parse.quote(namespace),
        urllib.parse.quote(trial),
    )
    headers = {"Content-Type": "application/json"}
    # A token good for this trial's push only (set by Oxflow).
    token = os.environ.get("OXFLOW_METRICS_TOKEN")
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message", str(e))
        except Exception:  # noqa: BLE001 - the body may not be JSON
            message = str(e)
        raise RuntimeError("reporting metrics failed: %s" % message) from None
