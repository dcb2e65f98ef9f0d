#!/usr/bin/env python3
"""Single-operator models, shaped like the layers of the benchmark's models, through the
engines of scripts/bench.py: where the model-level gaps come from.

    python scripts/bench_kernels.py
    python scripts/bench_kernels.py --only LRN MaxPool --rounds 30

Set `WASMHOST_MODULE` to time another build of the guest against the same peers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
import bench as b


def _op(
    workdir: Path,
    name: str,
    op: str,
    inputs: dict[str, list[int]],
    weights: dict[str, np.ndarray] | None = None,
    **attrs: object,
) -> b.Case:
    """One node of `op` over float32 inputs of these shapes, weights as initializers."""
    rng = np.random.default_rng(0)
    weights = weights or {}
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node(op, [*inputs, *weights], ["y"], **attrs)],
        op.lower(),
        [helper.make_tensor_value_info(n, f32, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", f32, None)],
        [numpy_helper.from_array(w.astype(np.float32), n) for n, w in weights.items()],
    )
    # The output's shape as onnx infers it: the checker in b._save wants one.
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph), strict_mode=True)
    graph.output[0].CopyFrom(model.graph.output[0])
    path = b._save(graph, workdir / f"{name.split()[0]}-{len(list(workdir.iterdir()))}.onnx")
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in inputs.items()}
    return b.Case(name, path, feeds, "model")


def cases(workdir: Path) -> list[b.Case]:
    rng = np.random.default_rng(1)

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape) * 0.05

    return [
        _op(workdir, "MatMul 512x512x512", "MatMul", {"x": [512, 512]}, {"w": w(512, 512)}),
        _op(
            workdir,
            "Conv 3x3, 64 channels, 56x56",
            "Conv",
            {"x": [1, 64, 56, 56]},
            {"w": w(64, 64, 3, 3)},
            pads=[1, 1, 1, 1],
        ),
        _op(
            workdir,
            "Conv 7x7 stride 2, 3->96, 224x224 (zfnet512's first)",
            "Conv",
            {"x": [1, 3, 224, 224]},
            {"w": w(96, 3, 7, 7)},
            strides=[2, 2],
        ),
        _op(
            workdir,
            "Conv 3x3 depthwise, 240 channels, 28x28 (shufflenet)",
            "Conv",
            {"x": [1, 240, 28, 28]},
            {"w": w(240, 1, 3, 3)},
            pads=[1, 1, 1, 1],
            group=240,
        ),
        _op(
            workdir,
            "Gemm 1x4096 by 4096x4096 (a batch-1 fully connected layer)",
            "Gemm",
            {"x": [1, 4096]},
            {"w": w(4096, 4096)},
            transB=1,
        ),
        _op(
            workdir,
            "LRN size 5, 96 channels, 109x109 (zfnet512)",
            "LRN",
            {"x": [1, 96, 109, 109]},
            size=5,
            alpha=5e-4,
            beta=0.75,
            bias=2.0,
        ),
        _op(
            workdir,
            "MaxPool 3x3 stride 2, 96 channels, 109x109",
            "MaxPool",
            {"x": [1, 96, 109, 109]},
            kernel_shape=[3, 3],
            strides=[2, 2],
        ),
        _op(
            workdir,
            "MaxPool 3x3 stride 1 pad 1, 192 channels, 28x28 (inception_v1)",
            "MaxPool",
            {"x": [1, 192, 28, 28]},
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        _op(
            workdir,
            "AveragePool 3x3 stride 2 pad 1, 240 channels, 28x28 (shufflenet)",
            "AveragePool",
            {"x": [1, 240, 28, 28]},
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        _op(workdir, "Relu, 64x112x112", "Relu", {"x": [1, 64, 112, 112]}),
        _op(
            workdir,
            "Concat of four 1x128x28x28 on channels",
            "Concat",
            {f"x{i}": [1, 128, 28, 28] for i in range(4)},
            axis=1,
        ),
        _op(
            workdir,
            "Softmax over 1x1000",
            "Softmax",
            {"x": [1, 1000]},
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", nargs="*", help="operators whose case name starts so")
    args = parser.parse_args()
    runners = [b.WasmhostRunner(), b.TractRunner(), b.OrtRunner(), b.OrtWebRunner()]
    print(
        "| operator | wasmhost | tract | ort 1t | ort-web | wasmhost / tract | wasmhost / ort-web |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases(Path(tmp)):
            if args.only and not any(case.name.startswith(o) for o in args.only):
                continue
            timings, notes = b.bench_case(case, runners, rounds=args.rounds, warmup=3)
            ms = {k: statistics.median(t.samples) * 1e3 for k, t in timings.items()}
            cell = {n: f"{ms[n]:.2f}" if n in ms else notes.get(n, "-") for n in b.ENGINES}
            wh = ms.get("wasmhost", float("nan"))
            ratio = {n: f"{wh / ms[n]:.2f}" if n in ms else "-" for n in b.ENGINES}
            print(
                f"| {case.name} | {cell['wasmhost']} | {cell['tract']} "
                f"| {cell['onnxruntime-1t']} | {cell['onnxruntime-web']} | {ratio['tract']} "
                f"| {ratio['onnxruntime-web']} |",
                flush=True,
            )
    runners[-1].shutdown()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
