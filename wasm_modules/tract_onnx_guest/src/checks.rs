//! What the guest reads from the ONNX protobuf before tract parses it: the checks for
//! what tract's parser assumes without checking, the operators it lacks, and the
//! model's signatures and metadata (so the host never parses an untrusted protobuf).

use std::collections::{BTreeMap, HashSet};

use tract_onnx::pb;

use crate::dtypes;
use crate::wire::{Dim, GuestError, GuestResult, Meta, Signature};

/// The model as the load response describes it.
pub struct Described {
    pub inputs: Vec<Signature>,
    pub outputs: Vec<Signature>,
    pub meta: Meta,
}

/// Checks `proto`'s graph for `onnx` (the register the model will be parsed with) and
/// describes it: inputs (minus initializers) and outputs as declared, and metadata.
pub fn check(onnx: &tract_onnx::Onnx, proto: &pb::ModelProto, graph: &pb::GraphProto) -> GuestResult<Described> {
    let mut ops = BTreeMap::new();
    let mut missing = vec![];
    check_graph(onnx, graph, true, &mut ops, &mut missing)?;
    if !missing.is_empty() {
        return Err(GuestError::unsupported_model(format!(
            "operator{} not supported by tract: {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        )));
    }
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .map(signature)
        .collect();
    let outputs = graph.output.iter().map(signature).collect();
    Ok(Described { inputs, outputs, meta: meta(proto, graph, ops) })
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
            (dtypes::onnx_name(t.elem_type), shape)
        }
        None => (dtypes::UNKNOWN, None),
    };
    Signature { name: info.name.clone(), dtype: dtype.to_string(), shape }
}

/// The subgraphs held by a node's attributes (If branches, Loop and Scan bodies).
pub fn subgraphs(node: &pb::NodeProto) -> impl Iterator<Item = &pb::GraphProto> {
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
/// `unimplemented!` panic in tract-onnx 0.23.9, tensor.rs:193): the types the guest
/// exchanges, which are those with a tract type in the dtype table.
fn check_raw_tensor(tensor: &pb::TensorProto) -> GuestResult<()> {
    if tensor.raw_data.is_empty() {
        return Ok(());
    }
    match dtypes::by_onnx(tensor.data_type) {
        Some(d) if d.datum.is_some() => Ok(()),
        _ => Err(GuestError::unsupported_model(format!(
            "tensor '{}' holds raw data of type {}, which tract cannot load",
            tensor.name,
            dtypes::onnx_name(tensor.data_type)
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
