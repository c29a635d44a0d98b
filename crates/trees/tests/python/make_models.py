"""Trains small XGBoost and LightGBM models with the real libraries and writes
them with the libraries' own predictions, for oxflow-trees' tests.

Usage: make_models.py OUT_DIR

Writes OUT_DIR/manifest.json listing one case per model: the model files
(JSON and UBJ for XGBoost, text for LightGBM), a test matrix (little-endian
f32, row-major) and the expected predictions, margins and labels
(little-endian f64 / i64). Test matrices include NaNs, zeros, tiny values,
infinities (LightGBM), unseen and out-of-range categories, and rows whose
values sit exactly on, just below and just above the models' split
thresholds, so that every comparison rule is exercised.
"""

import json
import os
import sys
import warnings

# Tiny models train fastest on one thread, and OpenMP's spinning threads are slow on a busy machine.
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np
import lightgbm as lgb
import xgboost as xgb
from sklearn.datasets import make_classification, make_regression

warnings.filterwarnings("ignore")
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(7)
CASES = []
N_TRAIN, N_TEST = 400, 150


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def with_nans(X, frac=0.08):
    X = X.copy()
    X[rng.random(X.shape) < frac] = np.nan
    return X


def save(name, arr, dtype):
    np.ascontiguousarray(arr, dtype=dtype).tofile(os.path.join(OUT, name))
    return name


def boundary_rows(X, pairs, limit=90):
    """Rows with feature f set exactly to threshold t and to its f32 neighbours."""
    rows = []
    idx = rng.permutation(len(pairs))[:limit]
    for k in idx:
        f, t = pairs[k]
        t = np.float32(t)
        for v in (t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf))):
            r = X[rng.integers(len(X))].copy()
            r[f] = v
            rows.append(r)
    return np.array(rows, dtype=np.float32).reshape(-1, X.shape[1])


def special_rows(X, lightgbm=False):
    base = X[:1]
    rows = [np.full_like(base, np.nan), np.zeros_like(base), -np.zeros_like(base)]
    if lightgbm:
        rows += [np.full_like(base, 1e-36), np.full_like(base, -1e-36), np.full_like(base, np.inf),
                 np.full_like(base, -np.inf)]
        r = X[:8].copy()
        r[rng.random(r.shape) < 0.3] = 0.0
        rows.append(r)
    return np.concatenate(rows).astype(np.float32)


def xgb_pairs(path):
    pairs = []
    model = json.load(open(path))["learner"]["gradient_booster"]
    model = model.get("model") or model.get("gbtree", {}).get("model")
    for t in (model or {}).get("trees", []):
        types = t.get("split_type") or [0] * len(t["left_children"])
        for i, left in enumerate(t["left_children"]):
            if left != -1 and types[i] == 0:
                pairs.append((t["split_indices"][i], t["split_conditions"][i]))
    return pairs


def lgb_pairs(path):
    pairs = []
    feats = thresholds = None
    for line in open(path):
        if line.startswith("split_feature="):
            feats = [int(v) for v in line.split("=")[1].split()]
        elif line.startswith("threshold="):
            thresholds = [float(v) for v in line.split("=")[1].split()]
        elif line.startswith("decision_type=") and feats is not None:
            for f, t, d in zip(feats, thresholds, [int(v) for v in line.split("=")[1].split()]):
                if d & 1 == 0:
                    pairs.append((f, t))
            feats = thresholds = None
    return pairs


def add_case(name, framework, models, X, pred, margin, labels, task):
    rows = X.shape[0]
    case = dict(
        name=name,
        framework=framework,
        models=models,
        rows=rows,
        cols=X.shape[1],
        task=task,
        x=save(f"{name}.x.bin", X, "<f4"),
        pred=save(f"{name}.pred.bin", np.asarray(pred, dtype=np.float64).reshape(rows, -1), "<f8"),
        pred_cols=int(np.asarray(pred).size // rows),
        margin=save(f"{name}.margin.bin", np.asarray(margin, dtype=np.float64).reshape(rows, -1), "<f8"),
        margin_cols=int(np.asarray(margin).size // rows),
        labels=None,
    )
    if labels is not None:
        case["labels"] = save(f"{name}.labels.bin", np.asarray(labels, dtype=np.int64).reshape(rows, -1), "<i8")
    CASES.append(case)


# --------------------------------------------------------------------------- data

Xr, yr = make_regression(n_samples=N_TRAIN + N_TEST, n_features=8, n_informative=6, noise=5.0, random_state=1)
Xr = f32(with_nans(Xr))
yr = yr.astype(np.float32)
Xc, yc = make_classification(n_samples=N_TRAIN + N_TEST, n_features=8, n_informative=5, random_state=2)
Xc = f32(with_nans(Xc))
Xm, ym = make_classification(n_samples=N_TRAIN + N_TEST, n_features=8, n_informative=5, n_classes=3,
                             n_clusters_per_class=1, random_state=3)
Xm = f32(with_nans(Xm))
scale = np.std(yr)
y_pos = np.exp(yr / scale * 0.5).astype(np.float32)  # positive targets
y_count = rng.poisson(np.exp(yr / scale * 0.7)).astype(np.float32)
y_unit = (1 / (1 + np.exp(-yr / scale))).astype(np.float32)  # in (0, 1)
qid = np.repeat(np.arange((N_TRAIN + N_TEST) // 10), 10)
y_rel = np.clip(np.round(yr / scale + 1.5), 0, 3).astype(np.float32)

# Categorical data: column 0 has 12 categories, column 1 has 70 (several bitset words),
# column 2 has 3; the label depends on them.
Xk = f32(rng.normal(size=(N_TRAIN + N_TEST, 6)))
Xk[:, 0] = rng.integers(0, 12, size=len(Xk))
Xk[:, 1] = rng.integers(0, 70, size=len(Xk))
Xk[:, 2] = rng.integers(0, 3, size=len(Xk))
yk = (np.isin(Xk[:, 0], [1, 4, 7, 8]) * 2.0 + (Xk[:, 1] % 5 == 0) + (Xk[:, 2] == 1) * 1.5
      + np.nan_to_num(Xk[:, 3]) + rng.normal(scale=0.3, size=len(Xk))).astype(np.float32)
Xk = with_nans(Xk, 0.05)
yk_bin = (yk > np.median(yk)).astype(np.float32)


def cat_test_rows(X, cat_cols):
    """Unseen, large, negative and fractional categories (which both libraries accept)."""
    rows = X[:32].copy()
    values = [12, 13, 69, 70, 100, 1000, 2 ** 20, -1, -0.5, 2.5, 31.9, 32, 1e10, 2 ** 24 - 1, 2 ** 24]
    for i, r in enumerate(rows):
        for c in cat_cols:
            r[c] = values[(i + c) % len(values)]
    return rows


def split(X, *ys):
    return (X[:N_TRAIN], X[N_TRAIN:]) + tuple(y[:N_TRAIN] for y in ys)


# --------------------------------------------------------------------------- XGBoost


def xgb_finish(name, bst, Xtest, task, labels_fn=None, dmatrix_args=None):
    dmatrix_args = dmatrix_args or {}
    models = [f"{name}.json", f"{name}.ubj"]
    for m in models:
        bst.save_model(os.path.join(OUT, m))
    pairs = xgb_pairs(os.path.join(OUT, models[0]))
    X = np.concatenate([Xtest, special_rows(Xtest), boundary_rows(Xtest, pairs)])
    d = xgb.DMatrix(X, missing=np.nan, **dmatrix_args)
    pred = bst.predict(d)
    margin = bst.predict(d, output_margin=True)
    labels = labels_fn(X) if labels_fn else None
    add_case(name, "xgboost", models, X, pred, margin, labels, task)


def xgb_train(name, params, X, y, task, rounds=8, dmatrix_args=None, extra_test=None, **dkw):
    dmatrix_args = dmatrix_args or {}
    Xtr, Xte = X[:N_TRAIN], X[N_TRAIN:]
    d = xgb.DMatrix(Xtr, label=y[:N_TRAIN] if y is not None else None, missing=np.nan, **dmatrix_args,
                    **{k: v[:N_TRAIN] if isinstance(v, np.ndarray) else v for k, v in dkw.items()})
    p = {"max_depth": 4, "eta": 0.3, "tree_method": "hist", "seed": 0, "nthread": 1}
    p.update(params)
    bst = xgb.train(p, d, rounds)
    if extra_test is not None:
        Xte = np.concatenate([Xte, extra_test])
    xgb_finish(name, bst, Xte, task, dmatrix_args=dmatrix_args)


def xgb_sklearn(name, est, X, y, task, extra_test=None, **fit):
    Xtr, Xte = X[:N_TRAIN], X[N_TRAIN:]
    est.fit(Xtr, y[:N_TRAIN], **fit)
    if extra_test is not None:
        Xte = np.concatenate([Xte, extra_test])
    args = {}
    if getattr(est, "feature_types", None) is not None:
        args = {"feature_types": est.feature_types, "enable_categorical": True}
    xgb_finish(name, est.get_booster(), Xte, task, labels_fn=est.predict, dmatrix_args=args)


def xgboost_cases():
    sk = {"n_estimators": 8, "max_depth": 4, "tree_method": "hist", "random_state": 0, "n_jobs": 1}
    for obj in ["reg:squarederror", "reg:pseudohubererror", "reg:absoluteerror"]:
        xgb_train("xgb_" + obj.replace(":", "_"), {"objective": obj}, Xr, yr, "regression")
    xgb_train("xgb_reg_squaredlogerror", {"objective": "reg:squaredlogerror"}, Xr, np.abs(yr), "regression")
    xgb_train("xgb_reg_logistic", {"objective": "reg:logistic"}, Xr, y_unit, "regression")
    xgb_train("xgb_count_poisson", {"objective": "count:poisson"}, Xr, y_count, "regression")
    xgb_train("xgb_reg_gamma", {"objective": "reg:gamma"}, Xr, y_pos, "regression")
    xgb_train("xgb_reg_tweedie", {"objective": "reg:tweedie", "tweedie_variance_power": 1.4}, Xr, y_count,
              "regression")
    xgb_train("xgb_reg_quantileerror", {"objective": "reg:quantileerror", "quantile_alpha": [0.1, 0.5, 0.9]},
              Xr, yr, "regression")
    xgb_train("xgb_multi_target", {"objective": "reg:squarederror"}, Xr,
              np.stack([yr, -yr, y_pos], axis=1), "regression")
    xgb_train("xgb_multi_output_tree", {"objective": "reg:squarederror", "multi_strategy": "multi_output_tree"},
              Xr, np.stack([yr, y_pos, y_unit], axis=1), "regression")
    xgb_train("xgb_survival_cox", {"objective": "survival:cox"}, Xr,
              np.where(rng.random(len(yr)) < 0.2, -1, 1) * (y_pos + 0.1), "survival")
    lower = y_pos
    upper = np.where(rng.random(len(yr)) < 0.2, np.inf, y_pos)
    xgb_train("xgb_survival_aft", {"objective": "survival:aft", "aft_loss_distribution": "normal"}, Xr, None,
              "survival", label_lower_bound=lower, label_upper_bound=upper)
    for obj in ["rank:pairwise", "rank:ndcg", "rank:map"]:
        y = (y_rel > 1).astype(np.float32) if obj == "rank:map" else y_rel
        xgb_train("xgb_" + obj.replace(":", "_"), {"objective": obj}, Xr, y, "ranking", qid=qid)
    xgb_train("xgb_exact_pruned", {"objective": "reg:squarederror", "tree_method": "exact", "max_depth": 6,
                                   "gamma": 2000.0}, Xr, yr, "regression")
    xgb_train("xgb_approx", {"objective": "binary:logistic", "tree_method": "approx"}, Xc, yc, "binary")
    xgb_train("xgb_multi_softmax", {"objective": "multi:softmax", "num_class": 3}, Xm, ym, "multiclass:3")
    xgb_train("xgb_rf_multiclass", {"objective": "multi:softprob", "num_class": 3, "num_parallel_tree": 3,
                                    "subsample": 0.8, "colsample_bynode": 0.8}, Xm, ym, "multiclass:3", rounds=3)
    xgb_train("xgb_dart_regression", {"objective": "reg:squarederror", "booster": "dart", "rate_drop": 0.3,
                                      "skip_drop": 0.0, "normalize_type": "forest"}, Xr, yr, "regression")
    xgb_train("xgb_dart_multiclass", {"objective": "multi:softprob", "num_class": 3, "booster": "dart",
                                      "rate_drop": 0.4, "one_drop": 1}, Xm, ym, "multiclass:3")
    xgb_train("xgb_gblinear", {"objective": "reg:squarederror", "booster": "gblinear"}, Xr, yr, "regression")
    xgb_train("xgb_gblinear_multiclass", {"objective": "multi:softprob", "num_class": 3, "booster": "gblinear"},
              Xm, ym, "multiclass:3")

    xgb_sklearn("xgb_binary_logistic", xgb.XGBClassifier(**sk), Xc, yc, "binary")
    xgb_sklearn("xgb_binary_base_score", xgb.XGBClassifier(base_score=0.3, **sk), Xc, yc, "binary")
    xgb_sklearn("xgb_binary_logitraw", xgb.XGBClassifier(objective="binary:logitraw", **sk), Xc, yc, "binary")
    xgb_sklearn("xgb_binary_hinge", xgb.XGBClassifier(objective="binary:hinge", **sk), Xc, yc, "binary")
    xgb_sklearn("xgb_multi_softprob", xgb.XGBClassifier(**sk), Xm, ym, "multiclass:3")
    xgb_sklearn("xgb_multi_softmax_sklearn", xgb.XGBClassifier(objective="multi:softmax", **sk), Xm, ym,
                "multiclass:3")
    xgb_sklearn("xgb_dart_binary", xgb.XGBClassifier(booster="dart", rate_drop=0.3, skip_drop=0.0, **sk), Xc, yc,
                "binary")
    xgb_sklearn("xgb_rf_binary", xgb.XGBRFClassifier(n_estimators=6, max_depth=4, random_state=0, n_jobs=1),
                Xc, yc, "binary")
    y_multilabel = np.stack([yc, (np.nan_to_num(Xc[:, 0]) > 0).astype(int)], axis=1)
    xgb_sklearn("xgb_multilabel", xgb.XGBClassifier(multi_strategy="multi_output_tree", **sk), Xc,
                y_multilabel, "multilabel:2")

    ft = ["c", "c", "c", "q", "q", "q"]
    cat_extra = cat_test_rows(Xk[N_TRAIN:], [0, 1, 2])
    dm = {"feature_types": ft, "enable_categorical": True}
    xgb_train("xgb_categorical_partition", {"objective": "reg:squarederror", "max_cat_to_onehot": 1}, Xk, yk,
              "regression", dmatrix_args=dm, extra_test=cat_extra)
    xgb_train("xgb_categorical_onehot", {"objective": "reg:squarederror", "max_cat_to_onehot": 100}, Xk, yk,
              "regression", dmatrix_args=dm, extra_test=cat_extra)
    xgb_sklearn("xgb_categorical_classifier",
                xgb.XGBClassifier(enable_categorical=True, feature_types=ft, max_cat_to_onehot=4, **sk), Xk,
                yk_bin, "binary", extra_test=cat_extra)


# --------------------------------------------------------------------------- LightGBM

LGB_BASE = {"verbose": -1, "num_leaves": 15, "min_data_in_leaf": 5, "seed": 0, "num_threads": 1,
            "deterministic": True}


def lgb_finish(name, bst, Xtest, task, labels_fn=None):
    model = f"{name}.txt"
    bst.save_model(os.path.join(OUT, model))
    pairs = lgb_pairs(os.path.join(OUT, model))
    X = np.concatenate([Xtest, special_rows(Xtest, lightgbm=True), boundary_rows(Xtest, pairs)])
    pred = bst.predict(X)
    margin = bst.predict(X, raw_score=True)
    labels = labels_fn(X) if labels_fn else None
    add_case(name, "lightgbm", [model], X, pred, margin, labels, task)


def lgb_train(name, params, X, y, task, rounds=10, group=None, extra_test=None, **ds):
    p = dict(LGB_BASE)
    p.update(params)
    d = lgb.Dataset(X[:N_TRAIN], label=y[:N_TRAIN], group=group, params={"verbose": -1}, **ds)
    bst = lgb.train(p, d, num_boost_round=rounds)
    Xte = X[N_TRAIN:]
    if extra_test is not None:
        Xte = np.concatenate([Xte, extra_test])
    lgb_finish(name, bst, Xte, task)


def lgb_sklearn(name, est, X, y, task, **fit):
    est.fit(X[:N_TRAIN], y[:N_TRAIN], **fit)
    lgb_finish(name, est.booster_, X[N_TRAIN:], task, labels_fn=est.predict)


def lightgbm_cases():
    for obj in ["regression", "regression_l1", "huber", "fair", "mape"]:
        lgb_train("lgb_" + obj, {"objective": obj}, Xr, yr, "regression")
    lgb_train("lgb_quantile", {"objective": "quantile", "alpha": 0.7}, Xr, yr, "regression")
    lgb_train("lgb_regression_sqrt", {"objective": "regression", "reg_sqrt": True}, Xr, yr, "regression")
    Xz = Xr.copy()
    Xz[rng.random(Xz.shape) < 0.2] = 0.0
    lgb_train("lgb_zero_as_missing", {"objective": "regression", "zero_as_missing": True}, Xz, yr, "regression")
    lgb_train("lgb_no_missing", {"objective": "regression", "use_missing": False}, Xr, yr, "regression")
    Xfull = np.nan_to_num(Xr)
    lgb_train("lgb_trained_without_nan", {"objective": "regression"}, Xfull, yr, "regression",
              extra_test=Xr[N_TRAIN:])
    for obj in ["poisson", "gamma", "tweedie"]:
        lgb_train("lgb_" + obj, {"objective": obj}, Xr, y_count + 0.5 if obj == "gamma" else y_count,
                  "regression")
    lgb_train("lgb_cross_entropy", {"objective": "cross_entropy"}, Xr, y_unit, "regression")
    lgb_train("lgb_cross_entropy_lambda", {"objective": "cross_entropy_lambda"}, Xr, y_unit, "regression")
    group = [10] * (N_TRAIN // 10)
    lgb_train("lgb_lambdarank", {"objective": "lambdarank"}, Xr, y_rel, "ranking", group=group)
    lgb_train("lgb_rank_xendcg", {"objective": "rank_xendcg"}, Xr, y_rel, "ranking", group=group)
    lgb_train("lgb_linear_tree", {"objective": "regression", "linear_tree": True}, Xr, yr, "regression")
    lgb_train("lgb_rf", {"objective": "regression", "boosting": "rf", "bagging_fraction": 0.7,
                         "bagging_freq": 1, "feature_fraction": 0.8}, Xr, yr, "regression")
    lgb_train("lgb_dart", {"objective": "regression", "boosting": "dart", "drop_rate": 0.3}, Xr, yr,
              "regression")
    lgb_train("lgb_single_leaf", {"objective": "regression", "min_data_in_leaf": 1000}, Xr, yr, "regression",
              rounds=3)
    lgb_train("lgb_categorical", {"objective": "regression", "max_cat_to_onehot": 4, "cat_smooth": 1,
                                  "min_data_per_group": 5}, Xk, yk, "regression",
              categorical_feature=[0, 1, 2], extra_test=cat_test_rows(Xk[N_TRAIN:], [0, 1, 2]))
    lgb_train("lgb_multiclass_categorical", {"objective": "multiclass", "num_class": 3},
              Xk, np.digitize(yk, np.quantile(yk, [0.33, 0.66])), "multiclass:3", categorical_feature=[0, 1, 2],
              extra_test=cat_test_rows(Xk[N_TRAIN:], [0, 1, 2]))

    sk = {"n_estimators": 10, "num_leaves": 15, "min_child_samples": 5, "random_state": 0, "verbose": -1,
          "n_jobs": 1}
    lgb_sklearn("lgb_binary", lgb.LGBMClassifier(sigmoid=0.7, **sk), Xc, yc, "binary")
    lgb_sklearn("lgb_multiclass", lgb.LGBMClassifier(**sk), Xm, ym, "multiclass:3")
    lgb_sklearn("lgb_multiclassova", lgb.LGBMClassifier(objective="multiclassova", **sk), Xm, ym, "multiclass:3")
    lgb_sklearn("lgb_rf_binary", lgb.LGBMClassifier(boosting_type="rf", subsample=0.7, subsample_freq=1, **sk),
                Xc, yc, "binary")


xgboost_cases()
lightgbm_cases()
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"xgboost": xgb.__version__, "lightgbm": lgb.__version__, "cases": CASES}, f, indent=1)
print(f"wrote {len(CASES)} cases to {OUT}")
