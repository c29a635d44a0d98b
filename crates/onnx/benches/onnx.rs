//! Per-call latency of `Model::infer` on the scikit-learn exports of the
//! integration tests: `cargo bench -p oxflow-onnx` (with OXFLOW_TEST_PYTHON
//! pointing at the test venv, which generates the models). Prints µs/call
//! for 1 and 64 rows, single-threaded and with every core calling at once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::FutureExt;
use oxflow_inference::{InferRequest, Model, Tensor, TensorData};
use oxflow_onnx::{OnnxModel, OnnxOptions};

const FEATURES: usize = 20;

fn main() {
    let python = std::env::var_os("OXFLOW_TEST_PYTHON")
        .map(PathBuf::from)
        .expect(
            "OXFLOW_TEST_PYTHON must point at a Python with scikit-learn, skl2onnx and onnxruntime",
        );
    let dir = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models/generate.py");
    let status = std::process::Command::new(python)
        .arg(&script)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "generate.py failed");

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{:<14} {:>5} {:>12} {:>22}",
        "model",
        "rows",
        "µs/call",
        format!("µs/call ({threads} threads)")
    );
    for name in ["logreg", "rf", "mlp", "gb_regressor"] {
        let started = Instant::now();
        let model = OnnxModel::load(
            name,
            &dir.path().join(format!("{name}.onnx")),
            &OnnxOptions::default(),
        )
        .unwrap();
        println!(
            "{name}: loaded in {} ms, engine {:?}",
            started.elapsed().as_millis(),
            model.engine()
        );
        for rows in [1, 64] {
            let single = per_call(&model, rows, 1);
            let parallel = per_call(&model, rows, threads);
            println!("{name:<14} {rows:>5} {single:>12.1} {parallel:>22.1}");
        }
    }
}

/// Mean wall time per call, with `threads` threads calling concurrently for
/// about half a second after a warm-up.
fn per_call(model: &OnnxModel, rows: usize, threads: usize) -> f64 {
    let request = || InferRequest {
        inputs: vec![
            Tensor::new(
                "input",
                vec![rows, FEATURES],
                TensorData::Fp32((0..rows * FEATURES).map(|i| (i % 7) as f32 - 3.0).collect()),
            )
            .unwrap(),
        ],
        ..Default::default()
    };
    let call = || model.infer(request()).now_or_never().unwrap().unwrap();
    for _ in 0..50 {
        call();
    }
    let budget = Duration::from_millis(500);
    let started = Instant::now();
    let (calls, elapsed) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while started.elapsed() < budget {
                        call();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let calls: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        (calls, started.elapsed())
    });
    elapsed.as_secs_f64() * 1e6 * threads as f64 / calls as f64
}
