//! Rewrites of the ONNX graph before tract parses it: what scikit-learn
//! exports need and tract cannot take as is.

use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, GraphProto, NodeProto};

use crate::OnnxError;

/// Replaces each `ZipMap` that produces a graph output by an `Identity`, so
/// that the output carries the `[N, classes]` probability tensor under its
/// declared name, as an export with `options={'zipmap': False}` would.
/// Returns the outputs changed.
///
/// A ZipMap's maps (a sequence of `{class: probability}`) have no tensor
/// form; tract has no ZipMap either. Its column order is the classifier's
/// class order, which the label output and the model's documentation give.
pub(crate) fn strip_zipmaps(name: &str, graph: &mut GraphProto) -> Result<Vec<String>, OnnxError> {
    let mut stripped = Vec::new();
    for ix in 0..graph.node.len() {
        if graph.node[ix].op_type != "ZipMap" {
            continue;
        }
        let node = &graph.node[ix];
        let out = node.output.first().cloned().unwrap_or_default();
        let is_graph_output = graph.output.iter().any(|o| o.name == out);
        let consumed = graph.node.iter().any(|n| n.input.contains(&out));
        if !is_graph_output || consumed || node.input.len() != 1 {
            return Err(OnnxError::Unsupported {
                name: name.to_owned(),
                reason: format!(
                    "node '{}' (ZipMap) feeds other operators; only a ZipMap that produces a graph \
                     output can be served. Export the classifier with options={{'zipmap': False}}",
                    node.name
                ),
            });
        }
        let node = &mut graph.node[ix];
        node.op_type = "Identity".into();
        node.domain.clear();
        node.attribute.clear();
        if let Some(o) = graph.output.iter_mut().find(|o| o.name == out) {
            // The declared type was a sequence of maps; the tensor's type is
            // inferred from the graph instead.
            o.r#type = None;
        }
        stripped.push(out);
    }
    Ok(stripped)
}

/// Gives string-labelled `LinearClassifier`s integer labels `0..n` and maps
/// them back to the strings with a `CategoryMapper` behind it: tract's
/// LinearClassifier only types with numeric labels ("String doesn't
/// implement Zero"), its CategoryMapper handles strings.
pub(crate) fn index_string_labels(graph: &mut GraphProto) {
    let mut ix = 0;
    while ix < graph.node.len() {
        let node = &mut graph.node[ix];
        ix += 1;
        if node.op_type != "LinearClassifier" {
            continue;
        }
        let Some(pos) = node
            .attribute
            .iter()
            .position(|a| a.name == "classlabels_strings")
        else {
            continue;
        };
        let Some(label) = node.output.first().filter(|o| !o.is_empty()).cloned() else {
            continue;
        };
        let strings = node.attribute.remove(pos).strings;
        let indices: Vec<i64> = (0..strings.len() as i64).collect();
        node.attribute
            .push(ints("classlabels_ints", indices.clone()));
        let index_output = format!("{label}__oxflow_label_index");
        node.output[0] = index_output.clone();
        let mapper = NodeProto {
            name: format!("{}__oxflow_label_names", node.name),
            op_type: "CategoryMapper".into(),
            domain: "ai.onnx.ml".into(),
            input: vec![index_output],
            output: vec![label],
            attribute: vec![
                ints("cats_int64s", indices),
                AttributeProto {
                    name: "cats_strings".into(),
                    r#type: AttributeType::Strings as i32,
                    strings,
                    ..Default::default()
                },
                AttributeProto {
                    name: "default_string".into(),
                    r#type: AttributeType::String as i32,
                    s: b"_Unused".to_vec(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        graph.node.insert(ix, mapper);
        ix += 1;
    }
}

fn ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints,
        ..Default::default()
    }
}

/// Appends `domain.Op (node 'name')` for every operator of `graph` (and its
/// subgraphs) that `register` does not implement, once per operator.
pub(crate) fn unsupported_operators(
    graph: &GraphProto,
    register: &OnnxOpRegister,
    out: &mut Vec<String>,
) {
    for node in &graph.node {
        if !register.0.contains_key(&node.op_type) {
            let domain = if node.domain.is_empty() {
                "ai.onnx"
            } else {
                &node.domain
            };
            let op = format!("{domain}.{}", node.op_type);
            if !out.iter().any(|o| o.starts_with(&format!("{op} "))) {
                out.push(format!("{op} (node '{}')", node.name));
            }
        }
        for attr in &node.attribute {
            for g in attr.g.iter().chain(&attr.graphs) {
                unsupported_operators(g, register, out);
            }
        }
    }
}
