//! ONNX-ML's `TreeEnsembleClassifier`: tract's op, with the labels of two-class
//! ensembles corrected.
//!
//! When every leaf of a two-class ensemble weighs class 0, the ensemble scores one
//! class, p, and the op answers [1 - p, p] (onnxruntime's and scikit-learn's binary
//! layout). tract-onnx 0.23.9 gets those scores right but picks each label from the
//! scores before that layout, [p, 0]: it answers class 0 where class 1 is likelier
//! (51 of iris's 150 rows for a RandomForestClassifier exported by skl2onnx). Here
//! the labels are picked from the scores the op returns, as onnxruntime does.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
use tract_onnx::tract_hir::internal::*;

use super::guard::{self, Guard};

pub fn register(onnx: &mut tract_onnx::Onnx) {
    guard::replace(onnx, "TreeEnsembleClassifier", classifier);
}

fn classifier(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let labels = match (attr("classlabels_int64s"), attr("classlabels_strings")) {
        (Some(ints), None) => tensor1(&ints.ints),
        (None, Some(strings)) => tensor1(
            &strings.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect::<Vec<_>>(),
        ),
        // tract's builder names what is wrong.
        _ => return guard::build(ctx, node, BinaryLabels(None)),
    };
    // tract's condition for its binary layout, from the same attribute.
    let binary = labels.len() < 3
        && attr("class_ids").is_some_and(|ids| ids.ints.iter().all(|&id| id == 0));
    guard::build(ctx, node, BinaryLabels(binary.then(|| labels.into_arc_tensor())))
}

/// For a binary-layout ensemble, its class labels: the labels output is re-picked.
#[derive(Debug, Clone)]
struct BinaryLabels(Option<Arc<Tensor>>);

impl Guard for BinaryLabels {
    fn rewire(&self, prefix: &str, target: &mut TypedModel, outputs: TVec<OutletId>) -> TractResult<TVec<OutletId>> {
        let Some(labels) = &self.0 else { return Ok(outputs) };
        ensure!(outputs.len() == 2, "TreeEnsembleClassifier wired {} outputs", outputs.len());
        // The first of equal scores wins, as in onnxruntime's binary case (p > 0.5).
        let winners = target.wire_node(
            format!("{prefix}.binary_argmax"),
            Reduce::new(tvec!(1), Reducer::ArgMax(false)),
            &[outputs[1]],
        )?;
        let winners = target.wire_node(format!("{prefix}.binary_rm_axis"), AxisOp::Rm(1), &winners)?;
        let table = target.add_const(format!("{prefix}.binary_labels"), labels.clone())?;
        let picked = target.wire_node(format!("{prefix}.binary_pick"), Gather::new(0), &[table, winners[0]])?;
        Ok(tvec!(picked[0], outputs[1]))
    }

    fn folds(&self) -> bool {
        self.0.is_none()
    }
}
