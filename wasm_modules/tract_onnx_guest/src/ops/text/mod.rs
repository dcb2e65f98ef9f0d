//! The text operators over string tensors (ABI 1.1): ONNX's `StringNormalizer`,
//! `TfIdfVectorizer`, `StringConcat`, `StringSplit`, `RegexFullMatch`, `com.microsoft`'s
//! `Tokenizer` (what skl2onnx emits for a `TfidfVectorizer`), ONNX-ML's `LabelEncoder`
//! and `CategoryMapper`. tract-onnx 0.23.9 has none of them but `CategoryMapper`, which
//! refuses valid models (it wants exactly one default).
//!
//! Each is a [`TextOp`]: its types, shapes and computation as closures over one of the
//! tract-free kernels of `crate::text` (checked there against onnxruntime). An output
//! whose size depends on the strings (a tokenizer's longest row, the words a normalizer
//! keeps) gets a symbol of its own, as tract's `NonZero` does.

mod category_mapper;
mod label_encoder;
mod regex_full_match;
mod string_concat;
mod string_normalizer;
mod string_split;
mod tfidf_vectorizer;
mod tokenizer;

use std::fmt;

use tract_onnx::pb::{AttributeProto, NodeProto};
use tract_onnx::tract_hir::internal::*;

use crate::errors::ModelError;

pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("StringNormalizer", string_normalizer::parse);
    onnx.op_register.insert("Tokenizer", tokenizer::parse);
    onnx.op_register.insert("TfIdfVectorizer", tfidf_vectorizer::parse);
    onnx.op_register.insert("StringConcat", string_concat::parse);
    onnx.op_register.insert("StringSplit", string_split::parse);
    onnx.op_register.insert("RegexFullMatch", regex_full_match::parse);
    onnx.op_register.insert("LabelEncoder", label_encoder::parse);
    onnx.op_register.insert("CategoryMapper", category_mapper::parse);
}

pub type Parsed = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;
/// Output types from the input types (it checks them).
pub type TypesFn = dyn Fn(&[DatumType]) -> TractResult<TVec<DatumType>> + Send + Sync;
/// Output shapes from the input shapes (it checks them).
pub type ShapesFn = dyn Fn(&[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> + Send + Sync;
/// The outputs from the inputs.
pub type EvalFn = dyn Fn(&[TValue]) -> TractResult<TVec<Tensor>> + Send + Sync;

/// A text operator: what it is (`what`: op and node name, for messages), its arity, and
/// its types, shapes and computation.
#[derive(Clone)]
pub struct TextOp {
    pub name: &'static str,
    pub what: String,
    pub inputs: usize,
    pub outputs: usize,
    pub types: Arc<TypesFn>,
    pub shapes: Arc<ShapesFn>,
    pub eval: Arc<EvalFn>,
}

impl TextOp {
    /// The op as tract-onnx's builders return it.
    pub fn parsed(self) -> Parsed {
        Ok((expand(Hir(self)), vec![]))
    }
}

impl fmt::Debug for TextOp {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.what)
    }
}

// Closures cannot be compared: never merged as duplicates, like tract's wrapped ops.
impl PartialEq for TextOp {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl Eq for TextOp {}

#[derive(Debug, Clone)]
struct Hir(TextOp);

impl Expansion for Hir {
    fn name(&self) -> StaticName {
        self.0.name.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, self.0.inputs)?;
        check_output_arity(outputs, self.0.outputs)?;
        s.given_all(inputs.iter().map(|i| &i.datum_type), move |s, types| {
            let types: Vec<DatumType> = types.into_iter().map(integer).collect();
            for (o, dt) in (self.0.types)(&types)?.into_iter().enumerate() {
                s.equals(&outputs[o].datum_type, dt)?;
            }
            Ok(())
        })?;
        s.given_all(inputs.iter().map(|i| &i.shape), move |s, shapes| {
            for (o, shape) in (self.0.shapes)(&shapes)?.into_iter().enumerate() {
                s.equals(&outputs[o].shape, ShapeFactoid::from(shape))?;
            }
            Ok(())
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0.clone(), inputs)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs)
    }
}

impl Op for TextOp {
    fn name(&self) -> StaticName {
        self.name.into()
    }

    op_as_typed_op!();
}

impl EvalOp for TextOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let inputs: TVec<TValue> = inputs
            .into_iter()
            .map(|t| match t.datum_type() {
                DatumType::TDim => Ok(t.cast_to::<i64>()?.into_owned().into_tvalue()),
                _ => Ok(t),
            })
            .collect::<TractResult<_>>()?;
        let outputs = (self.eval)(&inputs).with_context(|| self.what.clone())?;
        Ok(outputs.into_iter().map(|t| t.into_tvalue()).collect())
    }
}

impl TypedOp for TextOp {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let types: TVec<DatumType> = inputs.iter().map(|f| integer(f.datum_type)).collect();
        let shapes: TVec<TVec<TDim>> = inputs.iter().map(|f| f.shape.to_tvec()).collect();
        let types = (self.types)(&types)?;
        let shapes = (self.shapes)(&shapes)?;
        ensure!(types.len() == self.outputs && shapes.len() == self.outputs, "{}: outputs miscounted", self.what);
        Ok(types.into_iter().zip(shapes).map(|(dt, shape)| dt.fact(shape)).collect())
    }
}

// --- helpers for the ops -------------------------------------------------------------

/// tract's symbolic integers (a shape computation's values, or a cast of them) are int64
/// to these ops, as to ONNX.
fn integer(dt: DatumType) -> DatumType {
    if dt == DatumType::TDim {
        DatumType::I64
    } else {
        dt
    }
}

/// A node's attributes, read as ONNX defines them, with errors that name the node.
pub struct Attrs<'a> {
    pub node: &'a NodeProto,
    pub what: String,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Attrs<'a> {
        Attrs { node, what: format!("{} '{}'", node.op_type, node.name) }
    }

    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }

    pub fn ints(&self, name: &str) -> &'a [i64] {
        self.get(name).map_or(&[], |a| a.ints.as_slice())
    }

    pub fn floats(&self, name: &str) -> &'a [f32] {
        self.get(name).map_or(&[], |a| a.floats.as_slice())
    }

    /// A string attribute, `None` when absent.
    pub fn string(&self, name: &str) -> TractResult<Option<String>> {
        self.get(name).map(|a| self.utf8(name, &a.s)).transpose()
    }

    /// A strings attribute, `None` when absent.
    pub fn strings(&self, name: &str) -> TractResult<Option<Vec<String>>> {
        self.get(name).map(|a| a.strings.iter().map(|s| self.utf8(name, s)).collect()).transpose()
    }

    fn utf8(&self, name: &str, bytes: &[u8]) -> TractResult<String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| self.invalid(format!("attribute {name} is not UTF-8")))
    }

    /// An inconsistent model: the message names the node.
    pub fn invalid(&self, why: impl fmt::Display) -> anyhow::Error {
        let why = why.to_string();
        // The kernels' messages begin with the op's name; the node's is more precise.
        let why = why.strip_prefix(&format!("{}: ", self.node.op_type)).unwrap_or(&why);
        ModelError::Inconsistent(format!("{}: {why}", self.what)).into()
    }

    /// A valid model that the sandbox does not run: the message names the node.
    pub fn unsupported(&self, why: impl fmt::Display) -> anyhow::Error {
        ModelError::Unsupported(format!("{}: {why}", self.what)).into()
    }
}

/// The concrete shape of an input known to hold no element (tract folds such inputs
/// while typing, so an op's output shape must then be the one it computes).
pub fn empty(shape: &[TDim]) -> Option<Vec<usize>> {
    let dims: Option<Vec<usize>> = shape.iter().map(|d| d.to_usize().ok()).collect();
    dims.filter(|d| d.contains(&0))
}

/// A tensor's strings.
pub fn strings(t: &Tensor) -> TractResult<&[String]> {
    t.try_as_plain_ram()?.as_slice::<String>()
}

/// A tensor's elements of a plain type.
pub fn plain<T: Datum>(t: &Tensor) -> TractResult<&[T]> {
    t.try_as_plain_ram()?.as_slice::<T>()
}

/// A tensor of `values` in `shape` (any element type, strings included).
pub fn tensor<T: Datum>(values: Vec<T>, shape: &[usize]) -> TractResult<Tensor> {
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), values)?.into_tensor())
}

/// A kernel's error while running: the inputs do not suit the op.
pub fn run_error(e: String) -> anyhow::Error {
    anyhow::anyhow!(e)
}

/// Checks that the op's first input is a string tensor; its outputs' types are `out`.
pub fn strings_in(name: &'static str, out: &'static [DatumType]) -> Arc<TypesFn> {
    Arc::new(move |types: &[DatumType]| {
        for (i, dt) in types.iter().enumerate() {
            ensure!(*dt == DatumType::String, "{name}: input {i} is {dt:?}, not strings");
        }
        Ok(out.iter().copied().collect())
    })
}
