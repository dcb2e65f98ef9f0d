//! The guest's own operators compute on plain slices of their tensors' elements.

use tract_onnx::prelude::*;

/// A new tensor of `input`'s type (quantization included: `T` is its storage) and of
/// `shape`, which `fill` writes from the input's elements. `fill` is not called when
/// either tensor is empty.
pub fn map<T: Datum>(
    input: &Tensor,
    shape: &[usize],
    fill: impl FnOnce(&[T], &mut [T]),
) -> TractResult<Tensor> {
    // Safety: `fill` writes every element (each operator's contract), or none exists.
    let mut output = unsafe { Tensor::uninitialized_dt(input.datum_type(), shape)? };
    if output.len() > 0 && input.len() > 0 {
        let x = input.try_as_plain_ram()?.as_slice::<T>()?;
        let mut out = output.try_as_plain_ram_mut()?;
        fill(x, out.as_slice_mut::<T>()?);
    }
    Ok(output)
}
