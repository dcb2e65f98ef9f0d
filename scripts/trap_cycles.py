#!/usr/bin/env python3
"""Measures containment: N cycles of an isolate trapping at its memory cap and being
replaced, printing the process's RSS as it goes. A leak of isolates would show as
RSS growing with the cycles.

    python scripts/trap_cycles.py --cycles 10000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from onnx import TensorProto, helper

import wasmhost


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1000)
    args = parser.parse_args()
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["y"])],
        "expand",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = wasmhost.InferenceSession(
        model.SerializeToString(), limits=wasmhost.Limits(memory="64MiB")
    )
    one = np.ones(1, np.float32)
    huge = {"x": one, "shape": np.array([1 << 28], np.int64)}  # 1 GiB under 64 MiB
    small = {"x": one, "shape": np.array([4], np.int64)}
    start = time.perf_counter()
    print(f"{'cycles':>8} {'RSS MiB':>9} {'s':>7}")
    print(f"{0:>8} {rss_mib():>9.1f} {0:>7.1f}")
    for i in range(1, args.cycles + 1):
        try:
            sess.run(None, huge)
            raise SystemExit("the run did not hit the memory cap")
        except wasmhost.MemoryLimitExceeded:
            pass
        sess.run(None, small)
        if i % args.every == 0:
            print(f"{i:>8} {rss_mib():>9.1f} {time.perf_counter() - start:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
