//! ai.onnx.ml 5's `TreeEnsemble`, an op of the guest's own (tract-onnx 0.23.9 has
//! none): its nodes (indexed by position, branching to nodes or to leaves, each leaf one
//! target's weight, trees from `tree_roots`) are read into the form of
//! `TreeEnsembleRegressor`'s attributes and evaluated by the same `crate::ml_forest`,
//! as onnxruntime evaluates both with one implementation. Refused as `UnsupportedModel`:
//! double-precision splits or weights, inputs
//! other than float, post transform PROBIT, and post transforms SOFTMAX (1) and
//! LOGISTIC (2), which onnxruntime 1.32 swaps (it applies LOGISTIC for 1, SOFTMAX for 2).

use std::collections::{HashMap as StdMap, HashSet};

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto};
use tract_onnx::tract_hir::internal::*;

use crate::errors::ModelError;
use crate::ml_forest::{Attributes, Forest, Refusal};

pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("TreeEnsemble", parse);
}

const MODES: [&str; 6] = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"];
/// Nodes read across every tree (a node may belong to several): beyond, refused.
const MAX_NODES: usize = 1 << 24;

enum Child {
    Node(usize),
    Leaf(usize),
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let what = format!("{} '{}'", node.op_type, node.name);
    let bad = |why: String| -> anyhow::Error { ModelError::Inconsistent(format!("{what}: {why}")).into() };
    let unsupported = |why: &str| -> anyhow::Error { ModelError::Unsupported(format!("{what}: {why}")).into() };
    let attr = |name: &str| -> Option<&AttributeProto> { node.attribute.iter().find(|a| a.name == name) };
    let ints = |name: &str| attr(name).map(|a| a.ints.as_slice()).unwrap_or(&[]);
    let int = |name: &str, default: i64| attr(name).map(|a| a.i).unwrap_or(default);
    // A tensor attribute's values: float (f32) or uint8 (modes).
    let tensor = |name: &str| -> TractResult<Vec<f32>> {
        let Some(t): Option<&TensorProto> = attr(name).and_then(|a| a.t.as_ref()) else { return Ok(vec![]) };
        match t.data_type {
            1 if !t.float_data.is_empty() => Ok(t.float_data.clone()),
            1 => Ok(t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
            2 if !t.int32_data.is_empty() => Ok(t.int32_data.iter().map(|&v| v as f32).collect()),
            2 => Ok(t.raw_data.iter().map(|&v| v as f32).collect()),
            11 => Err(unsupported(&format!("{name} in double precision is not implemented"))),
            dt => Err(bad(format!("{name} is a tensor of ONNX type {dt}"))),
        }
    };
    if node.input.len() != 1 || node.output.len() != 1 {
        return Err(bad("takes 1 input and gives 1 output".into()));
    }
    let features = ints("nodes_featureids");
    let n = features.len();
    let (true_ids, true_leafs) = (ints("nodes_truenodeids"), ints("nodes_trueleafs"));
    let (false_ids, false_leafs) = (ints("nodes_falsenodeids"), ints("nodes_falseleafs"));
    let missing = ints("nodes_missing_value_tracks_true");
    let modes = tensor("nodes_modes")?;
    let splits = tensor("nodes_splits")?;
    let leaf_targets = ints("leaf_targetids");
    let leaf_weights = tensor("leaf_weights")?;
    let roots = ints("tree_roots");
    for (name, len) in [
        ("nodes_truenodeids", true_ids.len()),
        ("nodes_trueleafs", true_leafs.len()),
        ("nodes_falsenodeids", false_ids.len()),
        ("nodes_falseleafs", false_leafs.len()),
        ("nodes_modes", modes.len()),
        ("nodes_splits", splits.len()),
    ] {
        if len != n {
            return Err(bad(format!("{name} has {len} entries for {n} nodes")));
        }
    }
    if !missing.is_empty() && missing.len() != n {
        return Err(bad(format!("nodes_missing_value_tracks_true has {} entries for {n} nodes", missing.len())));
    }
    if leaf_weights.len() != leaf_targets.len() {
        return Err(bad(format!("{} leaf_weights for {} leaf_targetids", leaf_weights.len(), leaf_targets.len())));
    }
    if roots.is_empty() {
        return Err(bad("tree_roots is empty".into()));
    }
    let leaves = leaf_targets.len();
    let mut mode_names = Vec::with_capacity(n);
    for &m in &modes {
        match m as usize {
            k @ 0..=5 if m == k as f32 => mode_names.push(MODES[k]),
            6 if m == 6.0 => mode_names.push("BRANCH_MEMBER"),
            _ => return Err(bad(format!("node mode {m} is not one of ONNX's"))),
        }
    }
    // membership_values: the BRANCH_MEMBER nodes' sets, in their order, each ended by a
    // NaN (the last one's NaN may be left out).
    let member_nodes: Vec<usize> = (0..n).filter(|&i| mode_names[i] == "BRANCH_MEMBER").collect();
    let mut groups: Vec<Vec<f32>> = vec![];
    let mut current = vec![];
    for v in tensor("membership_values")? {
        if v.is_nan() {
            groups.push(std::mem::take(&mut current));
        } else {
            current.push(v);
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    if groups.len() != member_nodes.len() {
        return Err(bad(format!(
            "membership_values holds {} sets for {} BRANCH_MEMBER nodes",
            groups.len(),
            member_nodes.len()
        )));
    }
    let mut sets: StdMap<usize, Vec<f32>> = member_nodes.into_iter().zip(groups).collect();
    let child = |i: usize, ids: &[i64], leafs: &[i64], name: &str| -> TractResult<Child> {
        let (id, leaf) = (ids[i], leafs[i]);
        match leaf {
            0 if id >= 0 && (id as u64) < n as u64 => Ok(Child::Node(id as usize)),
            1 if id >= 0 && (id as u64) < leaves as u64 => Ok(Child::Leaf(id as usize)),
            0 | 1 => Err(bad(format!(
                "{name}: node {i} branches to {} {id}, which does not exist",
                if leaf == 1 { "leaf" } else { "node" }
            ))),
            other => Err(bad(format!("node {i}'s leaf flag is {other}, not 0 or 1"))),
        }
    };
    // TreeEnsembleRegressor's form: leaves become nodes n + j of their tree.
    let mut a = Attributes {
        n_targets: int("n_targets", 1),
        aggregate: match int("aggregate_function", 1) {
            0 => "AVERAGE",
            1 => "SUM",
            2 => "MIN",
            3 => "MAX",
            other => return Err(bad(format!("aggregate_function is {other}"))),
        }
        .into(),
        post_transform: match int("post_transform", 0) {
            0 => "NONE",
            // The spec's SOFTMAX (1) and LOGISTIC (2): onnxruntime 1.32 reads 1 as
            // LOGISTIC and 2 as SOFTMAX (its own enum's order). No answer rather than one
            // of two.
            1 | 2 => {
                return Err(unsupported(
                    "post_transform 1 (SOFTMAX) and 2 (LOGISTIC) are read the other way round by \
                     onnxruntime, so either answer would disagree with one of the two",
                ))
            }
            3 => "SOFTMAX_ZERO",
            4 => "PROBIT",
            other => return Err(bad(format!("post_transform is {other}"))),
        }
        .into(),
        ..Default::default()
    };
    let (mut tree_ids, mut node_ids, mut feature_ids, mut values, mut yes, mut no, mut tracks) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut t_trees, mut t_nodes, mut t_ids, mut t_weights) = (vec![], vec![], vec![], vec![]);
    for (t, &root) in roots.iter().enumerate() {
        if root < 0 || root as u64 >= n as u64 {
            return Err(bad(format!("tree root {root} is not one of the {n} nodes")));
        }
        let mut seen = HashSet::new();
        let mut stack = vec![Child::Node(root as usize)];
        while let Some(c) = stack.pop() {
            if tree_ids.len() >= MAX_NODES {
                return Err(bad(format!("its trees hold more than {MAX_NODES} nodes")));
            }
            tree_ids.push(t as i64);
            match c {
                Child::Node(i) => {
                    if !seen.insert(i) {
                        return Err(bad(format!("node {i} is reached twice in tree {t}")));
                    }
                    let (y, f) = (
                        child(i, true_ids, true_leafs, "nodes_truenodeids")?,
                        child(i, false_ids, false_leafs, "nodes_falsenodeids")?,
                    );
                    let id = |c: &Child| match *c {
                        Child::Node(k) => k as i64,
                        Child::Leaf(j) => (n + j) as i64,
                    };
                    node_ids.push(i as i64);
                    feature_ids.push(features[i]);
                    values.push(splits[i]);
                    a.modes.push(mode_names[i].to_string());
                    a.members.push(sets.remove(&i).unwrap_or_default());
                    yes.push(id(&y));
                    no.push(id(&f));
                    tracks.push(missing.get(i).copied().unwrap_or(0));
                    stack.push(f);
                    stack.push(y);
                }
                Child::Leaf(j) => {
                    if !seen.insert(n + j) {
                        return Err(bad(format!("leaf {j} is reached twice in tree {t}")));
                    }
                    node_ids.push((n + j) as i64);
                    feature_ids.push(0);
                    values.push(0.0);
                    a.modes.push("LEAF".into());
                    a.members.push(vec![]);
                    yes.push(0);
                    no.push(0);
                    tracks.push(0);
                    t_trees.push(t as i64);
                    t_nodes.push((n + j) as i64);
                    t_ids.push(leaf_targets[j]);
                    t_weights.push(leaf_weights[j]);
                }
            }
        }
    }
    a.tree_ids = &tree_ids;
    a.node_ids = &node_ids;
    a.feature_ids = &feature_ids;
    a.values = &values;
    a.true_ids = &yes;
    a.false_ids = &no;
    a.missing_tracks_true = &tracks;
    a.target_tree_ids = &t_trees;
    a.target_node_ids = &t_nodes;
    a.target_ids = &t_ids;
    a.target_weights = &t_weights;
    let forest = Forest::build(&a).map_err(|r| match r {
        Refusal::Inconsistent(m) => bad(m),
        Refusal::Unsupported(m) => unsupported(&m),
    })?;
    Ok((super::tree_regressor::op(what, forest, true), vec![]))
}
