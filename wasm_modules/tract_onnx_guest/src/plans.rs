//! The plan cache: tract's model typed and optimised for the concrete dtypes and
//! shapes of the inputs that arrive (and, when it takes that, the values of its small
//! integer inputs), kept per input signature and output selection, most recently
//! used first.

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::ops::konst::Const;
use tract_onnx::tract_hir::ops::source::Source;

use crate::dtypes;
use crate::errors::{chain, chosen_refusal};
use crate::wire::{Dim, GuestError, GuestResult, Signature};

const DEFAULT_PLAN_CACHE: usize = 4;
const MAX_PLAN_CACHE: usize = 64;
/// Integer inputs up to this many elements may have their values baked into a plan.
const MAX_SPECIALIZED_ELEMENTS: usize = 1024;

/// Which concrete inputs a plan was optimised for, and which outputs it computes.
/// `values` is empty, or holds the inputs whose values the plan was specialised for.
#[derive(Clone, PartialEq, Debug)]
pub struct PlanKey {
    inputs: Vec<(DatumType, Vec<usize>)>,
    outputs: Vec<usize>,
    values: Vec<Option<Tensor>>,
}

impl PlanKey {
    /// The key of the inputs' dtypes and shapes, for the outputs at these indices.
    pub fn shapes(inputs: Vec<(DatumType, Vec<usize>)>, outputs: Vec<usize>) -> PlanKey {
        PlanKey { inputs, outputs, values: vec![] }
    }
}

/// Small integer inputs (shapes, lengths, indices): tract needs their values, not
/// only their shapes, to type ops such as ConstantOfShape or Range on them
/// ("shape input is variable"). A plan built with them is reused for the same values.
fn specializable(t: &Tensor) -> bool {
    specializable_type(t.datum_type()) && t.len() <= MAX_SPECIALIZED_ELEMENTS
}

/// Integers, and booleans: an `If`'s condition is often a boolean input.
fn specializable_type(dt: DatumType) -> bool {
    dt.is_integer() || dt == DatumType::Bool
}

/// How a plan's input facts are set.
#[derive(Clone, Copy, PartialEq)]
enum Typing {
    /// Each input's dtype and concrete shape (or its value, when specialised).
    Concrete,
    /// The facts the graph declares, symbols included: what native tract is given.
    Declared,
}

impl Typing {
    fn describe(self, specialised: bool, value_info: bool) -> String {
        let facts = match (self, specialised) {
            (Typing::Concrete, false) => "concrete input shapes",
            (Typing::Concrete, true) => "input values",
            (Typing::Declared, _) => "declared input facts",
        };
        if value_info {
            facts.to_string()
        } else {
            format!("{facts} without value_info")
        }
    }
}

/// Why no way of typing the model built a plan: the first error, and every way tried.
struct Refusal {
    first: anyhow::Error,
    tried: Vec<String>,
}

/// An optimised plan. Runs never share a `TypedSimpleState`: op states (Scan's and
/// LSTM's hidden state, random generators) and per-session scratch would otherwise
/// carry from one run into the next and change its answer.
struct Plan {
    key: PlanKey,
    plan: Arc<TypedRunnableModel>,
}

/// A parsed model and the plans built from it so far.
pub struct Plans {
    model: InferenceModel,
    /// Whether the graph's `value_info` put facts on inner values (see `without_value_info`).
    has_value_info: bool,
    /// Whether the graph declares every input's dtype and dims (no symbols).
    fully_declared: bool,
    /// The inputs' names, which refusals list with the shapes tried.
    input_names: Vec<String>,
    /// Most recently used first.
    cache: Vec<Plan>,
    capacity: usize,
    /// Shape signatures (values empty) that typed only with input values baked in.
    needs_values: Vec<PlanKey>,
}

impl Plans {
    /// Plans for `model`, whose inputs are `inputs`; `capacity` is the load option
    /// `plan_cache`, if given.
    pub fn new(model: InferenceModel, has_value_info: bool, inputs: &[Signature], capacity: Option<u32>) -> Plans {
        let fully_declared = inputs.iter().all(|sig| {
            dtypes::exchanged(&sig.dtype).is_some()
                && sig.shape.as_ref().is_some_and(|dims| dims.iter().all(|d| matches!(d, Dim::Known(_))))
        });
        Plans {
            model,
            has_value_info,
            fully_declared,
            input_names: inputs.iter().map(|s| s.name.clone()).collect(),
            cache: vec![],
            capacity: capacity.map(|n| (n as usize).clamp(1, MAX_PLAN_CACHE)).unwrap_or(DEFAULT_PLAN_CACHE),
            needs_values: vec![],
        }
    }

    /// A model whose inputs are all fully known is optimised at load: it fails
    /// early, as onnxruntime does, and its first run is as fast as the next.
    pub fn prepare_static(&mut self, inputs: &[Signature], outputs: usize) -> GuestResult<()> {
        let mut shapes = vec![];
        for sig in inputs {
            let Some(dt) = dtypes::exchanged(&sig.dtype) else { return Ok(()) };
            let Some(dims) = &sig.shape else { return Ok(()) };
            let mut shape = vec![];
            for d in dims {
                let Dim::Known(v) = d else { return Ok(()) };
                shape.push(*v as usize);
            }
            shapes.push((dt, shape));
        }
        let key = PlanKey::shapes(shapes, (0..outputs).collect());
        match self.build(&key) {
            Ok(plan) => self.cache.push(Plan { key, plan }),
            // It may type once the values of its small inputs are known: at run time.
            Err(_) if key.inputs.iter().any(|(dt, _)| specializable_type(*dt)) => {
                self.needs_values.push(key)
            }
            Err(r) => return Err(self.refusal(&key, r)),
        }
        Ok(())
    }

    /// The model without the facts `value_info` gave inner values: exporters
    /// often leave stale symbolic shapes there that make typing fail.
    fn without_value_info(&self) -> InferenceModel {
        let mut model = self.model.clone();
        for node in model.nodes_mut() {
            if node.op_is::<Source>() || node.op_is::<Const>() {
                continue;
            }
            for output in node.outputs.iter_mut() {
                output.fact = InferenceFact::default();
            }
        }
        model
    }

    /// Builds the plan for `key`, trying each way of typing the model in turn: a
    /// model that one way cannot type may type another (tract's analysis is not
    /// monotonic in what it is told), and native tract runs models with the facts
    /// their graph declares. The error names every way tried.
    fn build(&self, key: &PlanKey) -> Result<Arc<TypedRunnableModel>, Refusal> {
        let specialised = key.values.iter().any(Option::is_some);
        let mut ways: Vec<(Typing, bool)> = vec![];
        for typing in [Typing::Concrete, Typing::Declared] {
            // Declared facts are the concrete ones when the graph states every dim, and
            // mean nothing for a plan specialised for input values.
            if typing == Typing::Declared && (specialised || self.fully_declared) {
                continue;
            }
            ways.push((typing, true));
            if self.has_value_info {
                ways.push((typing, false));
            }
        }
        let mut first = None;
        let mut tried = vec![];
        for (typing, value_info) in ways {
            let base = if value_info { self.model.clone() } else { self.without_value_info() };
            match attempt(base, key, typing) {
                Ok(plan) => return Ok(plan),
                Err(e) => {
                    first.get_or_insert(e);
                    tried.push(typing.describe(specialised, value_info));
                }
            }
        }
        Err(Refusal { first: first.expect("at least one way is tried"), tried })
    }

    fn refusal(&self, key: &PlanKey, refusal: Refusal) -> GuestError {
        if let Some(e) = chosen_refusal(&refusal.first) {
            return e;
        }
        let shapes: Vec<String> = key
            .inputs
            .iter()
            .zip(&self.input_names)
            .map(|((dt, shape), name)| format!("{}: {:?} {:?}", name, dt, shape))
            .collect();
        GuestError::unsupported_model(format!(
            "tract cannot run this model for inputs {} (tried {}): {}",
            shapes.join(", "),
            refusal.tried.join("; "),
            chain(&refusal.first)
        ))
    }

    /// Makes the plan for `key` the front of the cache (most recently used),
    /// building it if it is not there.
    fn plan(&mut self, key: PlanKey) -> GuestResult<()> {
        if let Some(pos) = self.cache.iter().position(|p| p.key == key) {
            let plan = self.cache.remove(pos);
            self.cache.insert(0, plan);
        } else {
            // Free the least recently used plan before building, not after.
            self.cache.truncate(self.capacity - 1);
            let plan = self.build(&key).map_err(|r| self.refusal(&key, r))?;
            self.cache.insert(0, Plan { key, plan });
        }
        Ok(())
    }

    /// The plan for these inputs: by shapes, or by shapes and the values of the small
    /// integer inputs when tract cannot type the model without them.
    pub fn select(&mut self, shapes: PlanKey, tensors: &[TValue]) -> GuestResult<&Arc<TypedRunnableModel>> {
        self.make_front(shapes, tensors)?;
        Ok(&self.cache[0].plan)
    }

    fn make_front(&mut self, shapes: PlanKey, tensors: &[TValue]) -> GuestResult<()> {
        let values: Vec<Option<Tensor>> =
            tensors.iter().map(|t| specializable(t).then(|| (**t).clone())).collect();
        if !values.iter().any(|v| v.is_some()) {
            return self.plan(shapes);
        }
        if self.needs_values.contains(&shapes) {
            return self.plan(PlanKey { values, ..shapes });
        }
        if let Some(pos) = self.cache.iter().position(|p| p.key == shapes) {
            let plan = self.cache.remove(pos);
            self.cache.insert(0, plan);
            return Ok(());
        }
        self.cache.truncate(self.capacity - 1);
        let by_shapes = match self.build(&shapes) {
            Ok(plan) => {
                self.cache.insert(0, Plan { key: shapes, plan });
                return Ok(());
            }
            Err(refusal) => refusal,
        };
        let specialised = PlanKey { values, ..shapes.clone() };
        match self.build(&specialised) {
            Ok(plan) => self.cache.insert(0, Plan { key: specialised, plan }),
            Err(by_values) => {
                let mut refusal = by_shapes;
                refusal.tried.extend(by_values.tried);
                return Err(self.refusal(&shapes, refusal));
            }
        }
        if self.needs_values.len() >= MAX_PLAN_CACHE {
            self.needs_values.remove(0);
        }
        self.needs_values.push(shapes);
        Ok(())
    }
}

/// Types `model` one way for `key`, optimises it and makes it runnable.
fn attempt(mut model: InferenceModel, key: &PlanKey, typing: Typing) -> TractResult<Arc<TypedRunnableModel>> {
    if typing == Typing::Concrete {
        for (ix, (dt, shape)) in key.inputs.iter().enumerate() {
            let fact = match key.values.get(ix) {
                Some(Some(value)) => InferenceFact::from(value.clone()),
                _ => InferenceFact::dt_shape(*dt, shape.as_slice()),
            };
            model.set_input_fact(ix, fact)?;
        }
    }
    let all = model.output_outlets()?.to_vec();
    model.select_output_outlets(&key.outputs.iter().map(|&i| all[i]).collect::<Vec<_>>())?;
    let plan = model.into_optimized()?.into_runnable()?;
    // Spawned once here so that a plan whose op states cannot be built fails now.
    plan.spawn()?;
    Ok(plan)
}
