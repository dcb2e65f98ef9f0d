//! ONNX-ML's numeric feature transforms, ops of the guest's own: `Scaler`, `Normalizer`,
//! `Binarizer`, `Imputer`, `ArrayFeatureExtractor`, `FeatureVectorizer` and
//! `OneHotEncoder` (integer categories). tract-onnx 0.23.9 has only `Normalizer`, and
//! computes it differently from onnxruntime (`MAX` by the largest magnitude, every norm
//! clamped to 1e-12; onnxruntime divides by the largest value and copies a row whose
//! norm is zero): this one computes what onnxruntime computes.
//!
//! The arithmetic is `crate::ml_kernels` (tested natively). Attributes are checked
//! when the node is parsed, and against the input's feature count (its last axis) when
//! the plan is typed: a model whose attributes contradict each other or its input is
//! `ModelError::Inconsistent`, never answered.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use crate::errors::ModelError;
use crate::ml_kernels::{self, Norm};

pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("Scaler", scaler);
    onnx.op_register.insert("Normalizer", normalizer);
    onnx.op_register.insert("Binarizer", binarizer);
    onnx.op_register.insert("Imputer", imputer);
    onnx.op_register.insert("ArrayFeatureExtractor", array_feature_extractor);
    onnx.op_register.insert("FeatureVectorizer", feature_vectorizer);
    onnx.op_register.insert("OneHotEncoder", one_hot_encoder);
}

type Parsed = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a tract_onnx::pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn inconsistent(what: &str, why: impl std::fmt::Display) -> anyhow::Error {
    ModelError::Inconsistent(format!("{what}: {why}")).into()
}

fn what(node: &NodeProto) -> String {
    format!("{} '{}'", node.op_type, node.name)
}

fn arity(node: &NodeProto, inputs: usize) -> TractResult<()> {
    if node.input.len() != inputs || node.output.len() != 1 {
        return Err(inconsistent(
            &what(node),
            format!("takes {inputs} input(s) and gives 1 output, has {} and {}", node.input.len(), node.output.len()),
        ));
    }
    Ok(())
}

fn op(node: &NodeProto, kind: Kind) -> Parsed {
    Ok((expand(Hir(MlOp { what: what(node), kind })), vec![]))
}

/// The op as the ONNX model is read (typed by rules), before it becomes `MlOp`.
#[derive(Debug, Clone)]
struct Hir(MlOp);

impl Expansion for Hir {
    fn name(&self) -> StaticName {
        self.0.name()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        self.0.rules(s, inputs, outputs)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0.clone(), inputs)
    }
}

fn scaler(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    arity(node, 1)?;
    let offset = attr(node, "offset").map(|a| a.floats.clone()).unwrap_or_else(|| vec![0.0]);
    let scale = attr(node, "scale").map(|a| a.floats.clone()).unwrap_or_else(|| vec![1.0]);
    if offset.is_empty() || scale.is_empty() {
        return Err(inconsistent(&what(node), "offset and scale must not be empty"));
    }
    op(node, Kind::Scaler { offset, scale })
}

fn normalizer(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    arity(node, 1)?;
    let norm: String = node.get_attr_opt("norm")?.unwrap_or_else(|| "MAX".into());
    let norm = Norm::parse(&norm)
        .ok_or_else(|| inconsistent(&what(node), format!("norm is '{norm}', not one of MAX, L1 and L2")))?;
    op(node, Kind::Normalizer(norm))
}

fn binarizer(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    arity(node, 1)?;
    let threshold: f32 = node.get_attr_opt("threshold")?.unwrap_or(0.0);
    op(node, Kind::Binarizer { threshold })
}

fn imputer(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    arity(node, 1)?;
    let floats = attr(node, "imputed_value_floats").map(|a| a.floats.clone()).filter(|v| !v.is_empty());
    let ints = attr(node, "imputed_value_int64s").map(|a| a.ints.clone()).filter(|v| !v.is_empty());
    if floats.is_some() == ints.is_some() {
        return Err(inconsistent(
            &what(node),
            "needs exactly one of imputed_value_floats and imputed_value_int64s, not empty",
        ));
    }
    let replaced_float = node.get_attr_opt("replaced_value_float")?.unwrap_or(0.0);
    let replaced_int = node.get_attr_opt("replaced_value_int64")?.unwrap_or(0);
    op(node, Kind::Imputer { floats, ints, replaced_float, replaced_int })
}

fn array_feature_extractor(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    arity(node, 2)?;
    op(node, Kind::ArrayFeatureExtractor)
}

fn feature_vectorizer(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let dims = attr(node, "inputdimensions").map(|a| a.ints.clone()).unwrap_or_default();
    if node.input.is_empty() || dims.len() != node.input.len() || node.output.len() != 1 {
        return Err(inconsistent(
            &what(node),
            format!("{} inputdimensions for {} inputs", dims.len(), node.input.len()),
        ));
    }
    if let Some(d) = dims.iter().find(|&&d| d <= 0) {
        return Err(inconsistent(&what(node), format!("an input dimension is {d}")));
    }
    op(node, Kind::FeatureVectorizer { dims: dims.iter().map(|&d| d as usize).collect() })
}

fn one_hot_encoder(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    arity(node, 1)?;
    let ints = attr(node, "cats_int64s").map(|a| a.ints.clone()).filter(|v| !v.is_empty());
    let strings = attr(node, "cats_strings").map(|a| a.strings.clone()).filter(|v| !v.is_empty());
    let zeros = match node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) {
        0 => false,
        1 => true,
        z => return Err(inconsistent(&what(node), format!("zeros is {z}, not 0 or 1"))),
    };
    match (ints, strings) {
        (Some(categories), None) => op(node, Kind::OneHot { categories, zeros }),
        (None, Some(raw)) => {
            let categories = raw
                .into_iter()
                .map(String::from_utf8)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| inconsistent(&what(node), "a category is not UTF-8"))?;
            op(node, Kind::OneHotStrings { categories, zeros })
        }
        _ => Err(inconsistent(&what(node), "needs exactly one of cats_int64s and cats_strings, not empty")),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Scaler { offset: Vec<f32>, scale: Vec<f32> },
    Normalizer(Norm),
    Binarizer { threshold: f32 },
    Imputer { floats: Option<Vec<f32>>, ints: Option<Vec<i64>>, replaced_float: f32, replaced_int: i64 },
    ArrayFeatureExtractor,
    FeatureVectorizer { dims: Vec<usize> },
    OneHot { categories: Vec<i64>, zeros: bool },
    OneHotStrings { categories: Vec<String>, zeros: bool },
}

#[derive(Debug, Clone, PartialEq)]
struct MlOp {
    what: String,
    kind: Kind,
}

impl Eq for MlOp {}

/// The width of a tensor read as rows: its last axis (1 for a scalar).
fn width(shape: &[usize]) -> usize {
    shape.last().copied().unwrap_or(1)
}

fn slice<T: Datum>(t: &Tensor) -> TractResult<&[T]> {
    t.try_as_plain_ram()?.as_slice::<T>()
}

impl MlOp {
    /// A `OneHotEncoder`'s output width: its number of categories.
    fn one_hot_width(&self) -> usize {
        match &self.kind {
            Kind::OneHot { categories, .. } => categories.len(),
            Kind::OneHotStrings { categories, .. } => categories.len(),
            _ => 0,
        }
    }

    fn rules<'r, 'p: 'r>(
        &self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, 1)?;
        match &self.kind {
            Kind::Scaler { .. } | Kind::Normalizer(_) => {
                check_input_arity(inputs, 1)?;
                s.equals(&outputs[0].datum_type, DatumType::F32)?;
                s.equals(&inputs[0].shape, &outputs[0].shape)?;
            }
            Kind::Binarizer { .. } | Kind::Imputer { .. } => {
                check_input_arity(inputs, 1)?;
                s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
                s.equals(&inputs[0].shape, &outputs[0].shape)?;
            }
            Kind::ArrayFeatureExtractor => {
                check_input_arity(inputs, 2)?;
                s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
                s.given(&inputs[0].rank, move |s, rank| {
                    s.equals(&outputs[0].rank, rank.max(2))?;
                    for i in 0..(rank as usize).saturating_sub(1) {
                        s.equals(&outputs[0].shape[i], &inputs[0].shape[i])?;
                    }
                    if rank == 1 {
                        s.equals(&outputs[0].shape[0], 1.to_dim())?;
                    }
                    s.given(&inputs[1].shape, move |s, ys| {
                        let n: TDim = ys.iter().product();
                        s.equals(&outputs[0].shape[rank.max(2) as usize - 1], n)
                    })
                })?;
            }
            Kind::FeatureVectorizer { dims } => {
                check_input_arity(inputs, dims.len())?;
                s.equals(&outputs[0].datum_type, DatumType::F32)?;
                s.equals(&outputs[0].rank, 2)?;
                s.equals(&outputs[0].shape[1], dims.iter().sum::<usize>().to_dim())?;
            }
            Kind::OneHot { .. } | Kind::OneHotStrings { .. } => {
                check_input_arity(inputs, 1)?;
                let n = self.one_hot_width();
                s.equals(&outputs[0].datum_type, DatumType::F32)?;
                s.given(&inputs[0].shape, move |s, shape| {
                    let mut shape = shape.to_vec();
                    shape.push(n.to_dim());
                    s.equals(&outputs[0].shape, ShapeFactoid::from(shape))
                })?;
            }
        }
        Ok(())
    }

    fn bad(&self, why: impl std::fmt::Display) -> anyhow::Error {
        inconsistent(&self.what, why)
    }

    /// The input's feature count, checked against an attribute of `len` values (1 or that).
    fn check_width(&self, fact: &TypedFact, name: &str, len: usize) -> TractResult<()> {
        if let Some(w) = fact.shape.last().and_then(|d| d.to_usize().ok()) {
            if len != 1 && len != w {
                return Err(self.bad(format!("{name} has {len} values for an input of {w} features")));
            }
        }
        Ok(())
    }

    fn check_type(&self, fact: &TypedFact, allowed: &[DatumType]) -> TractResult<()> {
        if !allowed.contains(&fact.datum_type) {
            bail!("{}: an input of {:?} is not supported (only {allowed:?})", self.what, fact.datum_type);
        }
        Ok(())
    }

    fn eval_one(&self, inputs: &[TValue]) -> TractResult<Tensor> {
        let x = &inputs[0];
        let shape = x.shape();
        let w = width(shape);
        Ok(match &self.kind {
            Kind::Scaler { offset, scale } => {
                let xf = x.cast_to::<f32>()?;
                if offset.len() != 1 && offset.len() != w || scale.len() != 1 && scale.len() != w {
                    return Err(self.bad(format!("offset and scale do not fit {w} features")));
                }
                Tensor::from_shape(shape, &ml_kernels::scale(slice::<f32>(&xf)?, w, offset, scale))?
            }
            Kind::Normalizer(norm) => {
                let xf = x.cast_to::<f32>()?;
                Tensor::from_shape(shape, &ml_kernels::normalize(slice::<f32>(&xf)?, w, *norm))?
            }
            Kind::Binarizer { .. } if binarizer_nan(x)? => {
                bail!("{}: the input holds NaN, which has no binary value (onnxruntime refuses it too)", self.what)
            }
            Kind::Binarizer { threshold } => match x.datum_type() {
                DatumType::F32 => {
                    let t = *threshold;
                    let y: Vec<f32> = slice::<f32>(x)?
                        .iter()
                        .map(|&v| {
                            if v.is_nan() {
                                v
                            } else if v > t {
                                1.0
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    Tensor::from_shape(shape, &y)?
                }
                DatumType::F64 => {
                    let t = *threshold as f64;
                    let y: Vec<f64> = slice::<f64>(x)?
                        .iter()
                        .map(|&v| {
                            if v.is_nan() {
                                v
                            } else if v > t {
                                1.0
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    Tensor::from_shape(shape, &y)?
                }
                dt => bail!("{}: an input of {dt:?} is not supported", self.what),
            },
            Kind::Imputer { floats, ints, replaced_float, replaced_int } => match (x.datum_type(), floats, ints) {
                (DatumType::F32, Some(values), _) => {
                    if values.len() != 1 && values.len() != w {
                        return Err(self.bad(format!("{} imputed values for {w} features", values.len())));
                    }
                    let r = *replaced_float;
                    let y = if r.is_nan() {
                        ml_kernels::impute(slice::<f32>(x)?, w, values, f32::is_nan)
                    } else {
                        ml_kernels::impute(slice::<f32>(x)?, w, values, |v| v == r)
                    };
                    Tensor::from_shape(shape, &y)?
                }
                (DatumType::I64, _, Some(values)) => {
                    if values.len() != 1 && values.len() != w {
                        return Err(self.bad(format!("{} imputed values for {w} features", values.len())));
                    }
                    let r = *replaced_int;
                    Tensor::from_shape(shape, &ml_kernels::impute(slice::<i64>(x)?, w, values, |v| v == r))?
                }
                (dt, _, _) => return Err(self.bad(format!("no imputed values for an input of {dt:?}"))),
            },
            Kind::ArrayFeatureExtractor => {
                let idx = inputs[1].cast_to::<i64>()?;
                let idx = slice::<i64>(&idx)?;
                let mut out_shape: TVec<usize> =
                    if shape.len() <= 1 { tvec![1] } else { shape[..shape.len() - 1].into() };
                out_shape.push(idx.len());
                let run = |e: String| self.bad(e);
                match x.datum_type() {
                    DatumType::F32 => {
                        Tensor::from_shape(&out_shape, &ml_kernels::extract(slice::<f32>(x)?, w, idx).map_err(run)?)?
                    }
                    DatumType::F64 => {
                        Tensor::from_shape(&out_shape, &ml_kernels::extract(slice::<f64>(x)?, w, idx).map_err(run)?)?
                    }
                    DatumType::I64 => {
                        Tensor::from_shape(&out_shape, &ml_kernels::extract(slice::<i64>(x)?, w, idx).map_err(run)?)?
                    }
                    DatumType::I32 => {
                        Tensor::from_shape(&out_shape, &ml_kernels::extract(slice::<i32>(x)?, w, idx).map_err(run)?)?
                    }
                    // A classifier's string labels, picked by class index (skl2onnx's KNN, MLP).
                    DatumType::String => {
                        let picked = ml_kernels::extract(slice::<String>(x)?, w, idx).map_err(run)?;
                        tract_ndarray::ArrayD::from_shape_vec(out_shape.to_vec(), picked)?.into_tensor()
                    }
                    dt => bail!("{}: an input of {dt:?} is not supported", self.what),
                }
            }
            Kind::FeatureVectorizer { dims } => {
                let rows = if shape.len() <= 1 { 1 } else { shape[0] };
                let cast: Vec<_> = inputs.iter().map(|t| t.cast_to::<f32>()).collect::<TractResult<_>>()?;
                let mut parts = vec![];
                for (i, t) in cast.iter().enumerate() {
                    let r = if t.rank() <= 1 { 1 } else { t.shape()[0] };
                    if r != rows || width(t.shape()) != dims[i] || t.rank() > 2 {
                        return Err(self.bad(format!(
                            "input {i} has shape {:?}, not {rows} rows of {} features",
                            t.shape(),
                            dims[i]
                        )));
                    }
                    parts.push((slice::<f32>(t)?, dims[i]));
                }
                let total: usize = dims.iter().sum();
                Tensor::from_shape(&[rows, total], &ml_kernels::concat_rows(&parts, rows))?
            }
            Kind::OneHot { categories, zeros } => {
                let xi = match x.datum_type() {
                    // onnxruntime truncates floats to integers.
                    DatumType::F32 | DatumType::F64 => x.cast_to::<f64>()?.cast_to::<i64>()?.into_owned(),
                    _ => x.cast_to::<i64>()?.into_owned(),
                };
                let y = ml_kernels::one_hot(slice::<i64>(&xi)?, categories, *zeros)
                    .map_err(|e| format_err!("{}: {e}", self.what))?;
                let mut out_shape: TVec<usize> = shape.into();
                out_shape.push(categories.len());
                Tensor::from_shape(&out_shape, &y)?
            }
            Kind::OneHotStrings { categories, zeros } => {
                let encoder = crate::text::OneHotEncoder::new(categories);
                let (y, out_shape) = encoder
                    .run(slice::<String>(x)?, shape, *zeros as i64)
                    .map_err(|e| format_err!("{}: {e}", self.what))?;
                Tensor::from_shape(&out_shape, &y)?
            }
        })
    }
}

fn binarizer_nan(x: &Tensor) -> TractResult<bool> {
    Ok(match x.datum_type() {
        DatumType::F32 => slice::<f32>(x)?.iter().any(|v| v.is_nan()),
        DatumType::F64 => slice::<f64>(x)?.iter().any(|v| v.is_nan()),
        _ => false,
    })
}

impl Op for MlOp {
    fn name(&self) -> StaticName {
        match self.kind {
            Kind::Scaler { .. } => "Scaler",
            Kind::Normalizer(_) => "Normalizer",
            Kind::Binarizer { .. } => "Binarizer",
            Kind::Imputer { .. } => "Imputer",
            Kind::ArrayFeatureExtractor => "ArrayFeatureExtractor",
            Kind::FeatureVectorizer { .. } => "FeatureVectorizer",
            Kind::OneHot { .. } | Kind::OneHotStrings { .. } => "OneHotEncoder",
        }
        .into()
    }

    op_as_typed_op!();
}

impl EvalOp for MlOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // tract carries some integer tensors as TDim: computed as I64, given back as TDim.
        let tdim = inputs[0].datum_type() == DatumType::TDim;
        let inputs = inputs
            .into_iter()
            .map(|t| match t.datum_type() {
                DatumType::TDim => Ok(t.cast_to::<i64>()?.into_owned().into_tvalue()),
                _ => Ok(t),
            })
            .collect::<TractResult<TVec<TValue>>>()?;
        let mut y = self.eval_one(&inputs)?;
        if tdim && y.datum_type() == DatumType::I64 {
            y = y.cast_to_dt(DatumType::TDim)?.into_owned();
        }
        Ok(tvec!(y.into_tvalue()))
    }
}

const NUMBERS: [DatumType; 5] = [DatumType::F32, DatumType::F64, DatumType::I64, DatumType::I32, DatumType::TDim];

impl TypedOp for MlOp {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        let rank = x.rank();
        let fact = match &self.kind {
            Kind::Scaler { offset, scale } => {
                self.check_type(x, &NUMBERS)?;
                self.check_width(x, "offset", offset.len())?;
                self.check_width(x, "scale", scale.len())?;
                f32::fact(x.shape.clone())
            }
            Kind::Normalizer(_) => {
                self.check_type(x, &NUMBERS)?;
                if !(1..=2).contains(&rank) {
                    bail!("{}: the input must be of rank 1 or 2 (onnxruntime's), not {rank}", self.what);
                }
                f32::fact(x.shape.clone())
            }
            Kind::Binarizer { .. } => {
                self.check_type(x, &[DatumType::F32, DatumType::F64])?;
                x.without_value()
            }
            Kind::Imputer { floats, ints, .. } => {
                let values = match x.datum_type {
                    DatumType::F32 => floats.as_ref().map(|v| v.len()),
                    DatumType::I64 | DatumType::TDim => ints.as_ref().map(|v| v.len()),
                    dt => bail!("{}: an input of {dt:?} is not supported (only F32 and I64)", self.what),
                };
                let Some(len) = values else {
                    return Err(self
                        .bad(format!("its input is {:?} but its imputed values are of the other type", x.datum_type)));
                };
                self.check_width(x, "imputed values", len)?;
                x.without_value()
            }
            Kind::ArrayFeatureExtractor => {
                if x.datum_type != DatumType::String {
                    self.check_type(x, &NUMBERS)?;
                }
                let y = inputs[1];
                if !matches!(y.datum_type, DatumType::I64 | DatumType::I32 | DatumType::TDim) {
                    bail!("{}: indices of {:?} (I64 expected)", self.what, y.datum_type);
                }
                if rank == 0 {
                    bail!("{}: a scalar input has no features to extract", self.what);
                }
                if let (Some(k), Some(w)) = (&y.konst, x.shape.last().and_then(|d| d.to_usize().ok())) {
                    let k = k.cast_to::<i64>()?;
                    if let Some(bad) = slice::<i64>(&k)?.iter().find(|&&i| i < 0 || i as u64 >= w as u64) {
                        return Err(self.bad(format!("index {bad} is out of range for an input of {w} features")));
                    }
                }
                let mut shape: TVec<TDim> =
                    if rank == 1 { tvec![1.to_dim()] } else { x.shape.iter().take(rank - 1).cloned().collect() };
                shape.push(y.shape.iter().product());
                x.datum_type.fact(shape)
            }
            Kind::FeatureVectorizer { dims } => {
                let rows = |f: &TypedFact| if f.rank() <= 1 { 1.to_dim() } else { f.shape[0].clone() };
                for (i, f) in inputs.iter().enumerate() {
                    self.check_type(f, &NUMBERS)?;
                    if f.rank() > 2 {
                        return Err(self.bad(format!("input {i} is of rank {}, not 1 or 2", f.rank())));
                    }
                    if let Some(w) = f.shape.last().and_then(|d| d.to_usize().ok()) {
                        if w != dims[i] {
                            return Err(
                                self.bad(format!("input {i} has {w} features, but inputdimensions says {}", dims[i]))
                            );
                        }
                    }
                    if let (Ok(a), Ok(b)) = (rows(f).to_usize(), rows(x).to_usize()) {
                        if a != b {
                            return Err(self.bad(format!("input {i} has {a} rows, input 0 has {b}")));
                        }
                    }
                }
                f32::fact([rows(x), dims.iter().sum::<usize>().to_dim()])
            }
            Kind::OneHot { .. } | Kind::OneHotStrings { .. } => {
                if matches!(self.kind, Kind::OneHotStrings { .. }) {
                    self.check_type(x, &[DatumType::String])?;
                } else {
                    self.check_type(x, &NUMBERS)?;
                }
                let mut shape: TVec<TDim> = x.shape.iter().cloned().collect();
                shape.push(self.one_hot_width().to_dim());
                f32::fact(shape)
            }
        };
        Ok(tvec!(fact))
    }
}
