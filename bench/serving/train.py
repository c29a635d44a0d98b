#!/usr/bin/env python3
"""Train the three benchmark models and write them in KServe/MLServer layouts
(from ../shared/bench/serving/train.py, the anchor's own setup).

Output (all under OUT, default bench/out/serving):
  models/sklearn-logreg/{model.joblib,model.onnx,model-settings.json}
  models/sklearn-rf/{model.joblib,model.onnx,model-settings.json}
  models/xgboost-gbt/{model.json,model-settings.json}
  fixtures/<model>.json : 64 test rows + reference predict / predict_proba
                          (for conformance checks of another server)
  payloads/<model>-b{1,64}.json : V2 infer request bodies used by the load test
  payloads/<model>-b{1,64}.v1.json : V1 {"instances": ...} bodies (same rows)

Data: sklearn make_classification(n_samples=20000, n_features=20,
n_informative=10, n_redundant=4, random_state=42), float32.
"""
import json
import os
import sys

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "out", "serving")
MODELS = os.path.join(OUT, "models")
FIX = os.path.join(OUT, "fixtures")
PAY = os.path.join(OUT, "payloads")
N_FEATURES = 20


def model_settings(name, impl, uri):
    return {
        "name": name,
        "implementation": impl,
        "parameters": {"uri": uri, "version": "v1"},
    }


def write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def v2_body(rows):
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.flatten().tolist(),
            }
        ]
    }


def main():
    for d in (MODELS, FIX, PAY):
        os.makedirs(d, exist_ok=True)
    X, y = make_classification(
        n_samples=20000, n_features=N_FEATURES, n_informative=10,
        n_redundant=4, random_state=42)
    X = X.astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    rows64 = Xte[:64]

    models = {}
    lr = LogisticRegression(max_iter=1000).fit(Xtr, ytr)
    models["sklearn-logreg"] = lr
    rf = RandomForestClassifier(n_estimators=100, max_depth=8, n_jobs=1,
                                random_state=0).fit(Xtr, ytr)
    models["sklearn-rf"] = rf

    import xgboost as xgb
    xg = xgb.XGBClassifier(n_estimators=100, max_depth=6, n_jobs=1,
                           random_state=0).fit(Xtr, ytr)
    models["xgboost-gbt"] = xg

    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    for name, m in models.items():
        d = os.path.join(MODELS, name)
        os.makedirs(d, exist_ok=True)
        acc = float((m.predict(Xte) == yte).mean())
        if name.startswith("sklearn"):
            joblib.dump(m, os.path.join(d, "model.joblib"))
            onx = to_onnx(m, initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
                          options={id(m): {"zipmap": False}}, target_opset=17)
            with open(os.path.join(d, "model.onnx"), "wb") as f:
                f.write(onx.SerializeToString())
            write(os.path.join(d, "model-settings.json"),
                  model_settings(name, "mlserver_sklearn.SKLearnModel", "./model.joblib"))
        else:
            m.save_model(os.path.join(d, "model.json"))
            write(os.path.join(d, "model-settings.json"),
                  model_settings(name, "mlserver_xgboost.XGBoostModel", "./model.json"))
        fx = {
            "model": name,
            "test_accuracy": acc,
            "n_features": N_FEATURES,
            "rows": rows64.tolist(),
            "predict": m.predict(rows64).tolist(),
            "predict_proba": m.predict_proba(rows64).tolist(),
        }
        write(os.path.join(FIX, f"{name}.json"), fx)
        for b in (1, 64):
            rows = rows64[:b]
            with open(os.path.join(PAY, f"{name}-b{b}.json"), "w") as f:
                json.dump(v2_body(rows), f)
            with open(os.path.join(PAY, f"{name}-b{b}.v1.json"), "w") as f:
                json.dump({"instances": rows.tolist()}, f)
        print(f"{name}: test accuracy {acc:.4f}", file=sys.stderr)

    # ONNX sanity check against sklearn
    import onnxruntime as ort
    for name in ("sklearn-logreg", "sklearn-rf"):
        sess = ort.InferenceSession(os.path.join(MODELS, name, "model.onnx"),
                                    providers=["CPUExecutionProvider"])
        outs = sess.run(None, {"input": rows64})
        names = [o.name for o in sess.get_outputs()]
        ref = models[name].predict_proba(rows64)
        err = float(np.abs(outs[1] - ref).max())
        lab_ok = bool((outs[0] == models[name].predict(rows64)).all())
        print(f"{name}.onnx outputs={names} inputs={[i.name for i in sess.get_inputs()]} "
              f"max|proba diff|={err:.2e} labels_match={lab_ok}", file=sys.stderr)


if __name__ == "__main__":
    main()
