//! A tree ensemble as ONNX-ML's `TreeEnsembleRegressor` describes it, checked and
//! evaluated as onnxruntime evaluates it, without tract (its tests run natively).
//!
//! Each tree starts at its first node in the attributes' order (node 0 in every model
//! skl2onnx writes); a branch goes to its true node when the comparison of the input's
//! feature with the node's value holds, or when the feature is NaN and the node's
//! `nodes_missing_value_tracks_true` is set. Leaves add weights to targets; the trees'
//! scores are aggregated (SUM, AVERAGE, MIN, MAX), the base values added, then the post
//! transform applied, in onnxruntime's order and, for floats, its single precision.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    /// `BRANCH_MEMBER` (ai.onnx.ml 5's TreeEnsemble): true when the feature is one of
    /// the node's set.
    Member,
    Leaf,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "BRANCH_MEMBER" => Mode::Member,
            "LEAF" => Mode::Leaf,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

/// The attributes of a `TreeEnsembleRegressor` node, as read from the protobuf.
#[derive(Debug, Default, Clone)]
pub struct Attributes<'a> {
    pub tree_ids: &'a [i64],
    pub node_ids: &'a [i64],
    pub feature_ids: &'a [i64],
    pub values: &'a [f32],
    pub modes: Vec<String>,
    pub true_ids: &'a [i64],
    pub false_ids: &'a [i64],
    /// Empty, or one per node.
    pub missing_tracks_true: &'a [i64],
    pub target_tree_ids: &'a [i64],
    pub target_node_ids: &'a [i64],
    pub target_ids: &'a [i64],
    pub target_weights: &'a [f32],
    pub n_targets: i64,
    pub aggregate: String,
    pub base_values: &'a [f32],
    pub post_transform: String,
    /// Per node, its set for `BRANCH_MEMBER` (empty for the other modes, or for all).
    pub members: Vec<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    mode: Mode,
    feature: usize,
    value: f32,
    /// Indices in `Forest::nodes`.
    yes: u32,
    no: u32,
    nan_yes: bool,
    /// The leaf's weights: `Forest::weights[first..end]`.
    first: u32,
    end: u32,
    /// A `BRANCH_MEMBER` node's set: `Forest::sets[set.0..set.1]`.
    set: (u32, u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// (target, weight), grouped by leaf.
    weights: Vec<(u32, f32)>,
    pub n_targets: usize,
    aggregate: Aggregate,
    base: Vec<f32>,
    post: Post,
    /// One more than the largest feature id a branch reads.
    pub features: usize,
    /// The `BRANCH_MEMBER` nodes' sets, one after the other.
    sets: Vec<f32>,
}

/// Why a forest was refused: its attributes contradict each other, or it is valid but
/// asks for what is not implemented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Inconsistent(String),
    Unsupported(String),
}

impl Forest {
    pub fn build(a: &Attributes) -> Result<Forest, Refusal> {
        let bad = |s: String| Err(Refusal::Inconsistent(s));
        let n = a.node_ids.len();
        if n == 0 {
            return bad("has no nodes".into());
        }
        for (name, len) in [
            ("nodes_treeids", a.tree_ids.len()),
            ("nodes_featureids", a.feature_ids.len()),
            ("nodes_values", a.values.len()),
            ("nodes_modes", a.modes.len()),
            ("nodes_truenodeids", a.true_ids.len()),
            ("nodes_falsenodeids", a.false_ids.len()),
        ] {
            if len != n {
                return bad(format!("{name} has {len} entries for {n} nodes"));
            }
        }
        if !a.missing_tracks_true.is_empty() && a.missing_tracks_true.len() != n {
            return bad(format!(
                "nodes_missing_value_tracks_true has {} entries for {n} nodes",
                a.missing_tracks_true.len()
            ));
        }
        let t = a.target_tree_ids.len();
        if a.target_node_ids.len() != t || a.target_ids.len() != t || a.target_weights.len() != t {
            return bad(format!(
                "target_treeids, target_nodeids, target_ids and target_weights have {t}, {}, {} and {} entries",
                a.target_node_ids.len(),
                a.target_ids.len(),
                a.target_weights.len()
            ));
        }
        if a.n_targets <= 0 || a.n_targets > 1 << 20 {
            return bad(format!("n_targets is {}", a.n_targets));
        }
        let n_targets = a.n_targets as usize;
        if !a.base_values.is_empty() && a.base_values.len() != n_targets {
            return bad(format!("{} base_values for {n_targets} targets", a.base_values.len()));
        }
        let aggregate = match a.aggregate.as_str() {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => return bad(format!("aggregate_function is '{other}'")),
        };
        let post = match a.post_transform.as_str() {
            "NONE" => Post::None,
            "LOGISTIC" => Post::Logistic,
            "SOFTMAX" => Post::Softmax,
            "SOFTMAX_ZERO" => Post::SoftmaxZero,
            "PROBIT" => return Err(Refusal::Unsupported("post_transform PROBIT is not implemented".into())),
            other => return bad(format!("post_transform is '{other}'")),
        };
        let modes = a
            .modes
            .iter()
            .map(|m| {
                Mode::parse(m).ok_or_else(|| Refusal::Inconsistent(format!("node mode '{m}' is not one of ONNX's")))
            })
            .collect::<Result<Vec<Mode>, Refusal>>()?;
        let mut index: HashMap<(i64, i64), u32> = HashMap::new();
        let mut roots = vec![];
        for i in 0..n {
            if index.insert((a.tree_ids[i], a.node_ids[i]), i as u32).is_some() {
                return bad(format!("node {} of tree {} is given twice", a.node_ids[i], a.tree_ids[i]));
            }
            if i == 0 || !a.tree_ids[..i].contains(&a.tree_ids[i]) {
                roots.push(i as u32);
            }
        }
        // Leaves' weights, grouped by leaf in the order given.
        let mut by_leaf: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        for k in 0..t {
            let Some(&i) = index.get(&(a.target_tree_ids[k], a.target_node_ids[k])) else {
                return bad(format!(
                    "a target weight is on node {} of tree {}, which the tree lacks",
                    a.target_node_ids[k], a.target_tree_ids[k]
                ));
            };
            if modes[i as usize] != Mode::Leaf {
                return bad(format!(
                    "a target weight is on node {} of tree {}, which is not a leaf",
                    a.target_node_ids[k], a.target_tree_ids[k]
                ));
            }
            let target = a.target_ids[k];
            if target < 0 || target >= n_targets as i64 {
                return bad(format!("target id {target} is not one of the {n_targets} targets"));
            }
            let weights = by_leaf.entry(i).or_default();
            if weights.iter().any(|&(t, _)| t == target as u32) {
                // onnxruntime adds both with several targets, only the first with one.
                return Err(Refusal::Unsupported(format!(
                    "node {} of tree {} weighs target {target} twice, which onnxruntime counts once or twice \
                     depending on the number of targets",
                    a.target_node_ids[k], a.target_tree_ids[k]
                )));
            }
            weights.push((target as u32, a.target_weights[k]));
        }
        let mut nodes = Vec::with_capacity(n);
        let mut weights = vec![];
        let mut sets = vec![];
        let mut features = 0;
        for i in 0..n {
            let mode = modes[i];
            let child = |ids: &[i64], name: &str| -> Result<u32, Refusal> {
                index.get(&(a.tree_ids[i], ids[i])).copied().ok_or_else(|| {
                    Refusal::Inconsistent(format!(
                        "{name}: node {} of tree {} branches to node {}, which the tree lacks",
                        a.node_ids[i], a.tree_ids[i], ids[i]
                    ))
                })
            };
            let (yes, no, feature) = if mode == Mode::Leaf {
                (0, 0, 0)
            } else {
                let f = a.feature_ids[i];
                if f < 0 || f >= 1 << 31 {
                    return bad(format!("feature id {f} is out of range"));
                }
                features = features.max(f as usize + 1);
                (child(a.true_ids, "nodes_truenodeids")?, child(a.false_ids, "nodes_falsenodeids")?, f as usize)
            };
            let first = weights.len() as u32;
            if let Some(w) = by_leaf.remove(&(i as u32)) {
                weights.extend(w);
            }
            let set_start = sets.len() as u32;
            if mode == Mode::Member {
                match a.members.get(i) {
                    Some(m) if !m.is_empty() => sets.extend_from_slice(m),
                    _ => return bad(format!("node {} of tree {} is BRANCH_MEMBER with no set", a.node_ids[i], a.tree_ids[i])),
                }
            }
            nodes.push(Node {
                mode,
                feature,
                value: a.values[i],
                yes,
                no,
                nan_yes: a.missing_tracks_true.get(i).is_some_and(|&m| m != 0),
                first,
                end: weights.len() as u32,
                set: (set_start, sets.len() as u32),
            });
        }
        // Every tree must be a tree: no node reached twice from its root (a cycle would
        // never end).
        let mut seen = vec![false; n];
        for &root in &roots {
            let mut stack = vec![root];
            while let Some(i) = stack.pop() {
                let node = &nodes[i as usize];
                if std::mem::replace(&mut seen[i as usize], true) {
                    return bad(format!(
                        "node {} of tree {} is reached twice",
                        a.node_ids[i as usize], a.tree_ids[i as usize]
                    ));
                }
                if node.mode != Mode::Leaf {
                    stack.push(node.yes);
                    stack.push(node.no);
                }
            }
        }
        let base = if a.base_values.is_empty() { vec![0.0; n_targets] } else { a.base_values.to_vec() };
        Ok(Forest { nodes, roots, weights, n_targets, aggregate, base, post, features, sets })
    }

    fn leaf(&self, root: u32, row: &[f64]) -> &Node {
        let mut node = &self.nodes[root as usize];
        loop {
            let x = row[node.feature];
            let v = node.value as f64;
            let yes = match node.mode {
                Mode::Leaf => return node,
                _ if x.is_nan() && node.nan_yes => true,
                Mode::Leq => x <= v,
                Mode::Lt => x < v,
                Mode::Gte => x >= v,
                Mode::Gt => x > v,
                Mode::Eq => x == v,
                Mode::Neq => x != v,
                Mode::Member => self.sets[node.set.0 as usize..node.set.1 as usize].iter().any(|&m| m as f64 == x),
            };
            node = &self.nodes[if yes { node.yes } else { node.no } as usize];
        }
    }

    /// The scores of `x`'s rows of `width` features (`width >= self.features`).
    pub fn eval(&self, x: &[f64], width: usize) -> Vec<f32> {
        let t = self.n_targets;
        let mut out = Vec::with_capacity(x.len() / width.max(1) * t);
        let mut scores = vec![0f32; t];
        let mut has = vec![false; t];
        for row in x.chunks(width.max(1)) {
            scores.fill(0.0);
            has.fill(false);
            for &root in &self.roots {
                let leaf = self.leaf(root, row);
                for &(target, w) in &self.weights[leaf.first as usize..leaf.end as usize] {
                    let (s, h) = (&mut scores[target as usize], &mut has[target as usize]);
                    *s = match self.aggregate {
                        Aggregate::Sum | Aggregate::Average => *s + w,
                        Aggregate::Min if *h => s.min(w),
                        Aggregate::Max if *h => s.max(w),
                        Aggregate::Min | Aggregate::Max => w,
                    };
                    *h = true;
                }
            }
            for j in 0..t {
                // A target no leaf weighed stays 0, base value and all, when there are
                // several (onnxruntime's; a single target always gets its base value).
                scores[j] = match self.aggregate {
                    _ if !has[j] && t > 1 => 0.0,
                    Aggregate::Average => scores[j] / self.roots.len() as f32 + self.base[j],
                    _ => scores[j] + self.base[j],
                };
            }
            post_transform(self.post, &mut scores);
            out.extend_from_slice(&scores);
        }
        out
    }
}

fn post_transform(post: Post, s: &mut [f32]) {
    match post {
        Post::None => {}
        Post::Logistic => {
            for v in s.iter_mut() {
                let e = 1.0 / (1.0 + (-v.abs()).exp());
                *v = if *v < 0.0 { 1.0 - e } else { e };
            }
        }
        Post::Softmax => {
            let max = s.iter().fold(f32::MIN, |m, &v| m.max(v));
            let mut sum = 0.0;
            for v in s.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            s.iter_mut().for_each(|v| *v /= sum);
        }
        Post::SoftmaxZero => {
            let max = s.iter().fold(f32::MIN, |m, &v| m.max(v));
            let mut sum = 0.0;
            for v in s.iter_mut() {
                if v.abs() > 1e-7 {
                    *v = (*v - max).exp();
                    sum += *v;
                } else {
                    *v = 0.0;
                }
            }
            s.iter_mut().for_each(|v| {
                if sum > 0.0 {
                    *v /= sum
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stumps on features 0 and 1, two targets.
    fn attrs() -> (Vec<i64>, Vec<i64>, Vec<i64>, Vec<f32>, Vec<i64>, Vec<i64>) {
        (
            vec![0, 0, 0, 1, 1, 1],
            vec![0, 1, 2, 0, 1, 2],
            vec![0, 0, 0, 1, 0, 0],
            vec![0.5, 0., 0., 1.0, 0., 0.],
            vec![1, 0, 0, 1, 0, 0],
            vec![2, 0, 0, 2, 0, 0],
        )
    }

    fn forest(aggregate: &str, change: impl FnOnce(&mut Attributes)) -> Result<Forest, Refusal> {
        let (trees, ids, features, values, yes, no) = attrs();
        let modes = ["BRANCH_LEQ", "LEAF", "LEAF"].repeat(2).iter().map(|s| s.to_string()).collect();
        let mut a = Attributes {
            tree_ids: &trees,
            node_ids: &ids,
            feature_ids: &features,
            values: &values,
            modes,
            true_ids: &yes,
            false_ids: &no,
            target_tree_ids: &[0, 0, 1, 1],
            target_node_ids: &[1, 2, 1, 2],
            target_ids: &[0, 1, 0, 0],
            target_weights: &[1.0, 2.0, 10.0, 20.0],
            n_targets: 2,
            aggregate: aggregate.into(),
            base_values: &[100.0, 0.0],
            post_transform: "NONE".into(),
            ..Default::default()
        };
        change(&mut a);
        Forest::build(&a)
    }

    #[test]
    fn aggregates() {
        let x = [0.0, 0.0, 1.0, 2.0];
        assert_eq!(forest("SUM", |_| {}).unwrap().eval(&x, 2), vec![111.0, 0.0, 120.0, 2.0]);
        assert_eq!(forest("AVERAGE", |_| {}).unwrap().eval(&x, 2), vec![105.5, 0.0, 110.0, 1.0]);
        assert_eq!(forest("MIN", |_| {}).unwrap().eval(&x, 2), vec![101.0, 0.0, 120.0, 2.0]);
        assert_eq!(forest("MAX", |_| {}).unwrap().eval(&x, 2), vec![110.0, 0.0, 120.0, 2.0]);
    }

    #[test]
    fn nan_goes_false_unless_tracked() {
        let x = [f64::NAN, 0.0];
        assert_eq!(forest("SUM", |_| {}).unwrap().eval(&x, 2), vec![110.0, 2.0]);
        let f = forest("SUM", |a| a.missing_tracks_true = &[1, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(f.eval(&x, 2), vec![111.0, 0.0]);
    }

    #[test]
    fn refusals() {
        let err = |r: Result<Forest, Refusal>| match r {
            Err(Refusal::Inconsistent(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(forest("SUM", |a| a.target_ids = &[0, 1, 0, 2])).contains("target id 2"));
        assert!(err(forest("SUM", |a| a.target_node_ids = &[1, 2, 1, 0])).contains("not a leaf"));
        assert!(err(forest("SUM", |a| a.base_values = &[1.0])).contains("1 base_values for 2 targets"));
        assert!(err(forest("MEDIAN", |_| {})).contains("aggregate_function"));
        assert!(err(forest("SUM", |a| a.true_ids = &[0, 0, 0, 1, 0, 0])).contains("reached twice"));
        assert!(err(forest("SUM", |a| a.false_ids = &[7, 0, 0, 2, 0, 0])).contains("lacks"));
    }
}
