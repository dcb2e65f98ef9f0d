"""ONNX function expansion: operators tract lacks, replaced by their ONNX definitions.

Many ONNX operators (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss, CenterCropPad,
SwiGLU, CausalConvWithState, Attention's newer attributes, ...) are defined in the ONNX
standard as functions: graphs of simpler operators. When the guest refuses a model
because tract lacks such an operator, the session asks this module to inline those
operators' definitions (onnx's own inliner) and loads the result instead.

The model is untrusted and onnx's inliner is C++ over it, so expansion never runs in
the host process: `expand_isolated` runs it in a child process (`python -m
wasmhost.functions`) under a memory rlimit and a timeout; any failure there only means
"no expansion".
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys

#: The child's exit status when no named operator has an ONNX function to inline.
NOTHING_TO_EXPAND = 3
_CHILD_MEMORY = 2 << 30
_CHILD_SECONDS = 60.0
_MISSING = re.compile(r"operators? not supported by tract: ([\w.:, ]+)")
_REJECTED = re.compile(r"Building node [^\n(]*\((\w+)\)")


def operators_named(message: str) -> list[str]:
    """The operators a guest error blames: `["Op", "domain:Op", ...]` (maybe none)."""
    if m := _MISSING.search(message):
        return [op.strip() for op in m[1].split(",") if op.strip()]
    if m := _REJECTED.search(message):
        return [m[1]]
    return []


def expand(model: bytes, operators: list[str]) -> tuple[bytes, list[str]] | None:
    """Inlines the ONNX function definitions of `operators` (`Op` or `domain:Op`) in
    `model`, at the model's opset. Returns the new model and the operators inlined, or
    None if none of them is used by the model and defined as a function.

    Raises whatever onnx raises on a malformed model: call it in a child process.
    """
    import onnx
    import onnx.inliner

    proto = onnx.load_from_string(model)
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
    if not ids:
        return None
    expanded = onnx.inliner.inline_selected_functions(proto, ids, inline_schema_functions=True)
    return expanded.SerializeToString(), inlined


def expand_isolated(
    model: bytes, operators: list[str], timeout: float | None = None
) -> tuple[bytes, list[str]] | None:
    """`expand` in a child process with a memory rlimit and a timeout; None on any failure
    or when there is nothing to expand."""
    if not operators:
        return None

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (_CHILD_MEMORY, _CHILD_MEMORY))

    try:
        proc = subprocess.run(
            [sys.executable, "-m", "wasmhost.functions", *operators],
            input=model,
            capture_output=True,
            timeout=min(timeout or _CHILD_SECONDS, _CHILD_SECONDS),
            preexec_fn=limit,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    header, sep, body = proc.stdout.partition(b"\n")
    if not sep:
        return None
    return body, header.decode("utf-8", "replace").split(",")


def main() -> int:
    """The child: the model on stdin; the operators inlined (a comma-separated line) and
    then the expanded model on stdout."""
    result = expand(sys.stdin.buffer.read(), sys.argv[1:])
    if result is None:
        return NOTHING_TO_EXPAND
    model, inlined = result
    sys.stdout.buffer.write(",".join(inlined).encode() + b"\n" + model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
