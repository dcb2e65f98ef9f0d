//! ONNX-ML's `TreeEnsembleClassifier`: tract's op, with the labels of two-class
//! ensembles corrected.
//!
//! When every leaf of a two-class ensemble weighs class 0, the ensemble scores one
//! class, p, and the op answers [1 - p, p] (onnxruntime's and scikit-learn's binary
//! layout). tract-onnx 0.23.9 gets those scores right but picks each label from the
//! scores before that layout, [p, 0]: it answers class 0 where class 1 is likelier
//! (51 of iris's 150 rows for a RandomForestClassifier exported by skl2onnx). Here
//! the labels are picked from the scores the op returns, as onnxruntime does. And an
//! ensemble whose attributes contradict each other is refused (`check_ensemble`).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
use tract_onnx::tract_hir::internal::*;

use super::guard::{self, Guard};
use crate::errors::ModelError;

pub fn register(onnx: &mut tract_onnx::Onnx) {
    guard::replace(onnx, "TreeEnsembleClassifier", |ctx, node| {
        super::string_labels::build(ctx, node, "classlabels_int64s", classifier)
    });
}

fn classifier(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let classes = attr("classlabels_int64s").map(|a| a.ints.len()).unwrap_or(0)
        + attr("classlabels_strings").map(|a| a.strings.len()).unwrap_or(0);
    check_ensemble(node, classes)?;
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
    let guard = BinaryLabels(binary.then(|| labels.into_arc_tensor()));
    match attr("base_values").map(|a| a.floats.len()) {
        Some(n) if n != classes && binary && n == 1 => {
            // A binary-layout ensemble scores class 0 alone, so skl2onnx gives its
            // GradientBoostingClassifier one base value, which onnxruntime adds to that
            // score. tract wants one per class and adds each to its column, of which it
            // keeps the first: [b, 0] is the same sum.
            let mut padded = node.clone();
            for a in padded.attribute.iter_mut().filter(|a| a.name == "base_values") {
                a.floats.push(0.0);
            }
            guard::build(ctx, &padded, guard)
        }
        Some(n) if n != classes => Err(ModelError::Inconsistent(format!(
            "{} '{}': base_values has {n} values for {classes} classes",
            node.op_type, node.name
        ))
        .into()),
        _ => guard::build(ctx, node, guard),
    }
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

/// Refuses a tree ensemble whose attributes contradict each other: lists of unequal
/// lengths, a node given twice, a branch to a node its tree lacks, a weight on a node
/// that is not a leaf of its tree, a class id past the labels. tract-onnx 0.23.9 reads
/// node ids as `usize`, which is 32 bits in the guest: a weight on node 2^40 landed on
/// node 0 here and nowhere natively (onnxruntime refuses the model). Ids are compared
/// as the i64s they are.
fn check_ensemble(node: &NodeProto, classes: usize) -> TractResult<()> {
    let ints = |name: &str| node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.as_slice());
    let inconsistent = |why: String| -> anyhow::Error {
        ModelError::Inconsistent(format!("{} '{}': {why}", node.op_type, node.name)).into()
    };
    let (Some(trees), Some(ids)) = (ints("nodes_treeids"), ints("nodes_nodeids")) else {
        return Ok(()); // tract's builder names what is missing
    };
    let modes: Vec<&[u8]> = node
        .attribute
        .iter()
        .find(|a| a.name == "nodes_modes")
        .map(|a| a.strings.iter().map(|s| s.as_slice()).collect())
        .unwrap_or_default();
    let n = ids.len();
    for name in ["nodes_treeids", "nodes_featureids", "nodes_truenodeids", "nodes_falsenodeids"] {
        if let Some(v) = ints(name) {
            if v.len() != n {
                return Err(inconsistent(format!("{name} has {} entries for {n} nodes", v.len())));
            }
        }
    }
    if modes.len() != n {
        return Err(inconsistent(format!("nodes_modes has {} entries for {n} nodes", modes.len())));
    }
    let mut leaf: HashMap<(i64, i64), bool> = HashMap::default();
    for i in 0..n {
        if leaf.insert((trees[i], ids[i]), modes[i] == b"LEAF").is_some() {
            return Err(inconsistent(format!("node {} of tree {} is given twice", ids[i], trees[i])));
        }
    }
    if let Some(features) = ints("nodes_featureids") {
        if let Some(f) = features.iter().find(|&&f| f < 0) {
            return Err(inconsistent(format!("feature id {f} is negative")));
        }
    }
    for name in ["nodes_truenodeids", "nodes_falsenodeids"] {
        let Some(targets) = ints(name) else { continue };
        for i in 0..n {
            if modes[i] != b"LEAF" && !leaf.contains_key(&(trees[i], targets[i])) {
                return Err(inconsistent(format!(
                    "{name}: node {} of tree {} branches to node {}, which the tree lacks",
                    ids[i], trees[i], targets[i]
                )));
            }
        }
    }
    let (Some(wtrees), Some(wnodes), Some(wclasses)) =
        (ints("class_treeids"), ints("class_nodeids"), ints("class_ids"))
    else {
        return Ok(());
    };
    let weights = node.attribute.iter().find(|a| a.name == "class_weights").map(|a| a.floats.len());
    if wnodes.len() != wtrees.len() || wclasses.len() != wtrees.len() || weights.is_some_and(|w| w != wtrees.len()) {
        return Err(inconsistent(format!(
            "class_treeids, class_nodeids, class_ids and class_weights have {}, {}, {} and {} entries",
            wtrees.len(),
            wnodes.len(),
            wclasses.len(),
            weights.unwrap_or(0)
        )));
    }
    for k in 0..wtrees.len() {
        match leaf.get(&(wtrees[k], wnodes[k])) {
            Some(true) => {}
            Some(false) => {
                return Err(inconsistent(format!(
                    "a class weight is on node {} of tree {}, which is not a leaf",
                    wnodes[k], wtrees[k]
                )))
            }
            None => {
                return Err(inconsistent(format!(
                    "a class weight is on node {} of tree {}, which the tree lacks",
                    wnodes[k], wtrees[k]
                )))
            }
        }
        if wclasses[k] < 0 || wclasses[k] as u64 >= classes as u64 {
            return Err(inconsistent(format!("class id {} is not one of the {classes} classes", wclasses[k])));
        }
    }
    Ok(())
}
