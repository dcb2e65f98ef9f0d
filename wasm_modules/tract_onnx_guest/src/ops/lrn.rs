//! ONNX's LRN (local response normalization across channels), in place of tract's.
//!
//! tract-onnx 0.23.9 evaluates LRN one element at a time through dynamic ndarray
//! indexing, summing each element's channel window afresh and calling `powf`: in the
//! guest, LRN was most of zfnet512's and inception_v1's run time (236 ms for
//! 96x109x109, onnxruntime-web 23 ms; docs/benchmarks.md). This one sums whole
//! channel planes, which the compiler vectorises, in the same order as tract's (the
//! same sums, bit for bit), and takes the common `beta = 0.75` as two square roots.

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::tract_num_traits::Float;
use tract_onnx::tract_hir::internal::*;

/// Replaces tract's LRN in `onnx`'s operator register.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("LRN", parse);
}

fn parse(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let op = Lrn {
        alpha: node.get_attr_opt("alpha")?.unwrap_or(0.0001),
        beta: node.get_attr_opt("beta")?.unwrap_or(0.75),
        bias: node.get_attr_opt("bias")?.unwrap_or(1.0),
        size: node.get_attr("size")?,
    };
    if op.size == 0 {
        bail!("LRN size must be positive");
    }
    Ok((inference_wrap(op, 1, rules), vec![]))
}

fn rules<'p>(
    _op: &dyn Op,
    s: &mut Solver,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    check_output_arity(outputs, 1)?;
    s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
    s.equals(&inputs[0].shape, &outputs[0].shape)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lrn {
    alpha: f32,
    beta: f32,
    bias: f32,
    size: usize,
}

impl Eq for Lrn {}

impl Lrn {
    /// `x` and `y` hold `n` images of `c` channels of `plane` elements each.
    fn eval_t<T: Datum + Float>(&self, x: &[T], y: &mut [T], c: usize, plane: usize) {
        let cast = |v: f32| T::from(v).unwrap();
        // As ONNX defines it (and tract computes it): bias + alpha / size * sum.
        let scale = cast(self.alpha) / T::from(self.size).unwrap();
        let bias = cast(self.bias);
        let before = (self.size - 1) / 2;
        let after = (self.size - 1).div_ceil(2);
        let mut sum = vec![T::zero(); plane];
        for (xs, ys) in x.chunks_exact(c * plane).zip(y.chunks_exact_mut(c * plane)) {
            for ch in 0..c {
                sum.fill(T::zero());
                for k in ch.saturating_sub(before)..=(ch + after).min(c - 1) {
                    for (s, &v) in sum.iter_mut().zip(&xs[k * plane..(k + 1) * plane]) {
                        *s = *s + v * v;
                    }
                }
                let xc = &xs[ch * plane..(ch + 1) * plane];
                let yc = &mut ys[ch * plane..(ch + 1) * plane];
                let terms = yc.iter_mut().zip(xc).zip(&sum);
                if self.beta == 0.75 {
                    for ((y, &x), &s) in terms {
                        let root = (bias + scale * s).sqrt();
                        *y = x / (root * root.sqrt());
                    }
                } else {
                    let beta = cast(self.beta);
                    for ((y, &x), &s) in terms {
                        *y = x / (bias + scale * s).powf(beta);
                    }
                }
            }
        }
    }

    fn eval_dt<T: Datum + Float>(&self, input: &Tensor) -> TractResult<Tensor> {
        let shape = input.shape();
        if shape.len() < 2 {
            bail!("LRN wants an input of rank 2 or more, got shape {shape:?}");
        }
        let (c, plane) = (shape[1], shape[2..].iter().product::<usize>());
        super::slices::map::<T>(input, shape, |x, y| self.eval_t(x, y, c, plane))
    }
}

impl Op for Lrn {
    fn name(&self) -> StaticName {
        "Lrn".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Lrn {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let output = match input.datum_type() {
            DatumType::F32 => self.eval_dt::<f32>(&input)?,
            DatumType::F64 => self.eval_dt::<f64>(&input)?,
            DatumType::F16 => self.eval_dt::<f16>(&input)?,
            dt => bail!("LRN of {dt:?} is not supported"),
        };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Lrn {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        // Refused when the plan is built, not at the first run.
        if inputs[0].rank() < 2 {
            bail!("LRN wants an input of rank 2 or more (N, C, ...), got rank {}", inputs[0].rank());
        }
        Ok(tvec!(inputs[0].without_value()))
    }
}
