//! Between the protocol's tensors and tract's.

use oxflow_inference::{DataType, Tensor, TensorData};
use tract_onnx::prelude::{
    DatumType, IntoTensor, TValue, Tensor as TractTensor, f16, tract_ndarray,
};

/// The protocol datatype a tract element type travels as, if any.
pub(crate) fn wire_datatype(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::Uint8,
        DatumType::U16 => DataType::Uint16,
        DatumType::U32 => DataType::Uint32,
        DatumType::U64 => DataType::Uint64,
        DatumType::I8 => DataType::Int8,
        DatumType::I16 => DataType::Int16,
        DatumType::I32 => DataType::Int32,
        // Shape computations (ONNX `Shape`, `Size`) produce TDim in tract
        // and INT64 in ONNX.
        DatumType::I64 | DatumType::TDim => DataType::Int64,
        DatumType::F16 => DataType::Fp16,
        DatumType::F32 => DataType::Fp32,
        DatumType::F64 => DataType::Fp64,
        DatumType::String => DataType::Bytes,
        _ => return None,
    })
}

/// The request tensor `t` as a tract tensor of element type `want`.
///
/// Numeric datatypes convert into each other (JSON clients send FP64 for a
/// float model, INT64 for an INT32 one) as long as no value changes beyond
/// float rounding: a fractional or out-of-range value sent to an integer
/// input is refused rather than truncated. BYTES feeds string inputs only.
/// The error is the sentence a client reads.
pub(crate) fn to_tract(t: Tensor, want: DatumType) -> Result<TractTensor, String> {
    let given = t.datatype();
    let shape = t.shape;
    if given == DataType::Bytes || want == DatumType::String {
        return match (t.data, want) {
            (TensorData::Bytes(v), DatumType::String) => {
                let strings = v
                    .into_iter()
                    .enumerate()
                    .map(|(i, b)| {
                        String::from_utf8(b).map_err(|_| format!("element {i} is not valid UTF-8"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                tract_ndarray::ArrayD::from_shape_vec(shape, strings)
                    .map(IntoTensor::into_tensor)
                    .map_err(|e| e.to_string())
            }
            _ => Err(format!(
                "datatype {given} cannot be converted to the model's {}",
                wire_datatype(want).map_or_else(|| format!("{want:?}"), |d| d.to_string())
            )),
        };
    }
    if want == DatumType::Bool && given != DataType::Bool {
        return Err(format!(
            "datatype {given} cannot be converted to the model's BOOL"
        ));
    }
    if let Some((lo, hi)) = integer_range(want) {
        check_integral(&t.data, lo, hi)?;
    }
    let native = match &t.data {
        TensorData::Bool(v) => from_slice(&shape, v),
        TensorData::Uint8(v) => from_slice(&shape, v),
        TensorData::Uint16(v) => from_slice(&shape, v),
        TensorData::Uint32(v) => from_slice(&shape, v),
        TensorData::Uint64(v) => from_slice(&shape, v),
        TensorData::Int8(v) => from_slice(&shape, v),
        TensorData::Int16(v) => from_slice(&shape, v),
        TensorData::Int32(v) => from_slice(&shape, v),
        TensorData::Int64(v) => from_slice(&shape, v),
        TensorData::Fp16(v) => from_slice(
            &shape,
            &v.iter().map(|&b| f16::from_bits(b)).collect::<Vec<_>>(),
        ),
        // tract has no bfloat16; every bfloat16 is exactly a float.
        TensorData::Bf16(_) => from_slice(&shape, &t.data.to_f32().unwrap_or_default()),
        TensorData::Fp32(v) => from_slice(&shape, v),
        TensorData::Fp64(v) => from_slice(&shape, v),
        TensorData::Bytes(_) => unreachable!("handled above"),
    }?;
    if native.datum_type() == want {
        return Ok(native);
    }
    native
        .cast_to_dt(want)
        .map(|c| c.into_owned())
        .map_err(|e| format!("{e:#}"))
}

fn from_slice<T: tract_onnx::prelude::Datum + Copy>(
    shape: &[usize],
    v: &[T],
) -> Result<TractTensor, String> {
    TractTensor::from_shape(shape, v).map_err(|e| format!("{e:#}"))
}

/// The inclusive range of an integer element type.
fn integer_range(dt: DatumType) -> Option<(i128, i128)> {
    Some(match dt {
        DatumType::U8 => (0, u8::MAX as i128),
        DatumType::U16 => (0, u16::MAX as i128),
        DatumType::U32 => (0, u32::MAX as i128),
        DatumType::U64 => (0, u64::MAX as i128),
        DatumType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DatumType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DatumType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DatumType::I64 => (i64::MIN as i128, i64::MAX as i128),
        _ => return None,
    })
}

/// Refuses values that an integer input of range `lo..=hi` cannot hold
/// exactly, naming the first one.
fn check_integral(data: &TensorData, lo: i128, hi: i128) -> Result<(), String> {
    let bad_int = |i: usize, x: i128| {
        if x < lo || x > hi {
            Err(format!(
                "element {i} ({x}) is outside the model's integer range {lo}..={hi}"
            ))
        } else {
            Ok(())
        }
    };
    let bad_float = |i: usize, x: f64| {
        if !x.is_finite() || x.fract() != 0.0 || x < lo as f64 || x > hi as f64 {
            Err(format!(
                "element {i} ({x}) is not an integer the model's input can hold"
            ))
        } else {
            Ok(())
        }
    };
    macro_rules! ints {
        ($v:expr) => {
            $v.iter()
                .enumerate()
                .try_for_each(|(i, &x)| bad_int(i, x as i128))
        };
    }
    match data {
        TensorData::Bool(_) => Ok(()),
        TensorData::Uint8(v) => ints!(v),
        TensorData::Uint16(v) => ints!(v),
        TensorData::Uint32(v) => ints!(v),
        TensorData::Uint64(v) => ints!(v),
        TensorData::Int8(v) => ints!(v),
        TensorData::Int16(v) => ints!(v),
        TensorData::Int32(v) => ints!(v),
        TensorData::Int64(v) => ints!(v),
        TensorData::Fp64(v) => v.iter().enumerate().try_for_each(|(i, &x)| bad_float(i, x)),
        TensorData::Fp16(_) | TensorData::Bf16(_) | TensorData::Fp32(_) => data
            .to_f32()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .try_for_each(|(i, &x)| bad_float(i, x as f64)),
        TensorData::Bytes(_) => Ok(()),
    }
}

/// A tract output as the protocol tensor `name`.
pub(crate) fn from_tract(name: &str, value: TValue) -> Result<Tensor, String> {
    let t = value.into_tensor();
    let shape = t.shape().to_vec();
    let data = match t.datum_type() {
        DatumType::Bool => TensorData::Bool(slice(&t)?),
        DatumType::U8 => TensorData::Uint8(slice(&t)?),
        DatumType::U16 => TensorData::Uint16(slice(&t)?),
        DatumType::U32 => TensorData::Uint32(slice(&t)?),
        DatumType::U64 => TensorData::Uint64(slice(&t)?),
        DatumType::I8 => TensorData::Int8(slice(&t)?),
        DatumType::I16 => TensorData::Int16(slice(&t)?),
        DatumType::I32 => TensorData::Int32(slice(&t)?),
        DatumType::I64 => TensorData::Int64(slice(&t)?),
        DatumType::F16 => {
            TensorData::Fp16(slice::<f16>(&t)?.into_iter().map(f16::to_bits).collect())
        }
        DatumType::F32 => TensorData::Fp32(slice(&t)?),
        DatumType::F64 => TensorData::Fp64(slice(&t)?),
        DatumType::TDim => {
            let t = t.cast_to_dt(DatumType::I64).map_err(|e| format!("{e:#}"))?;
            TensorData::Int64(slice(&t)?)
        }
        DatumType::String => TensorData::Bytes(
            slice::<String>(&t)?
                .into_iter()
                .map(String::into_bytes)
                .collect(),
        ),
        other => {
            return Err(format!(
                "output {name} has element type {other:?}, which the protocol cannot carry"
            ));
        }
    };
    Tensor::new(name, shape, data).map_err(|e| e.to_string())
}

fn slice<T: tract_onnx::prelude::Datum + Clone>(t: &TractTensor) -> Result<Vec<T>, String> {
    let view = t.try_as_plain_ram().map_err(|e| format!("{e:#}"))?;
    view.as_slice::<T>()
        .map(<[T]>::to_vec)
        .map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: Vec<usize>, data: TensorData) -> Tensor {
        Tensor::new("x", shape, data).unwrap()
    }

    /// Converts `data` to `want` and back to the protocol, or the error.
    fn check(data: TensorData, want: DatumType, expected: Result<TensorData, &str>) {
        let n = data.len();
        let got = to_tract(tensor(vec![n], data.clone()), want)
            .and_then(|t| from_tract("x", t.into()))
            .map(|t| t.data);
        match (&got, &expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{data:?} as {want:?}"),
            (Err(g), Err(e)) => assert!(g.contains(e), "{data:?} as {want:?}: {g}"),
            _ => panic!("{data:?} as {want:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn numeric_requests_convert_to_the_input_type() {
        use DatumType as D;
        use TensorData as T;
        check(
            T::Fp64(vec![0.5, -2.0]),
            D::F32,
            Ok(T::Fp32(vec![0.5, -2.0])),
        );
        check(T::Fp32(vec![0.5]), D::F32, Ok(T::Fp32(vec![0.5])));
        check(T::Int64(vec![3, -1]), D::F32, Ok(T::Fp32(vec![3.0, -1.0])));
        check(T::Int64(vec![3, -1]), D::I32, Ok(T::Int32(vec![3, -1])));
        check(T::Fp64(vec![3.0, -1.0]), D::I64, Ok(T::Int64(vec![3, -1])));
        check(
            T::Bool(vec![true, false]),
            D::F32,
            Ok(T::Fp32(vec![1.0, 0.0])),
        );
        check(T::Fp16(vec![0x3c00]), D::F32, Ok(T::Fp32(vec![1.0])));
        check(T::Bf16(vec![0x3f80]), D::F32, Ok(T::Fp32(vec![1.0])));
        check(T::Fp32(vec![1.0]), D::F16, Ok(T::Fp16(vec![0x3c00])));
        check(
            T::Bytes(vec![b"a".to_vec()]),
            D::String,
            Ok(T::Bytes(vec![b"a".to_vec()])),
        );
    }

    #[test]
    fn lossy_or_meaningless_conversions_are_refused() {
        use DatumType as D;
        use TensorData as T;
        check(
            T::Fp64(vec![1.0, 2.5]),
            D::I64,
            Err("element 1 (2.5) is not an integer"),
        );
        check(
            T::Fp32(vec![f32::NAN]),
            D::I32,
            Err("element 0 (NaN) is not an integer"),
        );
        check(
            T::Int64(vec![300]),
            D::U8,
            Err("element 0 (300) is outside"),
        );
        check(T::Int64(vec![-1]), D::U64, Err("outside"));
        check(
            T::Bytes(vec![b"1".to_vec()]),
            D::F32,
            Err("BYTES cannot be converted to the model's FP32"),
        );
        check(
            T::Fp32(vec![1.0]),
            D::String,
            Err("FP32 cannot be converted to the model's BYTES"),
        );
        check(
            T::Int32(vec![1]),
            D::Bool,
            Err("INT32 cannot be converted to the model's BOOL"),
        );
        check(
            T::Bytes(vec![vec![0xff]]),
            D::String,
            Err("element 0 is not valid UTF-8"),
        );
    }
}
