//! A loaded model: decoded and checked, parsed by tract with the guest's own ops, and
//! run through the plan cache.

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::checks;
use crate::errors::{chain, chosen_refusal};
use crate::plans::{PlanKey, Plans};
use crate::tensors::{input_tensor, output_tensor};
use crate::wire::{self, GuestError, GuestResult, Meta, RunRequest, Signature};

/// A loaded model: its signatures and the optimised plans built so far.
pub struct Loaded {
    pub inputs: Vec<Signature>,
    pub outputs: Vec<Signature>,
    pub meta: Meta,
    plans: Plans,
}

impl Loaded {
    pub fn load(bytes: &[u8], options: Option<wire::LoadOptions>) -> GuestResult<Loaded> {
        let mut proto = pb::ModelProto::decode(bytes)
            .map_err(|e| GuestError::invalid_model(format!("not an ONNX model: {e}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| GuestError::invalid_model("not an ONNX model: it has no graph"))?;
        let mut onnx = tract_onnx::onnx();
        crate::ops::register(&mut onnx);
        let checks::Described { inputs, outputs, meta } = checks::check(&onnx, &proto, graph)?;
        let has_value_info = !graph.value_info.is_empty();
        crate::rewrite_rnn::rewrite(&mut proto);

        let parsed = onnx.parse(&proto, None).map_err(|e| {
            chosen_refusal(&e).unwrap_or_else(|| {
                GuestError::invalid_model(format!("tract could not read the graph: {}", chain(&e)))
            })
        })?;
        drop(proto);
        if !parsed.unresolved_inputs.is_empty() {
            return Err(GuestError::invalid_model(format!(
                "values used but never defined: {}",
                parsed.unresolved_inputs.join(", ")
            )));
        }
        let model = parsed.model;
        if model.input_outlets().map(|o| o.len()).unwrap_or(0) != inputs.len() {
            return Err(GuestError::internal("tract's inputs differ from the graph's inputs"));
        }
        let mut plans = Plans::new(model, has_value_info, &inputs, options.and_then(|o| o.plan_cache));
        plans.prepare_static(&inputs, outputs.len())?;
        Ok(Loaded { inputs, outputs, meta, plans })
    }

    /// Runs the model and writes the response to `out`; the outputs' payloads stay in
    /// `kept`, which the response points into, until the caller clears it.
    pub fn run(&mut self, req: &RunRequest, out: &mut Vec<u8>, kept: &mut Vec<Tensor>) -> GuestResult<()> {
        let n = self.inputs.len();
        let mut by_index: Vec<Option<&wire::TensorIn>> = vec![None; n];
        for t in &req.inputs {
            let ix = self.inputs.iter().position(|s| s.name == t.name).ok_or_else(|| {
                GuestError::invalid_input(format!(
                    "the model has no input '{}' (inputs: {})",
                    t.name,
                    names(&self.inputs)
                ))
            })?;
            if by_index[ix].replace(t).is_some() {
                return Err(GuestError::invalid_input(format!("input '{}' given twice", t.name)));
            }
        }
        let mut key_inputs = Vec::with_capacity(n);
        let mut tensors = TVec::with_capacity(n);
        for (sig, t) in self.inputs.iter().zip(&by_index) {
            let t = t.ok_or_else(|| {
                GuestError::invalid_input(format!("missing input '{}'", sig.name))
            })?;
            let (dt, tensor) = input_tensor(sig, t)?;
            key_inputs.push((dt, tensor.shape().to_vec()));
            tensors.push(tensor.into_tvalue());
        }
        let outputs: Vec<usize> = match &req.outputs {
            None => (0..self.outputs.len()).collect(),
            Some(wanted) => wanted
                .iter()
                .map(|name| {
                    self.outputs.iter().position(|s| &s.name == name).ok_or_else(|| {
                        GuestError::invalid_input(format!(
                            "the model has no output '{name}' (outputs: {})",
                            names(&self.outputs)
                        ))
                    })
                })
                .collect::<GuestResult<_>>()?,
        };
        let out_names: Vec<String> = outputs.iter().map(|&i| self.outputs[i].name.clone()).collect();
        let plan = self.plans.select(PlanKey::shapes(key_inputs, outputs), &tensors)?;
        // A fresh state per run, dropped after it: a run's outputs depend only on the
        // model and this run's inputs (tract's own SimplePlan::run does the same).
        let results = plan.spawn().and_then(|mut state| state.run(tensors)).map_err(|e| {
            GuestError::invalid_input(format!("running the model failed: {}", chain(&e)))
        })?;
        // Convert all before writing any, so that an error leaves no half response.
        let mut dtypes = Vec::with_capacity(results.len());
        for (name, value) in out_names.iter().zip(results) {
            let (dtype, tensor) = output_tensor(name, value)?;
            dtypes.push(dtype);
            kept.push(tensor);
        }
        wire::begin_run_response(out, kept.len());
        for ((name, dtype), tensor) in out_names.iter().zip(&dtypes).zip(kept.iter()) {
            if tensor.datum_type() == DatumType::String {
                let strings = tensor
                    .try_as_plain_ram()
                    .and_then(|v| v.as_slice::<String>())
                    .map_err(|e| GuestError::internal(chain(&e)))?;
                wire::encode_strings(out, name, tensor.shape(), strings);
                continue;
            }
            let bytes = tensor.as_bytes();
            // Guest addresses and lengths are wasm32's: they fit a u32.
            wire::encode_tensor(out, name, dtype, tensor.shape(), bytes.as_ptr() as usize as u32, bytes.len() as u32);
        }
        Ok(())
    }
}

fn names(signatures: &[Signature]) -> String {
    signatures.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}
