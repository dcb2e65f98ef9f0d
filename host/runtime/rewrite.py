"""Model rewrites for what tract lacks, done in a child process, never in the host.

- **ONNX function expansion.** Many ONNX operators (NegativeLogLikelihoodLoss,
  CenterCropPad, SwiGLU, CausalConvWithState, Attention's newer attributes, ...) are
  defined by the standard as functions: graphs of simpler operators. Their definitions
  are inlined (onnx's own inliner, at the model's opset).
- **ZipMap lifted out.** ONNX-ML classifiers (every scikit-learn classifier exported by
  skl2onnx, by default) end in `ZipMap`, which turns a probability tensor into a sequence
  of {label: probability} maps. The guest exchanges tensors only, so the node is replaced
  by an Identity and the session builds the maps from the tensor, as onnxruntime returns
  them.

When the guest refuses a model naming such operators, the session asks for a rewrite
and loads the result. The same child also describes a model the guest refused (its
inputs, outputs, opsets and operators, as far as they can be read without loading it),
for `wasmhost inspect`. The model is untrusted and onnx's parser and inliner are C++ over
it, so `rewrite_isolated` runs them in a child process (`python -m wasmhost.runtime.rewrite`)
under a memory rlimit (set by the child itself) and a timeout; any failure there only
means "no rewrite".
"""

from __future__ import annotations

import functools
import json
import re
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

ZIPMAP = "ai.onnx.ml:ZipMap"
#: ONNX-ML's map consumers, lifted with the map input they read (runtime/maps.py).
MAP_OPS = ("ai.onnx.ml:DictVectorizer", "ai.onnx.ml:CastMap")
#: tract computes ReduceLogSumExp as log(sum(exp(x))): exp overflows to inf or underflows
#: to 0 for |x| past ~88 (float32), so MultinomialNB's probabilities came out inf. Models
#: using it are rewritten into the max-shifted form onnxruntime computes.
LOGSUMEXP = "ReduceLogSumExp"
#: The child's exit status when nothing named can be rewritten.
NOTHING_TO_DO = 3
_CHILD_MEMORY = 2 << 30
_CHILD_SECONDS = 60.0
_MISSING = re.compile(r"operators? not supported by tract: ([\w.:, ]+)")
_REJECTED = re.compile(r"Building node [^\n(]*\((\w+)\)")


@dataclass
class Rewrite:
    """A rewritten model: the operators inlined, and per lifted ZipMap output its labels."""

    model: bytes
    expanded: list[str] = field(default_factory=list)
    zipmaps: dict[str, list[int | str]] = field(default_factory=dict)
    #: Per lifted map input, its spec (maps.MapInput's fields, as JSON).
    maps: dict[str, dict] = field(default_factory=dict)


def operators_named(message: str) -> list[str]:
    """The operators a guest error blames: `["Op", "domain:Op", ...]` (maybe none)."""
    if m := _MISSING.search(message):
        return [op.strip() for op in m[1].split(",") if op.strip()]
    if m := _REJECTED.search(message):
        return [m[1]]
    return []


def without_supported(message: str) -> str:
    """A refusal's message without `ZipMap` among the unsupported operators: the session
    supports it by lifting it out, so it is never the reason for a refusal."""
    m = _MISSING.search(message)
    if not m:
        return message
    ops = [op.strip() for op in m[1].split(",") if op.strip() and op.strip() != ZIPMAP]
    if not ops:
        return message
    plural = "s" if len(ops) > 1 else ""
    listed = f"operator{plural} not supported by tract: {', '.join(ops)}"
    return message[: m.start()] + listed + message[m.end() :]


def describe(model: bytes) -> dict:
    """What can be read from a model without running it: inputs, outputs (name, onnxruntime
    type, shape), opsets and an operator histogram (subgraphs included).

    Raises whatever onnx raises on a malformed model: call it in a child process.
    """
    import onnx

    proto = onnx.load_from_string(model)
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}

    def elem(code: int) -> str:
        return onnx.helper.tensor_dtype_to_string(code).removeprefix("TensorProto.").lower()

    def type_of(tp: onnx.TypeProto) -> str:
        """onnxruntime's spelling: tensor(float), seq(map(int64,tensor(float))), ..."""
        kind = tp.WhichOneof("value")
        if kind == "tensor_type":
            return f"tensor({elem(tp.tensor_type.elem_type)})"
        if kind == "sequence_type":
            return f"seq({type_of(tp.sequence_type.elem_type)})"
        if kind == "map_type":
            return f"map({elem(tp.map_type.key_type)},{type_of(tp.map_type.value_type)})"
        if kind == "optional_type":
            return f"optional({type_of(tp.optional_type.elem_type)})"
        return kind or "unknown"

    def arg(value: onnx.ValueInfoProto) -> dict:
        shape = None
        t = value.type.tensor_type
        if value.type.WhichOneof("value") == "tensor_type" and t.HasField("shape"):
            shape = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in t.shape.dim
            ]
        return {"name": value.name, "type": type_of(value.type), "shape": shape}

    operators: dict[str, int] = {}

    def walk(g: onnx.GraphProto) -> None:
        for node in g.node:
            key = (
                node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
            )
            operators[key] = operators.get(key, 0) + 1
            for attr in node.attribute:
                for sub in [*attr.graphs, *([attr.g] if attr.HasField("g") else [])]:
                    walk(sub)

    walk(graph)
    return {
        "inputs": [arg(v) for v in graph.input if v.name not in initializers],
        "outputs": [arg(v) for v in graph.output],
        "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "operators": operators,
        "producer": proto.producer_name,
        "graph_name": graph.name,
    }


def shape_error(model: bytes) -> str | None:
    """onnx's strict shape inference's complaint about `model`, if it has one: a graph
    whose shapes or types contradict each other (what onnxruntime refuses as invalid).

    Raises whatever onnx raises on a malformed model: call it in a child process.
    """
    import onnx
    import onnx.shape_inference

    proto = onnx.load_from_string(model)
    try:
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError as e:
        lines = str(e).strip().splitlines()
        return lines[0] if lines else "shape inference failed"
    return None


def shape_error_isolated(model: bytes, timeout: float | None = None) -> str | None:
    """`shape_error` in a child process; None when onnx finds nothing, or on any failure."""
    proc = _child(["--shapes"], model, timeout)
    if proc is None or proc.returncode != 0:
        return None
    text = proc.stdout.decode("utf-8", "replace").strip()
    return text[:2000] or None


def describe_isolated(model: bytes, timeout: float | None = None) -> dict | None:
    """`describe` in a child process with a memory rlimit and a timeout; None on any
    failure. The child's answer is checked for shape, not trusted further."""
    proc = _child(["--describe"], model, timeout)
    if proc is None or proc.returncode != 0:
        return None
    try:
        doc = json.loads(proc.stdout)
        ok = isinstance(doc, dict) and all(
            isinstance(doc.get(k), list) for k in ("inputs", "outputs")
        )
        ok = ok and isinstance(doc.get("operators"), dict) and isinstance(doc.get("opset"), dict)
    except ValueError:
        return None
    return doc if ok else None


def _child(
    args: list[str], model: bytes, timeout: float | None
) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            [sys.executable, "-m", "wasmhost.runtime.rewrite", str(_CHILD_MEMORY), *args],
            input=model,
            capture_output=True,
            timeout=min(timeout or _CHILD_SECONDS, _CHILD_SECONDS),
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def rewrite(model: bytes, operators: list[str]) -> Rewrite | None:
    """Lifts `ZipMap` (if named) and inlines the ONNX function definitions of the other
    `operators` (`Op` or `domain:Op`); None if none of them can be rewritten.

    Raises whatever onnx raises on a malformed model: call it in a child process.
    """
    import onnx

    proto = onnx.load_from_string(model)
    done = Rewrite(b"")
    if ZIPMAP in operators:
        done.zipmaps = _lift_zipmaps(proto)
    if any(op in operators for op in MAP_OPS):
        done.maps = _lift_map_inputs(proto)
    stabilized = _stabilize_logsumexp(proto) if LOGSUMEXP in operators else 0
    rest = [op for op in operators if op not in (ZIPMAP, LOGSUMEXP, *MAP_OPS)]
    done.expanded = _expand_functions(proto, rest)
    if not (done.zipmaps or done.maps or done.expanded or stabilized):
        return None
    done.model = proto.SerializeToString()
    return done


def _lift_zipmaps(proto: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Replaces each ZipMap that makes a graph output by an Identity of its input."""
    import onnx

    graph = proto.graph
    outputs = {o.name: o for o in graph.output}
    lifted: dict[str, list[int | str]] = {}
    for i, node in enumerate(graph.node):
        if node.domain != "ai.onnx.ml" or node.op_type != "ZipMap":
            continue
        if len(node.input) != 1 or len(node.output) != 1 or node.output[0] not in outputs:
            continue  # a ZipMap feeding other nodes: left for the guest to refuse
        attrs = {a.name: a for a in node.attribute}
        if "classlabels_int64s" in attrs:
            labels: list[int | str] = list(attrs["classlabels_int64s"].ints)
        elif "classlabels_strings" in attrs:
            labels = [s.decode("utf-8") for s in attrs["classlabels_strings"].strings]
        else:
            continue
        name = node.output[0]
        graph.node[i].CopyFrom(onnx.helper.make_node("Identity", [node.input[0]], [name]))
        outputs[name].type.CopyFrom(
            onnx.helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, None)
        )
        lifted[name] = labels
    return lifted


def _lift_map_inputs(proto: onnx.ModelProto) -> dict[str, dict]:
    """Replaces each map input read by one DictVectorizer or CastMap, and nothing else,
    by a tensor input in place of the node's output; returns the specs of what the
    session computes instead (runtime/maps.py)."""
    import onnx

    graph = proto.graph
    elem = {1: "float", 7: "int64", 8: "string", 11: "double"}
    lifted: dict[str, dict] = {}
    for inp in list(graph.input):
        if not inp.type.HasField("map_type"):
            continue
        readers = [n for n in graph.node if inp.name in n.input]
        if len(readers) != 1:
            continue
        node = readers[0]
        if node.domain != "ai.onnx.ml" or node.op_type not in ("DictVectorizer", "CastMap"):
            continue
        if list(node.input) != [inp.name] or len(node.output) != 1:
            continue
        mt = inp.type.map_type
        key = elem.get(mt.key_type)
        value = elem.get(mt.value_type.tensor_type.elem_type)
        if key not in ("string", "int64") or value is None:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        spec: dict = {"op": node.op_type, "tensor": node.output[0], "key": key, "value": value}
        if node.op_type == "DictVectorizer":
            vocab = attrs.get(f"{key}_vocabulary", [])
            spec["vocabulary"] = [
                v.decode("utf-8") if isinstance(v, bytes) else int(v) for v in vocab
            ]
            out = {"float": 1, "int64": 7, "string": 8, "double": 11}[value]
        else:
            for name, default in (("cast_to", b"TO_FLOAT"), ("map_form", b"DENSE")):
                spec[name] = attrs.get(name, default).decode("utf-8")
            spec["max_map"] = int(attrs.get("max_map", 1))
            out = {"TO_FLOAT": 1, "TO_INT64": 7, "TO_STRING": 8}.get(spec["cast_to"], 1)
        graph.node.remove(node)
        index = list(graph.input).index(inp)
        graph.input.remove(inp)
        graph.input.insert(
            index, onnx.helper.make_tensor_value_info(node.output[0], out, [1, None])
        )
        lifted[inp.name] = spec
    return lifted


def _stabilize_logsumexp(proto: onnx.ModelProto) -> int:
    """Rewrites each ReduceLogSumExp of the main graph as onnxruntime computes it:
    `m + log(sum(exp(x - m)))` with `m` the reduced max (exp then never overflows, and
    the sum is at least 1). Where `m` is infinite the plain form is right and is kept.
    The reduced axes stay the node's own (attribute or input, and `keepdims`), since
    ReduceMax takes them the same way at every opset. Returns how many were rewritten.
    """
    from onnx import helper

    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 9:  # Where (opset 9) guards the infinite case
        return 0
    graph = proto.graph
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        if node.op_type != LOGSUMEXP or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        count += 1
        base = f"{node.output[0]}__wasmhost_lse"
        keep = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        rest = list(node.input[1:])

        def reduce(
            op: str, inputs: list[str], out: str, keepdims: int, like: onnx.NodeProto = node
        ) -> onnx.NodeProto:
            made = helper.make_node(op, inputs, [out], name=out)
            for a in like.attribute:
                if a.name != "keepdims":
                    made.attribute.append(a)
            made.attribute.append(helper.make_attribute("keepdims", keepdims))
            return made

        x = node.input[0]
        nodes += [
            reduce("ReduceMax", [x, *rest], f"{base}_max", 1),
            helper.make_node("Sub", [x, f"{base}_max"], [f"{base}_shifted"]),
            reduce(LOGSUMEXP, [f"{base}_shifted", *rest], f"{base}_stable", keep),
            reduce("ReduceMax", [x, *rest], f"{base}_m", keep)
            if not keep
            else helper.make_node("Identity", [f"{base}_max"], [f"{base}_m"]),
            helper.make_node("Add", [f"{base}_stable", f"{base}_m"], [f"{base}_sum"]),
            reduce(LOGSUMEXP, [x, *rest], f"{base}_plain", keep),
            # m - m == m - m: false exactly when m is infinite (or NaN), where the plain
            # form is right (tract types IsInf's output wrongly for doubles).
            helper.make_node("Sub", [f"{base}_m", f"{base}_m"], [f"{base}_zero"]),
            helper.make_node("Equal", [f"{base}_zero", f"{base}_zero"], [f"{base}_finite"]),
            helper.make_node(
                "Where", [f"{base}_finite", f"{base}_sum", f"{base}_plain"], [node.output[0]]
            ),
        ]
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count


def _expand_functions(proto: onnx.ModelProto, operators: list[str]) -> list[str]:
    import onnx
    import onnx.inliner

    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    used: set[tuple[str, str]] = set()

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            used.add((node.domain or "ai.onnx", node.op_type))
            for attr in node.attribute:
                for sub in [*attr.graphs, *([attr.g] if attr.HasField("g") else [])]:
                    walk(sub)

    walk(proto.graph)
    ids: list[tuple[str, str]] = []
    inlined: list[str] = []
    for name in operators:
        domain, _, op = name.rpartition(":")
        domain = domain or "ai.onnx"
        if (domain, op) not in used or domain not in opsets:
            continue
        try:
            schema = onnx.defs.get_schema(op, opsets[domain], "" if domain == "ai.onnx" else domain)
        except onnx.defs.SchemaError:
            continue
        if schema.has_function or schema.has_context_dependent_function:
            ids += [(domain, op), ("", op)] if domain == "ai.onnx" else [(domain, op)]
            inlined.append(name)
    if ids:
        expanded = onnx.inliner.inline_selected_functions(proto, ids, inline_schema_functions=True)
        proto.CopyFrom(expanded)
    return inlined


@functools.cache
def _function_ops() -> frozenset[tuple[str, str]]:
    """(domain, op) of every operator the ONNX standard defines as a function at some
    opset: onnx's schema registry, not the model, so this is safe in the host."""
    import onnx.defs

    return frozenset(
        (s.domain or "ai.onnx", s.name)
        for s in onnx.defs.get_all_schemas_with_history()
        if s.has_function or s.has_context_dependent_function
    )


def rewritable(operators: list[str]) -> list[str]:
    """The named operators a rewrite could do something for: ZipMap, and operators with a
    function definition. A refusal naming none of them needs no child process."""
    keep = []
    for name in operators:
        domain, _, op = name.rpartition(":")
        if name in (ZIPMAP, LOGSUMEXP, *MAP_OPS) or (domain or "ai.onnx", op) in _function_ops():
            keep.append(name)
    return keep


def rewrite_isolated(
    model: bytes, operators: list[str], timeout: float | None = None
) -> Rewrite | None:
    """`rewrite` in a child process with a memory rlimit and a timeout; None on any
    failure or when there is nothing to rewrite. The child's answer is checked."""
    operators = rewritable(operators)
    if not operators:
        return None
    proc = _child(operators, model, timeout)
    if proc is None:
        return None
    header, sep, body = proc.stdout.partition(b"\n")
    if proc.returncode != 0 or not sep:
        return None
    try:
        meta = json.loads(header)
        expanded = [str(op) for op in meta["expanded"]]
        zipmaps = {
            str(name): [lab if isinstance(lab, int | str) else str(lab) for lab in labels]
            for name, labels in meta["zipmaps"].items()
        }
        maps = {str(name): dict(spec) for name, spec in meta["maps"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return Rewrite(body, expanded, zipmaps, maps)


def main() -> int:
    """The child (`python -m wasmhost.runtime.rewrite MEMORY OP...`): the model on stdin; out, a
    JSON line (what was done), then the new model. With `--describe` in place of the
    operators: out, the model's description as JSON."""
    # The child caps itself: a preexec_fn would not be safe with the host's threads.
    memory = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if sys.argv[2:] == ["--describe"]:
        sys.stdout.write(json.dumps(describe(sys.stdin.buffer.read())))
        return 0
    if sys.argv[2:] == ["--shapes"]:
        sys.stdout.write(shape_error(sys.stdin.buffer.read()) or "")
        return 0
    done = rewrite(sys.stdin.buffer.read(), sys.argv[2:])
    if done is None:
        return NOTHING_TO_DO
    header = json.dumps({"expanded": done.expanded, "zipmaps": done.zipmaps, "maps": done.maps})
    sys.stdout.buffer.write(header.encode() + b"\n" + done.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
