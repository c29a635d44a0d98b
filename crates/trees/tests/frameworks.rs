//! oxflow-trees against the real libraries: `tests/python/make_models.py`
//! trains XGBoost and LightGBM models on generated data (with NaNs,
//! categorical features and rows on the split thresholds), saves them, and
//! writes the libraries' own predictions, margins and scikit-learn labels;
//! every case must come out the same here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use oxflow_trees::{Task, TreeModel};
use serde_json::Value;

/// The test venv's Python (the test command sets OXFLOW_TEST_PYTHON).
fn python() -> PathBuf {
    let p = std::env::var_os("OXFLOW_TEST_PYTHON").map(PathBuf::from).expect(
        "OXFLOW_TEST_PYTHON must point at a Python with xgboost, lightgbm and scikit-learn installed; \
         run the tests through scripts/test",
    );
    assert!(
        p.exists(),
        "OXFLOW_TEST_PYTHON={} does not exist",
        p.display()
    );
    p
}

/// Trains the models once per test binary and returns the directory with the manifest.
fn models() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("trees-models");
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/make_models.py");
        let out = Command::new(python())
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("run the Python interpreter");
        assert!(
            out.status.success(),
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(models().join("manifest.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn read<T, const N: usize>(name: &str, from: fn([u8; N]) -> T) -> Vec<T> {
    let bytes = std::fs::read(models().join(name)).unwrap();
    bytes
        .chunks_exact(N)
        .map(|c| from(c.try_into().unwrap()))
        .collect()
}

fn task_of(s: &str) -> Task {
    match s.split_once(':') {
        Some(("multiclass", k)) => Task::MultiClass {
            classes: k.parse().unwrap(),
        },
        Some(("multilabel", k)) => Task::MultiLabel {
            labels: k.parse().unwrap(),
        },
        _ => match s {
            "regression" => Task::Regression,
            "binary" => Task::BinaryClassification,
            "ranking" => Task::Ranking,
            "survival" => Task::Survival,
            other => panic!("unknown task {other}"),
        },
    }
}

/// How close two values must be, and how they compared.
#[derive(Default)]
struct Stats {
    values: usize,
    exact: usize,
    max_rel: f64,
}

/// Compares `got` with `want`; `rel` is the relative tolerance. Returns failure messages.
fn compare(
    what: &str,
    got: &[f64],
    want: &[f64],
    cols: usize,
    rel: f64,
    stats: &mut Stats,
) -> Vec<String> {
    let mut failures = Vec::new();
    if got.len() != want.len() {
        return vec![format!(
            "{what}: {} values, expected {}",
            got.len(),
            want.len()
        )];
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        stats.values += 1;
        if g == w || (g.is_nan() && w.is_nan()) {
            stats.exact += 1;
            continue;
        }
        let err = (g - w).abs() / w.abs().max(1e-30);
        stats.max_rel = stats.max_rel.max(err);
        // Values that cancel to near zero are compared on the scale of 1.
        if (g - w).abs() > rel * w.abs().max(1.0) && failures.len() < 5 {
            failures.push(format!(
                "{what} row {} col {}: got {g:e}, expected {w:e}",
                i / cols,
                i % cols
            ));
        }
    }
    failures
}

fn expect(failures: &mut Vec<String>, file: &str, ok: bool, msg: String) {
    if !ok {
        failures.push(format!("{file}: {msg}"));
    }
}

/// Checks every case of one framework and panics with all failures.
fn check_framework(framework: &str, rel: f64) {
    let mut failures = Vec::new();
    let mut stats = Stats::default();
    let mut checked = 0;
    for case in manifest().iter().filter(|c| c["framework"] == framework) {
        let name = case["name"].as_str().unwrap();
        let rows = case["rows"].as_u64().unwrap() as usize;
        let cols = case["cols"].as_u64().unwrap() as usize;
        let x: Vec<f32> = read(case["x"].as_str().unwrap(), f32::from_le_bytes);
        let pred: Vec<f64> = read(case["pred"].as_str().unwrap(), f64::from_le_bytes);
        let margin: Vec<f64> = read(case["margin"].as_str().unwrap(), f64::from_le_bytes);
        let labels: Option<Vec<i64>> = case["labels"].as_str().map(|l| read(l, i64::from_le_bytes));
        let pred_cols = case["pred_cols"].as_u64().unwrap() as usize;
        let margin_cols = case["margin_cols"].as_u64().unwrap() as usize;
        let task = task_of(case["task"].as_str().unwrap());
        for file in case["models"].as_array().unwrap() {
            let file = file.as_str().unwrap();
            let model = match TreeModel::load(&models().join(file)) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!("{file}: {e}"));
                    continue;
                }
            };
            checked += 1;
            expect(
                &mut failures,
                file,
                model.framework() == framework,
                format!("framework {}", model.framework()),
            );
            expect(
                &mut failures,
                file,
                model.num_features() == cols,
                format!("num_features {}", model.num_features()),
            );
            expect(
                &mut failures,
                file,
                model.num_outputs() == pred_cols,
                format!("num_outputs {} != {pred_cols}", model.num_outputs()),
            );
            expect(
                &mut failures,
                file,
                model.num_margin_outputs() == margin_cols,
                format!(
                    "num_margin_outputs {} != {margin_cols}",
                    model.num_margin_outputs()
                ),
            );
            expect(
                &mut failures,
                file,
                model.task() == task,
                format!("task {:?} != {task:?}", model.task()),
            );

            let got = model.predict_f64(&x, rows).unwrap();
            failures.extend(compare(
                &format!("{file} predict"),
                &got,
                &pred,
                pred_cols,
                rel,
                &mut stats,
            ));
            let got32 = model.predict(&x, rows).unwrap();
            let want32: Vec<f64> = pred.iter().map(|&v| f64::from(v as f32)).collect();
            let got32: Vec<f64> = got32.into_iter().map(f64::from).collect();
            failures.extend(compare(
                &format!("{file} predict(f32)"),
                &got32,
                &want32,
                pred_cols,
                rel.max(1e-6),
                &mut Stats::default(),
            ));
            // Margins involve no library math functions, only the sums in the libraries'
            // order, so they must be equal to the bit.
            let got = model.predict_margin_f64(&x, rows).unwrap();
            failures.extend(compare(
                &format!("{file} margin"),
                &got,
                &margin,
                margin_cols,
                0.0,
                &mut stats,
            ));

            let got_labels = model.predict_labels(&x, rows).unwrap();
            match (&got_labels, &labels) {
                (Some(g), Some(w)) => {
                    let wrong: Vec<usize> =
                        (0..w.len()).filter(|&i| g.get(i) != Some(&w[i])).collect();
                    expect(
                        &mut failures,
                        file,
                        g.len() == w.len() && wrong.is_empty(),
                        format!(
                            "{} of {} labels differ, first at {:?}",
                            wrong.len(),
                            w.len(),
                            wrong.first()
                        ),
                    );
                }
                (_, None) => {}
                (None, Some(_)) => expect(
                    &mut failures,
                    file,
                    false,
                    "no labels, but the library predicts labels".into(),
                ),
            }
        }
        let _ = name;
    }
    eprintln!(
        "{framework}: {checked} model files, {} values, {} exactly equal, largest relative difference {:e}",
        stats.values, stats.exact, stats.max_rel
    );
    assert!(checked > 0, "no {framework} cases");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn xgboost_models_predict_like_xgboost() {
    check_framework("xgboost", 1e-6);
}

#[test]
fn lightgbm_models_predict_like_lightgbm() {
    check_framework("lightgbm", 1e-12);
}

/// Truncated and mutated copies of real model files give errors or working models, never a panic.
#[test]
fn damaged_model_files_never_panic() {
    let wanted = [
        "xgb_categorical_partition.json",
        "xgb_categorical_partition.ubj",
        "xgb_multi_output_tree.ubj",
        "xgb_dart_multiclass.json",
        "xgb_gblinear_multiclass.ubj",
        "lgb_categorical.txt",
        "lgb_linear_tree.txt",
    ];
    let _ = manifest();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64*: deterministic, no dependency.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for name in wanted {
        let original = std::fs::read(models().join(name)).unwrap();
        let good = TreeModel::from_bytes(&original).unwrap();
        let nf = good.num_features();
        let probe: Vec<f32> = [f32::NAN, 0.0, 1.0, -1.0, 3.0, 1e30]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, nf))
            .collect();
        let try_bytes = |bytes: &[u8]| {
            if let Ok(m) = TreeModel::from_bytes(bytes) {
                let rows = probe.len() / nf;
                if m.num_features() == nf {
                    let _ = m.predict(&probe, rows);
                    let _ = m.predict_labels(&probe, rows);
                }
                let _ = m.predict(&[0.0; 3], 1);
            }
        };
        for k in 0..60 {
            let cut = original.len() * k / 60;
            try_bytes(&original[..cut]);
        }
        for _ in 0..150 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = match next() % 4 {
                    0 => next() as u8,
                    1 => bytes[at] ^ (1 << (next() % 8)),
                    2 => {
                        let special = b"-0123456789[]{}\"=. \n,NLl$#";
                        special[next() as usize % special.len()]
                    }
                    _ => 0xff,
                };
            }
            try_bytes(&bytes);
        }
    }
}

#[test]
fn wrong_inputs_are_refused_with_the_feature_counts() {
    let case = manifest()
        .into_iter()
        .find(|c| c["name"] == "xgb_binary_logistic")
        .unwrap();
    let model = TreeModel::load(&models().join("xgb_binary_logistic.json")).unwrap();
    let nf = case["cols"].as_u64().unwrap() as usize;
    let err = model.predict(&vec![0.0; 2 * (nf + 1)], 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "wrong number of features: the model expects {nf} features per row, but the input has {} values for 2 rows ({} features per row)",
            2 * (nf + 1),
            nf + 1
        )
    );
    assert!(model.predict(&[], 0).unwrap().is_empty());
    let err = TreeModel::load(&models().join("no-such-model.json")).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read model file"),
        "{err}"
    );
}
