"""Trains small models with the real frameworks and records their own
predictions, so the serving tests compare Oxflow's answers with the
libraries' (never with numbers written by hand).

Layout written under OUT:
  repo/<name>/model.<ext>  one model per directory (KServe's file names)
  fixtures.json            {name: {"rows": [...], "outputs": {output: values}}}
"""
import json
import os
import sys

import numpy as np


def main(out):
    from sklearn.datasets import make_classification, make_regression
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    import joblib
    import lightgbm as lgb
    import xgboost as xgb
    from skl2onnx import to_onnx

    rng = np.random.default_rng(0)
    X, y = make_classification(n_samples=600, n_features=8, n_informative=5, random_state=1)
    X = X.astype(np.float32)
    Xm, ym = make_classification(n_samples=600, n_features=8, n_informative=6, n_classes=3,
                                 random_state=2)
    Xm = Xm.astype(np.float32)
    Xr, yr = make_regression(n_samples=400, n_features=8, random_state=3)
    Xr = Xr.astype(np.float32)
    rows = X[:16]
    fixtures = {}

    def save(name, filename, writer, rows, outputs):
        d = os.path.join(out, "repo", name)
        os.makedirs(d, exist_ok=True)
        writer(os.path.join(d, filename))
        fixtures[name] = {"rows": np.asarray(rows).tolist(),
                          "outputs": {k: np.asarray(v).tolist() for k, v in outputs.items()}}

    lr = LogisticRegression(max_iter=500).fit(X, y)
    rf = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    save("sk-logreg", "model.joblib", lambda p: joblib.dump(lr, p), rows,
         {"predict": lr.predict(rows), "predict_proba": lr.predict_proba(rows)})
    save("onnx-logreg", "model.onnx",
         lambda p: open(p, "wb").write(to_onnx(lr, X[:1], options={id(lr): {"zipmap": False}},
                                              target_opset=17).SerializeToString()),
         rows, {"label": lr.predict(rows), "probabilities": lr.predict_proba(rows)})
    save("onnx-rf", "model.onnx",
         lambda p: open(p, "wb").write(to_onnx(rf, X[:1], options={id(rf): {"zipmap": False}},
                                              target_opset=17).SerializeToString()),
         rows, {"label": rf.predict(rows), "probabilities": rf.predict_proba(rows)})

    xb = xgb.XGBClassifier(n_estimators=30, max_depth=4, random_state=0).fit(X, y)
    save("xgb-binary", "model.json", xb.save_model, rows,
         {"predict": xb.predict(rows), "predict_proba": xb.predict_proba(rows)})
    xm = xgb.XGBClassifier(n_estimators=20, max_depth=3, random_state=0).fit(Xm, ym)
    save("xgb-multi", "model.ubj", xm.save_model, Xm[:16],
         {"predict": xm.predict(Xm[:16]), "predict_proba": xm.predict_proba(Xm[:16])})
    xr = xgb.XGBRegressor(n_estimators=20, max_depth=3, random_state=0).fit(Xr, yr)
    save("xgb-reg", "model.json", xr.save_model, Xr[:16], {"predict": xr.predict(Xr[:16])})

    lb = lgb.LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1, random_state=0).fit(X, y)
    save("lgb-binary", "model.txt", lb.booster_.save_model, rows,
         {"predict": lb.predict(rows), "predict_proba": lb.predict_proba(rows)})
    lm = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, random_state=0).fit(Xm, ym)
    save("lgb-multi", "model.txt", lm.booster_.save_model, Xm[:16],
         {"predict": lm.predict(Xm[:16]), "predict_proba": lm.predict_proba(Xm[:16])})

    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump(fixtures, f)


if __name__ == "__main__":
    main(sys.argv[1])
