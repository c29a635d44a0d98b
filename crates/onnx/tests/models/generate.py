"""Trains small scikit-learn models, exports them with skl2onnx, builds two
plain ONNX graphs with the onnx helper API, and records what onnxruntime and
scikit-learn predict for a fixed set of rows.

Usage: generate.py OUT_DIR. Writes OUT_DIR/<case>.onnx and
OUT_DIR/manifest.json:

    {"rows": 64, "cases": [{"name", "file", "inputs": {name: {"shape", "data"}},
      "onnxruntime": {output: {"shape", "data"}}, "sklearn": {output: [...]}}]}

Every output is flattened row-major; ZipMap outputs (lists of dicts) are
turned into [rows, classes] arrays in the classifier's class order, which is
what the ONNX runtime serves once it strips the ZipMap.
"""

import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore", category=ConvergenceWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

OUT = sys.argv[1]
ROWS = 64
FEATURES = 20
OPSET = 17

X3, y3 = make_classification(
    n_samples=1000 + ROWS, n_features=FEATURES, n_informative=10, n_redundant=4,
    n_classes=3, random_state=0)
X2, y2 = make_classification(
    n_samples=1000 + ROWS, n_features=FEATURES, n_informative=8, n_classes=2, random_state=1)
XR, yr = make_regression(
    n_samples=1000 + ROWS, n_features=FEATURES, n_informative=12, noise=5.0, random_state=2)
# The models compute in float32 (the ONNX input type); train and predict on
# the same float32 values so that scikit-learn sees what the runtimes see.
X3, X2, XR = (a.astype(np.float32) for a in (X3, X2, XR))

cases = []


def flat(a):
    """Row-major list; NaN as null (JSON has no NaN)."""
    return [None if isinstance(x, float) and x != x else x for x in np.asarray(a).reshape(-1).tolist()]


def record(name, model_proto, inputs, sklearn=None):
    path = os.path.join(OUT, name + ".onnx")
    onnx.save(model_proto, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    results = sess.run(None, inputs)
    expected = {}
    for meta, value in zip(sess.get_outputs(), results):
        if isinstance(value, list):  # ZipMap: one {class: probability} per row
            keys = list(value[0].keys())
            value = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
        value = np.asarray(value)
        dtype = "string" if value.dtype == object else str(value.dtype)
        expected[meta.name] = {"shape": list(value.shape), "data": flat(value), "dtype": dtype}
    cases.append({
        "name": name,
        "file": name + ".onnx",
        "inputs": {k: {"shape": list(v.shape), "data": flat(v)} for k, v in inputs.items()},
        "onnxruntime": expected,
        "sklearn": sklearn or {},
    })


def classifier(name, model, X, y, zipmap=False, input_type=FloatTensorType):
    """Exports `model` as case `name` and, with zipmap=True, also with
    skl2onnx's default ZipMap output as case `name`_zipmap."""
    model.fit(X[:-ROWS], y[:-ROWS])
    test = X[-ROWS:]
    for suffix, options in [("", {"zipmap": False})] + ([("_zipmap", None)] if zipmap else []):
        if not hasattr(model, "predict_proba"):
            options = None  # RidgeClassifier: no probabilities, no ZipMap
        proto = to_onnx(model, initial_types=[("input", input_type([None, FEATURES]))],
                        target_opset=OPSET, options=options)
        label, scores = (o.name for o in proto.graph.output)
        expected = {label: flat(model.predict(test))}
        if hasattr(model, "predict_proba"):
            expected[scores] = flat(model.predict_proba(test))
        record(name + suffix, proto, {"input": test}, expected)


def regressor(name, model, X, y):
    model.fit(X[:-ROWS], y[:-ROWS])
    proto = to_onnx(model, initial_types=[("input", FloatTensorType([None, FEATURES]))],
                    target_opset=OPSET)
    test = X[-ROWS:]
    record(name, proto, {"input": test}, {proto.graph.output[0].name: flat(model.predict(test))})


def linear_classifier(name, labels, intercepts, post, features=3, coefficients=None, **attrs):
    """A hand-written LinearClassifier: the cases skl2onnx does not write
    (one binary model, SOFTMAX_ZERO), answered by onnxruntime."""
    strings = isinstance(labels[0], str)
    if coefficients is None:
        coefficients = rng.standard_normal(len(intercepts) * features).astype(np.float32).tolist()
    node = helper.make_node(
        "LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
        coefficients=coefficients, intercepts=intercepts, post_transform=post,
        **({"classlabels_strings": labels} if strings else {"classlabels_ints": labels}), **attrs)
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("label", TensorProto.STRING if strings else TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", max(2, len(intercepts))])])
    proto = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 1)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    record(name, proto, {"x": rng.standard_normal((ROWS, features)).astype(np.float32) * 2})


classifier("logreg", LogisticRegression(max_iter=1000), X3, y3, zipmap=True)
# String class labels (classlabels_strings, BYTES outputs).
names = np.array(["ant", "bee", "cat"])
classifier("logreg_strings", LogisticRegression(max_iter=1000), X3, names[y3], zipmap=True)
classifier("rf_strings", RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0), X3, names[y3])
classifier("logreg_binary", LogisticRegression(max_iter=1000), X2, y2)
classifier("rf", RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0), X3, y3, zipmap=True)
classifier("rf_binary", RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0), X2, y2)
classifier("gb_classifier", GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), X3, y3)
classifier("gb_binary", GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), X2, y2)
classifier("mlp", MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=300, random_state=0), X3, y3)
classifier("pipeline", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), X3, y3)
# More linear exports (the ONNX runtime evaluates them without tract).
classifier("logreg_binary_strings", LogisticRegression(max_iter=1000), X2, np.array(["no", "yes"])[y2],
           zipmap=True)
classifier("logreg_binary_zipmap_ints", LogisticRegression(max_iter=1000), X2, y2 * 5 - 2, zipmap=True)
classifier("pipeline_binary", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), X2, y2)
classifier("pipeline_strings", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), X3,
           names[y3], zipmap=True)
classifier("logreg_ovr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), X3, y3 + 10)
classifier("ridge_classifier", RidgeClassifier(), X3, y3)
# Integer features: skl2onnx feeds them to the LinearClassifier as they are.
classifier("logreg_int64", LogisticRegression(max_iter=1000), np.round(X3 * 3).astype(np.int64), y3,
           input_type=Int64TensorType)
regressor("linear_regressor", LinearRegression(), XR, yr)
regressor("ridge", Ridge(alpha=2.0), XR, yr)
regressor("ridge_two_targets", Ridge(alpha=2.0), XR, np.stack([yr, yr * -0.5 + 3], axis=1))
regressor("rf_regressor", RandomForestRegressor(n_estimators=50, max_depth=8, random_state=0), XR, yr)
regressor("gb_regressor", GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0), XR, yr)

rng = np.random.default_rng(3)
# One binary model (one intercept, two labels) under every post-transform,
# and SOFTMAX_ZERO, which tract lacks.
for post in ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]:
    linear_classifier("linear_one_model_" + post.lower(), [3, 7], [0.25], post)
linear_classifier("linear_one_model_strings", ["off", "on"], [-0.5], "LOGISTIC")
# The first class scores exactly zero: SOFTMAX_ZERO keeps it at zero.
linear_classifier("linear_softmax_zero", [1, 2, 3, 4], [0.0, 0.5, 0.0, -0.5], "SOFTMAX_ZERO",
                  coefficients=[0.0] * 3 + rng.standard_normal(9).astype(np.float32).tolist(), multi_class=1)

# A plain float network from the onnx helper API, batch dimension named N.
w = rng.standard_normal((FEATURES, 8)).astype(np.float32)
b = rng.standard_normal(8).astype(np.float32)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["xw"]),
     helper.make_node("Add", ["xw", "b"], ["xwb"]),
     helper.make_node("Relu", ["xwb"], ["y"])],
    "dense",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
    [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
dense = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
dense.ir_version = 8
onnx.checker.check_model(dense)
record("dense", dense, {"x": X3[-ROWS:]})

# Two inputs of different types sharing the batch dimension: y = a * cast(b).
graph = helper.make_graph(
    [helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
     helper.make_node("Mul", ["a", "bf"], ["y"])],
    "two_inputs",
    [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
     helper.make_tensor_value_info("b", TensorProto.INT64, ["N", 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
two = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
two.ir_version = 8
onnx.checker.check_model(two)
record("two_inputs", two, {
    "a": rng.standard_normal((ROWS, 3)).astype(np.float32),
    "b": rng.integers(-5, 5, (ROWS, 3)).astype(np.int64),
})

# Hand-written tree ensembles exercising every node mode, missing-value
# tracking, leaves without weights for a target, base values and each
# aggregate function (scikit-learn exports only BRANCH_LEQ and SUM).
TREE_NODES = [  # (tree, node, mode, feature, threshold, true, false, nan goes true)
    (0, 0, "BRANCH_GTE", 0, 0.5, 1, 2, 1),
    (0, 1, "BRANCH_LT", 1, 0.0, 3, 4, 0),
    (0, 2, "BRANCH_GT", 2, -1.0, 5, 6, 0),
    (0, 3, "LEAF", 0, 0.0, 0, 0, 0),
    (0, 4, "LEAF", 0, 0.0, 0, 0, 0),
    (0, 5, "LEAF", 0, 0.0, 0, 0, 0),
    (0, 6, "LEAF", 0, 0.0, 0, 0, 0),
    (1, 0, "BRANCH_EQ", 2, 1.0, 1, 2, 0),
    (1, 1, "LEAF", 0, 0.0, 0, 0, 0),
    (1, 2, "BRANCH_NEQ", 1, 2.0, 3, 4, 1),
    (1, 3, "BRANCH_LEQ", 0, 0.0, 5, 6, 0),
    (1, 4, "LEAF", 0, 0.0, 0, 0, 0),
    (1, 5, "LEAF", 0, 0.0, 0, 0, 0),
    (1, 6, "LEAF", 0, 0.0, 0, 0, 0),
]
TREE_WEIGHTS = [  # (tree, node, target, weight)
    (0, 3, 0, 1.0), (0, 3, 1, -2.0), (0, 4, 0, 2.5), (0, 5, 0, -1.5), (0, 5, 1, 4.0), (0, 6, 0, 0.25),
    (1, 1, 0, 3.0), (1, 1, 1, 1.0), (1, 4, 0, -0.5), (1, 5, 1, 2.0), (1, 6, 0, 7.0), (1, 6, 1, -3.0),
]
tree_rows = rng.choice(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan], dtype=np.float32), size=(ROWS, 3))
for aggregate in ["SUM", "AVERAGE", "MIN", "MAX"]:
    attrs = dict(
        n_targets=2, aggregate_function=aggregate, base_values=[0.5, -1.0], post_transform="NONE",
        nodes_treeids=[n[0] for n in TREE_NODES], nodes_nodeids=[n[1] for n in TREE_NODES],
        nodes_modes=[n[2] for n in TREE_NODES], nodes_featureids=[n[3] for n in TREE_NODES],
        nodes_values=[n[4] for n in TREE_NODES], nodes_truenodeids=[n[5] for n in TREE_NODES],
        nodes_falsenodeids=[n[6] for n in TREE_NODES],
        nodes_missing_value_tracks_true=[n[7] for n in TREE_NODES],
        target_treeids=[w[0] for w in TREE_WEIGHTS], target_nodeids=[w[1] for w in TREE_WEIGHTS],
        target_ids=[w[2] for w in TREE_WEIGHTS], target_weights=[w[3] for w in TREE_WEIGHTS])
    graph = helper.make_graph(
        [helper.make_node("TreeEnsembleRegressor", ["x"], ["y"], domain="ai.onnx.ml", **attrs)],
        "trees",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])])
    trees = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 3)])
    trees.ir_version = 8
    record("trees_" + aggregate.lower(), trees, {"x": tree_rows})

# A fixed batch of 2 rows: not batchable.
graph = helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"])], "fixed",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
fixed = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
fixed.ir_version = 8
onnx.save(fixed, os.path.join(OUT, "fixed.onnx"))

# A ZipMap whose maps feed another operator: cannot be stripped.
graph = helper.make_graph(
    [helper.make_node("ZipMap", ["x"], ["m"], domain="ai.onnx.ml", name="zip", classlabels_int64s=[0, 1]),
     helper.make_node("Identity", ["m"], ["y"], name="after")],
    "zipmap_inner",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])])
inner = helper.make_model(graph, opset_imports=[
    helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 1)])
inner.ir_version = 8
onnx.save(inner, os.path.join(OUT, "zipmap_inner.onnx"))

# An operator tract does not implement (ai.onnx.ml.Imputer).
graph = helper.make_graph(
    [helper.make_node("Imputer", ["x"], ["y"], domain="ai.onnx.ml", name="impute",
                      imputed_value_floats=[0.0], replaced_value_float=float("nan"))],
    "imputer",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
imputer = helper.make_model(graph, opset_imports=[
    helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 3)])
imputer.ir_version = 8
onnx.save(imputer, os.path.join(OUT, "imputer.onnx"))

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"rows": ROWS, "cases": cases}, f)
