//! The linear path against tract's plan on the same graphs: hand-built
//! graphs in the shapes skl2onnx writes (and a few it does not), random
//! coefficients and rows, compared bit for bit, metadata included (on
//! machines where tract multiplies matrices with fused multiply-adds:
//! x86-64 with FMA, aarch64). The comparison with onnxruntime is in
//! `tests/models.rs`.

use std::time::Instant;

use futures::FutureExt;
use oxflow_inference::{InferRequest, Model, Tensor, TensorData};
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::Dimension;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
    TypeProto, ValueInfoProto, type_proto,
};

use super::*;
use crate::{Engine, OnnxModel, OnnxOptions};

const FEATURES: usize = 20;

/// A deterministic stream of floats roughly in `-scale..scale`.
struct Rng(u64);

impl Rng {
    fn next(&mut self, scale: f32) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }

    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next(scale)).collect()
    }
}

fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Floats as i32,
        floats: v.to_vec(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Strings as i32,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

fn node(op: &str, input: &str, outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    let ml = !matches!(op, "Identity" | "Cast" | "Mul");
    NodeProto {
        name: format!("{op}_{}", outputs[0]),
        op_type: op.into(),
        domain: if ml {
            "ai.onnx.ml".into()
        } else {
            String::new()
        },
        input: vec![input.into()],
        output: outputs.iter().map(|o| o.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn tensor_type(elem_type: OnnxType, dims: Option<Vec<Option<OnnxDim>>>) -> TypeProto {
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: elem_type as i32,
            shape: dims.map(|dims| TensorShapeProto {
                dim: dims
                    .into_iter()
                    .map(|value| Dimension {
                        value,
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    }
}

/// A model of `nodes` reading `input` (`[None, FEATURES]` of `input_type`)
/// and answering `outputs` (declared without a type, as a stripped ZipMap's
/// output is).
fn model(input_type: OnnxType, nodes: Vec<NodeProto>, outputs: &[&str]) -> ModelProto {
    let graph = GraphProto {
        name: "g".into(),
        node: nodes,
        input: vec![ValueInfoProto {
            name: "input".into(),
            r#type: Some(tensor_type(
                input_type,
                Some(vec![None, Some(OnnxDim::DimValue(FEATURES as i64))]),
            )),
            ..Default::default()
        }],
        output: outputs
            .iter()
            .map(|o| ValueInfoProto {
                name: o.to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 1,
            },
        ],
        graph: Some(graph),
        ..Default::default()
    }
}

fn load(proto: &ModelProto, allow_linear: bool) -> OnnxModel {
    let options = OnnxOptions::default();
    OnnxModel::build_proto(
        "m",
        proto.clone(),
        None,
        &options,
        allow_linear,
        Instant::now(),
    )
    .unwrap_or_else(|e| panic!("allow_linear {allow_linear}: {e}"))
}

fn infer(model: &OnnxModel, input: Tensor) -> Vec<Tensor> {
    let request = InferRequest {
        inputs: vec![input],
        ..Default::default()
    };
    model.infer(request).now_or_never().unwrap().unwrap()
}

/// Bits of floats, so that `-0.0` and `0.0` differ and NaN equals itself.
fn bits(t: &Tensor) -> (String, Vec<usize>, String) {
    let data = match &t.data {
        TensorData::Fp32(v) => format!("{:?}", v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    };
    (t.name.clone(), t.shape.clone(), data)
}

/// Loads `proto` on both paths, checks that the linear path took it and
/// that the metadata and every answer agree bit for bit, at batch sizes 1,
/// 7 and 64 of rows scaled by `scale` (sent as FP32, and as FP64 at 7).
fn check_same(what: &str, proto: ModelProto, scale: f32) {
    check_same_but_ties(what, proto, scale, false)
}

/// [`check_same`]; with `ties`, labels (of `class_ints`, answered with
/// their `[rows, classes]` scores) may differ where tract's post-transformed
/// scores tie: the linear path takes the argmax of the raw scores, as
/// onnxruntime does, and must pick one of the tied classes.
fn check_same_but_ties(what: &str, proto: ModelProto, scale: f32, ties: bool) {
    let native = load(&proto, true);
    let tract = load(&proto, false);
    assert_eq!(native.engine(), Engine::Linear, "{what}");
    assert_eq!(tract.engine(), Engine::Tract, "{what}");
    assert_eq!(native.metadata(), tract.metadata(), "{what}: metadata");
    assert_eq!(native.batchable(), tract.batchable(), "{what}");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ what.len() as u64);
    for rows in [1, 7, 64, 0] {
        let x = rng.vec(rows * FEATURES, scale);
        let data = match (native.metadata().inputs[0].datatype, rows) {
            (DataType::Int64, _) => TensorData::Int64(x.iter().map(|v| v.round() as i64).collect()),
            (_, 7) => TensorData::Fp64(x.iter().map(|&v| v as f64).collect()),
            _ => TensorData::Fp32(x),
        };
        let input = Tensor::new("input", vec![rows, FEATURES], data).unwrap();
        let a = infer(&native, input.clone());
        let b = infer(&tract, input);
        if ties {
            let (TensorData::Int64(la), TensorData::Int64(lb), TensorData::Fp32(p)) =
                (&a[0].data, &b[0].data, &b[1].data)
            else {
                panic!("{what}: labels and scores expected")
            };
            let classes = b[1].shape[1];
            let mut tied = 0;
            for (r, (la, lb)) in la.iter().zip(lb).enumerate() {
                let p = &p[r * classes..][..classes];
                let top = p.iter().copied().fold(f32::MIN, f32::max);
                assert_eq!(p[((la + 1) / 3) as usize], top, "{what}: row {r}");
                tied += usize::from(la != lb);
            }
            assert_eq!(bits(&a[1]), bits(&b[1]), "{what} at {rows} rows");
            if rows == 64 {
                assert!(tied > 0, "{what}: no ties to break");
            }
            continue;
        }
        let a: Vec<_> = a.iter().map(bits).collect();
        let b: Vec<_> = b.iter().map(bits).collect();
        assert_eq!(a, b, "{what} at {rows} rows");
    }
}

/// A `LinearClassifier` of `classes` labels and `models` rows of random
/// coefficients, reading `input`, writing `label` and `scores`.
fn linear_classifier(
    rng: &mut Rng,
    input: &str,
    labels: AttributeProto,
    models: usize,
    post: &str,
) -> NodeProto {
    node(
        "LinearClassifier",
        input,
        &["label", "scores"],
        vec![
            labels,
            floats("coefficients", &rng.vec(models * FEATURES, 1.0)),
            floats("intercepts", &rng.vec(models, 1.0)),
            int("multi_class", i64::from(models > 2)),
            string("post_transform", post),
        ],
    )
}

fn class_ints(n: usize) -> AttributeProto {
    ints(
        "classlabels_ints",
        &(0..n as i64).map(|i| i * 3 - 1).collect::<Vec<_>>(),
    )
}

#[test]
fn scikit_learn_shaped_classifiers_match_tract() {
    let mut rng = Rng(7);
    for classes in [3, 4, 5, 8] {
        // LogisticRegression, multinomial: SOFTMAX, then an L1 Normalizer.
        let proto = model(
            OnnxType::Float,
            vec![
                linear_classifier(&mut rng, "input", class_ints(classes), classes, "SOFTMAX"),
                node(
                    "Normalizer",
                    "scores",
                    &["probabilities"],
                    vec![string("norm", "L1")],
                ),
            ],
            &["label", "probabilities"],
        );
        check_same(&format!("softmax, {classes} classes"), proto, 3.0);
        // One-vs-rest LOGISTIC, and raw scores (RidgeClassifier, LinearSVC).
        for post in ["LOGISTIC", "NONE"] {
            let proto = model(
                OnnxType::Float,
                vec![linear_classifier(
                    &mut rng,
                    "input",
                    class_ints(classes),
                    classes,
                    post,
                )],
                &["label", "scores"],
            );
            check_same(&format!("{post}, {classes} classes"), proto, 3.0);
        }
    }
    // Binary LogisticRegression: two models (the second the first negated
    // in scikit-learn's exports) and LOGISTIC.
    for post in ["LOGISTIC", "NONE", "SOFTMAX"] {
        let proto = model(
            OnnxType::Float,
            vec![linear_classifier(&mut rng, "input", class_ints(2), 2, post)],
            &["label", "scores"],
        );
        check_same(&format!("binary {post}"), proto, 3.0);
    }
    // Large scores: probabilities saturate.
    let proto = model(
        OnnxType::Float,
        vec![linear_classifier(
            &mut rng,
            "input",
            class_ints(2),
            2,
            "LOGISTIC",
        )],
        &["label", "scores"],
    );
    check_same_but_ties("binary LOGISTIC, saturated", proto, 300.0, true);
}

#[test]
fn pipelines_labels_and_casts_match_tract() {
    let mut rng = Rng(11);
    let names = strings("classlabels_strings", &["ant", "bee", "cat"]);
    // StandardScaler → LogisticRegression, ZipMap output stripped, label
    // cast to INT64 as skl2onnx writes it.
    let scaler = node(
        "Scaler",
        "input",
        &["scaled"],
        vec![
            floats("offset", &rng.vec(FEATURES, 2.0)),
            floats("scale", &rng.vec(FEATURES, 1.5)),
        ],
    );
    let proto = model(
        OnnxType::Float,
        vec![
            scaler.clone(),
            linear_classifier(&mut rng, "scaled", class_ints(3), 3, "SOFTMAX"),
            node("Cast", "label", &["output_label"], vec![int("to", 7)]),
            node(
                "Normalizer",
                "scores",
                &["probabilities"],
                vec![string("norm", "L1")],
            ),
            node(
                "ZipMap",
                "probabilities",
                &["output_probability"],
                vec![class_ints(3)],
            ),
        ],
        &["output_label", "output_probability"],
    );
    check_same("scaler, cast and zipmap", proto, 3.0);
    // String labels, multiclass and binary, label through an Identity.
    let proto = model(
        OnnxType::Float,
        vec![
            linear_classifier(&mut rng, "input", names.clone(), 3, "SOFTMAX"),
            node("Identity", "label", &["output_label"], vec![]),
            node(
                "Normalizer",
                "scores",
                &["probabilities"],
                vec![string("norm", "L1")],
            ),
        ],
        &["output_label", "probabilities"],
    );
    check_same("string labels", proto, 3.0);
    let proto = model(
        OnnxType::Float,
        vec![linear_classifier(
            &mut rng,
            "input",
            strings("classlabels_strings", &["no", "yes"]),
            2,
            "LOGISTIC",
        )],
        &["label", "scores"],
    );
    check_same("binary string labels", proto, 3.0);
    // A scaler with one offset and one scale for every column, an L1
    // Normalizer of raw features, and only the label answered.
    let proto = model(
        OnnxType::Float,
        vec![
            node(
                "Scaler",
                "input",
                &["scaled"],
                vec![floats("offset", &[0.5]), floats("scale", &[2.0])],
            ),
            node(
                "Normalizer",
                "scaled",
                &["normed"],
                vec![string("norm", "L1")],
            ),
            linear_classifier(&mut rng, "normed", class_ints(3), 3, "SOFTMAX"),
        ],
        &["label"],
    );
    check_same("broadcast scaler, normalized features", proto, 3.0);
    // Integer features (skl2onnx with Int64TensorType).
    let proto = model(
        OnnxType::Int64,
        vec![linear_classifier(
            &mut rng,
            "input",
            class_ints(3),
            3,
            "SOFTMAX",
        )],
        &["label", "scores"],
    );
    check_same("int64 input", proto, 5.0);
}

#[test]
fn regressors_match_tract() {
    let mut rng = Rng(13);
    for targets in [1, 3] {
        for intercepts in [true, false] {
            let mut attrs = vec![
                floats("coefficients", &rng.vec(targets * FEATURES, 10.0)),
                int("targets", targets as i64),
            ];
            if intercepts {
                attrs.push(floats("intercepts", &rng.vec(targets, 100.0)));
            }
            let proto = model(
                OnnxType::Float,
                vec![node("LinearRegressor", "input", &["variable"], attrs)],
                &["variable"],
            );
            check_same(
                &format!("{targets} targets, intercepts {intercepts}"),
                proto,
                3.0,
            );
        }
    }
}

/// Runs one row on the linear path of `proto`.
fn linear_answer(proto: &ModelProto, row: &[f32]) -> Vec<Tensor> {
    let native = load(proto, true);
    assert_eq!(native.engine(), Engine::Linear);
    let x = Tensor::new("x", vec![1, row.len()], TensorData::Fp32(row.to_vec())).unwrap();
    infer(&native, x)
}

/// A two-feature graph of one `LinearClassifier` with `attrs`.
fn small_classifier(attrs: Vec<AttributeProto>) -> ModelProto {
    let mut proto = model(
        OnnxType::Float,
        vec![node(
            "LinearClassifier",
            "input",
            &["label", "scores"],
            attrs,
        )],
        &["label", "scores"],
    );
    let graph = proto.graph.as_mut().unwrap();
    graph.input[0].r#type = Some(tensor_type(
        OnnxType::Float,
        Some(vec![
            Some(OnnxDim::DimParam("N".into())),
            Some(OnnxDim::DimValue(2)),
        ]),
    ));
    proto
}

#[test]
fn one_binary_model_answers_as_onnxruntime() {
    // score = 0.5 - 2 * 0.1 + 0.25 = 0.55 for row [0.5, 0.1]; onnxruntime
    // 1.32 answers [1 - s, s] (through the logistic for LOGISTIC) and the
    // second label for s > 0.
    let attrs = |post: &str| {
        vec![
            ints("classlabels_ints", &[3, 7]),
            floats("coefficients", &[1.0, -2.0]),
            floats("intercepts", &[0.25]),
            string("post_transform", post),
        ]
    };
    for post in ["NONE", "SOFTMAX", "SOFTMAX_ZERO"] {
        let out = linear_answer(&small_classifier(attrs(post)), &[0.5, 0.1]);
        assert_eq!(out[0].data, TensorData::Int64(vec![7]), "{post}");
        let s = 0.55f32;
        assert_eq!(out[1].data, TensorData::Fp32(vec![1.0 - s, s]), "{post}");
        assert_eq!(out[1].shape, vec![1, 2]);
        let out = linear_answer(&small_classifier(attrs(post)), &[-1.0, 0.3]);
        assert_eq!(out[0].data, TensorData::Int64(vec![3]), "{post}");
    }
    let out = linear_answer(&small_classifier(attrs("LOGISTIC")), &[0.5, 0.1]);
    let TensorData::Fp32(p) = &out[1].data else {
        panic!("{out:?}")
    };
    assert!(
        (p[1] - 0.634_135_6).abs() < 1e-6 && p[0] == 1.0 - p[1],
        "{p:?}"
    );
    // The batch dimension keeps its name on the wire (-1) and in metadata.
    let meta = load(&small_classifier(attrs("NONE")), true)
        .metadata()
        .clone();
    assert_eq!(meta.inputs[0].shape, vec![-1, 2]);
    assert_eq!(meta.outputs[1].shape, vec![-1, 2]);
}

#[test]
fn softmax_zero_leaves_zero_scores_at_zero() {
    // onnxruntime's ComputeSoftmaxZero: scores within 1e-7 of zero are
    // multiplied by exp(-max) instead of exponentiated.
    let proto = small_classifier(vec![
        ints("classlabels_ints", &[1, 2, 3]),
        floats("coefficients", &[1.0, 0.0, 0.0, 0.0, 0.0, -1.0]),
        floats("intercepts", &[0.0, 0.0, 0.0]),
        string("post_transform", "SOFTMAX_ZERO"),
    ]);
    let out = linear_answer(&proto, &[1.0, 2.0]);
    let (e1, e3) = (0f32.exp(), (-2f32 - 1.0).exp());
    let sum = e1 + e3;
    assert_eq!(
        out[1].data,
        TensorData::Fp32(vec![e1 / sum, 0.0 * (-1f32).exp() / sum, e3 / sum])
    );
    assert_eq!(out[0].data, TensorData::Int64(vec![1]));
}

#[test]
fn labels_follow_raw_scores_and_ties_go_to_the_first_class() {
    let proto = small_classifier(vec![
        ints("classlabels_ints", &[10, 20, 30]),
        floats("coefficients", &[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]),
        floats("intercepts", &[0.0, 0.0, 0.0]),
        string("post_transform", "LOGISTIC"),
    ]);
    // Scores 40, 40, 39: the logistic saturates all three to 1 (and tract's
    // approximation to the same value); the first of the tied raw scores wins.
    assert_eq!(
        linear_answer(&proto, &[40.0, 39.0])[0].data,
        TensorData::Int64(vec![10])
    );
    assert_eq!(
        linear_answer(&proto, &[39.0, 40.0])[0].data,
        TensorData::Int64(vec![30])
    );
    assert_eq!(first_argmax(&[f32::NAN, 1.0, 2.0]), 0);
    assert_eq!(first_argmax(&[0.0, f32::NAN, 2.0]), 2);
}

#[test]
fn other_graphs_stay_on_tract() {
    let mut rng = Rng(17);
    let classifier =
        |rng: &mut Rng, input: &str| linear_classifier(rng, input, class_ints(3), 3, "SOFTMAX");
    let cases: Vec<(&str, ModelProto)> = vec![
        (
            "L2 Normalizer",
            model(
                OnnxType::Float,
                vec![
                    node("Normalizer", "input", &["n"], vec![string("norm", "L2")]),
                    classifier(&mut rng, "n"),
                ],
                &["label"],
            ),
        ),
        (
            "Scaler on integers",
            model(
                OnnxType::Int64,
                vec![
                    node("Scaler", "input", &["s"], vec![floats("scale", &[2.0])]),
                    classifier(&mut rng, "s"),
                ],
                &["label"],
            ),
        ),
        (
            "Cast of the label to float",
            model(
                OnnxType::Float,
                vec![
                    classifier(&mut rng, "input"),
                    node("Cast", "label", &["l"], vec![int("to", 1)]),
                ],
                &["l"],
            ),
        ),
        (
            "a regressor's post_transform",
            model(
                OnnxType::Float,
                vec![node(
                    "LinearRegressor",
                    "input",
                    &["y"],
                    vec![
                        floats("coefficients", &rng.vec(FEATURES, 1.0)),
                        string("post_transform", "LOGISTIC"),
                    ],
                )],
                &["y"],
            ),
        ),
        (
            "classifier without intercepts",
            model(
                OnnxType::Float,
                vec![node(
                    "LinearClassifier",
                    "input",
                    &["label", "scores"],
                    vec![
                        class_ints(3),
                        floats("coefficients", &rng.vec(3 * FEATURES, 1.0)),
                    ],
                )],
                &["label", "scores"],
            ),
        ),
    ];
    for (what, proto) in cases {
        let graph = proto.graph.as_ref().unwrap();
        assert!(LinearGraph::recognise(graph).is_err(), "{what}");
        assert_eq!(load(&proto, true).engine(), Engine::Tract, "{what}");
    }
    // A fixed batch dimension.
    let mut proto = model(
        OnnxType::Float,
        vec![classifier(&mut rng, "input")],
        &["label", "scores"],
    );
    proto.graph.as_mut().unwrap().input[0].r#type = Some(tensor_type(
        OnnxType::Float,
        Some(vec![
            Some(OnnxDim::DimValue(2)),
            Some(OnnxDim::DimValue(20)),
        ]),
    ));
    let err = LinearGraph::recognise(proto.graph.as_ref().unwrap()).unwrap_err();
    assert!(err.contains("first dimension"), "{err}");
    assert_eq!(load(&proto, true).engine(), Engine::Tract);
}
