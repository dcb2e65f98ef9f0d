//! LSTM, GRU and RNN nodes rewritten, in the ONNX graph before tract parses it, into
//! the form tract-onnx 0.23.9 runs right: `layout = 0`, `direction` forward or
//! bidirectional, initial states given, and an LSTM's two states distinct values.
//!
//! tract builds each of these nodes as a Scan (`ops/rec/common.rs`) and gets these
//! wrong (native tract as well; onnxruntime runs them all):
//!
//! - **An LSTM whose two initial states are one value.** When `initial_h` and
//!   `initial_c` reach tract's Scan as the same value, every batch larger than 1 fails
//!   at run time ("Scan: Setting body inputs: Clashing resolution for expression. 1=1
//!   != 2"). They do whenever both are absent (tract makes both zeros, equal constants,
//!   which its optimiser merges), when the model passes one value for both, or equal
//!   constants, or two identical computations of zeros. So `initial_c` always goes
//!   through a `Where` of its own, on a flag that `initial_h` never uses.
//! - **A missing initial state** (`initial_h`, input 5, and LSTM's `initial_c`, input
//!   6; ONNX starts it at zero). With a symbolic batch tract panics making it
//!   (`UndeterminedSymbol`, common.rs:189), a trap in the guest. The guest gives zeros
//!   of `X`'s type and of shape `[num_directions, batch, hidden_size]`, as
//!   `Where(flag, zeros, zeros)`: `flag` is computed from `X`'s values (whether each
//!   batch row sums to NaN), so tract cannot fold the state into a constant and merge
//!   it, and the result is exact zeros whatever `X` holds. The optional inputs before
//!   it (`B`, `sequence_lens`) become `""` when absent, which ONNX reads as absent.
//! - **`direction = "reverse"`** is ignored: tract never reads the attribute and runs
//!   the sequence forward, a wrong answer without an error. The guest runs the node
//!   forward over `X` reversed in time and reverses `Y` back (`Y_h` and `Y_c`, the
//!   states after the last step taken, are already right).
//! - **`layout = 1`** (batch first) with two directions fails to build ("Output
//!   mismatch after rewiring expansion"). The guest transposes `X` and the given states
//!   to `layout = 0`, and the outputs back.
//!
//! The added nodes use only operators whose form does not depend on the model's opset
//! (tract parses `Slice`, `Squeeze` or `ReduceSum` by opset), and index nothing that
//! may be empty (tract 0.23.9 panics on an out-of-range `Gather`). With concrete input
//! shapes the transposes' and reversal's indices fold into constants; the flag costs
//! a sum over `X` per run. It is a rewrite of the protobuf in a file of its own, not an
//! op in `ops/`: tract builds the Scan inside its op's wiring, which a guard around
//! tract's op cannot reach, and one rewrite covers the three operators without copying
//! tract's code. It runs after the checks, so the operator histogram in the load
//! response describes the model as given.

use std::collections::HashSet;

use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;

use crate::checks;

/// Rewrites every recurrent node of `proto`'s graphs, subgraphs included.
pub fn rewrite(proto: &mut pb::ModelProto) {
    let Some(graph) = proto.graph.as_mut() else { return };
    let mut names = HashSet::new();
    collect_names(graph, &mut names);
    rewrite_graph(graph, &mut names);
}

/// Every value name of `graph` and of its subgraphs, which new names must avoid.
fn collect_names(graph: &pb::GraphProto, names: &mut HashSet<String>) {
    let infos = graph.input.iter().chain(&graph.output).chain(&graph.value_info);
    names.extend(infos.map(|v| v.name.clone()));
    names.extend(graph.initializer.iter().map(|t| t.name.clone()));
    for node in &graph.node {
        names.extend(node.input.iter().chain(&node.output).cloned());
        for g in checks::subgraphs(node) {
            collect_names(g, names);
        }
    }
}

fn rewrite_graph(graph: &mut pb::GraphProto, names: &mut HashSet<String>) {
    let nodes = std::mem::take(&mut graph.node);
    graph.node.reserve(nodes.len());
    for (index, mut node) in nodes.into_iter().enumerate() {
        for attr in &mut node.attribute {
            for g in attr.g.iter_mut().chain(attr.graphs.iter_mut()) {
                rewrite_graph(g, names);
            }
        }
        match rewrite_node(&mut node, index, names) {
            Some((before, after)) => {
                graph.node.extend(before);
                graph.node.push(node);
                graph.node.extend(after);
            }
            None => graph.node.push(node),
        }
    }
}

/// The inputs of the initial states an operator takes.
fn state_inputs(node: &pb::NodeProto) -> &'static [usize] {
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return &[];
    }
    match node.op_type.as_str() {
        "LSTM" => &[5, 6],
        "GRU" | "RNN" => &[5],
        _ => &[],
    }
}

fn present(node: &pb::NodeProto, slot: usize) -> bool {
    node.input.get(slot).is_some_and(|s| !s.is_empty())
}

/// Rewrites `node` in place and returns the nodes to put before and after it; `None`
/// when it needs nothing, or has attributes this does not read (tract then decides).
fn rewrite_node(
    node: &mut pb::NodeProto,
    index: usize,
    names: &mut HashSet<String>,
) -> Option<(Vec<pb::NodeProto>, Vec<pb::NodeProto>)> {
    let states = state_inputs(node);
    if states.is_empty() || !present(node, 0) {
        return None;
    }
    let layout: i64 = node.get_attr_opt("layout").ok()?.unwrap_or(0);
    let direction = node.get_attr_opt::<String>("direction").ok()?.unwrap_or_else(|| "forward".into());
    let num_directions: i64 = match direction.as_str() {
        "forward" | "reverse" => 1,
        "bidirectional" => 2,
        _ => return None,
    };
    let batch_first = match layout {
        0 => false,
        1 => true,
        _ => return None,
    };
    let reverse = direction == "reverse";
    let missing: Vec<usize> = states.iter().copied().filter(|&i| !present(node, i)).collect();
    let hidden_size: Option<i64> = node.get_attr_opt("hidden_size").ok()?;
    if !missing.is_empty() && !hidden_size.is_some_and(|h| h > 0) {
        return None;
    }
    // An LSTM's initial_c always gets a Where of its own (see the module's comment).
    let two_states = states.len() == 2;
    if !batch_first && !reverse && missing.is_empty() && !two_states {
        return None;
    }

    let base = if node.name.is_empty() { format!("{}{index}", node.op_type) } else { node.name.clone() };
    let mut b = Builder { base, names, nodes: vec![] };
    // X, and the states given, in layout 0: [seq, batch, ...].
    let mut x = node.input[0].clone();
    if batch_first {
        x = b.transpose(&x, &[1, 0, 2], "x", None);
        for &slot in states {
            if present(node, slot) {
                node.input[slot] = b.transpose(&node.input[slot], &[1, 0, 2], "initial_state", None);
            }
        }
        set_int(node, "layout", 0);
    }
    if let Some(&last) = states.iter().max() {
        if node.input.len() <= last {
            node.input.resize(last + 1, String::new());
        }
    }
    let flag = (!missing.is_empty() || two_states).then(|| b.row_flag(&x));
    if let Some(flag) = &flag {
        let zeros = (!missing.is_empty()).then(|| b.zeros(&x, num_directions, hidden_size.expect("checked above")));
        let h = states[0];
        if !present(node, h) {
            let zeros = zeros.as_ref().expect("a state is missing");
            node.input[h] = b.select(flag, zeros, "initial_h");
        }
        if two_states {
            let c = states[1];
            let value = if present(node, c) { node.input[c].clone() } else { zeros.clone().expect("a state is missing") };
            let not_flag = b.op("Not", vec![flag.clone()], vec![], "row_flag_not", None);
            node.input[c] = b.select(&not_flag, &value, "initial_c");
        }
    }
    let reversed = reverse.then(|| b.reversed_time(&x));
    if let Some(indices) = &reversed {
        node.input[0] = b.gather(&x, indices, 0, "x_reversed", None);
        set_string(node, "direction", "forward");
    } else {
        node.input[0] = x;
    }
    let before = std::mem::take(&mut b.nodes);

    // Outputs: Y is [seq, num_directions, batch, hidden], Y_h and Y_c
    // [num_directions, batch, hidden]; back to layout 1, Y reversed back in time.
    for slot in 0..node.output.len().min(3) {
        let wanted = node.output[slot].clone();
        let reverse_y = slot == 0 && reversed.is_some();
        if wanted.is_empty() || !(batch_first || reverse_y) {
            continue;
        }
        let mut value = b.fresh("output");
        node.output[slot] = value.clone();
        if let Some(indices) = reversed.as_ref().filter(|_| reverse_y) {
            let out = (!batch_first).then_some(wanted.as_str());
            value = b.gather(&value, indices, 0, "y_reversed", out);
        }
        if batch_first {
            let perm: &[i64] = if slot == 0 { &[2, 0, 1, 3] } else { &[1, 0, 2] };
            b.transpose(&value, perm, "output_batch_first", Some(&wanted));
        }
    }
    Some((before, b.nodes))
}

/// Adds the nodes of one rewrite, under names no value of the model has.
struct Builder<'a> {
    base: String,
    names: &'a mut HashSet<String>,
    nodes: Vec<pb::NodeProto>,
}

impl Builder<'_> {
    /// `<base>.wasmhost.<what>`, with a number after it if that name is taken.
    fn fresh(&mut self, what: &str) -> String {
        let wanted = format!("{}.wasmhost.{what}", self.base);
        let mut name = wanted.clone();
        let mut n = 1;
        while self.names.contains(&name) {
            name = format!("{wanted}.{n}");
            n += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// Adds a node computing `output` (a fresh name from `what` when `None`).
    fn op(&mut self, op_type: &str, input: Vec<String>, attribute: Vec<pb::AttributeProto>, what: &str, output: Option<&str>) -> String {
        let output = output.map_or_else(|| self.fresh(what), str::to_string);
        self.nodes.push(pb::NodeProto {
            name: output.clone(),
            op_type: op_type.to_string(),
            input,
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        output
    }

    fn constant(&mut self, value: pb::TensorProto, what: &str) -> String {
        self.op("Constant", vec![], vec![tensor_attr("value", value)], what, None)
    }

    /// An int64 constant: a scalar when `dims` is empty.
    fn int64(&mut self, dims: &[i64], values: &[i64], what: &str) -> String {
        let t = pb::TensorProto {
            dims: dims.to_vec(),
            data_type: DataType::Int64 as i32,
            int64_data: values.to_vec(),
            ..Default::default()
        };
        self.constant(t, what)
    }

    fn transpose(&mut self, input: &str, perm: &[i64], what: &str, output: Option<&str>) -> String {
        let perm = pb::AttributeProto {
            name: "perm".into(),
            r#type: AttributeType::Ints as i32,
            ints: perm.to_vec(),
            ..Default::default()
        };
        self.op("Transpose", vec![input.to_string()], vec![perm], what, output)
    }

    fn gather(&mut self, input: &str, indices: &str, axis: i64, what: &str, output: Option<&str>) -> String {
        self.op("Gather", vec![input.to_string(), indices.to_string()], vec![int_attr("axis", axis)], what, output)
    }

    /// `[seq - 1, ..., 1, 0]` for `x` of shape `[seq, ...]`: `seq - 1 - Range(0, seq,
    /// 1)`, as tract-onnx 0.23.9 infers a wrong length for a `Range` of negative step.
    fn reversed_time(&mut self, x: &str) -> String {
        let shape = self.op("Shape", vec![x.to_string()], vec![], "x_shape", None);
        let zero = self.int64(&[], &[0], "zero");
        let seq = self.gather(&shape, &zero, 0, "seq", None);
        let one = self.int64(&[], &[1], "one_step");
        let steps = self.op("Range", vec![zero, seq.clone(), one.clone()], vec![], "steps", None);
        let last = self.op("Sub", vec![seq, one], vec![], "last_step", None);
        self.op("Sub", vec![last, steps], vec![], "reversed_steps", None)
    }

    /// A flag per batch row computed from `x`'s values, so that tract cannot fold what
    /// is made from it into a constant: whether the row's elements sum to NaN, of shape
    /// `[1, batch, 1]` for `x` of shape `[seq, batch, input]`. An `Einsum`, which sums
    /// an empty sequence to 0 where indexing its first step would panic in tract.
    fn row_flag(&mut self, x: &str) -> String {
        let one = pb::TensorProto {
            dims: vec![1, 1],
            data_type: DataType::Float as i32,
            float_data: vec![1.0],
            ..Default::default()
        };
        let one = self.constant(one, "one_f32");
        let one = self.op("CastLike", vec![one, x.to_string()], vec![], "one", None);
        let equation = pb::AttributeProto {
            name: "equation".into(),
            r#type: AttributeType::String as i32,
            s: b"sbi,dk->dbk".to_vec(),
            ..Default::default()
        };
        let sums = self.op("Einsum", vec![x.to_string(), one], vec![equation], "row_sums", None);
        self.op("IsNaN", vec![sums], vec![], "row_flag", None)
    }

    /// Zeros of `x`'s type and of shape `[num_directions, 1, hidden]`.
    fn zeros(&mut self, x: &str, num_directions: i64, hidden: i64) -> String {
        let zeros = pb::TensorProto {
            dims: vec![num_directions, 1, hidden],
            data_type: DataType::Float as i32,
            float_data: vec![0.0; (num_directions * hidden) as usize],
            ..Default::default()
        };
        let zeros = self.constant(zeros, "zeros_f32");
        self.op("CastLike", vec![zeros, x.to_string()], vec![], "zeros", None)
    }

    /// `value` broadcast over the batch rows of `flag`, and no longer a constant to
    /// tract: `Where(flag, value, value)`, whose elements are `value`'s whatever `flag`
    /// holds.
    fn select(&mut self, flag: &str, value: &str, what: &str) -> String {
        self.op("Where", vec![flag.to_string(), value.to_string(), value.to_string()], vec![], what, None)
    }
}

fn set_attr(node: &mut pb::NodeProto, attr: pb::AttributeProto) {
    node.attribute.retain(|a| a.name != attr.name);
    node.attribute.push(attr);
}

fn set_int(node: &mut pb::NodeProto, name: &str, i: i64) {
    set_attr(node, int_attr(name, i));
}

fn set_string(node: &mut pb::NodeProto, name: &str, s: &str) {
    let attr = pb::AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    };
    set_attr(node, attr);
}

fn int_attr(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.to_string(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

fn tensor_attr(name: &str, t: pb::TensorProto) -> pb::AttributeProto {
    pb::AttributeProto { name: name.to_string(), r#type: AttributeType::Tensor as i32, t: Some(t), ..Default::default() }
}
