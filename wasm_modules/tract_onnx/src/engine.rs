//! tract behind the guest ABI: load a model from bytes, describe it, and run
//! it with plans optimised for the concrete shapes of the inputs that arrive.

use std::collections::{BTreeMap, HashSet};

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::ops::konst::Const;
use tract_onnx::tract_hir::ops::source::Source;

use crate::model_error::ModelError;
use crate::wire::{self, Dim, GuestError, GuestResult, Meta, RunRequest, Signature};

const DEFAULT_PLAN_CACHE: usize = 4;
/// Integer inputs up to this many elements may have their values baked into a plan.
const MAX_SPECIALIZED_ELEMENTS: usize = 1024;
const MAX_PLAN_CACHE: usize = 64;
/// Error chains from tract can be long (they embed node dumps): the host gets the start.
const MAX_MESSAGE: usize = 4000;

/// numpy's name for each ONNX element type, or ONNX's own for the types not exchanged.
fn onnx_dtype_name(elem_type: i32) -> &'static str {
    match elem_type {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        14 => "complex64",
        15 => "complex128",
        16 => "bfloat16",
        17 => "float8e4m3fn",
        18 => "float8e4m3fnuz",
        19 => "float8e5m2",
        20 => "float8e5m2fnuz",
        21 => "uint4",
        22 => "int4",
        23 => "float4e2m1",
        _ => "unknown",
    }
}

fn datum_type(dtype: &str) -> Option<DatumType> {
    Some(match dtype {
        "bool" => DatumType::Bool,
        "uint8" => DatumType::U8,
        "uint16" => DatumType::U16,
        "uint32" => DatumType::U32,
        "uint64" => DatumType::U64,
        "int8" => DatumType::I8,
        "int16" => DatumType::I16,
        "int32" => DatumType::I32,
        "int64" => DatumType::I64,
        "float16" => DatumType::F16,
        "float32" => DatumType::F32,
        "float64" => DatumType::F64,
        _ => return None,
    })
}

fn dtype_name(dt: DatumType) -> Option<&'static str> {
    Some(match dt {
        DatumType::Bool => "bool",
        DatumType::U8 => "uint8",
        DatumType::U16 => "uint16",
        DatumType::U32 => "uint32",
        DatumType::U64 => "uint64",
        DatumType::I8 => "int8",
        DatumType::I16 => "int16",
        DatumType::I32 => "int32",
        DatumType::I64 => "int64",
        DatumType::F16 => "float16",
        DatumType::F32 => "float32",
        DatumType::F64 => "float64",
        _ => return None,
    })
}

fn chain(e: &anyhow::Error) -> String {
    let mut s = format!("{e:#}");
    if s.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" [...]");
    }
    s
}

/// The refusal an op of our own chose, if one is in `e`'s chain.
fn model_error(e: &anyhow::Error) -> Option<GuestError> {
    Some(match crate::model_error::find(e)? {
        ModelError::Inconsistent(m) => GuestError::invalid_model(m.clone()),
        ModelError::Unsupported(m) => GuestError::unsupported_model(m.clone()),
    })
}

fn signature(info: &pb::ValueInfoProto) -> Signature {
    use pb::tensor_shape_proto::dimension::Value as D;
    use pb::type_proto::Value as T;
    let (dtype, shape) = match info.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(T::TensorType(t)) => {
            let shape = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(D::DimValue(v)) if *v >= 0 => Dim::Known(*v),
                        Some(D::DimParam(p)) if !p.is_empty() => Dim::Symbol(p.clone()),
                        _ => Dim::Unknown,
                    })
                    .collect()
            });
            (onnx_dtype_name(t.elem_type), shape)
        }
        None => ("unknown", None),
    };
    Signature { name: info.name.clone(), dtype: dtype.to_string(), shape }
}

/// The subgraphs held by a node's attributes (If branches, Loop and Scan bodies).
fn subgraphs(node: &pb::NodeProto) -> impl Iterator<Item = &pb::GraphProto> {
    node.attribute.iter().flat_map(|a| a.g.iter().chain(a.graphs.iter()))
}

/// Checks what tract's parser assumes without checking (it indexes graph
/// outputs by name and would panic), and lists the operators it lacks.
fn check_graph(
    onnx: &tract_onnx::Onnx,
    graph: &pb::GraphProto,
    top: bool,
    ops: &mut BTreeMap<String, u64>,
    missing: &mut Vec<String>,
) -> GuestResult<()> {
    let mut defined: HashSet<&str> = HashSet::new();
    for input in &graph.input {
        if !defined.insert(input.name.as_str()) {
            return Err(GuestError::invalid_model(format!(
                "graph input '{}' is declared twice",
                input.name
            )));
        }
    }
    defined.extend(graph.initializer.iter().map(|i| i.name.as_str()));
    for tensor in &graph.initializer {
        check_raw_tensor(tensor)?;
    }
    for node in &graph.node {
        for attr in &node.attribute {
            for tensor in attr.t.iter().chain(attr.tensors.iter()) {
                check_raw_tensor(tensor)?;
            }
        }
        defined.extend(node.output.iter().filter(|o| !o.is_empty()).map(|o| o.as_str()));
        let key = if node.domain.is_empty() || node.domain == "ai.onnx" {
            node.op_type.clone()
        } else {
            format!("{}:{}", node.domain, node.op_type)
        };
        if !onnx.op_register.0.contains_key(&node.op_type) && !missing.contains(&key) {
            missing.push(key.clone());
        }
        *ops.entry(key).or_default() += 1;
        for g in subgraphs(node) {
            check_graph(onnx, g, false, ops, missing)?;
        }
    }
    for output in &graph.output {
        if !defined.contains(output.name.as_str()) {
            return Err(if top {
                GuestError::invalid_model(format!(
                    "graph output '{}' is not produced by any node, input or initializer",
                    output.name
                ))
            } else {
                GuestError::unsupported_model(format!(
                    "subgraph '{}' outputs '{}', a value of its enclosing graph",
                    graph.name, output.name
                ))
            });
        }
    }
    Ok(())
}

/// tract loads `raw_data` of plain numeric and bool types only (anything else is an
/// `unimplemented!` panic in tract-onnx 0.23.9, tensor.rs:193).
fn check_raw_tensor(tensor: &pb::TensorProto) -> GuestResult<()> {
    if tensor.raw_data.is_empty() {
        return Ok(());
    }
    match tensor.data_type {
        1..=7 | 9..=13 => Ok(()),
        other => Err(GuestError::unsupported_model(format!(
            "tensor '{}' holds raw data of type {}, which tract cannot load",
            tensor.name,
            onnx_dtype_name(other)
        ))),
    }
}

fn meta(proto: &pb::ModelProto, graph: &pb::GraphProto, ops: BTreeMap<String, u64>) -> Meta {
    Meta {
        producer_name: proto.producer_name.clone(),
        producer_version: proto.producer_version.clone(),
        domain: proto.domain.clone(),
        doc_string: proto.doc_string.clone(),
        graph_name: graph.name.clone(),
        graph_description: graph.doc_string.clone(),
        model_version: proto.model_version,
        ir_version: proto.ir_version,
        opset: proto.opset_import.iter().map(|o| (o.domain.clone(), o.version)).collect(),
        ops: ops.into_iter().collect(),
        metadata_props: proto
            .metadata_props
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect(),
    }
}

/// Which concrete inputs a plan was optimised for, and which outputs it computes.
/// `values` is empty, or holds the inputs whose values the plan was specialised for.
#[derive(Clone, PartialEq, Debug)]
struct PlanKey {
    inputs: Vec<(DatumType, Vec<usize>)>,
    outputs: Vec<usize>,
    values: Vec<Option<Tensor>>,
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

/// A loaded model: its signatures and the optimised plans built so far.
pub struct Loaded {
    model: InferenceModel,
    /// Whether the graph's `value_info` put facts on inner values (see `without_value_info`).
    has_value_info: bool,
    /// Whether the graph declares every input's dtype and dims (no symbols).
    fully_declared: bool,
    pub inputs: Vec<Signature>,
    pub outputs: Vec<Signature>,
    pub meta: Meta,
    plans: Vec<Plan>,
    plan_cache: usize,
    /// Shape signatures (values empty) that typed only with input values baked in.
    needs_values: Vec<PlanKey>,
}

impl Loaded {
    pub fn load(bytes: &[u8], options: Option<wire::LoadOptions>) -> GuestResult<Loaded> {
        let proto = pb::ModelProto::decode(bytes)
            .map_err(|e| GuestError::invalid_model(format!("not an ONNX model: {e}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| GuestError::invalid_model("not an ONNX model: it has no graph"))?;
        let mut onnx = tract_onnx::onnx();
        crate::lrn::register(&mut onnx);
        crate::maxpool::register(&mut onnx);
        crate::if_fold::register(&mut onnx);
        crate::ml_linear::register(&mut onnx);
        crate::ml_tree::register(&mut onnx);
        let mut ops = BTreeMap::new();
        let mut missing = vec![];
        check_graph(&onnx, graph, true, &mut ops, &mut missing)?;
        if !missing.is_empty() {
            return Err(GuestError::unsupported_model(format!(
                "operator{} not supported by tract: {}",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", ")
            )));
        }
        let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<Signature> = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .map(signature)
            .collect();
        let outputs: Vec<Signature> = graph.output.iter().map(signature).collect();
        let meta = meta(&proto, graph, ops);
        let has_value_info = !graph.value_info.is_empty();

        let parsed = onnx.parse(&proto, None).map_err(|e| {
            model_error(&e).unwrap_or_else(|| {
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
        let plan_cache = options
            .and_then(|o| o.plan_cache)
            .map(|n| (n as usize).clamp(1, MAX_PLAN_CACHE))
            .unwrap_or(DEFAULT_PLAN_CACHE);
        let fully_declared = inputs.iter().all(|sig| {
            datum_type(&sig.dtype).is_some()
                && sig.shape.as_ref().is_some_and(|dims| dims.iter().all(|d| matches!(d, Dim::Known(_))))
        });
        let mut loaded = Loaded {
            model,
            has_value_info,
            fully_declared,
            inputs,
            outputs,
            meta,
            plans: vec![],
            plan_cache,
            needs_values: vec![],
        };
        loaded.prepare_static()?;
        Ok(loaded)
    }

    /// A model whose inputs are all fully known is optimised at load: it fails
    /// early, as onnxruntime does, and its first run is as fast as the next.
    fn prepare_static(&mut self) -> GuestResult<()> {
        let mut inputs = vec![];
        for sig in &self.inputs {
            let Some(dt) = datum_type(&sig.dtype) else { return Ok(()) };
            let Some(dims) = &sig.shape else { return Ok(()) };
            let mut shape = vec![];
            for d in dims {
                let Dim::Known(v) = d else { return Ok(()) };
                shape.push(*v as usize);
            }
            inputs.push((dt, shape));
        }
        let key = PlanKey { inputs, outputs: (0..self.outputs.len()).collect(), values: vec![] };
        match self.build(&key) {
            Ok(plan) => self.plans.push(Plan { key, plan }),
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
            match self.attempt(base, key, typing) {
                Ok(plan) => return Ok(plan),
                Err(e) => {
                    first.get_or_insert(e);
                    tried.push(typing.describe(specialised, value_info));
                }
            }
        }
        Err(Refusal { first: first.expect("at least one way is tried"), tried })
    }

    fn attempt(&self, mut model: InferenceModel, key: &PlanKey, typing: Typing) -> TractResult<Arc<TypedRunnableModel>> {
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

    fn refusal(&self, key: &PlanKey, refusal: Refusal) -> GuestError {
        if let Some(e) = model_error(&refusal.first) {
            return e;
        }
        let shapes: Vec<String> = key
            .inputs
            .iter()
            .zip(&self.inputs)
            .map(|((dt, shape), sig)| format!("{}: {:?} {:?}", sig.name, dt, shape))
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
        if let Some(pos) = self.plans.iter().position(|p| p.key == key) {
            let plan = self.plans.remove(pos);
            self.plans.insert(0, plan);
        } else {
            // Free the least recently used plan before building, not after.
            self.plans.truncate(self.plan_cache - 1);
            let plan = self.build(&key).map_err(|r| self.refusal(&key, r))?;
            self.plans.insert(0, Plan { key, plan });
        }
        Ok(())
    }

    /// Selects the plan for these inputs: by shapes, or by shapes and the values
    /// of the small integer inputs when tract cannot type the model without them.
    fn select_plan(&mut self, shapes: PlanKey, tensors: &[TValue]) -> GuestResult<()> {
        let values: Vec<Option<Tensor>> =
            tensors.iter().map(|t| specializable(t).then(|| (**t).clone())).collect();
        if !values.iter().any(|v| v.is_some()) {
            return self.plan(shapes);
        }
        if self.needs_values.contains(&shapes) {
            return self.plan(PlanKey { values, ..shapes });
        }
        if let Some(pos) = self.plans.iter().position(|p| p.key == shapes) {
            let plan = self.plans.remove(pos);
            self.plans.insert(0, plan);
            return Ok(());
        }
        self.plans.truncate(self.plan_cache - 1);
        let by_shapes = match self.build(&shapes) {
            Ok(plan) => {
                self.plans.insert(0, Plan { key: shapes, plan });
                return Ok(());
            }
            Err(refusal) => refusal,
        };
        let specialised = PlanKey { values, ..shapes.clone() };
        match self.build(&specialised) {
            Ok(plan) => self.plans.insert(0, Plan { key: specialised, plan }),
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
                    self.input_names()
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
            Some(names) => names
                .iter()
                .map(|name| {
                    self.outputs.iter().position(|s| &s.name == name).ok_or_else(|| {
                        GuestError::invalid_input(format!(
                            "the model has no output '{name}' (outputs: {})",
                            self.output_names()
                        ))
                    })
                })
                .collect::<GuestResult<_>>()?,
        };
        let names: Vec<String> = outputs.iter().map(|&i| self.outputs[i].name.clone()).collect();
        self.select_plan(PlanKey { inputs: key_inputs, outputs, values: vec![] }, &tensors)?;
        // A fresh state per run, dropped after it: a run's outputs depend only on the
        // model and this run's inputs (tract's own SimplePlan::run does the same).
        let results = self.plans[0].plan.spawn().and_then(|mut state| state.run(tensors)).map_err(|e| {
            GuestError::invalid_input(format!("running the model failed: {}", chain(&e)))
        })?;
        // Convert all before writing any, so that an error leaves no half response.
        let mut dtypes = Vec::with_capacity(results.len());
        for (name, value) in names.iter().zip(results) {
            let (dtype, tensor) = output_tensor(name, value)?;
            dtypes.push(dtype);
            kept.push(tensor);
        }
        wire::begin_run_response(out, kept.len());
        for ((name, dtype), tensor) in names.iter().zip(&dtypes).zip(kept.iter()) {
            let bytes = tensor.as_bytes();
            // Guest addresses and lengths are wasm32's: they fit a u32.
            wire::encode_tensor(out, name, dtype, tensor.shape(), bytes.as_ptr() as usize as u32, bytes.len() as u32);
        }
        Ok(())
    }

    fn input_names(&self) -> String {
        self.inputs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    fn output_names(&self) -> String {
        self.outputs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Checks an input against its signature and copies it into a tract tensor.
fn input_tensor(sig: &Signature, t: &wire::TensorIn) -> GuestResult<(DatumType, Tensor)> {
    let name = &sig.name;
    let expected = datum_type(&sig.dtype);
    if expected.is_none() && sig.dtype != "unknown" {
        return Err(GuestError::unsupported_model(format!(
            "input '{name}' has type {}, which the sandbox cannot exchange",
            sig.dtype
        )));
    }
    let dt = datum_type(t.dtype).ok_or_else(|| {
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
    wire::check_tensor_bytes(name, t.dtype, &t.shape, t.data.len())?;
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let tensor = if dt == DatumType::Bool {
        // Bytes other than 0 and 1 are not valid Rust bools: never copy them raw.
        let values: Vec<bool> = t.data.iter().map(|&b| b != 0).collect();
        Tensor::from_shape(&shape, &values)
    } else {
        // Safety: the dtype is plain-old-data and the byte length was checked above.
        unsafe { Tensor::from_raw_dt(dt, &shape, t.data) }
    }
    .map_err(|e| GuestError::internal(format!("input '{name}': {}", chain(&e))))?;
    Ok((dt, tensor))
}

/// An output as the host receives it: TDim as int64, quantized as its storage type.
fn output_tensor(name: &str, value: TValue) -> GuestResult<(&'static str, Tensor)> {
    let tensor = value.into_tensor();
    let dt = tensor.datum_type();
    if dt == DatumType::TDim {
        let cast = tensor.cast_to_dt(DatumType::I64).map_err(|e| {
            GuestError::internal(format!("output '{name}': symbolic value: {}", chain(&e)))
        })?;
        return Ok(("int64", cast.into_owned()));
    }
    let plain = if dt.is_quantized() { dt.unquantized() } else { dt };
    match dtype_name(plain) {
        Some(n) => Ok((n, tensor)),
        None => Err(GuestError::unsupported_model(format!(
            "output '{name}' has type {dt:?}, which the sandbox cannot exchange"
        ))),
    }
}
