#!/usr/bin/env python3
"""Oxflow's model server against Seldon MLServer 1.7, back to back on this
machine, with the same models, payloads and load generators.

For each server: cold start (process spawn → every model ready; idle RSS of
the whole process tree), then load on loopback for every model × batch
{1, 64} × concurrency {1, 32} × protocol: REST JSON (wrk), REST with the
binary tensor extension (wrk; Oxflow only, MLServer answers it with 422)
and gRPC (h2load with raw_input_contents, as tritonclient sends). Each
server's answers are checked against the frameworks' predictions before it
is loaded. Every request to Oxflow carries its data directory's token
(`Authorization: Bearer`), as its clients must; MLServer asks for none.
Results go to OUT/results.jsonl and a markdown table with the ratios is
printed.

Usage: run.py --oxflow BIN [--out DIR] [--duration S] [--cold-runs N]
              [--servers mlserver,oxflow] [--protocols json,binary,grpc]
              [--models sklearn-logreg,...] [--batches 1,64] [--concurrency 1,32]

The last four select a subset of the load cells (all by default); every
model is still loaded and checked.
"""
import argparse
import json
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["sklearn-logreg", "sklearn-rf", "xgboost-gbt"]
PORTS = {"mlserver": (18080, 18081), "oxflow": (18090, 18091)}


def code(url, data=None, headers=None, token=None):
    try:
        headers = dict(headers or {"Content-Type": "application/json"})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url, data=data, headers=headers)
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception:
        return 0, b""


def tree(pid):
    pids, frontier = [pid], [pid]
    while frontier:
        nxt = []
        for p in frontier:
            try:
                with open(f"/proc/{p}/task/{p}/children") as f:
                    nxt += [int(x) for x in f.read().split()]
            except OSError:
                pass
        pids += nxt
        frontier = nxt
    rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return {"rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1), "procs": len(pids)}


class Server:
    def __init__(self, kind, args, out):
        self.kind = kind
        http, grpc = PORTS[kind]
        self.url = f"http://127.0.0.1:{http}"
        self.grpc = f"127.0.0.1:{grpc}"
        # What every request to Oxflow carries (`Authorization: Bearer`); MLServer asks for none.
        self.token = None
        models = os.path.join(out, "models")
        if kind == "mlserver":
            env = dict(os.environ, MLSERVER_PARALLEL_WORKERS="1", MLSERVER_HTTP_PORT=str(http),
                       MLSERVER_GRPC_PORT=str(grpc), MLSERVER_METRICS_PORT=str(grpc + 1))
            cmd = [os.path.join(os.path.dirname(sys.executable), "mlserver"), "start", models]
        else:
            env = dict(os.environ, OXFLOW_HOME=os.path.join(out, "oxflow-home"))
            env.pop("OXFLOW_AUTH", None)
            # The data directory's token (made by the first `oxflow token` or start).
            self.token = subprocess.run([args.oxflow, "token"], env=env, check=True, capture_output=True,
                                        text=True).stdout.strip()
            cmd = [args.oxflow, "serve",
                   f"sklearn-logreg={models}/sklearn-logreg/model.onnx",
                   f"sklearn-rf={models}/sklearn-rf/model.onnx",
                   f"xgboost-gbt={models}/xgboost-gbt/model.json",
                   "--addr", f"127.0.0.1:{http}", "--grpc-addr", f"127.0.0.1:{grpc}"]
        assert code(self.url + "/v2/health/live")[0] == 0, f"something already listens on {self.url}"
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def wait_ready(self, timeout=180):
        deadline = self.t0 + timeout
        while time.monotonic() < deadline:
            if all(code(f"{self.url}/v2/models/{m}/ready", token=self.token)[0] == 200 for m in MODELS):
                return time.monotonic() - self.t0
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}")
            time.sleep(0.002)
        raise RuntimeError(f"{self.kind}: models not ready after {timeout} s")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        while code(self.url + "/v2/health/live")[0] != 0:
            time.sleep(0.1)


def payloads(out):
    """REST JSON (from train.py), REST binary and gRPC bodies for each model and batch."""
    from tritonclient.grpc import service_pb2
    import numpy as np
    bodies = {}
    for m in MODELS:
        for b in (1, 64):
            path = os.path.join(out, "payloads", f"{m}-b{b}.json")
            req = json.load(open(path))
            rows = np.asarray(req["inputs"][0]["data"], dtype=np.float32).reshape(req["inputs"][0]["shape"])
            raw = rows.tobytes()
            header = json.dumps({
                "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP32",
                            "parameters": {"binary_data_size": len(raw)}}],
                "parameters": {"binary_data_output": True}}).encode()
            bpath = os.path.join(out, "payloads", f"{m}-b{b}.bin")
            open(bpath, "wb").write(header + raw)
            g = service_pb2.ModelInferRequest(model_name=m)
            t = g.inputs.add()
            t.name, t.datatype = "input-0", "FP32"
            t.shape.extend(rows.shape)
            g.raw_input_contents.append(raw)
            msg = g.SerializeToString()
            gpath = os.path.join(out, "payloads", f"{m}-b{b}.grpc")
            open(gpath, "wb").write(struct.pack(">BI", 0, len(msg)) + msg)
            bodies[(m, b)] = {"json": path, "binary": (bpath, len(header)), "grpc": gpath}
    return bodies


def check_answers(server, out):
    """Both servers must answer with the frameworks' labels before being measured."""
    for m in MODELS:
        fx = json.load(open(os.path.join(out, "fixtures", f"{m}.json")))
        body = json.dumps({"inputs": [{"name": "input-0", "shape": [len(fx["rows"]), 20], "datatype": "FP32",
                                       "data": fx["rows"]}]}).encode()
        status, reply = code(f"{server.url}/v2/models/{m}/infer", body, token=server.token)
        assert status == 200, (server.kind, m, status, reply[:300])
        outs = json.loads(reply)["outputs"]
        labels = next(o for o in outs if o["name"] in ("predict", "label"))["data"]
        assert [int(x) for x in labels] == fx["predict"], (server.kind, m, "labels differ")


def wrk(url, body, header_len, conc, duration, token=None):
    env = dict(os.environ, BODY_FILE=body, HEADER_LEN=str(header_len or ""), BEARER_TOKEN=token or "")
    threads = 1 if conc == 1 else 2
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conc}", f"-d{duration}s", "--timeout", "10s",
                          "-s", os.path.join(HERE, "post.lua"), url],
                         env=env, capture_output=True, text=True, timeout=duration + 30).stdout
    line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError("wrk failed: " + out)
    r = json.loads(line[7:])
    return {"rps": r["rps"], "p50_ms": r["p50_ms"], "p90_ms": r["p90_ms"], "p99_ms": r["p99_ms"],
            "errors": r["socket_errors"] + r["status_errors"], "requests": r["requests"]}


def h2load(target, body, conc, duration, token=None):
    auth = ["-H", f"authorization: Bearer {token}"] if token else []
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        out = subprocess.run(
            ["h2load", "-D", str(duration), "-c", str(conc), "-m", "1", "-t", "1" if conc == 1 else "2",
             "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers", *auth,
             "--log-file", log.name, f"http://{target}/inference.GRPCInferenceService/ModelInfer"],
            capture_output=True, text=True, timeout=duration + 30).stdout
        lat = sorted(int(l.split()[2]) for l in open(log.name) if l.strip() and l.split()[1] == "200")
    done = next((l for l in out.splitlines() if l.startswith("finished in")), "")
    rps = float(done.split(",")[1].split()[0]) if done else 0.0
    failed = next((l for l in out.splitlines() if l.startswith("requests:")), "")
    if not lat:
        raise RuntimeError("h2load failed: " + out)
    # A gRPC error (UNAUTHENTICATED without the token, say) is an HTTP 200
    # with its status in the trailers and no message: h2load counts it as a
    # success, so answers without any data mean the calls failed.
    traffic = next((l for l in out.splitlines() if l.startswith("traffic:")), "")
    m = re.search(r"\((\d+)\) data", traffic)
    if not m or int(m.group(1)) == 0:
        raise RuntimeError("h2load: no answer carried a message (gRPC errors are in the trailers): " + out)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000
    return {"rps": rps, "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
            "errors": 0 if " 0 failed" in failed else failed, "requests": len(lat)}


def grpc_check(server, body):
    """h2load cannot see gRPC error statuses (they come in trailers): one call through the real client first."""
    import tritonclient.grpc as grpcclient
    import numpy as np
    c = grpcclient.InferenceServerClient(url=server.grpc)
    inp = grpcclient.InferInput("input-0", [1, 20], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 20), dtype=np.float32))
    headers = {"authorization": f"Bearer {server.token}"} if server.token else None
    for m in MODELS:
        c.infer(m, [inp], headers=headers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oxflow", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "out", "serving"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--servers", default="mlserver,oxflow")
    ap.add_argument("--protocols", default="json,binary,grpc")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--concurrency", default="1,32")
    a = ap.parse_args()
    models = [m for m in a.models.split(",") if m]
    assert set(models) <= set(MODELS), f"--models: choose among {MODELS}"
    batches = [int(b) for b in a.batches.split(",")]
    assert set(batches) <= {1, 64}, "--batches: 1 and/or 64"
    concurrencies = [int(c) for c in a.concurrency.split(",")]
    out = os.path.abspath(a.out)
    if not os.path.exists(os.path.join(out, "models")):
        subprocess.run([sys.executable, os.path.join(HERE, "train.py"), out], check=True)
    bodies = payloads(out)
    results = []
    record = lambda r: (results.append(r), print(json.dumps(r), flush=True))
    for kind in a.servers.split(","):
        for i in range(a.cold_runs):
            s = Server(kind, a, out)
            ready = s.wait_ready()
            t = time.monotonic()
            status, _ = code(f"{s.url}/v2/models/sklearn-rf/infer", open(bodies[("sklearn-rf", 1)]["json"], "rb").read(),
                             token=s.token)
            first = (time.monotonic() - t) * 1e3
            time.sleep(1)
            record({"server": kind, "kind": "cold", "run": i, "ready_s": round(ready, 3),
                    "first_infer_ms": round(first, 2), "status": status, **tree(s.proc.pid),
                    "loadavg": open("/proc/loadavg").read().split()[0]})
            s.stop()
        s = Server(kind, a, out)
        s.wait_ready()
        check_answers(s, out)
        protocols = [p for p in a.protocols.split(",") if not (kind == "mlserver" and p == "binary")]
        if "grpc" in protocols:
            grpc_check(s, bodies)
        try:
            for m in models:
                # Warm-up.
                wrk(f"{s.url}/v2/models/{m}/infer", bodies[(m, 1)]["json"], None, 4, 2, s.token)
                for proto in protocols:
                    for b in batches:
                        for c in concurrencies:
                            load = open("/proc/loadavg").read().split()[0]
                            if proto == "grpc":
                                r = h2load(s.grpc, bodies[(m, b)]["grpc"], c, a.duration, s.token)
                            else:
                                body = bodies[(m, b)][proto]
                                path, hl = body if proto == "binary" else (body, None)
                                r = wrk(f"{s.url}/v2/models/{m}/infer", path, hl, c, a.duration, s.token)
                            record({"server": kind, "kind": "load", "model": m, "protocol": proto,
                                    "batch": b, "concurrency": c, **r, **tree(s.proc.pid), "loadavg": load})
        finally:
            s.stop()
    with open(os.path.join(out, "results.jsonl"), "a") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    report(results)


def report(results):
    load = [r for r in results if r["kind"] == "load"]
    ml = {(r["model"], r["protocol"], r["batch"], r["concurrency"]): r for r in load if r["server"] == "mlserver"}
    print("\n| model | protocol | batch | conc | MLServer req/s | Oxflow req/s | throughput × | MLServer p50 / p99 ms | Oxflow p50 / p99 ms | p99 × lower |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in (r for r in load if r["server"] == "oxflow"):
        # Binary has no MLServer counterpart: compare with its REST JSON.
        base = ml.get((r["model"], r["protocol"] if r["protocol"] != "binary" else "json", r["batch"], r["concurrency"]))
        ratio = f'{r["rps"] / base["rps"]:.0f}×' if base and base["rps"] else "—"
        p99 = f'{base["p99_ms"] / r["p99_ms"]:.0f}×' if base and r["p99_ms"] else "—"
        mls = f'{base["rps"]:.0f}' if base else "—"
        mll = f'{base["p50_ms"]:.2f} / {base["p99_ms"]:.2f}' if base else "—"
        print(f'| {r["model"]} | {r["protocol"]} | {r["batch"]} | {r["concurrency"]} | {mls} | {r["rps"]:.0f} | {ratio} | '
              f'{mll} | {r["p50_ms"]:.3f} / {r["p99_ms"]:.3f} | {p99} |')
    cold = [r for r in results if r["kind"] == "cold"]
    print("\n| server | runs | spawn → all models ready, s (median, min–max) | first request ms | idle RSS MiB (tree) | processes |")
    print("|---|---|---|---|---|---|")
    for kind in sorted({r["server"] for r in cold}):
        g = [r for r in cold if r["server"] == kind]
        rd = [r["ready_s"] for r in g]
        print(f'| {kind} | {len(g)} | {statistics.median(rd):.3f} ({min(rd):.3f}–{max(rd):.3f}) | '
              f'{statistics.median(r["first_infer_ms"] for r in g):.1f} | {statistics.median(r["rss_mib"] for r in g):.1f} | {g[0]["procs"]} |')


if __name__ == "__main__":
    main()
