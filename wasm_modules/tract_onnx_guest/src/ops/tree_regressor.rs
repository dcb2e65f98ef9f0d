//! ONNX-ML's `TreeEnsembleRegressor`, an op of the guest's own (tract-onnx 0.23.9 has
//! none): `crate::ml_forest` checks the attributes and evaluates the trees as
//! onnxruntime does. The input's feature count is checked when the plan is typed: a
//! branch on a feature the input lacks is `InvalidModel`.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{AttributeProto, NodeProto};
use tract_onnx::tract_hir::internal::*;

use crate::errors::ModelError;
use crate::ml_forest::{Attributes, Forest, Refusal};

pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("TreeEnsembleRegressor", parse);
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let what = format!("{} '{}'", node.op_type, node.name);
    let attr = |name: &str| -> Option<&AttributeProto> { node.attribute.iter().find(|a| a.name == name) };
    let ints = |name: &str| attr(name).map(|a| a.ints.as_slice()).unwrap_or(&[]);
    let floats = |name: &str| attr(name).map(|a| a.floats.as_slice()).unwrap_or(&[]);
    let string = |name: &str, default: &str| {
        attr(name).map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_else(|| default.into())
    };
    for name in ["nodes_values_as_tensor", "target_weights_as_tensor", "base_values_as_tensor"] {
        if attr(name).is_some() {
            return Err(ModelError::Unsupported(format!("{what}: {name} (double precision) is not implemented")).into());
        }
    }
    if node.input.len() != 1 || node.output.len() != 1 {
        return Err(ModelError::Inconsistent(format!("{what}: takes 1 input and gives 1 output")).into());
    }
    let attributes = Attributes {
        tree_ids: ints("nodes_treeids"),
        node_ids: ints("nodes_nodeids"),
        feature_ids: ints("nodes_featureids"),
        values: floats("nodes_values"),
        modes: attr("nodes_modes")
            .map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
            .unwrap_or_default(),
        true_ids: ints("nodes_truenodeids"),
        false_ids: ints("nodes_falsenodeids"),
        missing_tracks_true: ints("nodes_missing_value_tracks_true"),
        target_tree_ids: ints("target_treeids"),
        target_node_ids: ints("target_nodeids"),
        target_ids: ints("target_ids"),
        target_weights: floats("target_weights"),
        n_targets: attr("n_targets").map(|a| a.i).unwrap_or(1),
        aggregate: string("aggregate_function", "SUM"),
        base_values: floats("base_values"),
        post_transform: string("post_transform", "NONE"),
        members: vec![],
    };
    let forest = Forest::build(&attributes).map_err(|r| -> anyhow::Error {
        match r {
            Refusal::Inconsistent(m) => ModelError::Inconsistent(format!("{what}: {m}")).into(),
            Refusal::Unsupported(m) => ModelError::Unsupported(format!("{what}: {m}")).into(),
        }
    })?;
    Ok((op(what, forest, false), vec![]))
}

/// The op for `forest`; `float_only` for ai.onnx.ml 5's `TreeEnsemble`, whose output is
/// of its input's type (only float is implemented).
pub(super) fn op(what: String, forest: Forest, float_only: bool) -> Box<dyn InferenceOp> {
    expand(Hir(TreeRegressor { what, forest: Arc::new(forest), float_only }))
}

#[derive(Debug, Clone)]
struct Hir(TreeRegressor);

impl Expansion for Hir {
    fn name(&self) -> StaticName {
        self.0.name()
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
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[1], self.0.forest.n_targets.to_dim())?;
        s.given(&inputs[0].rank, move |s, rank| {
            if rank == 2 {
                s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
            }
            Ok(())
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0.clone(), inputs)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct TreeRegressor {
    what: String,
    forest: Arc<Forest>,
    float_only: bool,
}

impl Eq for TreeRegressor {}

impl Op for TreeRegressor {
    fn name(&self) -> StaticName {
        if self.float_only { "TreeEnsemble" } else { "TreeEnsembleRegressor" }.into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeRegressor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let x = match x.datum_type() {
            DatumType::TDim => x.cast_to::<i64>()?.cast_to::<f64>()?.into_owned(),
            _ => x.cast_to::<f64>()?.into_owned(),
        };
        let shape = x.shape();
        let width = shape.last().copied().unwrap_or(1);
        let rows = if shape.len() <= 1 { 1 } else { shape[0] };
        if width < self.forest.features || shape.len() > 2 {
            bail!("{}: an input of shape {shape:?} for trees over {} features", self.what, self.forest.features);
        }
        let y = self.forest.eval(x.try_as_plain_ram()?.as_slice::<f64>()?, width);
        Ok(tvec!(Tensor::from_shape(&[rows, self.forest.n_targets], &y)?.into_tvalue()))
    }
}

impl TypedOp for TreeRegressor {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        if !matches!(x.datum_type, DatumType::F32 | DatumType::F64 | DatumType::I64 | DatumType::I32 | DatumType::TDim)
        {
            bail!("{}: an input of {:?} is not supported", self.what, x.datum_type);
        }
        if !(1..=2).contains(&x.rank()) {
            bail!("{}: the input must be of rank 1 or 2, not {}", self.what, x.rank());
        }
        if self.float_only && x.datum_type != DatumType::F32 {
            return Err(ModelError::Unsupported(format!(
                "{}: an input of {:?} is not implemented (only float)",
                self.what, x.datum_type
            ))
            .into());
        }
        if let Some(w) = x.shape.last().and_then(|d| d.to_usize().ok()) {
            if w < self.forest.features {
                return Err(ModelError::Inconsistent(format!(
                    "{}: a branch reads feature {}, but the input has {w} features",
                    self.what,
                    self.forest.features - 1
                ))
                .into());
            }
        }
        let rows = if x.rank() == 1 { 1.to_dim() } else { x.shape[0].clone() };
        Ok(tvec!(f32::fact([rows, self.forest.n_targets.to_dim()])))
    }
}
