//! ONNX-ML's linear models (`LinearClassifier`, `LinearRegressor`): tract's ops,
//! refused when their coefficients do not fit their input instead of computed anyway.
//!
//! The coefficients attribute is a flat list that the op reads as `rows x features`.
//! tract-onnx 0.23.9 takes `features = len / rows` and multiplies without checking it
//! against the input's feature count: a model with 15 coefficients, 3 classes and 4
//! input features is answered (onnxruntime answers it too, differently). A model whose
//! attributes contradict its input is invalid; the check is made when the input's
//! feature count is known (when the plan is typed for the inputs at hand).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::guard::{self, Guard};
use crate::errors::ModelError;

pub fn register(onnx: &mut tract_onnx::Onnx) {
    guard::replace(onnx, "LinearClassifier", |ctx, node| {
        super::string_labels::build(ctx, node, "classlabels_ints", classifier)
    });
    guard::replace(onnx, "LinearRegressor", regressor);
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a tract_onnx::pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn classifier(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let coefficients = attr(node, "coefficients").map(|a| a.floats.len()).unwrap_or(0);
    let classes = match (attr(node, "classlabels_ints"), attr(node, "classlabels_strings")) {
        (Some(ints), None) => ints.ints.len(),
        (None, Some(strings)) => strings.strings.len(),
        _ => return Err(inconsistent(node, "needs exactly one of classlabels_ints and classlabels_strings")),
    };
    let multi_class = node.get_attr_opt::<i64>("multi_class")?.unwrap_or(0);
    // One row of coefficients per class, or one row for a two-class model scored by
    // its sign; without intercepts, tract reads a two-class model as the latter.
    let rows = match attr(node, "intercepts") {
        Some(v) => v.floats.len(),
        None if classes == 2 && multi_class == 0 => 1,
        None => classes,
    };
    let post_transform = node.get_attr_opt::<String>("post_transform")?.unwrap_or_else(|| "NONE".into());
    if classes == 2 && rows == 1 && matches!(post_transform.as_str(), "NONE" | "SOFTMAX") {
        // tract scores it [-s, s] (then softmax), onnxruntime [1 - s, s] for both.
        return Err(ModelError::Unsupported(format!(
            "LinearClassifier '{}': two classes scored by one row of coefficients with post_transform \
             {post_transform}, whose scores tract and onnxruntime define differently",
            node.name
        ))
        .into());
    }
    if rows == 0 || !(rows == classes || (classes == 2 && rows == 1)) {
        return Err(inconsistent(node, &format!("{rows} rows of coefficients (intercepts) for {classes} class labels")));
    }
    features(ctx, node, coefficients, rows)
}

fn regressor(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let coefficients = attr(node, "coefficients").map(|a| a.floats.len()).unwrap_or(0);
    let targets = node.get_attr_opt::<i64>("targets")?.unwrap_or(1);
    if targets <= 0 {
        return Err(inconsistent(node, &format!("targets is {targets}")));
    }
    features(ctx, node, coefficients, targets as usize)
}

fn features(
    ctx: &ParsingContext,
    node: &NodeProto,
    coefficients: usize,
    rows: usize,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if coefficients == 0 || coefficients % rows != 0 {
        return Err(inconsistent(node, &format!("{coefficients} coefficients cannot be {rows} rows of features")));
    }
    let guard = Features {
        what: format!("{} '{}'", node.op_type, node.name),
        features: coefficients / rows,
        rows,
        coefficients,
    };
    guard::build(ctx, node, guard)
}

fn inconsistent(node: &NodeProto, why: &str) -> anyhow::Error {
    ModelError::Inconsistent(format!("{} '{}': {why}", node.op_type, node.name)).into()
}

/// The input's last axis must hold the feature count the coefficients imply.
#[derive(Debug, Clone)]
struct Features {
    what: String,
    features: usize,
    rows: usize,
    coefficients: usize,
}

impl Features {
    fn check(&self, dim: Option<usize>) -> TractResult<()> {
        match dim {
            Some(d) if d == self.features => Ok(()),
            Some(d) => Err(ModelError::Inconsistent(format!(
                "{}: {} coefficients are {} rows of {} features, but its input has {d} features",
                self.what, self.coefficients, self.rows, self.features
            ))
            .into()),
            None => bail!("{}: the input's feature count is unknown, so its coefficients cannot be checked", self.what),
        }
    }
}

impl Guard for Features {
    fn infer(&self, inputs: &[&InferenceFact]) -> TractResult<()> {
        // Only a known, wrong count fails here; an unknown one is checked when typed.
        let last = inputs.first().and_then(|f| f.shape.dims().last().cloned());
        if let Some(d) = last.and_then(|d| d.concretize()).and_then(|d| d.to_usize().ok()) {
            self.check(Some(d))?;
        }
        Ok(())
    }

    fn typed_inputs(&self, inputs: &[&TypedFact]) -> TractResult<()> {
        self.check(inputs.first().and_then(|f| f.shape.last()).and_then(|d| d.to_usize().ok()))
    }
}
