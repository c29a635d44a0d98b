//! KServe's V1 protocol (TensorFlow Serving's REST shape): `{"instances":
//! [...]}` or `{"inputs": ...}` in, `{"predictions": [...]}` out, mapped
//! onto the same tensors as V2.
//!
//! Instances are rows: a nested list of numbers becomes one tensor whose
//! shape is the nesting (`[[1,2],[3,4]]` → `[2, 2]`); a list of objects
//! (`[{"a": 1, "b": [1,2]}]`) becomes one tensor per key. Integers stay
//! INT64 unless a float appears (then FP64), so runtimes see what the
//! client meant.

use serde_json::{Map, Value};

use crate::error::InferError;
use crate::tensor::{DataType, Tensor, TensorData};
use crate::types::InferRequest;

/// The name V1 gives a request's single unnamed input.
pub const DEFAULT_INPUT: &str = "instances";

/// Decodes a V1 `:predict` (or `:explain`) body.
pub fn decode_request(body: &[u8]) -> Result<InferRequest, InferError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InferError::invalid(format!("invalid V1 request body: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(InferError::invalid(
            "a V1 request body must be a JSON object",
        ));
    };
    let (key, payload) = match (map.remove("instances"), map.remove("inputs")) {
        (Some(_), Some(_)) => {
            return Err(InferError::invalid(
                "a V1 request has either \"instances\" or \"inputs\", not both",
            ));
        }
        (Some(v), None) => ("instances", v),
        (None, Some(v)) => ("inputs", v),
        (None, None) => {
            return Err(InferError::invalid(
                "a V1 request needs \"instances\" (a list of rows) or \"inputs\"",
            ));
        }
    };
    let inputs = match payload {
        // Columnar `inputs`: one named tensor per key, each a full batch.
        Value::Object(columns) if key == "inputs" => columns
            .into_iter()
            .map(|(name, v)| tensor_from_value(&format!("inputs.{name}"), name.clone(), &v))
            .collect::<Result<Vec<_>, _>>()?,
        Value::Array(rows) if rows.first().is_some_and(Value::is_object) => named_rows(key, &rows)?,
        Value::Array(_) => vec![tensor_from_value(key, DEFAULT_INPUT.into(), &payload)?],
        _ => {
            return Err(InferError::invalid(format!(
                "\"{key}\" must be a list of instances or an object of named inputs"
            )));
        }
    };
    let mut parameters = crate::tensor::Parameters::new();
    // Other top-level keys (KServe passes the whole body to the model) are
    // kept as parameters when they are scalars.
    for (k, v) in map {
        if v.is_string() || v.is_number() || v.is_boolean() {
            parameters.insert(k, v);
        }
    }
    Ok(InferRequest {
        id: None,
        parameters,
        inputs,
        outputs: Vec::new(),
    })
}

/// Rows given as objects: stack each key's values into one tensor.
fn named_rows(key: &str, rows: &[Value]) -> Result<Vec<Tensor>, InferError> {
    let Some(Value::Object(first)) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Vec<&String> = first.keys().collect();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let mut column = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let v = row.as_object().and_then(|r| r.get(name)).ok_or_else(|| {
                InferError::invalid(format!(
                    "{key}[{i}]: every instance needs the key \"{name}\""
                ))
            })?;
            column.push(v.clone());
        }
        tensors.push(tensor_from_value(
            &format!("{key}[*].{name}"),
            name.clone(),
            &Value::Array(column),
        )?);
    }
    Ok(tensors)
}

/// A rectangular nested list as one tensor.
pub fn tensor_from_value(path: &str, name: String, value: &Value) -> Result<Tensor, InferError> {
    let mut shape = Vec::new();
    let mut probe = value;
    while let Value::Array(items) = probe {
        shape.push(items.len());
        match items.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    let mut leaves = Vec::new();
    collect(path, value, &shape, 0, &mut leaves)?;
    let datatype = if leaves.iter().all(|v| v.is_boolean()) && !leaves.is_empty() {
        DataType::Bool
    } else if leaves.iter().all(|v| v.is_string()) && !leaves.is_empty() {
        DataType::Bytes
    } else if leaves.iter().all(|v| v.is_i64() || v.is_u64()) {
        DataType::Int64
    } else {
        DataType::Fp64
    };
    let data = match datatype {
        DataType::Bool => {
            TensorData::Bool(leaves.iter().map(|v| v.as_bool() == Some(true)).collect())
        }
        DataType::Bytes => TensorData::Bytes(
            leaves
                .iter()
                .map(|v| v.as_str().unwrap_or_default().as_bytes().to_vec())
                .collect(),
        ),
        DataType::Int64 => TensorData::Int64(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64().ok_or_else(|| {
                        InferError::invalid(format!(
                            "{path}: element {i} ({v}) does not fit in INT64"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => TensorData::Fp64(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_f64().ok_or_else(|| {
                        InferError::invalid(format!(
                            "{path}: element {i} is {v}; instances mix numbers with other values"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Tensor::new(name, shape, data)
}

/// Collects the leaves of a nested list, checking that it is rectangular.
fn collect<'v>(
    path: &str,
    value: &'v Value,
    shape: &[usize],
    depth: usize,
    out: &mut Vec<&'v Value>,
) -> Result<(), InferError> {
    match value {
        Value::Array(items) => {
            if depth >= shape.len() || items.len() != shape[depth] {
                return Err(InferError::invalid(format!(
                    "{path}: the instances are not rectangular (a list of {} items where {} were expected at depth {depth})",
                    items.len(),
                    shape
                        .get(depth)
                        .map_or("a scalar".to_string(), |d| d.to_string())
                )));
            }
            for item in items {
                collect(path, item, shape, depth + 1, out)?;
            }
            Ok(())
        }
        Value::Object(_) | Value::Null => Err(InferError::invalid(format!(
            "{path}: instances must be numbers, strings, booleans or lists of them"
        ))),
        leaf => {
            if depth != shape.len() {
                return Err(InferError::invalid(format!(
                    "{path}: the instances are not rectangular (a scalar at depth {depth} of {})",
                    shape.len()
                )));
            }
            out.push(leaf);
            Ok(())
        }
    }
}

/// `{"predictions": [...]}` from a tensor: the first dimension becomes the
/// list, the rest nests inside it.
pub fn encode_predictions(tensor: &Tensor) -> Vec<u8> {
    let leaves = leaves(&tensor.data);
    let value = if tensor.shape.is_empty() {
        Value::Array(leaves)
    } else {
        let mut it = leaves.into_iter();
        nest(&tensor.shape, &mut it)
    };
    let mut body = Map::new();
    body.insert("predictions".into(), value);
    serde_json::to_vec(&body).expect("serialising to memory cannot fail")
}

/// `{"explanations": ...}`-style bodies are passed through by the router;
/// this is only for tensors.
fn nest(shape: &[usize], it: &mut impl Iterator<Item = Value>) -> Value {
    match shape {
        [] => it.next().unwrap_or(Value::Null),
        [n] => Value::Array(it.take(*n).collect()),
        [n, rest @ ..] => Value::Array((0..*n).map(|_| nest(rest, it)).collect()),
    }
}

fn leaves(data: &TensorData) -> Vec<Value> {
    match data {
        TensorData::Bool(v) => v.iter().map(|&x| Value::Bool(x)).collect(),
        TensorData::Uint8(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::Uint16(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::Uint32(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::Uint64(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::Int8(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::Int16(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::Int32(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::Int64(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::Fp16(v) => v
            .iter()
            .map(|&x| f64::from(crate::tensor::f16_to_f32(x)).into())
            .collect(),
        TensorData::Bf16(v) => v
            .iter()
            .map(|&x| f64::from(f32::from_bits((x as u32) << 16)).into())
            .collect(),
        TensorData::Fp32(v) => v.iter().map(|&x| f32_value(x)).collect(),
        TensorData::Fp64(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::Bytes(v) => v
            .iter()
            .map(|x| Value::String(String::from_utf8_lossy(x).into_owned()))
            .collect(),
    }
}

/// An f32 as the shortest decimal that reads back as the same f32 (what
/// numpy prints), rather than its widened f64 digits.
fn f32_value(x: f32) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    let text = x.to_string();
    text.parse::<serde_json::Number>()
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_become_one_tensor_with_their_nesting_as_shape() {
        let r = decode_request(br#"{"instances": [[1, 2.5], [3, 4]]}"#).unwrap();
        assert_eq!(r.inputs.len(), 1);
        assert_eq!(r.inputs[0].name, DEFAULT_INPUT);
        assert_eq!(r.inputs[0].shape, vec![2, 2]);
        assert_eq!(r.inputs[0].data, TensorData::Fp64(vec![1.0, 2.5, 3.0, 4.0]));
        let r = decode_request(br#"{"instances": [[1, 2]]}"#).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::Int64(vec![1, 2]));
        let r = decode_request(br#"{"inputs": ["a", "b"]}"#).unwrap();
        assert_eq!(
            r.inputs[0].data,
            TensorData::Bytes(vec![b"a".to_vec(), b"b".to_vec()])
        );
    }

    #[test]
    fn named_instances_and_columnar_inputs_become_named_tensors() {
        let r = decode_request(br#"{"instances": [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}]}"#)
            .unwrap();
        assert_eq!(r.inputs[0].name, "a");
        assert_eq!(r.inputs[0].shape, vec![2]);
        assert_eq!(r.inputs[1].name, "b");
        assert_eq!(r.inputs[1].shape, vec![2, 2]);
        let r = decode_request(br#"{"inputs": {"x": [[1.5]], "flag": [true]}}"#).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::Fp64(vec![1.5]));
        assert_eq!(r.inputs[1].data, TensorData::Bool(vec![true]));
    }

    #[test]
    fn bad_v1_bodies_say_what_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"[1]", "must be a JSON object"),
            (b"{}", "needs \"instances\""),
            (br#"{"instances": [[1, 2], [3]]}"#, "not rectangular"),
            (br#"{"instances": [[1, 2], 3]}"#, "not rectangular"),
            (br#"{"instances": [null]}"#, "must be numbers"),
            (
                br#"{"instances": [{"a": 1}, {"b": 2}]}"#,
                "instances[1]: every instance needs the key \"a\"",
            ),
            (br#"{"instances": [1], "inputs": [1]}"#, "not both"),
        ];
        for (body, expected) in cases {
            let msg = decode_request(body).unwrap_err().to_string();
            assert!(
                msg.contains(expected),
                "{}: {msg}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn predictions_nest_by_shape() {
        let t = Tensor::new(
            "p",
            vec![2, 2],
            TensorData::Fp32(vec![0.1, 0.9, 0.75, 0.25]),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&encode_predictions(&t)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"predictions": [[0.1, 0.9], [0.75, 0.25]]})
        );
        let t = Tensor::new("p", vec![3], TensorData::Int64(vec![1, 0, 1])).unwrap();
        let v: Value = serde_json::from_slice(&encode_predictions(&t)).unwrap();
        assert_eq!(v, serde_json::json!({"predictions": [1, 0, 1]}));
    }
}
