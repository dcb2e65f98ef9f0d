#!/usr/bin/env python3
"""A fuzzing campaign over the onnx package's light_*.onnx models and a few models built
with onnx.helper: `wasmhost fuzz` on each, outcomes per class and distinct findings.
See docs/fuzzing.md.

    python scripts/fuzz_campaign.py --iterations 300 --jobs 2 --corpus fuzz-corpus
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import wasmhost
from wasmhost import fuzz as fz


def helper_models() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    f32 = TensorProto.FLOAT
    mlp = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", f32, ["batch", 8])],
        [helper.make_tensor_value_info("y", f32, ["batch", 4])],
        [
            numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
        ],
    )
    heads = helper.make_graph(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Slice", ["s", "start", "end"], ["bs"]),
            helper.make_node("Concat", ["bs", "tail"], ["ns"], axis=0),
            helper.make_node("Reshape", ["x", "ns"], ["r"]),
            helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3]),
            helper.make_node("Softmax", ["t"], ["y"], axis=-1),
        ],
        "heads",
        [helper.make_tensor_value_info("x", f32, ["batch", "seq", 6])],
        [helper.make_tensor_value_info("y", f32, ["batch", 2, "seq", 3])],
        [
            numpy_helper.from_array(np.array([0], np.int64), "start"),
            numpy_helper.from_array(np.array([2], np.int64), "end"),
            numpy_helper.from_array(np.array([2, 3], np.int64), "tail"),
        ],
    )
    opset = [helper.make_opsetid("", 17)]
    return {
        name: helper.make_model(g, opset_imports=opset).SerializeToString()
        for name, g in (("helper_mlp", mlp), ("helper_heads", heads))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=Path, default=Path("fuzz-corpus"))
    parser.add_argument("--memory", default="1GiB")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    limits = wasmhost.Limits(memory=args.memory, timeout=args.timeout)
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    models = {p.stem: p.read_bytes() for p in sorted(light.glob("light_*.onnx"))}
    models.update(helper_models())
    total: Counter = Counter()
    findings: dict[str, tuple[int, str, str]] = {}
    for name, data in models.items():
        start = time.perf_counter()
        campaign = fz.fuzz(data, args.iterations, args.seed, limits, jobs=args.jobs)
        total.update(campaign.counts)
        for key, f in campaign.findings.items():
            path = fz.save_reproducer(args.corpus / name, f)
            count, first, _ = findings.get(key, (0, name, ""))
            findings[key] = (count + f.count, first, str(path))
        counts = ", ".join(f"{k} {v}" for k, v in sorted(campaign.counts.items()))
        print(f"{name}: {time.perf_counter() - start:.0f} s: {counts}", flush=True)
    print("\ntotal:", ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    print(f"\n{len(findings)} distinct findings:")
    for key, (count, first, path) in sorted(findings.items()):
        print(f"- {key}: {count} cases (first on {first}), reproducer {path}")


if __name__ == "__main__":
    main()
