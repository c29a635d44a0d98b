//! ONNX-ML operators that scikit-learn exports use and tract lacks or gets
//! wrong.
//!
//! * `Scaler` (`StandardScaler`, `MinMaxScaler`, `RobustScaler`…):
//!   `(x - offset) * scale` per column, wired from tract's arithmetic.
//! * `TreeEnsembleClassifier` and `TreeEnsembleRegressor`: see [`crate::trees`].

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_core::ops::cast::cast;
use tract_onnx::tract_hir::tract_core::ops::change_axes::wire_with_rank_broadcast;
use tract_onnx::tract_hir::tract_core::ops::math;

/// Adds Oxflow's operators to tract's ONNX operator table.
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Scaler", scaler);
    crate::trees::register(reg);
}

/// `ai.onnx.ml.Scaler`: `(x - offset) * scale` along the last axis, as float.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Scaler {
    offset: Arc<Tensor>,
    scale: Arc<Tensor>,
}

fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset: Vec<f32> = node
        .get_attr_opt_vec("offset")?
        .unwrap_or_else(|| vec![0.0]);
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]);
    node.expect_attr("offset", !offset.is_empty(), "at least one value")?;
    node.expect_attr("scale", !scale.is_empty(), "at least one value")?;
    Ok((
        expand(Scaler {
            offset: rctensor1(&offset),
            scale: rctensor1(&scale),
        }),
        vec![],
    ))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        if model.outlet_fact(x)?.datum_type != DatumType::F32 {
            x = model.wire_node(format!("{prefix}.cast"), cast(DatumType::F32), &[x])?[0];
        }
        let offset = model.add_const(format!("{prefix}.offset"), self.offset.clone())?;
        let scale = model.add_const(format!("{prefix}.scale"), self.scale.clone())?;
        let centred =
            wire_with_rank_broadcast(format!("{prefix}.sub"), model, math::sub(), &[x, offset])?;
        wire_with_rank_broadcast(
            format!("{prefix}.mul"),
            model,
            math::mul(),
            &[centred[0], scale],
        )
    }
}
