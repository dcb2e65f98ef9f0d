#!/usr/bin/env python3
"""A fuzzing campaign over the onnx package's light_*.onnx models, models built with
onnx.helper and scikit-learn models exported with skl2onnx: `wasmhost fuzz` on each,
outcomes per class and distinct findings. See docs/fuzzing.md.

    python scripts/fuzz_campaign.py --iterations 300 --jobs 2 --corpus fuzz-corpus
    python scripts/fuzz_campaign.py --differential --iterations 2000 --summary summary.json

`--differential` checks every answer against a second run in the same session and against
onnxruntime and native tract; `--summary FILE` writes per model and per class counts, the
differential checks and every mismatch, nondeterministic and peers-disagree case as JSON.
`--models REGEX` keeps the models whose name it matches (`--list` shows them).
"""

from __future__ import annotations

import argparse
import json
import re
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import wasmhost
from wasmhost.tools import differential as diff
from wasmhost.tools import fuzz as fz

F32 = TensorProto.FLOAT
#: Cases the summary lists one by one (with those whose peers disagree).
NOTABLE = ("mismatch", "nondeterministic")


def _value(name: str, shape: list, elem: int = F32) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _recurrent(op: str, gates: int, hidden: int = 4, features: int = 3) -> onnx.GraphProto:
    """An LSTM or GRU with its weights as initializers, over a symbolic sequence length."""
    rng = np.random.default_rng(1)
    weights = {
        "W": rng.standard_normal((1, gates * hidden, features)),
        "R": rng.standard_normal((1, gates * hidden, hidden)),
        "B": rng.standard_normal((1, 2 * gates * hidden)),
    }
    return helper.make_graph(
        [helper.make_node(op, ["x", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hidden)],
        op.lower(),
        [_value("x", ["seq", 1, features])],
        [_value("Y", ["seq", 1, 1, hidden]), _value("Y_h", [1, 1, hidden])],
        [numpy_helper.from_array(w.astype(np.float32), n) for n, w in weights.items()],
    )


def _scan() -> onnx.GraphProto:
    """A running sum over a symbolic number of steps: a state and a scanned input."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
            helper.make_node("Tanh", ["s_out"], ["y_t"]),
        ],
        "body",
        [_value("s_in", [2]), _value("x_t", [2])],
        [_value("s_out", [2]), _value("y_t", [2])],
    )
    return helper.make_graph(
        [helper.make_node("Scan", ["init", "x"], ["final", "ys"], num_scan_inputs=1, body=body)],
        "scan",
        [_value("init", [2]), _value("x", ["steps", 2])],
        [_value("final", [2]), _value("ys", ["steps", 2])],
    )


def _if() -> onnx.GraphProto:
    """Branches on a boolean scalar input: x + 1 or x * 2."""

    def branch(op: str, constant: float, name: str) -> onnx.GraphProto:
        c = numpy_helper.from_array(np.array(constant, np.float32), f"{name}_c")
        node = helper.make_node(op, ["x", f"{name}_c"], [f"{name}_y"])
        return helper.make_graph([node], name, [], [_value(f"{name}_y", ["n"])], [c])

    return helper.make_graph(
        [
            helper.make_node(
                "If",
                ["c"],
                ["y"],
                then_branch=branch("Add", 1.0, "then"),
                else_branch=branch("Mul", 2.0, "else"),
            )
        ],
        "if",
        [_value("c", [], TensorProto.BOOL), _value("x", ["n"])],
        [_value("y", ["n"])],
    )


def helper_models() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    mlp = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "mlp",
        [_value("x", ["batch", 8])],
        [_value("y", ["batch", 4])],
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
        [_value("x", ["batch", "seq", 6])],
        [_value("y", ["batch", 2, "seq", 3])],
        [
            numpy_helper.from_array(np.array([0], np.int64), "start"),
            numpy_helper.from_array(np.array([2], np.int64), "end"),
            numpy_helper.from_array(np.array([2, 3], np.int64), "tail"),
        ],
    )
    graphs = {
        "helper_mlp": mlp,
        "helper_heads": heads,
        "helper_lstm": _recurrent("LSTM", 4),
        "helper_gru": _recurrent("GRU", 3),
        "helper_scan": _scan(),
        "helper_if": _if(),
    }
    models = {}
    for name, g in graphs.items():
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        models[name] = model.SerializeToString()
    return models


def sklearn_models() -> dict[str, bytes]:
    """Classifiers on iris, regressors on diabetes, exported by skl2onnx. Classifiers give
    probabilities as a tensor (zipmap off), except one logistic regression that keeps its
    ZipMap (a list of {label: probability}, as onnxruntime returns it)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeRegressor

    x, y = load_iris(return_X_y=True)
    iris = (x.astype(np.float32), y)
    x, y = load_diabetes(return_X_y=True)
    diabetes = (x.astype(np.float32), y)
    estimators = {
        "skl_logistic_regression": (LogisticRegression(max_iter=500), iris, False),
        "skl_logistic_regression_zipmap": (LogisticRegression(max_iter=500), iris, True),
        "skl_random_forest": (RandomForestClassifier(10, max_depth=4, random_state=0), iris, False),
        "skl_gradient_boosting": (
            GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0),
            iris,
            False,
        ),
        "skl_kneighbors": (KNeighborsClassifier(3), iris, False),
        "skl_linear_regression": (LinearRegression(), diabetes, None),
        "skl_decision_tree_regressor": (
            DecisionTreeRegressor(max_depth=5, random_state=0),
            diabetes,
            None,
        ),
    }
    models = {}
    opsets = {"": 17, "ai.onnx.ml": 3}
    for name, (estimator, (x, y), zipmap) in estimators.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence: the fit's quality does not matter
            estimator.fit(x, y)
        options = None if zipmap is None else {id(estimator): {"zipmap": zipmap}}
        onx = to_onnx(estimator, x[:1], options=options, target_opset=opsets)
        models[name] = onx.SerializeToString()
    return models


def all_models() -> dict[str, bytes]:
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    models = {p.stem: p.read_bytes() for p in sorted(light.glob("light_*.onnx"))}
    models.update(helper_models())
    models.update(sklearn_models())
    return models


def _counts(counter: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000, help="cases per model")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=Path, default=Path("fuzz-corpus"))
    parser.add_argument("--memory", default="1GiB")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--differential", action="store_true")
    parser.add_argument("--models", default="", help="regular expression on model names")
    parser.add_argument("--summary", type=Path, help="write the campaign's summary as JSON")
    parser.add_argument("--list", action="store_true", help="list the models and stop")
    args = parser.parse_args()
    limits = wasmhost.Limits(memory=args.memory, timeout=args.timeout)
    models = {n: m for n, m in all_models().items() if re.search(args.models, n)}
    if args.list:
        print("\n".join(models))
        return
    peers = diff.available_peers() if args.differential else []
    if args.differential:
        print("differential: rerun and", diff.describe_peers(peers))
    total: Counter = Counter()
    checks: Counter = Counter()
    findings: dict[str, tuple[int, str, str]] = {}
    summary: dict = {
        "seed": args.seed,
        "iterations": args.iterations,
        "jobs": args.jobs,
        "differential": args.differential,
        "peers": {p: diff.peer_version(p) for p in peers},
        "wasmhost": wasmhost.__version__,
        "models": {},
        "cases": [],
    }
    started = time.perf_counter()
    for name, data in models.items():
        start = time.perf_counter()
        notable: list[dict] = []

        def note(case: fz.Case, outcome: fz.Outcome, name: str = name, notable=notable) -> None:
            if outcome.kind in NOTABLE or outcome.check == "peers-disagree":
                notable.append({
                    "model": name, "case": case.index, "mutation": case.mutation,
                    "kind": outcome.kind, "check": outcome.check, "key": outcome.finding_key,
                    "message": outcome.message, "detail": outcome.detail,
                })  # fmt: skip

        campaign = fz.fuzz(
            data, args.iterations, args.seed, limits, jobs=args.jobs, on_case=note,
            differential=args.differential, peers=peers,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        total.update(campaign.counts)
        checks.update(campaign.checks)
        reproducers = {}
        for key, f in campaign.findings.items():
            path = fz.save_reproducer(args.corpus / name, f)
            reproducers[key] = str(path)
            count, first, _ = findings.get(key, (0, name, ""))
            findings[key] = (count + f.count, first, str(path))
        for entry in notable:
            entry["reproducer"] = reproducers.get(entry["key"])
        summary["cases"].extend(notable)
        summary["models"][name] = {
            "seconds": round(seconds, 1),
            "counts": dict(campaign.counts),
            "checks": dict(campaign.checks),
        }
        line = f"{name}: {seconds:.0f} s: {_counts(campaign.counts)}"
        if args.differential:
            line += f" | {_counts(campaign.checks)}"
        print(line, flush=True)
    seconds = time.perf_counter() - started
    cases = sum(total.values())
    print(f"\ntotal: {cases} cases in {seconds:.0f} s ({cases / seconds:.2f} cases/s)")
    print("classes:", _counts(total))
    if args.differential:
        print("differential checks:", _counts(checks))
    print(f"\n{len(findings)} distinct findings:")
    for key, (count, first, path) in sorted(findings.items()):
        print(f"- {key}: {count} cases (first on {first}), reproducer {path}")
    if args.summary:
        summary.update(
            seconds=round(seconds, 1),
            cases_per_second=round(cases / seconds, 3),
            total=dict(total),
            checks=dict(checks),
            findings=[
                {"key": key, "cases": count, "first_model": first, "reproducer": path}
                for key, (count, first, path) in sorted(findings.items())
            ],
        )
        args.summary.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print(f"summary: {args.summary}")


if __name__ == "__main__":
    main()
