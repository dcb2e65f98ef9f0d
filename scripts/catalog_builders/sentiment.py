"""sentiment: logistic regression on word and word-pair counts, trained on VADER's rated sentences.

Needs scikit-learn, onnx and onnxruntime (the dev extra), and pip with access to PyPI: the
training data is in the source distribution of vaderSentiment 3.3.2 (MIT), file
additional_resources/hutto_ICWSM_2014.tar.gz, 23,703 sentences (tweets, movie and product
review snippets, New York Times editorials) each rated -4..4 by about 20 people. The sdist
is downloaded once with `pip download --no-deps --no-binary :all: vaderSentiment==3.3.2`
into $WASMHOST_CATALOG_CACHE (default ~/.cache/wasmhost-catalog), checked against its
sha256, and read in memory. The texts are third-party: the model is trained on them, and
neither they nor their token ids are shipped (the reference case is sentences of our own).

The model is standard ONNX operators only (Gather, ReduceSum, Add, Sigmoid, Greater, Cast)
on int64 token ids: a sentence's logit is the sum of its tokens' weights plus a bias. The
tokenizer runs outside the sandbox (the ABI has no string tensors): `tokenize` below is
its reference, and sentiment.vocab.json (token -> id) ships beside the model.
"""

from __future__ import annotations

import hashlib
import html
import io
import itertools
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from . import PRODUCER, describe

NAME = "sentiment"
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17: older readers take it too

SDIST = "vaderSentiment-3.3.2.tar.gz"
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
DATA = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
MIN_RATING = 0.5  # trained and evaluated on sentences with |mean rating| >= this
VOCABULARY = 20_000  # unigrams and bigrams, by document frequency in the training split
C_GRID = (0.1, 0.3, 1.0, 3.0)  # the inverse regularisation, chosen by 5-fold CV

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
TOKENIZER_SPEC = (
    "lowercase the text (str.lower) and replace U+2019 (a curly apostrophe) with '; the words "
    "are the matches of the regex [a-z0-9]+(?:'[a-z0-9]+)* in order (so don't and it's are "
    "one word, punctuation and other characters separate words); the tokens are the words, "
    "then each pair of adjacent words joined by one space (n words give 2n-1 tokens); a "
    "token's id is vocab[token], 0 if it is not in the vocabulary; a text with no token is "
    "[0]. A batch pads every row with 0 to its longest row. Id 0 weighs nothing, so unknown "
    "tokens and padding do not change the result."
)
TOKENIZER_PYTHON = """\
import json, re
import numpy as np
vocab = json.load(open("sentiment.vocab.json"))  # in wasmhost/registry/catalog/
def token_ids(text):
    words = re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text.lower().replace("\\u2019", "'"))
    tokens = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    return [vocab.get(t, 0) for t in tokens] or [0]
def batch(texts):
    rows = [token_ids(t) for t in texts]
    n = max(map(len, rows))
    return np.array([r + [0] * (n - len(r)) for r in rows], dtype=np.int64)
"""
# Sentences of our own, never the training data's: the reference case and a sanity check.
EXAMPLES = (
    "I love this",
    "this is terrible",
    "This is not good.",
    "I don't like it",
    "Not bad at all!",
    "The battery lasts all day and the screen is gorgeous.",
    "Worst purchase ever: it broke after two days.",
    "The service was slow but the food was excellent.",
    "meh",
    "",
)


def words(text: str) -> list[str]:
    return TOKEN.findall(text.lower().replace("\u2019", "'"))


def tokens(text: str) -> list[str]:
    """A text's tokens: its words, then each pair of adjacent words."""
    w = words(text)
    return w + [f"{a} {b}" for a, b in itertools.pairwise(w)]


def tokenize(texts: list[str], vocab: dict[str, int]):
    """The reference tokenizer: texts -> token_ids, int64 [batch, seq], as TOKENIZER_SPEC says."""
    import numpy as np

    rows = [[vocab.get(t, 0) for t in tokens(text)] or [0] for text in texts]
    n = max(map(len, rows))
    return np.array([r + [0] * (n - len(r)) for r in rows], dtype=np.int64)


def sdist() -> bytes:
    """vaderSentiment 3.3.2's source distribution, from the cache or PyPI, sha256-checked."""
    cache = Path(
        os.environ.get("WASMHOST_CATALOG_CACHE") or Path.home() / ".cache" / "wasmhost-catalog"
    )
    path = cache / SDIST
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "--dest", str(cache), "vaderSentiment==3.3.2"],
            check=True,
        )  # fmt: skip
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != SDIST_SHA256:
        raise RuntimeError(f"{path} is not the vaderSentiment 3.3.2 sdist (sha256 differs)")
    return data


def sentences() -> list[tuple[str, float, str]]:
    """(source, mean rating, text) of the 23,703 rated sentences, in file and line order."""
    with tarfile.open(fileobj=io.BytesIO(sdist())) as outer:
        inner_bytes = outer.extractfile(DATA).read()
    rows = []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        members = sorted(
            (m for m in inner.getmembers() if m.name.endswith("_GroundTruth.txt")),
            key=lambda m: m.name,
        )
        for member in members:
            source = Path(member.name).name.removesuffix("_GroundTruth.txt")
            for line in inner.extractfile(member).read().decode("utf-8").splitlines():
                if line.strip():
                    _, rating, text = line.split("\t", 2)
                    # The tweets escape & < > as HTML entities.
                    rows.append((source, float(rating), html.unescape(text)))
    assert len(rows) == 23_703, len(rows)
    return rows


def build(directory: Path) -> dict[str, Any]:
    """Trains the model, exports it, its vocabulary and its reference case into directory."""
    import collections

    import numpy as np
    import onnx
    import onnxruntime
    import sklearn
    from onnx import TensorProto, helper, numpy_helper
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split

    rated = sentences()
    chosen = [(source, r, text) for source, r, text in rated if abs(r) >= MIN_RATING]
    y = np.array([r > 0 for _, r, _ in chosen], dtype=np.int64)
    texts = [text for _, _, text in chosen]
    train, test = train_test_split(
        np.arange(len(chosen)), test_size=0.2, stratify=y, random_state=0
    )
    token_lists = [tokens(t) for t in texts]
    df = collections.Counter(t for i in train for t in set(token_lists[i]))
    ranked = sorted(df, key=lambda t: (-df[t], t))[:VOCABULARY]
    vocab = {t: i for i, t in enumerate(ranked, start=1)}

    def counts(rows) -> sparse.csr_matrix:
        """Bag of tokens: [len(rows), 1 + VOCABULARY], column 0 (unknown) left empty."""
        r, c = [], []
        for k, i in enumerate(rows):
            for t in token_lists[i]:
                if t in vocab:
                    r.append(k)
                    c.append(vocab[t])
        values = np.ones(len(r))
        return sparse.csr_matrix((values, (r, c)), shape=(len(rows), len(vocab) + 1))

    x_train = counts(train)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    cv = {
        c: cross_val_score(
            LogisticRegression(C=c, max_iter=5000), x_train, y[train], cv=folds
        ).mean()
        for c in C_GRID
    }
    best_c = max(C_GRID, key=lambda c: (cv[c], -c))
    clf = LogisticRegression(C=best_c, max_iter=5000).fit(x_train, y[train])
    weights = clf.coef_[0].astype(np.float32)
    weights[0] = 0.0  # id 0: unknown and padding (its column is empty: its weight is 0)
    bias = np.array(clf.intercept_[0], dtype=np.float32)

    graph = helper.make_graph(
        nodes=[
            helper.make_node("Gather", ["weights", "token_ids"], ["token_weights"], axis=0),
            helper.make_node("ReduceSum", ["token_weights", "seq_axis"], ["sum"], keepdims=0),
            helper.make_node("Add", ["sum", "bias"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["positive"]),
            helper.make_node("Greater", ["logit", "zero"], ["is_positive"]),
            helper.make_node("Cast", ["is_positive"], ["label"], to=TensorProto.INT64),
        ],
        name="sentiment",
        inputs=[helper.make_tensor_value_info("token_ids", TensorProto.INT64, ["batch", "seq"])],
        outputs=[
            helper.make_tensor_value_info("positive", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=[
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "seq_axis"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER[0],
        producer_version=PRODUCER[1],
        doc_string="Sentiment of an English sentence from the ids of its words and word "
        f"pairs (scikit-learn {sklearn.__version__} LogisticRegression on counts; "
        "tokenizer and vocabulary in the catalog's manifest and sentiment.vocab.json).",
    )
    onnx.checker.check_model(model, full_check=True)
    path = directory / f"{NAME}.onnx"
    path.write_bytes(model.SerializeToString(deterministic=True))
    vocab_path = directory / f"{NAME}.vocab.json"
    vocab_path.write_text(json.dumps(vocab, indent=0, ensure_ascii=True) + "\n")
    assert json.loads(vocab_path.read_text()) == vocab

    ort = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(rows):
        """onnxruntime's outputs on the given sentences, tokenized by the reference."""
        positive, label = [], []
        for start in range(0, len(rows), 512):
            ids = tokenize([texts[i] for i in rows[start : start + 512]], vocab)
            p, lab = ort.run(None, {"token_ids": ids})
            positive.append(p)
            label.append(lab)
        return np.concatenate(positive), np.concatenate(label)

    probs, labels = predict(test)
    x_test = counts(test)
    assert (labels == clf.predict(x_test)).all(), "the ONNX labels differ from sklearn's"
    assert np.allclose(probs, clf.predict_proba(x_test)[:, 1], atol=1e-5), "probabilities differ"
    correct = labels == y[test]
    sources = sorted({source for source, _, _ in chosen})
    by_source = {
        s: round(float(correct[[chosen[i][0] == s for i in test]].mean()), 4) for s in sources
    }

    token_ids = tokenize(list(EXAMPLES), vocab)
    # The manifest's Python lines give the same ids as tokenize.
    snippet: dict[str, Any] = {}
    exec(TOKENIZER_PYTHON.replace('"sentiment.vocab.json"', repr(str(vocab_path))), snippet)
    assert np.array_equal(snippet["batch"](list(EXAMPLES)), token_ids)
    some = [texts[i] for i in test[:200]]
    assert np.array_equal(snippet["batch"](some), tokenize(some, vocab))
    ref_positive, ref_label = ort.run(None, {"token_ids": token_ids})
    reference = directory / f"{NAME}.reference.npz"
    # np.savez is deterministic: ZipFile.open(name, "w") stamps members 1980-01-01.
    np.savez(reference, token_ids=token_ids, positive=ref_positive, label=ref_label)

    def example(text: str) -> dict[str, Any]:
        return {"text": text, "token_ids": tokenize([text], vocab)[0].tolist()}

    return {
        "name": NAME,
        "description": "Sentiment of an English sentence (negative or positive, with the "
        "probability of positive), by logistic regression on the counts of its words and "
        "word pairs. Takes token ids: tokenize outside the sandbox with the tokenizer below "
        "and sentiment.vocab.json.",
        "task": "text-classification",
        "license": "the training data: vaderSentiment's hutto_ICWSM_2014 ratings (MIT; the "
        "texts are not shipped); the model and vocabulary: same as wasmhost",
        "source": "trained by scripts/catalog_builders/sentiment.py on the rated sentences of "
        "additional_resources/hutto_ICWSM_2014.tar.gz in the source distribution of PyPI "
        f"vaderSentiment 3.3.2 (sha256 {SDIST_SHA256[:16]}...) (sklearn {sklearn.__version__})",
        "file": path.name,
        **describe(path),
        "inputs": [
            {
                "name": "token_ids",
                "dtype": "int64",
                "shape": ["batch", "seq"],
                "layout": "one row per text: the ids of its words, then of its adjacent word "
                "pairs, then 0s up to the batch's longest row",
                "preprocessing": "the tokenizer (see tokenizer: its spec, a Python reference "
                f"and {vocab_path.name}, token -> id, in the catalog directory beside the model)",
            }
        ],
        "outputs": [
            {
                "name": "positive",
                "dtype": "float32",
                "shape": ["batch"],
                "meaning": "probability that the text is positive (sigmoid of the sum of its "
                "tokens' weights plus a bias)",
            },
            {
                "name": "label",
                "dtype": "int64",
                "shape": ["batch"],
                "meaning": "index into labels: 1 (positive) where positive > 0.5",
            },
        ],
        "labels": ["negative", "positive"],
        "tokenizer": {
            "file": vocab_path.name,
            **describe(vocab_path),
            "vocabulary": f"{len(vocab)} tokens (ids 1..{len(vocab)}; 0 is unknown and "
            f"padding): the {VOCABULARY} words and word pairs in the most training sentences, "
            "ties broken by the token's string",
            "spec": TOKENIZER_SPEC,
            "python": TOKENIZER_PYTHON,
            "examples": [example(text) for text in EXAMPLES[:3]],
        },
        "reference": {
            "file": reference.name,
            **describe(reference),
            "texts": list(EXAMPLES),
        },
        "metrics": {
            "accuracy": round(float(correct.mean()), 4),
            "evaluated_on": f"{len(test)} held-out sentences of the {len(chosen)} whose mean "
            f"human rating is at least {MIN_RATING} away from neutral (of {len(rated)}; a "
            f"stratified 80/20 split, random_state=0; trained on the other {len(train)}, "
            "positive if the rating is > 0), run by onnxruntime",
            "accuracy_by_source": by_source,
            "regularisation": f"C={best_c}, the best 5-fold cross-validated accuracy on the "
            "training split among " + ", ".join(f"C={c}: {cv[c]:.4f}" for c in C_GRID),
            "examples": {
                text: round(float(p), 3) for text, p in zip(EXAMPLES, ref_positive, strict=True)
            },
        },
    }
