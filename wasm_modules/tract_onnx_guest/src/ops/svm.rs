//! ONNX-ML's `SVMRegressor` and `SVMClassifier`, ops of the guest's own (tract-onnx
//! 0.23.9 has neither): `crate::ml_svm` checks the attributes and computes them as
//! onnxruntime does. Refused as `UnsupportedModel`: string class labels (until string
//! tensors exist), a classifier without support vectors (linear mode), a post
//! transform other than NONE (skl2onnx writes NONE). The input's feature count is
//! checked against the support vectors when the plan is typed.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{AttributeProto, NodeProto};
use tract_onnx::tract_hir::internal::*;

use crate::errors::ModelError;
use crate::ml_svm::{Classifier, Kernel, Regressor};

pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("SVMRegressor", regressor);
    onnx.op_register.insert("SVMClassifier", |ctx, node| {
        super::string_labels::build(ctx, node, "classlabels_ints", classifier)
    });
}

type Parsed = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

struct Attrs<'a>(&'a NodeProto, String);

impl<'a> Attrs<'a> {
    fn new(node: &'a NodeProto) -> Self {
        Attrs(node, format!("{} '{}'", node.op_type, node.name))
    }
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.attribute.iter().find(|a| a.name == name)
    }
    fn floats(&self, name: &str) -> &'a [f32] {
        self.get(name).map(|a| a.floats.as_slice()).unwrap_or(&[])
    }
    fn ints(&self, name: &str) -> &'a [i64] {
        self.get(name).map(|a| a.ints.as_slice()).unwrap_or(&[])
    }
    fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_else(|| default.into())
    }
    fn bad(&self, why: impl std::fmt::Display) -> anyhow::Error {
        ModelError::Inconsistent(format!("{}: {why}", self.1)).into()
    }
    fn unsupported(&self, why: impl std::fmt::Display) -> anyhow::Error {
        ModelError::Unsupported(format!("{}: {why}", self.1)).into()
    }
    fn common(&self, outputs: usize) -> TractResult<Kernel> {
        if self.0.input.len() != 1 || self.0.output.len() != outputs {
            return Err(self.bad(format!("takes 1 input and gives {outputs} output(s)")));
        }
        match self.string("post_transform", "NONE").as_str() {
            "NONE" => {}
            "SOFTMAX" | "LOGISTIC" | "SOFTMAX_ZERO" | "PROBIT" => {
                return Err(self.unsupported("a post_transform other than NONE is not implemented"))
            }
            other => return Err(self.bad(format!("post_transform is '{other}'"))),
        }
        Kernel::parse(&self.string("kernel_type", "LINEAR"), self.floats("kernel_params")).map_err(|e| self.bad(e))
    }
}

fn regressor(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    let kernel = a.common(1)?;
    let n_supports = a.get("n_supports").map(|x| x.i).unwrap_or(0);
    let one_class = a.get("one_class").map(|x| x.i).unwrap_or(0);
    let svm = Regressor::build(
        kernel,
        n_supports,
        a.floats("support_vectors"),
        a.floats("coefficients"),
        a.floats("rho"),
        one_class,
    )
    .map_err(|e| a.bad(e))?;
    let features = svm.features;
    Ok((expand(Hir(Svm { what: a.1.clone(), kind: Kind::Regressor(Arc::new(svm)), features })), vec![]))
}

fn classifier(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    let kernel = a.common(2)?;
    let labels = a.ints("classlabels_ints").to_vec();
    if a.ints("vectors_per_class").is_empty() && a.floats("support_vectors").is_empty() {
        return Err(a.unsupported("a classifier without support vectors (linear mode) is not implemented"));
    }
    let svm = Classifier::build(
        kernel,
        labels.len(),
        a.ints("vectors_per_class"),
        a.floats("support_vectors"),
        a.floats("coefficients"),
        a.floats("rho"),
        a.floats("prob_a"),
        a.floats("prob_b"),
    )
    .map_err(|e| a.bad(e))?;
    let features = svm.features;
    Ok((expand(Hir(Svm { what: a.1.clone(), kind: Kind::Classifier(Arc::new(svm), labels), features })), vec![]))
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Regressor(Arc<Regressor>),
    Classifier(Arc<Classifier>, Vec<i64>),
}

#[derive(Debug, Clone, PartialEq)]
struct Svm {
    what: String,
    kind: Kind,
    features: usize,
}

impl Eq for Svm {}

#[derive(Debug, Clone)]
struct Hir(Svm);

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
        check_input_arity(inputs, 1)?;
        match &self.0.kind {
            Kind::Regressor(_) => {
                check_output_arity(outputs, 1)?;
                s.equals(&outputs[0].datum_type, DatumType::F32)?;
                s.equals(&outputs[0].rank, 2)?;
                s.equals(&outputs[0].shape[1], 1.to_dim())?;
            }
            Kind::Classifier(svm, _) => {
                check_output_arity(outputs, 2)?;
                s.equals(&outputs[0].datum_type, DatumType::I64)?;
                s.equals(&outputs[0].rank, 1)?;
                s.equals(&outputs[1].datum_type, DatumType::F32)?;
                s.equals(&outputs[1].rank, 2)?;
                s.equals(&outputs[1].shape[1], svm.scores().to_dim())?;
            }
        }
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0.clone(), inputs)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(match self.0.kind {
            Kind::Regressor(_) => 1,
            Kind::Classifier(..) => 2,
        })
    }
}

impl Op for Svm {
    fn name(&self) -> StaticName {
        match self.kind {
            Kind::Regressor(_) => "SVMRegressor",
            Kind::Classifier(..) => "SVMClassifier",
        }
        .into()
    }

    op_as_typed_op!();
}

impl EvalOp for Svm {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let x = match x.datum_type() {
            DatumType::TDim => x.cast_to::<i64>()?.cast_to::<f32>()?.into_owned(),
            _ => x.cast_to::<f32>()?.into_owned(),
        };
        let shape = x.shape();
        if shape.last().copied().unwrap_or(0) != self.features || shape.len() > 2 {
            bail!("{}: an input of shape {shape:?} for support vectors of {} features", self.what, self.features);
        }
        let rows = if shape.len() == 1 { 1 } else { shape[0] };
        let xs = x.try_as_plain_ram()?.as_slice::<f32>()?;
        Ok(match &self.kind {
            Kind::Regressor(svm) => tvec!(Tensor::from_shape(&[rows, 1], &svm.eval(xs))?.into_tvalue()),
            Kind::Classifier(svm, labels) => {
                let (picked, scores) = svm.eval(xs);
                let picked: Vec<i64> = picked.iter().map(|&k| labels[k]).collect();
                tvec!(
                    Tensor::from_shape(&[rows], &picked)?.into_tvalue(),
                    Tensor::from_shape(&[rows, svm.scores()], &scores)?.into_tvalue()
                )
            }
        })
    }
}

impl TypedOp for Svm {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        if !matches!(x.datum_type, DatumType::F32 | DatumType::F64 | DatumType::I64 | DatumType::I32 | DatumType::TDim)
        {
            bail!("{}: an input of {:?} is not supported", self.what, x.datum_type);
        }
        if !(1..=2).contains(&x.rank()) {
            bail!("{}: the input must be of rank 1 or 2, not {}", self.what, x.rank());
        }
        if let Some(w) = x.shape.last().and_then(|d| d.to_usize().ok()) {
            if w != self.features {
                return Err(ModelError::Inconsistent(format!(
                    "{}: its support vectors (coefficients) have {} features, but its input has {w}",
                    self.what, self.features
                ))
                .into());
            }
        }
        let rows = if x.rank() == 1 { 1.to_dim() } else { x.shape[0].clone() };
        Ok(match &self.kind {
            Kind::Regressor(_) => tvec!(f32::fact([rows, 1.to_dim()])),
            Kind::Classifier(svm, _) => {
                tvec!(i64::fact([rows.clone()]), f32::fact([rows, svm.scores().to_dim()]))
            }
        })
    }
}
