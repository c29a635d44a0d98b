//! XGBoost and LightGBM models through Oxflow's native evaluators
//! (`oxflow-trees`), behind the data plane's [`Model`] trait.
//!
//! Outputs follow MLServer's runtimes, which the scikit-learn wrappers
//! define: `predict` (the default; class labels for classifiers, values
//! for regressors) and `predict_proba` (class probabilities, `[rows,
//! classes]`, two columns for a binary model).

use futures::future::BoxFuture;
use oxflow_inference::{
    DataType, InferError, InferRequest, Model, ModelMetadata, Tensor, TensorData, TensorMetadata,
};
use oxflow_trees::{Task, TreeModel};

/// A tree ensemble served under a name.
pub struct TreeServing {
    meta: ModelMetadata,
    model: TreeModel,
}

impl TreeServing {
    /// Wraps `model` as `name`.
    pub fn new(name: &str, model: TreeModel) -> TreeServing {
        let features = model.num_features() as i64;
        let classifier = matches!(
            model.task(),
            Task::BinaryClassification | Task::MultiClass { .. } | Task::MultiLabel { .. }
        );
        let mut outputs = vec![TensorMetadata {
            name: "predict".into(),
            datatype: if classifier {
                DataType::Int64
            } else {
                DataType::Fp32
            },
            shape: vec![-1],
        }];
        if classifier {
            outputs.push(TensorMetadata {
                name: "predict_proba".into(),
                datatype: DataType::Fp32,
                shape: vec![-1, proba_columns(&model) as i64],
            });
        }
        let meta = ModelMetadata {
            name: name.to_string(),
            versions: vec![],
            platform: format!("{}_native", model.framework()),
            inputs: vec![TensorMetadata {
                name: "input-0".into(),
                datatype: DataType::Fp32,
                shape: vec![-1, features],
            }],
            outputs,
        };
        TreeServing { meta, model }
    }

    fn compute(&self, request: &InferRequest) -> Result<Vec<Tensor>, InferError> {
        let (x, rows) = feature_matrix(&self.meta.name, request, self.model.num_features())?;
        let wanted: Vec<&str> = if request.outputs.is_empty() {
            vec!["predict"]
        } else {
            request.outputs.iter().map(|o| o.name.as_str()).collect()
        };
        let fail = |e: oxflow_trees::TreeError| InferError::invalid(e.to_string());
        let mut out = Vec::with_capacity(wanted.len());
        for name in wanted {
            match name {
                "predict" => match self.model.predict_labels(&x, rows).map_err(fail)? {
                    Some(labels) => {
                        let cols = labels.len() / rows.max(1);
                        let shape = if cols <= 1 {
                            vec![rows]
                        } else {
                            vec![rows, cols]
                        };
                        out.push(Tensor::new("predict", shape, TensorData::Int64(labels))?);
                    }
                    None => {
                        let values = self.model.predict(&x, rows).map_err(fail)?;
                        let cols = self.model.num_outputs();
                        let shape = if cols <= 1 {
                            vec![rows]
                        } else {
                            vec![rows, cols]
                        };
                        out.push(Tensor::new("predict", shape, TensorData::Fp32(values))?);
                    }
                },
                "predict_proba" if self.meta.outputs.len() > 1 => {
                    let p = self.model.predict(&x, rows).map_err(fail)?;
                    let proba = if matches!(self.model.task(), Task::BinaryClassification) {
                        p.iter().flat_map(|&p1| [1.0 - p1, p1]).collect()
                    } else {
                        p
                    };
                    let cols = proba_columns(&self.model);
                    out.push(Tensor::new(
                        "predict_proba",
                        vec![rows, cols],
                        TensorData::Fp32(proba),
                    )?);
                }
                // Unknown names are reported by the data plane, which
                // lists the outputs that exist.
                _ => {}
            }
        }
        Ok(out)
    }
}

fn proba_columns(model: &TreeModel) -> usize {
    match model.task() {
        Task::BinaryClassification => 2,
        _ => model.num_outputs(),
    }
}

/// The request's single input as a row-major `f32` matrix and its row
/// count, checked against the number of features.
pub fn feature_matrix(
    model: &str,
    request: &InferRequest,
    features: usize,
) -> Result<(Vec<f32>, usize), InferError> {
    let input = match request.inputs.as_slice() {
        [one] => one,
        [] => {
            return Err(InferError::invalid(format!(
                "model {model} needs one input tensor; none was sent"
            )));
        }
        many => {
            return Err(InferError::invalid(format!(
                "model {model} takes one input tensor of shape [rows, {features}]; {} were sent",
                many.len()
            )));
        }
    };
    let x = input.data.to_f32().ok_or_else(|| {
        InferError::invalid(format!(
            "input '{}' is {}; model {model} needs numbers",
            input.name,
            input.datatype()
        ))
    })?;
    let rows = match input.shape.as_slice() {
        [n] if *n == features => 1,
        [rows, f] if *f == features => *rows,
        shape => {
            return Err(InferError::invalid(format!(
                "input '{}' has shape {shape:?}; model {model} needs [rows, {features}]",
                input.name
            )));
        }
    };
    Ok((x, rows))
}

impl Model for TreeServing {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn infer(&self, request: InferRequest) -> BoxFuture<'_, Result<Vec<Tensor>, InferError>> {
        Box::pin(std::future::ready(self.compute(&request)))
    }

    fn batchable(&self) -> bool {
        true
    }
}
