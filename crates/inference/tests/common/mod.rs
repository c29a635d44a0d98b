//! A test model shared by the front-end tests.

use futures::future::BoxFuture;
use oxflow_inference::{
    DataType, InferError, InferRequest, Model, ModelMetadata, Tensor, TensorData, TensorMetadata,
};

/// Row sums of a `[n, k]` input (as FP64 `sum`) and the row count (INT64
/// `rows`): enough to see that data, shapes and datatypes went through.
pub struct RowSum {
    meta: ModelMetadata,
}

impl RowSum {
    pub fn new(name: &str) -> RowSum {
        RowSum {
            meta: ModelMetadata {
                name: name.into(),
                versions: vec![],
                platform: "test_rowsum".into(),
                inputs: vec![TensorMetadata {
                    name: "x".into(),
                    datatype: DataType::Fp64,
                    shape: vec![-1, -1],
                }],
                outputs: vec![
                    TensorMetadata {
                        name: "sum".into(),
                        datatype: DataType::Fp64,
                        shape: vec![-1],
                    },
                    TensorMetadata {
                        name: "rows".into(),
                        datatype: DataType::Int64,
                        shape: vec![1],
                    },
                ],
            },
        }
    }
}

impl Model for RowSum {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn infer(&self, request: InferRequest) -> BoxFuture<'_, Result<Vec<Tensor>, InferError>> {
        Box::pin(async move {
            let x = request
                .inputs
                .first()
                .ok_or_else(|| InferError::invalid("no input"))?;
            let values = x
                .data
                .to_f32()
                .ok_or_else(|| InferError::invalid("x must be numeric"))?;
            let (rows, cols) = match x.shape.as_slice() {
                [r, c] => (*r, *c),
                [n] => (1, *n),
                _ => return Err(InferError::invalid("x must have rank 1 or 2")),
            };
            let sums: Vec<f64> = (0..rows)
                .map(|r| {
                    values[r * cols..(r + 1) * cols]
                        .iter()
                        .map(|&v| v as f64)
                        .sum()
                })
                .collect();
            Ok(vec![
                Tensor::new("sum", vec![rows], TensorData::Fp64(sums))?,
                Tensor::new("rows", vec![1], TensorData::Int64(vec![rows as i64]))?,
            ])
        })
    }
}
