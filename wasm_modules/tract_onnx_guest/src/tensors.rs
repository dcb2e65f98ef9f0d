//! Tensors across the ABI: inputs checked against their signature and copied into
//! tract tensors, outputs in the dtypes the host receives.

use tract_onnx::prelude::*;

use crate::dtypes::{self, exchanged, UNKNOWN};
use crate::errors::chain;
use crate::wire::{self, Dim, GuestError, GuestResult, Payload, Signature};

/// Checks an input against its signature and copies it into a tract tensor.
pub fn input_tensor(sig: &Signature, t: &wire::TensorIn) -> GuestResult<(DatumType, Tensor)> {
    let name = &sig.name;
    let expected = exchanged(&sig.dtype);
    if expected.is_none() && sig.dtype != UNKNOWN {
        return Err(GuestError::unsupported_model(format!(
            "input '{name}' has type {}, which the sandbox cannot exchange",
            sig.dtype
        )));
    }
    let dt = exchanged(t.dtype).ok_or_else(|| {
        GuestError::invalid_input(format!("input '{name}': unsupported dtype '{}'", t.dtype))
    })?;
    if let Some(exp) = expected {
        if exp != dt {
            return Err(GuestError::invalid_input(format!(
                "input '{name}' must be {}, got {}",
                sig.dtype, t.dtype
            )));
        }
    }
    if let Some(dims) = &sig.shape {
        if dims.len() != t.shape.len() {
            return Err(GuestError::invalid_input(format!(
                "input '{name}' must have rank {}, got shape {:?}",
                dims.len(),
                t.shape
            )));
        }
        for (axis, (d, got)) in dims.iter().zip(&t.shape).enumerate() {
            if let Dim::Known(v) = d {
                if *v as u64 != *got {
                    return Err(GuestError::invalid_input(format!(
                        "input '{name}' must have dim {v} on axis {axis}, got shape {:?}",
                        t.shape
                    )));
                }
            }
        }
    }
    let tensor = match (&t.data, dt) {
        (Payload::Strings(items), DatumType::String) => {
            wire::check_tensor_strings(name, &t.shape, items.len())?;
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            let values: Vec<String> = items.iter().map(|s| s.to_string()).collect();
            tract_ndarray::ArrayD::from_shape_vec(shape, values).map(Tensor::from).map_err(anyhow::Error::from)
        }
        (Payload::Bytes(data), _) if dt != DatumType::String => {
            wire::check_tensor_bytes(name, t.dtype, &t.shape, data.len())?;
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            if dt == DatumType::Bool {
                // Bytes other than 0 and 1 are not valid Rust bools: never copy them raw.
                let values: Vec<bool> = data.iter().map(|&b| b != 0).collect();
                Tensor::from_shape(&shape, &values)
            } else {
                // Safety: the dtype is plain-old-data and the byte length was checked above.
                unsafe { Tensor::from_raw_dt(dt, &shape, data) }
            }
        }
        _ => {
            return Err(GuestError::invalid_input(format!(
                "input '{name}': a {} tensor's data must be {}",
                t.dtype,
                if dt == DatumType::String { "an array of strings" } else { "bytes" }
            )))
        }
    }
    .map_err(|e| GuestError::internal(format!("input '{name}': {}", chain(&e))))?;
    Ok((dt, tensor))
}

/// An output as the host receives it: TDim as int64, quantized as its storage type.
pub fn output_tensor(name: &str, value: TValue) -> GuestResult<(&'static str, Tensor)> {
    let tensor = value.into_tensor();
    let dt = tensor.datum_type();
    if dt == DatumType::TDim {
        let cast = tensor.cast_to_dt(DatumType::I64).map_err(|e| {
            GuestError::internal(format!("output '{name}': symbolic value: {}", chain(&e)))
        })?;
        return Ok(("int64", cast.into_owned()));
    }
    if dt == DatumType::String {
        return Ok((wire::STRING, tensor));
    }
    let plain = if dt.is_quantized() { dt.unquantized() } else { dt };
    match dtypes::name_of(plain) {
        Some(n) => Ok((n, tensor)),
        None => Err(GuestError::unsupported_model(format!(
            "output '{name}' has type {dt:?}, which the sandbox cannot exchange"
        ))),
    }
}
