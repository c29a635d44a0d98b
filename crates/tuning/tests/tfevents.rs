//! The TensorFlowEvent collector against event files written by TensorBoard's
//! own writer (the `tensorboard` wheel in the test venv): TF1-style
//! `simple_value` scalars and TF2-style scalar tensors, in `train/` and
//! `test/` directories as Katib's TFJob example lays them out.

use std::path::{Path, PathBuf};
use std::process::Command;

use oxflow_core::Timestamp;
use oxflow_tuning::metrics::{read_event_dir, read_event_file};

/// The test venv's Python (the test command sets OXFLOW_TEST_PYTHON).
fn python() -> PathBuf {
    let p = std::env::var_os("OXFLOW_TEST_PYTHON").map(PathBuf::from).expect(
        "OXFLOW_TEST_PYTHON must point at a Python with tensorboard installed; run the tests through scripts/test",
    );
    assert!(
        p.exists(),
        "OXFLOW_TEST_PYTHON={} does not exist",
        p.display()
    );
    p
}

const WRITER: &str = r#"
import os, sys
import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.scalar import summary_v2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

root = sys.argv[1]
T0 = 1700000000.0

def write(sub, events):
    w = EventFileWriter(os.path.join(root, sub))
    for e in events:
        w.add_event(e)
    w.close()

# TF1: simple_value scalars.
train = []
for step, (loss, acc) in enumerate([(0.9, 0.5), (0.6, 0.7), (0.4, 0.8)]):
    s = summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag="loss", simple_value=loss),
        summary_pb2.Summary.Value(tag="accuracy", simple_value=acc),
    ])
    train.append(event_pb2.Event(wall_time=T0 + step, step=step, summary=s))
write("train", train)

# TF2: tf.summary.scalar writes rank-0 tensors. summary_v2.scalar_pb is
# TensorBoard's own builder (float_val); TensorFlow's C++ writer stores the
# bytes in tensor_content instead; doubles and integers for good measure.
def tensor_event(step, tag, tensor):
    s = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor)])
    return event_pb2.Event(wall_time=T0 + 10 + step, step=step, summary=s)

content = tensor_pb2.TensorProto(
    dtype=types_pb2.DT_FLOAT,
    tensor_shape=tensor_shape_pb2.TensorShapeProto(),
    tensor_content=np.float32(0.875).tobytes(),
)
test = [
    event_pb2.Event(wall_time=T0 + 10, step=0, summary=summary_v2.scalar_pb("accuracy", 0.55)),
    tensor_event(1, "accuracy", content),
    tensor_event(2, "accuracy", tensor_util.make_tensor_proto(np.float64(0.9375))),
    tensor_event(2, "loss", tensor_util.make_tensor_proto(np.int64(7))),
    # Not a scalar: skipped.
    tensor_event(3, "accuracy", tensor_util.make_tensor_proto(np.array([0.1, 0.2], dtype=np.float32))),
]
write("test", test)
"#;

fn write_events(root: &Path) {
    let script = root.join("write_events.py");
    std::fs::write(&script, WRITER).unwrap();
    let out = Command::new(python())
        .arg(&script)
        .arg(root.join("logs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the event writer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn event_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("tfevents")
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

const T0_MS: i64 = 1_700_000_000_000;

#[test]
fn tensorboard_written_event_files() {
    let tmp = tempfile::tempdir().unwrap();
    write_events(tmp.path());
    let logs_dir = tmp.path().join("logs");

    // Each file on its own, with steps and wall times.
    let train = read_event_file(&event_file(&logs_dir.join("train"))).unwrap();
    assert!(!train.truncated);
    let got: Vec<(i64, &str, &str, f64)> = train
        .scalars
        .iter()
        .map(|s| (s.step, s.tag.as_str(), s.value.as_str(), s.wall_time))
        .collect();
    assert_eq!(
        got,
        [
            (0, "loss", "0.9", 1.7e9),
            (0, "accuracy", "0.5", 1.7e9),
            (1, "loss", "0.6", 1.7e9 + 1.0),
            (1, "accuracy", "0.7", 1.7e9 + 1.0),
            (2, "loss", "0.4", 1.7e9 + 2.0),
            (2, "accuracy", "0.8", 1.7e9 + 2.0),
        ]
    );
    let test = read_event_file(&event_file(&logs_dir.join("test"))).unwrap();
    let got: Vec<(i64, &str, &str)> = test
        .scalars
        .iter()
        .map(|s| (s.step, s.tag.as_str(), s.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (0, "accuracy", "0.55"),
            (1, "accuracy", "0.875"),
            (2, "accuracy", "0.9375"),
            (2, "loss", "7"),
        ]
    );

    // Katib's naming over the directory: `test/accuracy` only under test/,
    // a plain `loss` anywhere.
    let names: Vec<String> = ["test/accuracy", "loss"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let logs = read_event_dir(&logs_dir, &names).unwrap();
    let got: Vec<(&str, &str, Option<Timestamp>)> = logs
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str(), l.time))
        .collect();
    let at = |s: i64| Some(Timestamp(T0_MS + s * 1000));
    assert_eq!(
        got,
        [
            ("test/accuracy", "0.55", at(10)),
            ("test/accuracy", "0.875", at(11)),
            ("test/accuracy", "0.9375", at(12)),
            ("loss", "7", at(12)),
            ("loss", "0.9", at(0)),
            ("loss", "0.6", at(1)),
            ("loss", "0.4", at(2)),
        ]
    );
    let names = vec!["train/accuracy".to_owned()];
    let values: Vec<String> = read_event_dir(&logs_dir, &names)
        .unwrap()
        .into_iter()
        .map(|l| l.value)
        .collect();
    assert_eq!(values, ["0.5", "0.7", "0.8"]);
}

#[test]
fn a_file_being_written_is_read_up_to_its_last_complete_record() {
    let tmp = tempfile::tempdir().unwrap();
    write_events(tmp.path());
    let file = event_file(&tmp.path().join("logs/train"));
    let data = std::fs::read(&file).unwrap();
    let whole = read_event_file(&file).unwrap().scalars.len();

    std::fs::write(&file, &data[..data.len() - 3]).unwrap();
    let cut = read_event_file(&file).unwrap();
    assert!(cut.truncated);
    assert_eq!(
        cut.scalars.len(),
        whole - 2,
        "the last event held two scalars"
    );

    // A flipped bit inside a record is corruption, reported with the file.
    let mut bad = data.clone();
    let at = data.len() - 10;
    bad[at] ^= 0x10;
    std::fs::write(&file, &bad).unwrap();
    let err = read_event_file(&file).unwrap_err().to_string();
    assert!(err.contains("corrupt at byte"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
}
