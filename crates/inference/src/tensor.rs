//! Tensors as the Open Inference Protocol defines them: a name, a shape, a
//! datatype and row-major elements.
//!
//! One typed representation serves every wire format (REST JSON, the binary
//! tensor extension, gRPC typed and raw contents): codecs convert into it and
//! out of it, runtimes only ever see [`Tensor`]. The element vector's variant
//! *is* the datatype, so a tensor whose data disagrees with its declared
//! datatype cannot exist.

use std::fmt;

use crate::error::InferError;

/// The protocol's tensor element types, spelled as on the wire (`FP32`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Bf16,
    Fp32,
    Fp64,
    Bytes,
}

impl DataType {
    /// Every datatype, in the order the specification lists them.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Bf16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Bf16 => "BF16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parses the wire spelling (exactly; the protocol is case-sensitive).
    pub fn parse(s: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Bytes per element in the binary encodings; `None` for `BYTES`, whose
    /// elements carry their own length.
    pub fn element_size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
            DataType::Bytes => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Row-major tensor elements; the variant is the datatype.
///
/// FP16 and BF16 keep their IEEE bit patterns: they cross the server
/// unchanged, and a runtime that computes on them converts once.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<u16>),
    Bf16(Vec<u16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

/// Calls `$body` with `$v` bound to the inner vector, whatever the variant.
macro_rules! with_vec {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Bf16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}
pub(crate) use with_vec;

impl TensorData {
    /// The datatype these elements have.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Uint16(_) => DataType::Uint16,
            TensorData::Uint32(_) => DataType::Uint32,
            TensorData::Uint64(_) => DataType::Uint64,
            TensorData::Int8(_) => DataType::Int8,
            TensorData::Int16(_) => DataType::Int16,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp16(_) => DataType::Fp16,
            TensorData::Bf16(_) => DataType::Bf16,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_vec!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty vector of `datatype` with room for `capacity` elements.
    pub fn with_capacity(datatype: DataType, capacity: usize) -> TensorData {
        match datatype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::Uint8 => TensorData::Uint8(Vec::with_capacity(capacity)),
            DataType::Uint16 => TensorData::Uint16(Vec::with_capacity(capacity)),
            DataType::Uint32 => TensorData::Uint32(Vec::with_capacity(capacity)),
            DataType::Uint64 => TensorData::Uint64(Vec::with_capacity(capacity)),
            DataType::Int8 => TensorData::Int8(Vec::with_capacity(capacity)),
            DataType::Int16 => TensorData::Int16(Vec::with_capacity(capacity)),
            DataType::Int32 => TensorData::Int32(Vec::with_capacity(capacity)),
            DataType::Int64 => TensorData::Int64(Vec::with_capacity(capacity)),
            DataType::Fp16 => TensorData::Fp16(Vec::with_capacity(capacity)),
            DataType::Bf16 => TensorData::Bf16(Vec::with_capacity(capacity)),
            DataType::Fp32 => TensorData::Fp32(Vec::with_capacity(capacity)),
            DataType::Fp64 => TensorData::Fp64(Vec::with_capacity(capacity)),
            DataType::Bytes => TensorData::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// Appends `other`'s elements; both must have the same datatype.
    /// Used to concatenate batched requests along the first dimension.
    pub fn extend_from(&mut self, other: &TensorData) -> Result<(), InferError> {
        macro_rules! ext {
            ($($var:ident),*) => {
                match (&mut *self, other) {
                    $((TensorData::$var(a), TensorData::$var(b)) => a.extend_from_slice(b),)*
                    (a, b) => {
                        return Err(InferError::invalid(format!(
                            "cannot join a {} tensor with a {} tensor",
                            a.datatype(),
                            b.datatype()
                        )));
                    }
                }
            };
        }
        ext!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Bf16, Fp32, Fp64,
            Bytes
        );
        Ok(())
    }

    /// Elements `range` as a new vector of the same datatype (used to split
    /// a batched result back into per-request results).
    pub fn slice(&self, range: std::ops::Range<usize>) -> TensorData {
        macro_rules! sl {
            ($($var:ident),*) => {
                match self {
                    $(TensorData::$var(v) => TensorData::$var(v[range].to_vec()),)*
                }
            };
        }
        sl!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Bf16, Fp32, Fp64,
            Bytes
        )
    }

    /// The elements as `f32`, converting numeric types (BOOL as 0/1, FP16
    /// and BF16 from their bits). `None` for BYTES.
    ///
    /// Tabular runtimes compute in `f32`; this is the one place where other
    /// input types are widened or narrowed to it.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        Some(match self {
            TensorData::Bool(v) => v.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect(),
            TensorData::Uint8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Uint16(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Uint32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Uint64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Int8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Int16(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Int32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Int64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Fp16(v) => v.iter().map(|&x| f16_to_f32(x)).collect(),
            TensorData::Bf16(v) => v
                .iter()
                .map(|&x| f32::from_bits((x as u32) << 16))
                .collect(),
            TensorData::Fp32(v) => v.clone(),
            TensorData::Fp64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Bytes(_) => return None,
        })
    }
}

/// IEEE 754 half precision to single precision, exactly (every half value
/// is representable as a float).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal half: normalise the mantissa.
            let mut e: i32 = -14;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (((e + 127) as u32) << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13) | 0x0040_0000,
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Single to half precision, rounding to nearest even (what numpy's
/// `astype(float16)` does), for runtimes that must answer in FP16.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut out = m >> shift;
        if rest > half || (rest == half && out & 1 == 1) {
            out += 1;
        }
        return sign | out as u16;
    }
    let mut out = ((e as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && out & 1 == 1) {
        out += 1;
    }
    sign | out as u16
}

/// A named, shaped tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The input's or output's name.
    pub name: String,
    /// Dimensions; their product equals the number of elements.
    pub shape: Vec<usize>,
    /// The elements, which carry the datatype.
    pub data: TensorData,
    /// The tensor's `parameters` map (content_type and the like), passed
    /// through; the binary-extension keys are consumed by the codecs.
    pub parameters: Parameters,
}

impl Tensor {
    /// A tensor after checking that the shape matches the number of
    /// elements.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: TensorData,
    ) -> Result<Tensor, InferError> {
        let name = name.into();
        let expected = element_count(&shape).ok_or_else(|| {
            InferError::invalid(format!("tensor '{name}': shape {shape:?} is too large"))
        })?;
        if expected != data.len() {
            return Err(InferError::invalid(format!(
                "tensor '{name}': shape {shape:?} needs {expected} elements but {} were given",
                data.len()
            )));
        }
        Ok(Tensor {
            name,
            shape,
            data,
            parameters: Parameters::new(),
        })
    }

    /// The datatype of the elements.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }
}

/// Product of `shape`, or `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// The protocol's open `parameters` maps (request, tensor and response
/// level): string, number or boolean values, kept in the order given.
pub type Parameters = serde_json::Map<String, serde_json::Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_names_roundtrip_and_are_case_sensitive() {
        for d in DataType::ALL {
            assert_eq!(DataType::parse(d.as_str()), Some(d));
        }
        assert_eq!(DataType::parse("fp32"), None);
        assert_eq!(DataType::parse("FLOAT"), None);
    }

    #[test]
    fn shape_must_match_element_count() {
        assert!(Tensor::new("x", vec![2, 3], TensorData::Fp32(vec![0.0; 6])).is_ok());
        let err = Tensor::new("x", vec![2, 3], TensorData::Fp32(vec![0.0; 5])).unwrap_err();
        assert!(err.to_string().contains("needs 6 elements but 5"), "{err}");
        let err = Tensor::new("x", vec![usize::MAX, 3], TensorData::Fp32(vec![])).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn half_precision_conversions_match_ieee() {
        // (half bits, float value)
        let cases: [(u16, f32); 9] = [
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x0400, 6.103_515_6e-5),
            (0x3555, 0.333_251_95),
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
        ];
        for (h, f) in cases {
            assert_eq!(f16_to_f32(h), f, "{h:#06x}");
            assert_eq!(f32_to_f16(f), h, "{f}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        // Every half value survives the round trip through f32.
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if !f.is_nan() {
                assert_eq!(f32_to_f16(f), h, "{h:#06x}");
            }
        }
        // Rounding to nearest even: 1 + 2^-11 is halfway between 1 and the
        // next half; it rounds down to the even 1.0.
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
    }

    #[test]
    fn extend_and_slice_batch_along_rows() {
        let mut a = TensorData::Int64(vec![1, 2]);
        a.extend_from(&TensorData::Int64(vec![3])).unwrap();
        assert_eq!(a, TensorData::Int64(vec![1, 2, 3]));
        assert_eq!(a.slice(1..3), TensorData::Int64(vec![2, 3]));
        let err = a.extend_from(&TensorData::Fp32(vec![1.0])).unwrap_err();
        assert!(err.to_string().contains("INT64") && err.to_string().contains("FP32"));
    }
}
