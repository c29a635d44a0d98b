//! The Open Inference Protocol's REST bodies: JSON, and JSON followed by raw
//! tensor bytes (the binary tensor data extension that Triton defined, KServe
//! implements and `tritonclient` uses by default).
//!
//! Decoding borrows the body: a tensor's `data` is held as raw JSON text
//! until its `datatype` is known (fields may come in any order) and then
//! parsed straight into a typed vector, flat or nested, without building a
//! `serde_json::Value` tree per element.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::InferError;
use crate::tensor::{DataType, Parameters, Tensor, TensorData, f16_to_f32, f32_to_f16, with_vec};
use crate::types::{InferRequest, InferResponse, RequestedOutput};

/// The header giving the length of the JSON part of a binary-extension body.
pub const HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest<'a> {
    /// KServe's Python client repeats the model's name and version in the
    /// body; the path decides, so these are accepted and ignored.
    #[serde(default, rename = "model_name")]
    _model_name: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "model_version")]
    _model_version: Option<serde::de::IgnoredAny>,
    #[serde(default, deserialize_with = "de_id")]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(borrow)]
    inputs: Vec<WireInput<'a>>,
    #[serde(default)]
    outputs: Option<Vec<WireRequestedOutput>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireInput<'a> {
    name: String,
    shape: Vec<u64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Parameters>,
}

/// Request ids are strings in the specification; some clients send numbers.
fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(de::Error::custom("expected a string")),
    })
}

/// Decodes a V2 inference request body.
///
/// `json_len` is the value of `Inference-Header-Content-Length` when the
/// client sent one: the JSON header is then `body[..json_len]` and the
/// inputs with a `binary_data_size` parameter take their bytes, in order,
/// from what follows.
pub fn decode_request(body: &[u8], json_len: Option<usize>) -> Result<InferRequest, InferError> {
    let (head, mut binary) = match json_len {
        None => (body, &[][..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(InferError::invalid(format!(
                "Inference-Header-Content-Length is {n} but the body has only {} bytes",
                body.len()
            )));
        }
    };
    let de = &mut serde_json::Deserializer::from_slice(head);
    let wire: WireRequest<'_> = serde_path_to_error::deserialize(de)
        .map_err(|e| InferError::invalid(format!("invalid inference request: {e}")))?;
    let mut inputs = Vec::with_capacity(wire.inputs.len());
    for (i, input) in wire.inputs.into_iter().enumerate() {
        inputs.push(decode_input(i, input, &mut binary)?);
    }
    if !binary.is_empty() {
        return Err(InferError::invalid(format!(
            "{} bytes of binary data follow the JSON header but no input claims them \
             (each binary input needs parameters.binary_data_size)",
            binary.len()
        )));
    }
    let mut parameters = wire.parameters.unwrap_or_default();
    check_parameters(&parameters, "parameters")?;
    // `binary_data_output` stays: the encoder reads it from the request.
    parameters.remove("binary_data_size");
    let outputs = wire
        .outputs
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let parameters = o.parameters.unwrap_or_default();
            check_parameters(&parameters, &format!("outputs[{i}].parameters"))?;
            Ok(RequestedOutput {
                name: o.name,
                parameters,
            })
        })
        .collect::<Result<Vec<_>, InferError>>()?;
    Ok(InferRequest {
        id: wire.id,
        parameters,
        inputs,
        outputs,
    })
}

/// Parameter values are strings, numbers or booleans (the specification's
/// `$parameter`); gRPC can only carry those.
fn check_parameters(parameters: &Parameters, path: &str) -> Result<(), InferError> {
    for (key, value) in parameters {
        if value.is_object() || value.is_array() || value.is_null() {
            // MLServer passes `headers` as an object; keep it for them.
            if key == "headers" && value.is_object() {
                continue;
            }
            return Err(InferError::invalid(format!(
                "{path}.{key}: a parameter must be a string, a number or a boolean"
            )));
        }
    }
    Ok(())
}

fn decode_input(
    index: usize,
    input: WireInput<'_>,
    binary: &mut &[u8],
) -> Result<Tensor, InferError> {
    let at =
        |msg: String| InferError::invalid(format!("inputs[{index}] ('{}'): {msg}", input.name));
    let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
        at(format!(
            "unknown datatype '{}'; expected one of {}",
            input.datatype,
            DataType::ALL.map(|d| d.as_str()).join(", ")
        ))
    })?;
    let shape: Vec<usize> = input
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| at(format!("dimension {d} is too large"))))
        .collect::<Result<_, _>>()?;
    let count = crate::tensor::element_count(&shape)
        .ok_or_else(|| at(format!("shape {shape:?} is too large")))?;
    let mut parameters = input.parameters.unwrap_or_default();
    let binary_size = match parameters.remove("binary_data_size") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    at(format!(
                        "parameters.binary_data_size must be a byte count, got {v}"
                    ))
                })?,
        ),
    };
    parameters.remove("binary_data");
    let data = match (input.data, binary_size) {
        (Some(_), Some(_)) => {
            return Err(at(
                "has both data and parameters.binary_data_size; send one".into(),
            ));
        }
        (None, None) => return Err(at("missing data (or parameters.binary_data_size)".into())),
        (Some(raw), None) => decode_json_data(raw, datatype, count).map_err(at)?,
        (None, Some(size)) => {
            if size > binary.len() {
                return Err(at(format!(
                    "binary_data_size is {size} but only {} bytes of binary data remain",
                    binary.len()
                )));
            }
            let (mine, rest) = binary.split_at(size);
            *binary = rest;
            decode_raw(mine, datatype, count).map_err(at)?
        }
    };
    let mut tensor = Tensor::new(input.name, shape, data)?;
    check_parameters(&parameters, &format!("inputs[{index}].parameters"))?;
    tensor.parameters = parameters;
    Ok(tensor)
}

/// Parses `data` (flat or nested, any depth) into a typed vector.
fn decode_json_data(
    raw: &RawValue,
    datatype: DataType,
    count: usize,
) -> Result<TensorData, String> {
    // Never trust `count` for the allocation: it comes from the client's
    // shape, the body bounds the real size.
    match datatype {
        DataType::Fp16 => return decode_half_json(raw, false, count).map(TensorData::Fp16),
        DataType::Bf16 => return decode_half_json(raw, true, count).map(TensorData::Bf16),
        _ => {}
    }
    let capacity = count.min(raw.get().len() / 2 + 1);
    let mut data = TensorData::with_capacity(datatype, capacity);
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let result = with_vec!(&mut data, v => Flat { out: v }.deserialize(&mut de));
    result.map_err(|e| format!("data: {e}"))?;
    Ok(data)
}

/// Element conversion from JSON scalars, strict about range and kind.
trait FromJson: Sized {
    const NAME: &'static str;
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_str(_: &str) -> Option<Self> {
        None
    }
}

macro_rules! int_from_json {
    ($t:ty, $name:literal) => {
        impl FromJson for $t {
            const NAME: &'static str = $name;
            fn from_i64(v: i64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(v: f64) -> Option<Self> {
                // 3.0 is an integer written as a float (numpy's tolist() of a
                // float array); 3.5 is not.
                if v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64 {
                    Some(v as $t)
                } else {
                    None
                }
            }
        }
    };
}
int_from_json!(u8, "UINT8");
int_from_json!(i8, "INT8");
int_from_json!(u32, "UINT32");
int_from_json!(i16, "INT16");
int_from_json!(i32, "INT32");
int_from_json!(i64, "INT64");
int_from_json!(u64, "UINT64");

/// UINT16, FP16 and BF16 share `u16`: here JSON numbers are UINT16 values;
/// the half types are parsed as floats first ([`decode_half_json`]).
impl FromJson for u16 {
    const NAME: &'static str = "UINT16";
    fn from_i64(v: i64) -> Option<Self> {
        u16::try_from(v).ok()
    }
    fn from_u64(v: u64) -> Option<Self> {
        u16::try_from(v).ok()
    }
    fn from_f64(v: f64) -> Option<Self> {
        (v.fract() == 0.0 && (0.0..=65535.0).contains(&v)).then_some(v as u16)
    }
}

impl FromJson for f32 {
    const NAME: &'static str = "FP32";
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v as f32)
    }
}

impl FromJson for f64 {
    const NAME: &'static str = "FP64";
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}

impl FromJson for bool {
    const NAME: &'static str = "BOOL";
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

impl FromJson for Vec<u8> {
    const NAME: &'static str = "BYTES";
    fn from_str(v: &str) -> Option<Self> {
        Some(v.as_bytes().to_vec())
    }
}

/// Pushes every scalar of a (possibly nested) JSON array into `out`.
struct Flat<'v, T> {
    out: &'v mut Vec<T>,
}

impl<'de, T: FromJson> DeserializeSeed<'de> for Flat<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: FromJson> Visitor<'de> for Flat<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} elements (a flat or nested array)", T::NAME)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Flat {
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        push(self.out, T::from_i64(v), &v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        push(self.out, T::from_u64(v), &v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        push(self.out, T::from_f64(v), &v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        push(self.out, T::from_bool(v), &v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        push(self.out, T::from_str(v), &format_args!("\"{v}\""))
    }
}

fn push<T: FromJson, E: de::Error>(
    out: &mut Vec<T>,
    value: Option<T>,
    shown: &dyn fmt::Display,
) -> Result<(), E> {
    match value {
        Some(v) => {
            out.push(v);
            Ok(())
        }
        None => Err(E::custom(format_args!(
            "element {} is {shown}, which is not a valid {} value",
            out.len(),
            T::NAME
        ))),
    }
}

/// The half types arrive in JSON as ordinary numbers.
fn decode_half_json(raw: &RawValue, bf16: bool, count: usize) -> Result<Vec<u16>, String> {
    let mut floats: Vec<f32> = Vec::with_capacity(count.min(raw.get().len() / 2 + 1));
    let mut de = serde_json::Deserializer::from_str(raw.get());
    Flat { out: &mut floats }
        .deserialize(&mut de)
        .map_err(|e| format!("data: {e}"))?;
    Ok(floats
        .into_iter()
        .map(|f| {
            if bf16 {
                bf16_from_f32(f)
            } else {
                f32_to_f16(f)
            }
        })
        .collect())
}

/// Rounds to nearest even, as `torch.bfloat16` does.
fn bf16_from_f32(f: f32) -> u16 {
    if f.is_nan() {
        return 0x7fc0;
    }
    let bits = f.to_bits();
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// Decodes raw little-endian bytes of `count` elements.
pub fn decode_raw(bytes: &[u8], datatype: DataType, count: usize) -> Result<TensorData, String> {
    if let Some(size) = datatype.element_size() {
        let expected = count.checked_mul(size).ok_or("shape is too large")?;
        if bytes.len() != expected {
            return Err(format!(
                "{} bytes of {datatype} data for {count} elements; expected {expected}",
                bytes.len()
            ));
        }
    }
    macro_rules! le {
        ($t:ty, $n:literal) => {
            bytes
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of the element size")))
                .collect()
        };
    }
    Ok(match datatype {
        DataType::Bool => {
            let mut out = Vec::with_capacity(bytes.len());
            for (i, &b) in bytes.iter().enumerate() {
                out.push(match b {
                    0 => false,
                    1 => true,
                    _ => return Err(format!("BOOL element {i} is the byte {b}, not 0 or 1")),
                });
            }
            TensorData::Bool(out)
        }
        DataType::Uint8 => TensorData::Uint8(bytes.to_vec()),
        DataType::Int8 => TensorData::Int8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::Uint16 => TensorData::Uint16(le!(u16, 2)),
        DataType::Int16 => TensorData::Int16(le!(i16, 2)),
        DataType::Fp16 => TensorData::Fp16(le!(u16, 2)),
        DataType::Bf16 => TensorData::Bf16(le!(u16, 2)),
        DataType::Uint32 => TensorData::Uint32(le!(u32, 4)),
        DataType::Int32 => TensorData::Int32(le!(i32, 4)),
        DataType::Fp32 => TensorData::Fp32(le!(f32, 4)),
        DataType::Uint64 => TensorData::Uint64(le!(u64, 8)),
        DataType::Int64 => TensorData::Int64(le!(i64, 8)),
        DataType::Fp64 => TensorData::Fp64(le!(f64, 8)),
        DataType::Bytes => {
            // Each element: a u32 little-endian length, then the bytes.
            let mut out = Vec::with_capacity(count.min(bytes.len() / 4));
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(format!(
                        "BYTES element {} has a truncated length prefix",
                        out.len()
                    ));
                }
                let (len, tail) = rest.split_at(4);
                let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                if len > tail.len() {
                    return Err(format!(
                        "BYTES element {} claims {len} bytes but only {} remain",
                        out.len(),
                        tail.len()
                    ));
                }
                let (elem, tail) = tail.split_at(len);
                out.push(elem.to_vec());
                rest = tail;
            }
            if out.len() != count {
                return Err(format!(
                    "{} BYTES elements for a shape of {count}",
                    out.len()
                ));
            }
            TensorData::Bytes(out)
        }
    })
}

/// Appends `data` as raw little-endian bytes (the binary extension's and
/// gRPC's `raw_output_contents` layout).
pub fn encode_raw(data: &TensorData, out: &mut Vec<u8>) {
    macro_rules! le {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
        TensorData::Uint8(v) => out.extend_from_slice(v),
        TensorData::Int8(v) => out.extend(v.iter().map(|&b| b as u8)),
        TensorData::Uint16(v) | TensorData::Fp16(v) | TensorData::Bf16(v) => le!(v),
        TensorData::Int16(v) => le!(v),
        TensorData::Uint32(v) => le!(v),
        TensorData::Int32(v) => le!(v),
        TensorData::Fp32(v) => le!(v),
        TensorData::Uint64(v) => le!(v),
        TensorData::Int64(v) => le!(v),
        TensorData::Fp64(v) => le!(v),
        TensorData::Bytes(v) => {
            for elem in v {
                out.extend_from_slice(&(elem.len() as u32).to_le_bytes());
                out.extend_from_slice(elem);
            }
        }
    }
}

/// Whether output `name` goes back as binary: its own `binary_data`
/// parameter wins, then the request's `binary_data_output`.
pub fn wants_binary(
    request_parameters: &Parameters,
    requested: &[RequestedOutput],
    name: &str,
) -> bool {
    requested
        .iter()
        .find(|o| o.name == name)
        .and_then(|o| o.parameters.get("binary_data"))
        .and_then(|v| v.as_bool())
        .or_else(|| {
            request_parameters
                .get("binary_data_output")
                .and_then(|v| v.as_bool())
        })
        .unwrap_or(false)
}

/// An encoded response body, and the JSON part's length when binary
/// outputs follow it (for `Inference-Header-Content-Length`).
pub struct EncodedResponse {
    /// The whole body.
    pub body: Vec<u8>,
    /// `Some(len)` when the body is JSON followed by raw output bytes.
    pub json_len: Option<usize>,
}

/// Encodes a response; `binary(name)` says which outputs to send as raw
/// bytes after the JSON.
pub fn encode_response(response: &InferResponse, binary: &dyn Fn(&str) -> bool) -> EncodedResponse {
    let flags: Vec<bool> = response.outputs.iter().map(|t| binary(&t.name)).collect();
    let mut body = Vec::with_capacity(256);
    let wire = WireResponse {
        response,
        binary: &flags,
    };
    serde_json::to_writer(&mut body, &wire).expect("serialising to memory cannot fail");
    if !flags.iter().any(|&b| b) {
        return EncodedResponse {
            body,
            json_len: None,
        };
    }
    let json_len = body.len();
    for (tensor, _) in response.outputs.iter().zip(&flags).filter(|(_, b)| **b) {
        encode_raw(&tensor.data, &mut body);
    }
    EncodedResponse {
        body,
        json_len: Some(json_len),
    }
}

struct WireResponse<'a> {
    response: &'a InferResponse,
    binary: &'a [bool],
}

impl Serialize for WireResponse<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.response;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("model_name", &r.model_name)?;
        if let Some(v) = &r.model_version {
            map.serialize_entry("model_version", v)?;
        }
        if let Some(id) = &r.id {
            map.serialize_entry("id", id)?;
        }
        if !r.parameters.is_empty() {
            map.serialize_entry("parameters", &r.parameters)?;
        }
        let outputs: Vec<WireOutput<'_>> = r
            .outputs
            .iter()
            .zip(self.binary)
            .map(|(tensor, &binary)| WireOutput { tensor, binary })
            .collect();
        map.serialize_entry("outputs", &outputs)?;
        map.end()
    }
}

struct WireOutput<'a> {
    tensor: &'a Tensor,
    binary: bool,
}

impl Serialize for WireOutput<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.tensor;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &t.name)?;
        map.serialize_entry("datatype", t.datatype().as_str())?;
        map.serialize_entry("shape", &t.shape)?;
        if self.binary {
            let mut parameters = t.parameters.clone();
            parameters.insert("binary_data_size".into(), raw_size(&t.data).into());
            map.serialize_entry("parameters", &parameters)?;
        } else {
            if !t.parameters.is_empty() {
                map.serialize_entry("parameters", &t.parameters)?;
            }
            map.serialize_entry("data", &JsonData(&t.data))?;
        }
        map.end()
    }
}

/// Size of `data` in the raw encoding.
pub fn raw_size(data: &TensorData) -> usize {
    match data {
        TensorData::Bytes(v) => v.iter().map(|e| 4 + e.len()).sum(),
        other => other.len() * other.datatype().element_size().unwrap_or(0),
    }
}

/// A flat JSON array of the elements (FP16/BF16 as numbers, BYTES as
/// strings).
struct JsonData<'a>(&'a TensorData);

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            TensorData::Fp16(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for &h in v {
                    seq.serialize_element(&f16_to_f32(h))?;
                }
                seq.end()
            }
            TensorData::Bf16(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for &h in v {
                    seq.serialize_element(&f32::from_bits((h as u32) << 16))?;
                }
                seq.end()
            }
            TensorData::Bytes(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for e in v {
                    seq.serialize_element(&String::from_utf8_lossy(e))?;
                }
                seq.end()
            }
            TensorData::Bool(v) => v.serialize(s),
            TensorData::Uint8(v) => v.serialize(s),
            TensorData::Uint16(v) => v.serialize(s),
            TensorData::Uint32(v) => v.serialize(s),
            TensorData::Uint64(v) => v.serialize(s),
            TensorData::Int8(v) => v.serialize(s),
            TensorData::Int16(v) => v.serialize(s),
            TensorData::Int32(v) => v.serialize(s),
            TensorData::Int64(v) => v.serialize(s),
            TensorData::Fp32(v) => v.serialize(s),
            TensorData::Fp64(v) => v.serialize(s),
        }
    }
}

/// `{"error": "..."}`, the only error shape the protocol has.
pub fn error_body(error: &InferError) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": error.to_string() }))
        .expect("serialising to memory cannot fail")
}

#[cfg(test)]
mod tests;
