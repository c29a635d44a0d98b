//! Real exporter output through the `Model` API: models trained with
//! scikit-learn, exported with skl2onnx (and two built with the onnx helper
//! API) by `models/generate.py`, which also records onnxruntime's and
//! scikit-learn's predictions. Each case runs at batch sizes 1, 7 and 64.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use futures::FutureExt;
use oxflow_inference::{DataType, InferError, InferRequest, Model, Tensor, TensorData};
use oxflow_onnx::{Engine, OnnxError, OnnxModel, OnnxOptions};
use serde_json::Value;

/// The test venv's Python (the test command sets OXFLOW_TEST_PYTHON).
fn python() -> PathBuf {
    let p = std::env::var_os("OXFLOW_TEST_PYTHON")
        .map(PathBuf::from)
        .expect(
            "OXFLOW_TEST_PYTHON must point at a Python with scikit-learn, skl2onnx and onnxruntime \
         installed (tests/requirements.txt); run the tests through scripts/test",
        );
    assert!(
        p.exists(),
        "OXFLOW_TEST_PYTHON={} does not exist",
        p.display()
    );
    p
}

struct Fixture {
    dir: PathBuf,
    manifest: Value,
}

/// Runs the generator once for every test in this binary. The models stay
/// in cargo's test scratch directory (regenerated on each run) so that a
/// failure can be reproduced with them.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oxflow-onnx-models");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/generate.py");
        let out = std::process::Command::new(python())
            .arg(&script)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "generate.py failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
        Fixture {
            manifest: serde_json::from_slice(&manifest).unwrap(),
            dir,
        }
    })
}

fn load(file: &str) -> OnnxModel {
    let path = fixture().dir.join(file);
    OnnxModel::load(
        file.trim_end_matches(".onnx"),
        &path,
        &OnnxOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn infer(model: &OnnxModel, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InferError> {
    let request = InferRequest {
        inputs,
        ..Default::default()
    };
    model
        .infer(request)
        .now_or_never()
        .expect("native models answer without waiting")
}

/// Numbers as recorded; `null` stands for NaN.
fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// The first `rows` rows of a recorded row-major array of `full` shape.
fn head<T: Clone>(data: &[T], full: &[usize], rows: usize) -> Vec<T> {
    let per_row: usize = full[1..].iter().product();
    data[..rows * per_row].to_vec()
}

/// Output elements, as numbers or (for string labels) as strings.
#[derive(Debug, PartialEq)]
enum Values {
    Numbers(Vec<f64>),
    Strings(Vec<String>),
}

fn values(t: &Tensor) -> Values {
    match &t.data {
        TensorData::Fp32(v) => Values::Numbers(v.iter().map(|&x| x as f64).collect()),
        TensorData::Int64(v) => Values::Numbers(v.iter().map(|&x| x as f64).collect()),
        TensorData::Bytes(v) => Values::Strings(
            v.iter()
                .map(|b| String::from_utf8(b.clone()).unwrap())
                .collect(),
        ),
        other => panic!(
            "output {} has unexpected datatype {}",
            t.name,
            other.datatype()
        ),
    }
}

/// The first `rows` rows of recorded values.
fn recorded(data: &Value, full: &[usize], rows: usize) -> Values {
    let items = data.as_array().unwrap();
    if items.first().is_some_and(Value::is_string) {
        let v: Vec<String> = items
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect();
        Values::Strings(head(&v, full, rows))
    } else {
        Values::Numbers(head(&floats(data), full, rows))
    }
}

/// Loads case `name`, checks its metadata, and compares its outputs with
/// onnxruntime's (labels exactly, floats within 1e-5 relative) and
/// scikit-learn's at batch sizes 1, 7 and 64, sending the inputs as FP32
/// and, at batch 7, as FP64 (what JSON clients send).
fn check(name: &str, batchable: bool) {
    check_with(name, batchable, None, 1e-5);
}

/// [`check`] for a linear export, which the linear path must take: floats
/// within 1e-6 of onnxruntime (relative above 1).
fn check_linear(name: &str) {
    check_with(name, true, Some(Engine::Linear), 1e-6);
}

fn check_with(name: &str, batchable: bool, engine: Option<Engine>, tolerance: f64) {
    let case = fixture().manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    let model = load(case["file"].as_str().unwrap());
    let meta = model.metadata();
    assert_eq!(meta.platform, "onnx_onnxv1");
    assert_eq!(model.batchable(), batchable, "{name}: batchable");
    if let Some(engine) = engine {
        assert_eq!(model.engine(), engine, "{name}: engine");
    }
    let expected = case["onnxruntime"].as_object().unwrap();
    assert_eq!(
        meta.outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        expected.keys().map(String::as_str).collect::<Vec<_>>(),
        "{name}: output names"
    );
    for (o, (_, e)) in meta.outputs.iter().zip(expected) {
        let want = match e["dtype"].as_str() {
            Some("int64") => DataType::Int64,
            Some("string") => DataType::Bytes,
            _ => DataType::Fp32,
        };
        assert_eq!(o.datatype, want, "{name}: {} datatype", o.name);
        let mut s: Vec<i64> = shape(e).iter().map(|&d| d as i64).collect();
        s[0] = -1;
        assert_eq!(o.shape, s, "{name}: {} shape", o.name);
    }
    for i in &meta.inputs {
        assert_eq!(
            i.shape[0], -1,
            "{name}: {} is variable in its first dimension",
            i.name
        );
    }
    let rows_total = fixture().manifest["rows"].as_u64().unwrap() as usize;
    for rows in [1, 7, rows_total] {
        let inputs: Vec<Tensor> = case["inputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(input, v)| {
                let full = shape(v);
                let data = head(&floats(&v["data"]), &full, rows);
                let mut s = full.clone();
                s[0] = rows;
                let spec = meta.inputs.iter().find(|i| &i.name == input).unwrap();
                let data = match (spec.datatype, rows == 7) {
                    (DataType::Int64, _) => {
                        TensorData::Int64(data.iter().map(|&x| x as i64).collect())
                    }
                    (_, true) => TensorData::Fp64(data),
                    (_, false) => TensorData::Fp32(data.iter().map(|&x| x as f32).collect()),
                };
                Tensor::new(input.clone(), s, data).unwrap()
            })
            .collect();
        let outputs =
            infer(&model, inputs).unwrap_or_else(|e| panic!("{name} at {rows} rows: {e}"));
        assert_eq!(outputs.len(), expected.len());
        for (out, (oname, e)) in outputs.iter().zip(expected) {
            assert_eq!(&out.name, oname);
            let full = shape(e);
            let mut s = full.clone();
            s[0] = rows;
            assert_eq!(out.shape, s, "{name}: {oname} at {rows} rows");
            let got = values(out);
            // Labels exactly; floats within `tolerance` of onnxruntime
            // (which also computes in float32) and 1e-4 of scikit-learn
            // (float64).
            let exact = e["dtype"] != "float32";
            compare(
                &format!("{name}: {oname} vs onnxruntime at {rows} rows"),
                &got,
                &recorded(&e["data"], &full, rows),
                exact,
                tolerance,
            );
            if let Some(sk) = case["sklearn"].get(oname) {
                compare(
                    &format!("{name}: {oname} vs scikit-learn at {rows} rows"),
                    &got,
                    &recorded(sk, &full, rows),
                    exact,
                    1e-4,
                );
            }
        }
    }
}

fn compare(what: &str, got: &Values, want: &Values, exact: bool, tolerance: f64) {
    let (got, want) = match (got, want) {
        (Values::Numbers(g), Values::Numbers(w)) => (g, w),
        _ => return assert_eq!(got, want, "{what}"),
    };
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = if exact {
            g == w
        } else {
            (g - w).abs() <= tolerance * w.abs().max(1.0)
        };
        assert!(ok, "{what}: element {i}: got {g}, expected {w}");
    }
}

#[test]
fn logistic_regression() {
    check_linear("logreg");
    check_linear("logreg_ovr");
}

#[test]
fn logistic_regression_with_zipmap_serves_the_probability_tensor() {
    check_linear("logreg_zipmap");
    check_linear("logreg_binary_zipmap_ints");
}

#[test]
fn string_class_labels() {
    check_linear("logreg_strings");
    check_linear("logreg_strings_zipmap");
    check_linear("logreg_binary_strings");
    check_linear("logreg_binary_strings_zipmap");
    check("rf_strings", true);
}

#[test]
fn binary_logistic_regression() {
    check_linear("logreg_binary");
}

#[test]
fn linear_classifiers_scikit_learn_does_not_export() {
    // One model for two classes, under each post-transform, and
    // SOFTMAX_ZERO (which tract lacks): onnxruntime's answers.
    for post in ["none", "logistic", "softmax", "softmax_zero"] {
        check_linear(&format!("linear_one_model_{post}"));
    }
    check_linear("linear_one_model_strings");
    check_linear("linear_softmax_zero");
}

#[test]
fn ridge_classifier_scores() {
    check_linear("ridge_classifier");
}

#[test]
fn integer_features() {
    check_linear("logreg_int64");
}

#[test]
fn random_forest_classifier() {
    check("rf", true);
}

#[test]
fn random_forest_classifier_with_zipmap() {
    check("rf_zipmap", true);
}

#[test]
fn binary_random_forest_classifier() {
    check("rf_binary", true);
}

#[test]
fn gradient_boosting_classifier() {
    check("gb_classifier", true);
}

#[test]
fn binary_gradient_boosting_classifier() {
    check("gb_binary", true);
}

#[test]
fn mlp_classifier() {
    check("mlp", true);
}

#[test]
fn scaler_and_logistic_regression_pipeline() {
    check_linear("pipeline");
    check_linear("pipeline_binary");
    check_linear("pipeline_strings");
    check_linear("pipeline_strings_zipmap");
}

#[test]
fn linear_regressor() {
    // Scores are sums of 20 products: 1e-6 relative to the larger of the
    // value and 1 (onnxruntime's GEMM sums in another order).
    check_linear("linear_regressor");
    check_linear("ridge");
    check_linear("ridge_two_targets");
}

#[test]
fn random_forest_regressor() {
    check("rf_regressor", true);
}

#[test]
fn gradient_boosting_regressor() {
    check("gb_regressor", true);
}

#[test]
fn tree_node_modes_missing_values_and_aggregates() {
    for aggregate in ["sum", "average", "min", "max"] {
        check(&format!("trees_{aggregate}"), true);
    }
}

#[test]
fn plain_network_with_named_batch_dimension() {
    check("dense", true);
}

#[test]
fn two_inputs_of_different_types() {
    check("two_inputs", true);
}

// Errors

fn dense_input(name: &str, shape: Vec<usize>) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(name, shape, TensorData::Fp32(vec![0.5; n])).unwrap()
}

/// Runs `inputs` on `file` and checks that the answer is a 400 containing
/// every fragment of `expected`.
fn check_invalid(file: &str, inputs: Vec<Tensor>, expected: &[&str]) {
    let model = load(file);
    let err = infer(&model, inputs).unwrap_err();
    assert_eq!(err.http_status(), 400, "{err}");
    let msg = err.to_string();
    for e in expected {
        assert!(msg.contains(e), "{file}: {msg:?} lacks {e:?}");
    }
}

#[test]
fn wrong_shapes_are_client_errors_naming_the_input() {
    check_invalid(
        "dense.onnx",
        vec![dense_input("x", vec![3, 19])],
        &["input x has shape [3, 19]", "expects [-1, 20]"],
    );
    check_invalid(
        "dense.onnx",
        vec![dense_input("x", vec![20])],
        &["input x has shape [20]", "[-1, 20]"],
    );
    check_invalid(
        "dense.onnx",
        vec![dense_input("x", vec![1, 1, 20])],
        &["[1, 1, 20]"],
    );
    check_invalid(
        "fixed.onnx",
        vec![dense_input("x", vec![3, 4])],
        &["expects [2, 4]"],
    );
    check_invalid(
        "two_inputs.onnx",
        vec![
            dense_input("a", vec![2, 3]),
            Tensor::new("b", vec![3, 3], TensorData::Int64(vec![1; 9])).unwrap(),
        ],
        &["inputs a and b must agree on dimension N: 2 != 3"],
    );
}

#[test]
fn wrong_datatypes_are_client_errors() {
    let bytes = Tensor::new("x", vec![1, 20], TensorData::Bytes(vec![b"1".to_vec(); 20])).unwrap();
    check_invalid(
        "dense.onnx",
        vec![bytes],
        &["input x (BYTES)", "cannot be converted to the model's FP32"],
    );
    let fractional = Tensor::new("b", vec![1, 3], TensorData::Fp64(vec![1.0, 2.5, 3.0])).unwrap();
    check_invalid(
        "two_inputs.onnx",
        vec![dense_input("a", vec![1, 3]), fractional],
        &["input b (FP64)", "element 1 (2.5) is not an integer"],
    );
}

#[test]
fn input_names_are_matched_unless_there_is_only_one() {
    // One input, one tensor: any name is accepted.
    let model = load("dense.onnx");
    let out = infer(&model, vec![dense_input("input-0", vec![2, 20])]).unwrap();
    assert_eq!(out[0].shape, vec![2, 8]);
    // One input, two tensors: names matter.
    check_invalid(
        "dense.onnx",
        vec![dense_input("x", vec![1, 20]), dense_input("z", vec![1, 20])],
        &[
            "model dense has no input named z",
            "its inputs are x (FP32 [-1, 20])",
        ],
    );
    check_invalid(
        "two_inputs.onnx",
        vec![dense_input("a", vec![1, 3]), dense_input("c", vec![1, 3])],
        &["no input named c", "a (FP32 [-1, 3]), b (INT64 [-1, 3])"],
    );
    check_invalid(
        "two_inputs.onnx",
        vec![dense_input("a", vec![1, 3])],
        &["input b is missing"],
    );
    check_invalid(
        "two_inputs.onnx",
        vec![dense_input("a", vec![1, 3]), dense_input("a", vec![1, 3])],
        &["input a is given twice"],
    );
}

#[test]
fn fixed_batch_models_are_not_batchable_and_report_their_shape() {
    let model = load("fixed.onnx");
    assert!(!model.batchable());
    assert_eq!(model.max_batch_size(), None);
    assert_eq!(model.metadata().inputs[0].shape, vec![2, 4]);
    let out = infer(&model, vec![dense_input("x", vec![2, 4])]).unwrap();
    assert_eq!(out[0].data, TensorData::Fp32(vec![0.5; 8]));
}

#[test]
fn max_batch_size_limits_rows() {
    let path = fixture().dir.join("dense.onnx");
    let options = OnnxOptions {
        max_batch_size: Some(4),
    };
    let model = OnnxModel::load("dense", &path, &options).unwrap();
    assert_eq!(model.max_batch_size(), Some(4));
    assert!(infer(&model, vec![dense_input("x", vec![4, 20])]).is_ok());
    let err = infer(&model, vec![dense_input("x", vec![5, 20])]).unwrap_err();
    assert!(
        err.to_string()
            .contains("has 5 rows but model dense accepts at most 4"),
        "{err}"
    );
}

#[test]
fn a_failed_request_leaves_the_model_usable() {
    let model = load("two_inputs.onnx");
    let ok = || {
        infer(
            &model,
            vec![
                dense_input("a", vec![2, 3]),
                Tensor::new("b", vec![2, 3], TensorData::Int64(vec![2; 6])).unwrap(),
            ],
        )
    };
    assert_eq!(ok().unwrap()[0].data, TensorData::Fp32(vec![1.0; 6]));
    assert!(infer(&model, vec![dense_input("a", vec![2, 3])]).is_err());
    assert_eq!(ok().unwrap()[0].data, TensorData::Fp32(vec![1.0; 6]));
}

#[test]
fn concurrent_requests_get_their_own_answers() {
    let model = load("rf.onnx");
    let request = |rows: usize| {
        let data = (0..rows * 20).map(|i| (i % 11) as f32 - 5.0).collect();
        vec![Tensor::new("input", vec![rows, 20], TensorData::Fp32(data)).unwrap()]
    };
    let expected: Vec<_> = (1..=8)
        .map(|rows| infer(&model, request(rows)).unwrap())
        .collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (model, expected) = (&model, &expected);
            s.spawn(move || {
                for i in 0..40 {
                    let rows = (i + t) % 8 + 1;
                    assert_eq!(infer(model, request(rows)).unwrap(), expected[rows - 1]);
                }
            });
        }
    });
}

#[test]
fn empty_batches_answer_empty_outputs() {
    for (file, input) in [
        ("dense.onnx", "x"),
        ("rf.onnx", "input"),
        ("logreg.onnx", "input"),
    ] {
        let model = load(file);
        let out = infer(&model, vec![dense_input(input, vec![0, 20])])
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for (o, meta) in out.iter().zip(&model.metadata().outputs) {
            assert_eq!(o.shape[0], 0, "{file}: {}", o.name);
            assert!(o.data.is_empty(), "{file}: {}", o.name);
            assert_eq!(o.datatype(), meta.datatype, "{file}: {}", o.name);
        }
    }
}

#[test]
fn a_zipmap_feeding_other_operators_is_refused_with_advice() {
    let path = fixture().dir.join("zipmap_inner.onnx");
    let err = OnnxModel::load("zip", &path, &OnnxOptions::default()).unwrap_err();
    assert!(matches!(err, OnnxError::Unsupported { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("node 'zip' (ZipMap) feeds other operators"),
        "{msg}"
    );
    assert!(msg.contains("options={'zipmap': False}"), "{msg}");
}

#[test]
fn unsupported_operators_are_named_at_load() {
    let path = fixture().dir.join("imputer.onnx");
    let err = OnnxModel::load("imputer", &path, &OnnxOptions::default()).unwrap_err();
    assert!(
        matches!(err, OnnxError::UnsupportedOperators { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("ai.onnx.ml.Imputer (node 'impute')"),
        "{err}"
    );
}

#[test]
fn garbage_and_truncated_files_are_load_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = OnnxModel::load(
        "m",
        &dir.path().join("missing.onnx"),
        &OnnxOptions::default(),
    );
    assert!(matches!(missing, Err(OnnxError::Io { .. })), "{missing:?}");
    let rf = std::fs::read(fixture().dir.join("rf.onnx")).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"this is not a model\n".to_vec()),
        ("json", br#"{"model": 1}"#.to_vec()),
        ("zeros", vec![0; 4096]),
    ];
    // Pseudo-random bytes (a fixed xorshift sequence).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    cases.push((
        "noise",
        (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect(),
    ));
    for cut in [1, 10, 100, 1000, rf.len() / 2, rf.len() - 1] {
        cases.push(("truncated", rf[..cut].to_vec()));
    }
    for (what, bytes) in cases {
        let err = OnnxModel::from_bytes("m", &bytes, &OnnxOptions::default())
            .expect_err(&format!("{what} ({} bytes) loaded", bytes.len()));
        assert!(err.to_string().starts_with("model m "), "{what}: {err}");
    }
}
