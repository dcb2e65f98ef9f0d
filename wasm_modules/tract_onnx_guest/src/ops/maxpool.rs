//! ONNX's MaxPool over images (2-D, explicit pads, no dilation, no ceil mode, no
//! indices): the pools of convolutional classifiers, in place of tract's. Any other
//! MaxPool goes to tract's own.
//!
//! tract-onnx 0.23.9 folds a strided pool tap by tap through `step_by`, which the
//! compiler cannot vectorise for wasm: squeezenet's first pool (3x3, stride 2, over
//! 96x109x109) took 8.2 ms in the guest against onnxruntime-web's 3.3. This one pools
//! each row first, across the kernel's width, then whole rows at once, down its height,
//! which vectorises. A max is exact, so only the sign of a zero or which NaN is kept
//! could differ from tract's order; both skip NaN (`acc < v` is false for them) and
//! start from the type's lowest value, as tract does.

use std::sync::OnceLock;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::guard::Builder;

/// tract's MaxPool, for the pools this one leaves to it.
static TRACT_MAX_POOL: OnceLock<Builder> = OnceLock::new();

/// Puts this MaxPool in front of tract's in `onnx`'s operator register.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    if let Some(&tract) = onnx.op_register.0.get("MaxPool") {
        let _ = TRACT_MAX_POOL.set(tract);
        onnx.op_register.insert("MaxPool", parse);
    }
}

fn parse(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    match MaxPool2d::of(node)? {
        Some(op) => Ok((expand(Hir(op)), vec![])),
        None => TRACT_MAX_POOL.get().expect("registered with tract's MaxPool")(ctx, node),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPool2d {
    kernel: [usize; 2],
    strides: [usize; 2],
    /// Top, left, bottom, right.
    pads: [usize; 4],
}

impl MaxPool2d {
    /// The pool `node` asks for, if it is one this op computes.
    fn of(node: &NodeProto) -> TractResult<Option<MaxPool2d>> {
        let ints = |name: &str| node.get_attr_opt_vec::<isize>(name);
        let auto_pad: Option<String> = node.get_attr_opt("auto_pad")?;
        let plain = node.output.len() == 1
            && auto_pad.as_deref().unwrap_or("NOTSET") == "NOTSET"
            && node.get_attr_opt::<isize>("ceil_mode")?.unwrap_or(0) == 0
            && ints("dilations")?.is_none_or(|d| d.iter().all(|&d| d == 1));
        let kernel = ints("kernel_shape")?.unwrap_or_default();
        let strides = ints("strides")?.unwrap_or(vec![1, 1]);
        let pads = ints("pads")?.unwrap_or(vec![0; 4]);
        if !plain || kernel.len() != 2 || strides.len() != 2 || pads.len() != 4 {
            return Ok(None);
        }
        let positive = |v: &[isize]| v.iter().all(|&x| x > 0);
        // Like onnxruntime, pads must be smaller than the kernel: no window is all padding.
        if !positive(&kernel)
            || !positive(&strides)
            || pads.iter().any(|&p| p < 0)
            || pads[0] >= kernel[0]
            || pads[2] >= kernel[0]
            || pads[1] >= kernel[1]
            || pads[3] >= kernel[1]
        {
            return Ok(None);
        }
        let u = |v: &[isize], i: usize| v[i] as usize;
        Ok(Some(MaxPool2d {
            kernel: [u(&kernel, 0), u(&kernel, 1)],
            strides: [u(&strides, 0), u(&strides, 1)],
            pads: [u(&pads, 0), u(&pads, 1), u(&pads, 2), u(&pads, 3)],
        }))
    }

    /// NCHW in, NCHW out: the spatial dims pooled, floor((in + pads - kernel) / stride) + 1.
    fn output_shape(&self, input: &[TDim]) -> TractResult<TVec<TDim>> {
        if input.len() != 4 {
            bail!("MaxPool with a 2-d kernel wants a 4-d input, got shape [{}]", dims(input));
        }
        let mut shape: TVec<TDim> = input.iter().cloned().collect();
        for axis in 0..2 {
            let padded = input[axis + 2].clone() + (self.pads[axis] + self.pads[axis + 2]) as i64;
            if let Ok(size) = padded.to_i64() {
                if size < self.kernel[axis] as i64 {
                    bail!(
                        "MaxPool's {}x{} kernel is larger than its padded input, shape [{}]",
                        self.kernel[0],
                        self.kernel[1],
                        dims(input)
                    );
                }
            }
            shape[axis + 2] = (padded - self.kernel[axis] as i64) / self.strides[axis] + 1i64;
        }
        Ok(shape)
    }

    /// Pools `n * c` planes of `h x w` into planes of `oh x ow`.
    fn eval_t<T: Datum + Copy + PartialOrd + tract_num_traits::Bounded>(
        &self,
        x: &[T],
        y: &mut [T],
        (h, w): (usize, usize),
        (oh, ow): (usize, usize),
    ) {
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.strides;
        let (top, left) = (self.pads[0], self.pads[1]);
        // Each output column's first input column and how many taps land inside the row.
        let columns: Vec<(usize, usize)> = (0..ow)
            .map(|ox| {
                let first = (ox * sw) as isize - left as isize;
                let lo = first.max(0) as usize;
                let hi = ((first + kw as isize) as usize).min(w);
                (lo, hi.saturating_sub(lo))
            })
            .collect();
        // The output columns whose windows lie wholly inside the row.
        let whole = |&(_, taps): &(usize, usize)| taps == kw;
        let start = columns.iter().position(whole).unwrap_or(ow);
        let end = start + columns[start..].iter().take_while(|c| whole(c)).count();
        let inner = start..end;
        let mut rows = vec![T::min_value(); h * ow];
        for (xs, ys) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
            // Across: rows[iy][ox] = max of row iy under output column ox. The columns whose
            // windows lie wholly inside the row go tap by tap, which vectorises for the
            // strides specialised here; the edges window by window.
            for (row, pooled) in xs.chunks_exact(w).zip(rows.chunks_exact_mut(ow)) {
                let middle = &mut pooled[inner.clone()];
                match sw {
                    1 => across::<T, 1>(row, middle, inner.start, kw, left),
                    2 => across::<T, 2>(row, middle, inner.start, kw, left),
                    _ => across_any(row, middle, &columns[inner.clone()]),
                }
                for ox in (0..inner.start).chain(inner.end..ow) {
                    across_any(row, &mut pooled[ox..=ox], &columns[ox..=ox]);
                }
            }
            // Down: whole pooled rows at once, which vectorises.
            for (oy, out) in ys.chunks_exact_mut(ow).enumerate() {
                out.fill(T::min_value());
                let first = (oy * sh) as isize - top as isize;
                for iy in first.max(0) as usize..((first + kh as isize) as usize).min(h) {
                    for (o, &v) in out.iter_mut().zip(&rows[iy * ow..(iy + 1) * ow]) {
                        *o = if *o < v { v } else { *o };
                    }
                }
            }
        }
    }

    fn eval_dt<T: Datum + Copy + PartialOrd + tract_num_traits::Bounded>(
        &self,
        input: &Tensor,
    ) -> TractResult<Tensor> {
        let dims: TVec<TDim> = input.shape().iter().map(|&d| d.into()).collect();
        let mut shape = vec![];
        for d in self.output_shape(&dims)? {
            shape.push(d.to_usize().map_err(|_| format_err!("MaxPool output dim {d} unknown"))?);
        }
        let (h, w) = (input.shape()[2], input.shape()[3]);
        super::slices::map::<T>(input, &shape, |x, y| self.eval_t(x, y, (h, w), (shape[2], shape[3])))
    }
}

/// The op as the ONNX model is read (typed by rules), before it becomes `MaxPool2d`.
#[derive(Debug, Clone)]
struct Hir(MaxPool2d);

impl Expansion for Hir {
    fn name(&self) -> StaticName {
        "MaxPool2d".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].rank, 4)?;
        s.equals(&outputs[0].rank, 4)?;
        s.given(&inputs[0].shape, move |s, shape| s.equals(&outputs[0].shape, self.0.output_shape(&shape)?))
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0, inputs)
    }
}

impl Op for MaxPool2d {
    fn name(&self) -> StaticName {
        "MaxPool2d".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let output = match input.datum_type().unquantized() {
            DatumType::F32 => self.eval_dt::<f32>(&input)?,
            DatumType::F64 => self.eval_dt::<f64>(&input)?,
            DatumType::F16 => self.eval_dt::<f16>(&input)?,
            DatumType::I8 => self.eval_dt::<i8>(&input)?,
            DatumType::U8 => self.eval_dt::<u8>(&input)?,
            dt => bail!("MaxPool of {dt:?} is not supported"),
        };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for MaxPool2d {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = self.output_shape(&inputs[0].shape.to_tvec())?;
        Ok(tvec!(TypedFact::dt_shape(inputs[0].datum_type, shape)))
    }
}

/// `out[i]` = the max of the `kw` taps from `row[(first + i) * S - left]`, all in the row.
fn across<T: Copy + PartialOrd + tract_num_traits::Bounded + 'static, const S: usize>(
    row: &[T],
    out: &mut [T],
    first: usize,
    kw: usize,
    left: usize,
) {
    let Some(last) = out.len().checked_sub(1) else { return };
    out.fill(T::min_value());
    let start = first * S - left;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if S == 2 && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // Safety: T is f32.
        let (row, out) = unsafe {
            (
                std::slice::from_raw_parts(row.as_ptr() as *const f32, row.len()),
                std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut f32, out.len()),
            )
        };
        return across_f32_stride2(&row[start..], out, kw);
    }
    for kx in 0..kw {
        // Exactly as long as the taps need: the compiler sees every index in bounds.
        let taps = &row[start + kx..start + kx + last * S + 1];
        for (i, o) in out.iter_mut().enumerate() {
            let v = taps[i * S];
            *o = if *o < v { v } else { *o };
        }
    }
}

/// `out[i]` = the max of `row[lo..lo + taps]` for `(lo, taps) = columns[i]`.
fn across_any<T: Copy + PartialOrd + tract_num_traits::Bounded>(
    row: &[T],
    out: &mut [T],
    columns: &[(usize, usize)],
) {
    for (o, &(lo, taps)) in out.iter_mut().zip(columns) {
        let mut acc = T::min_value();
        for &v in &row[lo..lo + taps] {
            acc = if acc < v { v } else { acc };
        }
        *o = acc;
    }
}

/// `across` for f32 at stride 2, four outputs at a time: each tap's even-indexed inputs
/// are two loads and a shuffle. `f32x4_pmax(acc, v)` is `if acc < v { v } else { acc }`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn across_f32_stride2(row: &[f32], out: &mut [f32], kw: usize) {
    use std::arch::wasm32::*;
    // Four outputs read row[2i + kx .. 2i + kx + 8]: whole groups while that fits.
    let need = kw + 7; // floats the first group reads: its last window, and one more
    let groups = if row.len() >= need { ((row.len() - need) / 8 + 1).min(out.len() / 4) } else { 0 };
    for g in 0..groups {
        let mut acc = f32x4_splat(f32::MIN);
        for kx in 0..kw {
            let taps = &row[8 * g + kx..8 * g + kx + 8];
            // Safety: `taps` holds the 8 floats the two unaligned loads read.
            let (a, b) = unsafe {
                (v128_load(taps.as_ptr() as *const v128), v128_load(taps.as_ptr().add(4) as *const v128))
            };
            acc = f32x4_pmax(acc, i32x4_shuffle::<0, 2, 4, 6>(a, b));
        }
        let dst = &mut out[4 * g..4 * g + 4];
        // Safety: `dst` holds the 4 floats stored.
        unsafe { v128_store(dst.as_mut_ptr() as *mut v128, acc) };
    }
    for (i, o) in out.iter_mut().enumerate().skip(4 * groups) {
        for &v in &row[2 * i..2 * i + kw] {
            *o = if *o < v { v } else { *o };
        }
    }
}

/// Dims as a user reads them: `1, 96, 109, 109`.
fn dims(shape: &[TDim]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}
