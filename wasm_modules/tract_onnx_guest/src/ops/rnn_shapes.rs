//! ONNX's recurrent operators (`LSTM`, `GRU`, `RNN`): tract's, refused when their
//! weights do not fit their input instead of computed anyway.
//!
//! tract-onnx 0.23.9 slices and multiplies `W`, `R` and `B` by the sizes it reads from
//! them, without checking them against `X` and `hidden_size`: an `X` of 64 features
//! against a `W` made for 3 was answered, with values read from wherever the slices
//! led (they differed between the guest and native tract; onnxruntime refuses such a
//! model). A differential fuzzing campaign found it. Every input's shape is checked
//! against what the attributes and `X` imply, once they are known.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::guard::{self, Guard};
use crate::errors::ModelError;

pub fn register(onnx: &mut tract_onnx::Onnx) {
    for name in ["LSTM", "GRU", "RNN"] {
        guard::replace(onnx, name, build);
    }
}

/// ONNX's input positions, after X: W, R, B, sequence_lens, initial_h, initial_c, P.
const NAMES: [&str; 8] = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"];

fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let gates = match node.op_type.as_str() {
        "LSTM" => 4,
        "GRU" => 3,
        _ => 1,
    };
    let direction = node.get_attr_opt::<String>("direction")?.unwrap_or_else(|| "forward".into());
    let shapes = RnnShapes {
        what: format!("{} '{}'", node.op_type, node.name),
        gates,
        hidden: node.get_attr_opt::<i64>("hidden_size")?,
        directions: if direction == "bidirectional" { 2 } else { 1 },
        batch_first: node.get_attr_opt::<i64>("layout")?.unwrap_or(0) == 1,
        // Which ONNX input each of the op's inputs is: tract wires the present ones only.
        slots: node
            .input
            .iter()
            .enumerate()
            .filter(|(_, name)| !name.is_empty())
            .map(|(position, _)| position)
            .collect(),
    };
    guard::build(ctx, node, shapes)
}

#[derive(Debug, Clone)]
struct RnnShapes {
    what: String,
    gates: usize,
    hidden: Option<i64>,
    directions: usize,
    batch_first: bool,
    /// For each of the op's inputs, its ONNX position (an index into `NAMES`).
    slots: Vec<usize>,
}

impl RnnShapes {
    fn inconsistent(&self, why: String) -> anyhow::Error {
        ModelError::Inconsistent(format!("{}: {why}", self.what)).into()
    }
}

/// A dim's value when it is known.
fn known(dim: &TDim) -> Option<i64> {
    dim.to_i64().ok()
}

impl Guard for RnnShapes {
    fn typed_inputs(&self, inputs: &[&TypedFact]) -> TractResult<()> {
        let mut shape: [Option<Vec<Option<i64>>>; 8] = Default::default();
        for (fact, &slot) in inputs.iter().zip(&self.slots) {
            if slot < NAMES.len() {
                shape[slot] = Some(fact.shape.iter().map(known).collect());
            }
        }
        let (Some(x), Some(_), Some(r)) = (&shape[0], &shape[1], &shape[2]) else {
            return Ok(());
        };
        let (d, g) = (self.directions as i64, self.gates as i64);
        if x.len() != 3 {
            return Err(self.inconsistent(format!("X has rank {}, not 3", x.len())));
        }
        let (batch, features) = (if self.batch_first { x[0] } else { x[1] }, x[2]);
        // hidden_size, or what R says it is.
        let hidden = self.hidden.or_else(|| r.get(2).copied().flatten());
        // The expected shape of each input, as (position, dims); None: any extent.
        let mut expected: Vec<(usize, Vec<Option<i64>>)> = vec![
            (1, vec![Some(d), hidden.map(|h| g * h), features]),
            (2, vec![Some(d), hidden.map(|h| g * h), hidden]),
            (3, vec![Some(d), hidden.map(|h| 2 * g * h)]),
            (4, vec![batch]),
            (7, vec![Some(d), hidden.map(|h| 3 * h)]),
        ];
        let state = if self.batch_first { vec![batch, Some(d), hidden] } else { vec![Some(d), batch, hidden] };
        expected.push((5, state.clone()));
        expected.push((6, state));
        for (position, want) in expected {
            let Some(got) = &shape[position] else { continue };
            let fits = got.len() == want.len()
                && got.iter().zip(&want).all(|(g, w)| g.is_none() || w.is_none() || g == w);
            if !fits {
                let show = |dims: &[Option<i64>]| {
                    let parts: Vec<String> =
                        dims.iter().map(|d| d.map(|v| v.to_string()).unwrap_or("?".into())).collect();
                    format!("[{}]", parts.join(", "))
                };
                return Err(self.inconsistent(format!(
                    "{} has shape {}, but X {} and {} make it {}",
                    NAMES[position],
                    show(got),
                    show(x),
                    match self.hidden {
                        Some(h) => format!("hidden_size {h}"),
                        None => "R".to_string(),
                    },
                    show(&want)
                )));
            }
        }
        Ok(())
    }
}
