#!/usr/bin/env python3
"""Two single-operator models (a 512x512 MatMul; a 3x3 convolution, 64 channels, 56x56)
through the engines of scripts/bench.py, to see where the model-level gaps come from.

    python scripts/bench_kernels.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
import bench as b


def cases(workdir: Path) -> list[b.Case]:
    rng = np.random.default_rng(0)
    f32 = TensorProto.FLOAT

    def graph(node: str, x: list[int], w: np.ndarray, **attrs: object) -> Path:
        # Both operators keep the input's shape here (same padding, square weights).
        g = helper.make_graph(
            [helper.make_node(node, ["x", "w"], ["y"], **attrs)],
            node.lower(),
            [helper.make_tensor_value_info("x", f32, x)],
            [helper.make_tensor_value_info("y", f32, x)],
            [numpy_helper.from_array(w.astype(np.float32), "w")],
        )
        return b._save(g, workdir / f"{node}.onnx")

    def feed(shape: list[int]) -> dict[str, np.ndarray]:
        return {"x": rng.standard_normal(shape).astype(np.float32)}

    mm, conv = [512, 512], [1, 64, 56, 56]
    return [
        b.Case(
            "MatMul 512x512x512", graph("MatMul", mm, rng.standard_normal(mm)), feed(mm), "model"
        ),
        b.Case(
            "Conv 3x3, 64 channels, 56x56",
            graph("Conv", conv, rng.standard_normal((64, 64, 3, 3)), pads=[1, 1, 1, 1]),
            feed(conv),
            "model",
        ),
    ]


def main() -> None:
    runners = [b.WasmhostRunner(), b.TractRunner(), b.OrtRunner(), b.OrtWebRunner()]
    print(
        "| operator | wasmhost | tract | ort 1t | ort-web | wasmhost / tract | wasmhost / ort-web |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases(Path(tmp)):
            timings, _ = b.bench_case(case, runners, rounds=15, warmup=3)
            ms = {k: statistics.median(t.samples) * 1e3 for k, t in timings.items()}
            wh = ms["wasmhost"]
            print(
                f"| {case.name} | {wh:.2f} | {ms['tract']:.2f} | {ms['onnxruntime-1t']:.2f} "
                f"| {ms['onnxruntime-web']:.2f} | {wh / ms['tract']:.2f} "
                f"| {wh / ms['onnxruntime-web']:.2f} |"
            )
    runners[-1].shutdown()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
