//! ONNX's `If`, in place of tract's, folded to the chosen branch when its condition
//! is known once the inputs are.
//!
//! tract-onnx 0.23.9 types both branches of every `If` and requires their output
//! facts to be equal, so a model whose branches produce different shapes (an audio
//! model choosing a window by its sample-rate input, say) cannot be typed, and a
//! branch that does not type for the given inputs fails the whole model even when it
//! would never run. When the condition's value is known at analysis (a constant, or
//! computed from inputs whose values the plan is specialised for), this op analyses
//! only the chosen branch and wires its nodes in place of the `If`; otherwise it is
//! tract's `IfThenElse`, which evaluates the condition at run time.

use tract_onnx::model::{ParseResult, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::logic::IfThenElse;
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx::tract_hir::internal::*;

/// Replaces tract's `If` in `onnx`'s operator register.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("If", parse);
}

fn parse(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ParseResult { model: then_body, unresolved_inputs: then_outer, .. } =
        ctx.parse_graph(node.get_attr("then_branch")?)?;
    let ParseResult { model: else_body, unresolved_inputs: else_outer, .. } =
        ctx.parse_graph(node.get_attr("else_branch")?)?;
    // The op's inputs: the condition, then every outer value either branch uses.
    let mut outer: Vec<String> = then_outer.iter().chain(else_outer.iter()).cloned().collect();
    outer.sort();
    outer.dedup();
    let position = |name: &String| outer.iter().position(|s| s == name).unwrap() + 1;
    let then_input_mapping = then_outer.iter().map(position).collect();
    let else_input_mapping = else_outer.iter().map(position).collect();
    ensure!(
        then_body.outputs.len() == else_body.outputs.len(),
        "If: then_branch has {} outputs, else_branch {}",
        then_body.outputs.len(),
        else_body.outputs.len()
    );
    Ok((Box::new(If { then_body, then_input_mapping, else_body, else_input_mapping }), outer))
}

#[derive(Debug, Clone)]
pub struct If {
    then_body: InferenceModel,
    /// For each input of the branch, the index of the op input that feeds it.
    then_input_mapping: Vec<usize>,
    else_body: InferenceModel,
    else_input_mapping: Vec<usize>,
}

// Two Ifs are never merged as duplicates: their branches are not compared.
impl PartialEq for If {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl Eq for If {}

impl If {
    fn branch(&self, cond: bool) -> (&InferenceModel, &[usize]) {
        if cond {
            (&self.then_body, &self.then_input_mapping)
        } else {
            (&self.else_body, &self.else_input_mapping)
        }
    }
}

/// The condition's value, when analysis knows it.
fn known_condition(fact: &InferenceFact) -> TractResult<Option<bool>> {
    match fact.value.concretize() {
        Some(v) => Ok(Some(v.cast_to_scalar::<bool>()?)),
        None => Ok(None),
    }
}

impl Op for If {
    fn name(&self) -> StaticName {
        "If".into()
    }

    not_a_typed_op!();
}

impl EvalOp for If {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (body, mapping) = self.branch(inputs[0].cast_to_scalar::<bool>()?);
        let inputs: TVec<TValue> = mapping.iter().map(|&ix| inputs[ix].clone()).collect();
        body.clone().into_runnable()?.run(inputs)
    }
}

impl InferenceOp for If {
    fn infer_facts(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(TVec<InferenceFact>, TVec<InferenceFact>, TVec<InferenceFact>)> {
        let mut inputs: TVec<InferenceFact> = inputs.into_iter().cloned().collect();
        let mut outputs: TVec<InferenceFact> = outputs.into_iter().cloned().collect();
        inputs[0].datum_type.unify_with(&bool::datum_type().into())?;
        loop {
            let mut changed = false;
            let known = known_condition(&inputs[0])?;
            // A known condition: only the branch that runs is analysed and gives the
            // outputs their facts; the other may not even type for these inputs.
            let branches: &[bool] = match known {
                Some(true) => &[true],
                Some(false) => &[false],
                None => &[true, false],
            };
            for &which in branches {
                let (body, mapping) = if which {
                    (&mut self.then_body, &self.then_input_mapping)
                } else {
                    (&mut self.else_body, &self.else_input_mapping)
                };
                for (body_ix, outer_ix) in mapping.iter().enumerate() {
                    changed |= body.input_fact_mut(body_ix)?.unify_with_mut(&mut inputs[*outer_ix])?;
                }
                for (ix, output) in outputs.iter_mut().enumerate() {
                    let fact = body.output_fact_mut(ix)?;
                    if known.is_some() {
                        changed |= fact.unify_with_mut(output)?;
                    } else {
                        // Unknown: both branches must agree on rank and type, not on values.
                        changed |= fact.shape.unify_with_mut(&mut output.shape)?;
                        changed |= fact.datum_type.unify_with_mut(&mut output.datum_type)?;
                    }
                }
                changed |= body.analyse(false)?;
            }
            if !changed {
                return Ok((inputs, outputs, observed.into_iter().cloned().collect()));
            }
        }
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.then_body.outputs.len())
    }

    fn to_typed(
        &self,
        source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        let inputs: TVec<OutletId> = node.inputs.iter().map(|o| mapping[o]).collect();
        let Some(cond) = known_condition(source.outlet_fact(node.inputs[0])?)? else {
            let op = IfThenElse {
                then_body: self.then_body.clone().into_typed()?,
                else_body: self.else_body.clone().into_typed()?,
                then_input_mapping: self.then_input_mapping.clone(),
                else_input_mapping: self.else_input_mapping.clone(),
            };
            return target.wire_node(&node.name, op, &inputs);
        };
        let (body, body_mapping) = self.branch(cond);
        let body = body.clone().into_typed()?;
        let mut inner: HashMap<OutletId, OutletId> = HashMap::default();
        for (outlet, outer_ix) in body.input_outlets()?.iter().zip(body_mapping) {
            inner.insert(*outlet, inputs[*outer_ix]);
        }
        for id in body.eval_order()? {
            let bnode = body.node(id);
            if bnode.op_is::<TypedSource>() {
                continue;
            }
            let wires: TVec<OutletId> = bnode.inputs.iter().map(|o| inner[o]).collect();
            let name = format!("{}.{}.{}", node.name, if cond { "then" } else { "else" }, bnode.name);
            let outs = target.wire_node(name, bnode.op.clone(), &wires)?;
            for (slot, outlet) in outs.into_iter().enumerate() {
                inner.insert(OutletId::new(id, slot), outlet);
            }
        }
        Ok(body.outputs.iter().map(|o| inner[o]).collect())
    }

    as_op!();
}
