//! ONNX-ML classifiers whose class labels are strings (`classlabels_strings`):
//! `LinearClassifier`, `TreeEnsembleClassifier`, `SVMClassifier`.
//!
//! tract-onnx 0.23.9's classifiers compute their label output generically over the
//! label type and fail on strings ("String doesn't implement num_traits::Zero"), and the
//! guest's own classifiers compute integer labels. A string-labelled classifier is run
//! here as the same classifier labelled `0..n` (each class's index), whose label output
//! then picks its string from the labels: what it answers is what the integer-labelled
//! model answers, class for class, and the scores are untouched.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{AttributeProto, NodeProto};
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_hir::internal::*;

use super::guard::Builder;

/// `builder`'s op for `node`; when `node` has string labels, run on their indices
/// (given in `ints_attr`, the op's integer-labels attribute) and mapped back.
pub fn build(
    ctx: &ParsingContext,
    node: &NodeProto,
    ints_attr: &str,
    builder: Builder,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let Some(strings) = node.attribute.iter().find(|a| a.name == "classlabels_strings") else {
        return builder(ctx, node);
    };
    if strings.strings.is_empty() || node.attribute.iter().any(|a| a.name == ints_attr) {
        // Empty or both: the builder names what is wrong.
        return builder(ctx, node);
    }
    let labels: Vec<String> = strings
        .strings
        .iter()
        .map(|s| String::from_utf8(s.clone()))
        .collect::<Result<_, _>>()
        .map_err(|_| format_err!("{} '{}': a class label is not UTF-8", node.op_type, node.name))?;
    let mut indexed = node.clone();
    indexed.attribute.retain(|a| a.name != "classlabels_strings");
    indexed.attribute.push(AttributeProto {
        name: ints_attr.to_string(),
        r#type: tract_onnx::pb::attribute_proto::AttributeType::Ints as i32,
        ints: (0..labels.len() as i64).collect(),
        ..AttributeProto::default()
    });
    let (inner, extra) = builder(ctx, &indexed)?;
    let labels = tract_ndarray::Array1::from_vec(labels).into_arc_tensor();
    Ok((Box::new(StringLabels { inner, labels }), extra))
}

/// A classifier labelled by class index, whose first output (the labels) is mapped to
/// the class's string.
#[derive(Debug, Clone)]
struct StringLabels {
    inner: Box<dyn InferenceOp>,
    labels: Arc<Tensor>,
}

// Like tract's wrapped ops: never merged as duplicates.
impl PartialEq for StringLabels {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl Eq for StringLabels {}

impl Op for StringLabels {
    fn name(&self) -> StaticName {
        self.inner.name()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut info = self.inner.info()?;
        info.push(format!("{} string labels", self.labels.len()));
        Ok(info)
    }

    not_a_typed_op!();
}

impl EvalOp for StringLabels {
    /// Never folded while typing: the typed plan does the mapping (`to_typed`).
    fn eval_out_of_plan(&self, _inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(None)
    }

    fn eval(&self, _ctx: &EvalContext, _inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        bail!("{} runs only in a typed plan", self.inner.name())
    }
}

impl InferenceOp for StringLabels {
    fn infer_facts(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(TVec<InferenceFact>, TVec<InferenceFact>, TVec<InferenceFact>)> {
        ensure!(!outputs.is_empty(), "{} has no outputs", self.inner.name());
        // The inner op's labels are indices: it infers them without the model's string
        // type, which then replaces its integer one.
        let mut inner_outputs: TVec<InferenceFact> = outputs.iter().map(|f| (*f).clone()).collect();
        inner_outputs[0] = InferenceFact::default();
        let (ins, mut outs, obs) =
            self.inner.infer_facts(inputs, inner_outputs.iter().collect(), observed)?;
        if let Some(first) = outs.first_mut() {
            first.datum_type = DatumType::String.into();
            first.unify_with(&mut outputs[0].clone())?;
        }
        Ok((ins, outs, obs))
    }

    fn observe_outlets(&self, model: &InferenceModel, node: &InferenceNode) -> TractResult<Vec<OutletId>> {
        self.inner.observe_outlets(model, node)
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
        // tract checks what an expansion wires against the node's facts: the inner op's
        // are class indices, int64 as every ONNX-ML classifier's integer labels.
        let mut indexed = node.clone();
        indexed.outputs[0].fact.datum_type = DatumType::I64.into();
        let mut outputs = self.inner.to_typed(source, &indexed, target, mapping)?;
        ensure!(!outputs.is_empty(), "{} wired no outputs", self.inner.name());
        let index = target.outlet_fact(outputs[0])?.datum_type;
        ensure!(index.is_integer(), "{}: its labels are {index:?}, not class indices", self.inner.name());
        let prefix = &node.name;
        let index = if index == DatumType::I64 {
            outputs[0]
        } else {
            target.wire_node(format!("{prefix}.label_index"), tract_onnx::tract_core::ops::cast::cast(DatumType::I64), &[outputs[0]])?[0]
        };
        let table = target.add_const(format!("{prefix}.string_labels"), self.labels.clone())?;
        outputs[0] = target.wire_node(format!("{prefix}.pick_label"), Gather::new(0), &[table, index])?[0];
        Ok(outputs)
    }

    as_op!();
}
