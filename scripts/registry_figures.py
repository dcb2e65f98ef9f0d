"""Figures of the registry (docs/registry.md): upload + sandboxed validation time for
SqueezeNet at its real size and for a 90 MB model, and `model list` with 10,000 models.

    python scripts/registry_figures.py [--registry URL --blobs URL] [--models 10000]

SqueezeNet is the onnx package's light_squeezenet with its ConstantOfShape weights made
dense (random, the real model's shapes and size): no hub download. Times are medians of
repeated runs on this machine; they are figures to compare, not thresholds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import onnx
import sqlalchemy as sa
from onnx import TensorProto, helper, numpy_helper

from wasmhost import Registry
from wasmhost.registry import schema
from wasmhost.runtime.limits import format_size

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def dense_squeezenet() -> bytes:
    """light_squeezenet with every ConstantOfShape weight replaced by dense random values."""
    model = onnx.load(str(LIGHT / "light_squeezenet.onnx"))
    shapes = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    rng = np.random.default_rng(0)
    nodes, weights = [], []
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = [int(d) for d in shapes[node.input[0]]]
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = rng.standard_normal(shape).astype(np.float32) * np.float32(
                np.sqrt(2.0 / fan_in)
            )
            weights.append(numpy_helper.from_array(value, node.output[0]))
        else:
            nodes.append(node)
    used = {i for n in nodes for i in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + weights)
    return model.SerializeToString()


def big_model(megabytes: int = 90) -> bytes:
    """y = x @ W, W float32 with `megabytes` of values."""
    n = int((megabytes * 1e6 / 4) ** 0.5)
    w = numpy_helper.from_array(np.ones((n, n), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def timed_uploads(registry: Registry, project: str, name: str, data: bytes, n: int) -> float:
    took = []
    for _ in range(n):
        start = time.perf_counter()
        registry.upload(project, name, data)
        took.append(time.perf_counter() - start)
    return statistics.median(took)


def fill(registry: Registry, project_id: str, count: int) -> None:
    """`count` models with one version each, inserted directly: the figure is of listing."""
    now = "2026-11-29T00:00:00.000+00:00"
    sha = "0" * 64
    signature = json.dumps({"inputs": [], "outputs": []})

    def work(conn: sa.Connection) -> None:
        conn.execute(sa.insert(schema.blobs).values(sha256=sha, size=1, created_at=now))
        models, versions = [], []
        for i in range(count):
            model_id = str(uuid.uuid4())
            models.append(
                dict(
                    id=model_id,
                    project_id=project_id,
                    name=f"model-{i:05d}",
                    description="",
                    created_at=now,
                    created_by="figures",
                )
            )
            versions.append(
                dict(
                    id=str(uuid.uuid4()),
                    model_id=model_id,
                    version=1,
                    sha256=sha,
                    size=1,
                    signature=signature,
                    status="ready",
                    reason=None,
                    created_at=now,
                    created_by="figures",
                )
            )
        conn.execute(sa.insert(schema.models), models)
        conn.execute(sa.insert(schema.versions), versions)

    registry.db.write(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="a registry URL (default: a temporary directory)")
    parser.add_argument("--blobs", help="its blob store")
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.registry or str(Path(tmp) / "home")
        registry = Registry(where, blobs=args.blobs)
        registry.set_setting("max_model_size", "256MiB")
        suffix = uuid.uuid4().hex[:8]
        small = registry.create_project(f"figures-{suffix}")
        large = registry.create_project(f"figures-big-{suffix}", limits={"memory": "1GiB"})
        rows = []
        squeezenet = dense_squeezenet()
        rows.append(
            (
                "upload+validate squeezenet",
                format_size(len(squeezenet)),
                timed_uploads(registry, small.name, "squeezenet", squeezenet, args.rounds),
            )
        )
        big = big_model()
        rows.append(
            (
                "upload+validate 90 MB MatMul",
                format_size(len(big)),
                timed_uploads(registry, large.name, "big", big, max(2, args.rounds // 2)),
            )
        )
        listing = registry.create_project(f"figures-list-{suffix}")
        fill(registry, listing.id, args.models)
        took = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            found = registry.models(listing.name)
            took.append(time.perf_counter() - start)
        assert len(found) == args.models
        rows.append((f"Registry.models() of {args.models}", "", statistics.median(took)))
        env_args = ["--registry", where] + (["--blobs", args.blobs] if args.blobs else [])
        took = []
        for _ in range(max(2, args.rounds // 2)):
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "wasmhost.cli",
                    *env_args,
                    "model",
                    "list",
                    listing.name,
                    "--json",
                ],
                check=True,
                capture_output=True,
            )
            took.append(time.perf_counter() - start)
        rows.append((f"wasmhost model list --json ({args.models})", "", statistics.median(took)))
        for project in (small, large, listing):
            registry.delete_project(project.name)
        registry.close()
    print(f"{'figure':<45} {'size':>10} {'median':>10}")
    for what, size, seconds in rows:
        print(f"{what:<45} {size:>10} {seconds * 1e3:>8.0f} ms")


if __name__ == "__main__":
    main()
