//! tract's own op for an ONNX node, behind a guard of ours: checks on its inputs and
//! fixes to what it wires, without copying the op.
//!
//! tract-onnx keeps its ONNX-ML ops private; a wrapper that delegates everything is
//! the one way to refuse what they would compute wrongly, or to correct it.

use std::collections::HashMap as StdHashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

pub type Builder = fn(&ParsingContext, &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// tract's own builders, by ONNX op name, for the wrappers to call.
static TRACTS: Mutex<Option<StdHashMap<&'static str, Builder>>> = Mutex::new(None);

/// Puts `wrapper` in `onnx`'s register in place of tract's builder for `name`, which
/// [`tracts`] keeps for it.
pub fn replace(onnx: &mut tract_onnx::Onnx, name: &'static str, wrapper: Builder) {
    if let Some(original) = onnx.op_register.0.get(name).copied() {
        TRACTS.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(StdHashMap::new).insert(name, original);
        onnx.op_register.insert(name, wrapper);
    }
}

/// Builds tract's op for `node` and puts it behind `guard`.
pub fn build<G: Guard>(
    ctx: &ParsingContext,
    node: &NodeProto,
    guard: G,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let builder = TRACTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|t| t.get(node.op_type.as_str()).copied())
        .ok_or_else(|| format_err!("{} is not registered", node.op_type))?;
    let (inner, extra) = builder(ctx, node)?;
    Ok((Box::new(Guarded { inner, guard }), extra))
}

/// What a guard adds to tract's op. Every method defaults to changing nothing.
pub trait Guard: Debug + Clone + Send + Sync + 'static {
    /// Checks the input facts before tract's op infers from them.
    fn infer(&self, _inputs: &[&InferenceFact]) -> TractResult<()> {
        Ok(())
    }

    /// Checks the inputs' typed facts, once the model is typed.
    fn typed_inputs(&self, _inputs: &[&TypedFact]) -> TractResult<()> {
        Ok(())
    }

    /// Rewires the outputs tract's op wired into `target`.
    fn rewire(
        &self,
        _prefix: &str,
        _target: &mut TypedModel,
        outputs: TVec<OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        Ok(outputs)
    }

    /// Whether tract's op may be evaluated while typing (constant folding): not when
    /// `rewire` corrects what it computes.
    fn folds(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
pub struct Guarded<G: Guard> {
    inner: Box<dyn InferenceOp>,
    guard: G,
}

// Like tract's wrapped ops: never merged as duplicates.
impl<G: Guard> PartialEq for Guarded<G> {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl<G: Guard> Eq for Guarded<G> {}

impl<G: Guard> Guarded<G> {
    fn check_values(&self, inputs: &[TValue]) -> TractResult<()> {
        let facts: TVec<TypedFact> =
            inputs.iter().map(|t| TypedFact::dt_shape(t.datum_type(), t.shape())).collect();
        let facts: TVec<&TypedFact> = facts.iter().collect();
        self.guard.typed_inputs(&facts)
    }
}

impl<G: Guard> Op for Guarded<G> {
    fn name(&self) -> StaticName {
        self.inner.name()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        self.inner.info()
    }

    not_a_typed_op!();
}

impl<G: Guard> EvalOp for Guarded<G> {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        if !self.guard.folds() {
            return Ok(None);
        }
        self.check_values(&inputs)?;
        self.inner.eval_out_of_plan(inputs)
    }

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(self.guard.folds(), "{} runs only in a typed plan", self.inner.name());
        self.check_values(&inputs)?;
        self.inner.eval(ctx, inputs)
    }
}

impl<G: Guard> InferenceOp for Guarded<G> {
    fn infer_facts(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(TVec<InferenceFact>, TVec<InferenceFact>, TVec<InferenceFact>)> {
        self.guard.infer(&inputs)?;
        self.inner.infer_facts(inputs, outputs, observed)
    }

    fn observe_outlets(&self, model: &InferenceModel, node: &InferenceNode) -> TractResult<Vec<OutletId>> {
        self.inner.observe_outlets(model, node)
    }

    fn incorporate(&self, model: &InferenceModel, node: &InferenceNode) -> TractResult<Option<InferenceModelPatch>> {
        self.inner.incorporate(model, node)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        self.inner.nboutputs()
    }

    fn to_typed(
        &self,
        source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        {
            let facts: TVec<&TypedFact> =
                node.inputs.iter().map(|o| target.outlet_fact(mapping[o])).collect::<TractResult<_>>()?;
            self.guard.typed_inputs(&facts)?;
        }
        let outputs = self.inner.to_typed(source, node, target, mapping)?;
        self.guard.rewire(&node.name, target, outputs)
    }

    as_op!();
}
