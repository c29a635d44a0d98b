//! Prediction speed of 100-tree, depth-6 binary models (XGBoost JSON and
//! LightGBM text, generated here with random splits over 20 features):
//! nanoseconds per row for batches of 1, 64 and 1024 rows.
//!
//! `cargo bench -p oxflow-trees` (a plain timing loop, no harness).

use std::hint::black_box;
use std::time::{Duration, Instant};

use oxflow_trees::TreeModel;

const TREES: usize = 100;
const DEPTH: u32 = 6;
const FEATURES: usize = 20;

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn join<T: ToString>(v: impl IntoIterator<Item = T>, sep: &str) -> String {
    v.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Complete trees of depth 6 in XGBoost's numbering (children of i at 2i+1, 2i+2).
fn xgboost_model(rng: &mut Rng) -> String {
    let internal = (1 << DEPTH) - 1;
    let nodes = (1 << (DEPTH + 1)) - 1;
    let mut trees = Vec::new();
    for id in 0..TREES {
        let mut left = Vec::new();
        let mut right = Vec::new();
        let mut feature = Vec::new();
        let mut cond = Vec::new();
        let mut default_left = Vec::new();
        for i in 0..nodes {
            if i < internal {
                left.push(2 * i as i64 + 1);
                right.push(2 * i as i64 + 2);
                feature.push(rng.below(FEATURES));
                cond.push(rng.unit());
            } else {
                left.push(-1);
                right.push(-1);
                feature.push(0);
                cond.push(rng.unit() * 0.1);
            }
            default_left.push(rng.below(2));
        }
        trees.push(format!(
            r#"{{"id": {id}, "tree_param": {{"num_deleted": "0", "num_feature": "{FEATURES}", "num_nodes": "{nodes}", "size_leaf_vector": "1"}},
            "left_children": [{}], "right_children": [{}], "split_indices": [{}], "split_conditions": [{}],
            "default_left": [{}]}}"#,
            join(left, ","),
            join(right, ","),
            join(feature, ","),
            join(cond, ","),
            join(default_left, ",")
        ));
    }
    format!(
        r#"{{"learner": {{"gradient_booster": {{"name": "gbtree", "model": {{
        "gbtree_model_param": {{"num_parallel_tree": "1", "num_trees": "{TREES}"}},
        "tree_info": [{}], "trees": [{}]}}}},
        "learner_model_param": {{"base_score": "[5E-1]", "num_class": "0", "num_feature": "{FEATURES}", "num_target": "1"}},
        "objective": {{"name": "binary:logistic"}}}}, "version": [3, 2, 0]}}"#,
        join(vec![0; TREES], ","),
        trees.join(",")
    )
}

/// The same shape in LightGBM's numbering (internal nodes first, leaves as `~index`).
fn lightgbm_model(rng: &mut Rng) -> String {
    let internal = (1usize << DEPTH) - 1;
    let leaves = 1usize << DEPTH;
    let mut out = format!(
        "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
         max_feature_idx={}\nobjective=binary sigmoid:1\nfeature_names={}\nfeature_infos={}\n\n",
        FEATURES - 1,
        join((0..FEATURES).map(|f| format!("f{f}")), " "),
        join((0..FEATURES).map(|_| "[-1:1]"), " ")
    );
    for t in 0..TREES {
        // Heap numbering: children of i are 2i+1 and 2i+2; those >= internal are leaves.
        let child = |c: usize| -> i64 {
            if c < internal {
                c as i64
            } else {
                !((c - internal) as i64)
            }
        };
        out += &format!(
            "Tree={t}\nnum_leaves={leaves}\nnum_cat=0\nsplit_feature={}\nthreshold={}\n\
             decision_type={}\nleft_child={}\nright_child={}\nleaf_value={}\nshrinkage=1\n\n\n",
            join((0..internal).map(|_| rng.below(FEATURES)), " "),
            join((0..internal).map(|_| rng.unit()), " "),
            join((0..internal).map(|_| 8 + 2 * rng.below(2)), " "),
            join((0..internal).map(|i| child(2 * i + 1)), " "),
            join((0..internal).map(|i| child(2 * i + 2)), " "),
            join((0..leaves).map(|_| rng.unit() * 0.1), " "),
        );
    }
    out + "end of trees\n"
}

/// This thread's time on a CPU in nanoseconds, from Linux's schedstat (None elsewhere).
/// The machine this runs on is shared, so wall time alone overstates the cost.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `f` repeatedly for about `budget`; returns wall and on-CPU nanoseconds per call.
fn time(budget: Duration, mut f: impl FnMut()) -> (f64, Option<f64>) {
    for _ in 0..10 {
        f();
    }
    let mut calls = 0u64;
    let cpu0 = cpu_ns();
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        calls += 16;
    }
    let wall = start.elapsed().as_nanos() as f64 / calls as f64;
    let cpu = cpu0
        .zip(cpu_ns())
        .map(|(a, b)| (b - a) as f64 / calls as f64);
    (wall, cpu)
}

fn main() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let models = [
        (
            "xgboost",
            TreeModel::from_bytes(xgboost_model(&mut rng).as_bytes()),
        ),
        (
            "lightgbm",
            TreeModel::from_bytes(lightgbm_model(&mut rng).as_bytes()),
        ),
    ];
    let x: Vec<f32> = (0..1024 * FEATURES)
        .map(|i| if i % 17 == 0 { f32::NAN } else { rng.unit() })
        .collect();
    println!("{TREES} trees of depth {DEPTH}, {FEATURES} features, binary objective");
    for (name, model) in models {
        let model = model.expect("the generated model loads");
        for rows in [1usize, 64, 1024] {
            let input = &x[..rows * FEATURES];
            let (wall, cpu) = time(Duration::from_millis(500), || {
                black_box(model.predict(black_box(input), rows).expect("predicts"));
            });
            let cpu = cpu.map_or(String::new(), |c| {
                format!(", {:>6.0} ns/row on CPU", c / rows as f64)
            });
            println!(
                "{name:>8} predict, {rows:>4} rows per call: {:>6.0} ns/row{cpu}",
                wall / rows as f64
            );
        }
    }
}
