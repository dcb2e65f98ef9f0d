"""The scikit-learn corpus (scripts/sklearn_corpus.py) through wasmhost against onnxruntime:
no wrong answer, ever, and exactly the committed cases pass. The corpus is built and run
in this process (a few seconds; a subprocess would import scikit-learn again)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from conftest import ROOT

EXPECTED = ROOT / "tests" / "conformance" / "sklearn_passes.txt"


def _corpus():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import sklearn_corpus
    finally:
        sys.path.pop(0)
    return sklearn_corpus


@pytest.fixture(scope="module")
def corpus():
    sklearn_corpus = _corpus()
    start = time.perf_counter()
    cases = sklearn_corpus.build_corpus()
    results = sklearn_corpus.run_corpus(cases, ["wasmhost"], progress=False)
    print(f"scikit-learn corpus: {len(cases)} cases in {time.perf_counter() - start:.1f} s")
    return sklearn_corpus, cases, results


def test_the_corpus_is_the_real_one(corpus):
    _, cases, _ = corpus
    assert len(cases) >= 60
    built = [c for c in cases if c.convert_error is None]
    assert len(built) >= 55  # skl2onnx's own failures are few, and recorded
    assert all(c.expected is not None for c in built), [c.oracle_error for c in built]
    assert all(c.row_expected is not None for c in built)
    strings = [c.name for c in built if any(a.dtype == object for a in c.feeds.values())]
    assert set(strings) == {
        "column-transformer",
        "tfidf-logreg",
        "tfidf-bigrams-nb",
        "count-vectorizer-nb",
        "tfidf-char-ngrams",
        "onehot-encoder-strings",
        "ordinal-encoder-strings",
        "label-encoder-strings",
    }


def test_wasmhost_never_answers_wrong(corpus):
    sklearn_corpus, _, results = corpus
    wrong = sklearn_corpus.mismatches(results)
    assert not wrong, "wrong answers (worse than a refusal):\n" + "\n".join(
        f"{name}: {detail}" for _, name, detail in wrong
    )


def test_passes_are_the_expected_ones(corpus):
    sklearn_corpus, _, results = corpus
    expected = set(EXPECTED.read_text().split())
    assert len(expected) >= 40
    got = set(sklearn_corpus.passes(results))
    statuses = {n: r["status"] for n, r in results["wasmhost"].items()}
    assert got == expected, {
        "lost": {n: statuses.get(n) for n in sorted(expected - got)},
        "new (add them to tests/conformance/sklearn_passes.txt)": sorted(got - expected),
    }


def test_outputs_are_compared_as_onnxruntime_returns_them():
    sk = _corpus()
    names = ["label", "probabilities"]
    expected = [np.array([0, 1]), [{0: 0.25, 1: 0.75}, {0: 1.0, 1: 0.0}]]
    assert sk.output_difference(expected, expected, names) is None
    near = [np.array([0, 1]), [{0: 0.250001, 1: 0.749999}, {0: 1.0, 1: 1e-8}]]
    assert sk.output_difference(expected, near, names) is None
    off = [np.array([0, 1]), [{0: 0.2501, 1: 0.75}, {0: 1.0, 1: 0.0}]]
    assert "probabilities: 1/4 values out of tolerance" in sk.output_difference(
        expected, off, names
    )
    inf = [np.array([0, 1]), [{0: np.inf, 1: 0.75}, {0: 1.0, 1: 0.0}]]
    assert "max |diff| inf" in sk.output_difference(expected, inf, names)
    keys = [np.array([0, 1]), [{1: 0.75, 0: 0.25}, {0: 1.0, 1: 0.0}]]
    assert "row 0: keys [1, 0]" in sk.output_difference(expected, keys, names)
    labels = [np.array([1, 1]), expected[1]]
    assert sk.output_difference(expected, labels, names).startswith("label: 1/2 labels differ")
    strings = [np.array(["a", "b"], dtype=object)]
    assert sk.output_difference(strings, [np.array(["a", "b"])], ["y"]) is None
    assert "labels differ" in sk.output_difference(strings, [np.array(["a", "c"])], ["y"])
    assert "dtype float64" in sk.output_difference([np.ones(2, np.float32)], [np.ones(2)], ["y"])


def test_check_fails_on_a_mismatch_a_lost_pass_and_a_new_one(tmp_path, capsys):
    sk = _corpus()
    listed = tmp_path / "passes.txt"
    listed.write_text("a\nb\n")
    ok, refused = {"status": "pass", "detail": ""}, {"status": "refused", "detail": "no"}
    assert sk.check_expected(listed, {"wasmhost": {"a": ok, "b": ok, "c": refused}}) == 0
    assert sk.check_expected(listed, {"wasmhost": {"a": ok, "b": refused}}) == 1
    assert sk.check_expected(listed, {"wasmhost": {"a": ok, "b": ok, "c": ok}}) == 1
    wrong = {"status": "mismatch", "detail": "label: 1/8 labels differ"}
    assert sk.check_expected(listed, {"wasmhost": {"a": ok, "b": ok, "c": wrong}}) == 1
    out = capsys.readouterr().out
    assert "LOST  b: refused no" in out
    assert "NEW   c passes now" in out
    assert "MISMATCH c: wasmhost answered wrong: label: 1/8 labels differ" in out


def test_the_runner_runs_the_corpus(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import conformance
    finally:
        sys.path.pop(0)
    listed = tmp_path / "passes.txt"
    listed.write_text("logreg-binary\n")
    docs = tmp_path / "conformance.md"
    docs.write_text("# head\n\n<!-- figures below are written by scripts/conformance.py -->\n")
    argv = ["--suites", "sklearn", "--engines", "wasmhost,onnxruntime", "--only",
            "^logreg-binary$", "--check", str(listed), "--docs", str(docs)]  # fmt: skip
    assert conformance.main(argv) == 0
    out = capsys.readouterr().out
    assert "1 expected passes checked, 0 lost, 0 new, 0 mismatches" in out
    text = docs.read_text()
    assert text.index("| LogisticRegression (binary) | logreg-binary | pass | pass |") < text.index(
        "<!-- figures below"
    )
    assert conformance.main(argv) == 0  # the section is replaced, not added again
    assert docs.read_text().count("logreg-binary | pass") == 1


def test_cases_are_built_the_same_every_time():
    """Fixed seeds, a named graph: the same bytes. (Models with skl2onnx's cdist, k-NN's,
    differ only by the names of a process-wide counter.)"""
    sk = _corpus()
    for name in ("random-forest-binary", "mlp-classifier", "column-transformer"):
        a, b = sk.build_case(name), sk.build_case(name)
        assert a.model == b.model, name
        assert all(np.array_equal(a.feeds[k], b.feeds[k]) for k in a.feeds), name
