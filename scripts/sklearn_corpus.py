#!/usr/bin/env python3
"""The scikit-learn conformance corpus: skl2onnx exports of the estimators people ship,
through wasmhost, native tract and onnxruntime (the oracle), side by side.

    python scripts/conformance.py --suites sklearn
    python scripts/conformance.py --suites sklearn --engines wasmhost \
        --check tests/conformance/sklearn_passes.txt
    python scripts/sklearn_corpus.py --only 'forest'   # this module alone, same options

Every case is built in memory, deterministically: an estimator fitted (fixed seeds) on one
of scikit-learn's bundled data sets (iris, wine, breast_cancer, digits, diabetes) or on
synthetic data (make_classification, make_regression), exported by skl2onnx at a fixed
target opset with the options users get (classifiers end in ZipMap, as skl2onnx's
defaults have them; `-nozipmap` cases ask for the probability tensor), a few rows to feed
and onnxruntime's outputs for them. A case skl2onnx cannot export is `convert-error`
with its reason; a case onnxruntime cannot run has no oracle (`no-oracle`).

Each engine gets one session per case and runs the rows, then the first row alone, then
the rows again (`SkCase.schedule`). Outcomes:

- `pass`: every run's labels (integers, strings) equal onnxruntime's exactly, and every
  float (probabilities, scores, values, ZipMap's probabilities, compared as lists of
  dicts with the same keys in the same order) is within `RTOL` of it (plus `ATOL` times
  the output's largest magnitude, for values that should be zero);
- `mismatch`: an answer that is wrong: the worst outcome, worse than any refusal;
- `refused`: the engine said it cannot run the model (wasmhost's InvalidModel or
  UnsupportedModel, native tract's refusal to load it), with its message;
- `error`: anything else raised (string feeds wasmhost or native tract cannot take...);
- `n/a`: native tract's Python API takes no such inputs (strings) or cannot return such
  an output (TDim) at all.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing as mp
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: skl2onnx's target opsets, fixed so that the corpus does not move with skl2onnx's
#: defaults (it still imports only the opsets a model needs).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
RTOL = 1e-5
ATOL = 1e-6
ENGINES = ("wasmhost", "tract", "onnxruntime")
STATUSES = ("pass", "mismatch", "refused", "error", "n/a", "convert-error", "no-oracle")
SEED = 0

# --- data -------------------------------------------------------------------------------


def _rows(x: np.ndarray, n: int = 8) -> np.ndarray:
    """`n` rows spread over a data set (sorted by target, so every class is fed)."""
    return x[np.linspace(0, len(x) - 1, n).astype(int)]


def _dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if name == "binary":
        return datasets.make_classification(
            300, 6, n_informative=4, n_redundant=1, random_state=SEED
        )
    if name == "regression":
        return datasets.make_regression(300, 6, n_informative=4, noise=5.0, random_state=SEED)
    loader = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "diabetes": datasets.load_diabetes,
    }[name]
    x, y = loader(return_X_y=True)
    order = np.argsort(y, kind="stable")  # rows spread by _rows then cover every class
    return x[order], y[order]


@dataclass
class Spec:
    """How to build one case: an estimator, the data set it is fitted on, export options."""

    name: str
    estimator: str  # the table's label: class name and variant
    make: Callable[[], Any]
    data: str
    zipmap: bool = True  # skl2onnx's default for classifiers
    labels: str = "int"  # "str": the target as class names
    prepare: Callable[[np.ndarray], np.ndarray] | None = None  # applied to x before fitting
    int_leaf_flags: bool = False  # exported through `_int_leaf_flags`


@dataclass
class SkCase:
    """A built case: its model, feeds and onnxruntime's outputs (or why there are none)."""

    name: str
    estimator: str
    ops: list[str] = field(default_factory=list)
    model: bytes | None = None
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    output_names: list[str] = field(default_factory=list)
    expected: list | None = None
    row_expected: list | None = None  # onnxruntime's outputs for the first row alone
    convert_error: str | None = None
    oracle_error: str | None = None

    def row_feeds(self) -> dict[str, np.ndarray]:
        return {n: a[:1] for n, a in self.feeds.items()}

    def schedule(self) -> list[tuple[str, dict[str, np.ndarray], list]]:
        """The runs of one session: the rows, the first row alone, the rows again."""
        assert self.expected is not None and self.row_expected is not None
        return [
            ("run 1", self.feeds, self.expected),
            ("run 2 (one row)", self.row_feeds(), self.row_expected),
            ("run 3", self.feeds, self.expected),
        ]


def _specs() -> list[Spec]:
    from sklearn import (
        ensemble,
        kernel_ridge,
        linear_model,
        naive_bayes,
        neighbors,
        neural_network,
        svm,
        tree,
    )
    from sklearn import preprocessing as pre
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.feature_selection import SelectKBest, VarianceThreshold
    from sklearn.impute import SimpleImputer
    from sklearn.mixture import GaussianMixture
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline

    r = SEED
    scaled = pre.StandardScaler
    specs = [
        # linear classifiers
        Spec("logreg-binary", "LogisticRegression (binary)", linear_model.LogisticRegression,
             "binary"),
        Spec("logreg-multiclass", "LogisticRegression (3 classes)",
             lambda: linear_model.LogisticRegression(max_iter=500), "iris"),
        Spec("logreg-multiclass-nozipmap", "LogisticRegression (3 classes, zipmap=False)",
             lambda: linear_model.LogisticRegression(max_iter=500), "iris", zipmap=False),
        Spec("logreg-string-labels", "LogisticRegression (string labels)",
             lambda: linear_model.LogisticRegression(max_iter=500), "iris", labels="str"),
        # string class labels: every kind of classifier's labels mapped back to names
        Spec("svc-string-labels", "SVC (rbf, string labels)", svm.SVC, "iris", labels="str"),
        Spec("knn-string-labels", "KNeighborsClassifier (string labels)",
             neighbors.KNeighborsClassifier, "iris", labels="str"),
        Spec("mlp-string-labels", "MLPClassifier (string labels)",
             lambda: neural_network.MLPClassifier(
                 hidden_layer_sizes=(16,), max_iter=300, random_state=r), "iris", labels="str"),
        Spec("decision-tree-binary-string-labels",
             "DecisionTreeClassifier (binary, string labels)",
             lambda: tree.DecisionTreeClassifier(max_depth=5, random_state=r), "breast_cancer",
             labels="str"),
        Spec("random-forest-string-labels", "RandomForestClassifier (3 classes, string labels)",
             lambda: ensemble.RandomForestClassifier(10, max_depth=6, random_state=r), "iris",
             labels="str"),
        Spec("random-forest-string-labels-nozipmap",
             "RandomForestClassifier (3 classes, string labels, zipmap=False)",
             lambda: ensemble.RandomForestClassifier(10, max_depth=6, random_state=r), "iris",
             labels="str", zipmap=False),
        Spec("linear-svc-binary", "LinearSVC (binary)", lambda: svm.LinearSVC(random_state=r),
             "binary"),
        Spec("linear-svc-multiclass", "LinearSVC (3 classes)",
             lambda: svm.LinearSVC(random_state=r), "iris"),
        Spec("svc-linear", "SVC (linear kernel)", lambda: svm.SVC(kernel="linear"), "iris"),
        Spec("svc-rbf-binary", "SVC (rbf, binary)", lambda: svm.SVC(), "binary"),
        Spec("svc-rbf-probability", "SVC (rbf, probability=True)",
             lambda: svm.SVC(probability=True, random_state=r), "iris"),
        Spec("svc-poly", "SVC (poly kernel)", lambda: svm.SVC(kernel="poly", degree=3), "iris"),
        Spec("sgd-classifier", "SGDClassifier (hinge)",
             lambda: linear_model.SGDClassifier(random_state=r), "iris", prepare=_standardize),
        Spec("sgd-classifier-log", "SGDClassifier (log_loss)",
             lambda: linear_model.SGDClassifier(loss="log_loss", random_state=r), "binary"),
        Spec("perceptron", "Perceptron", lambda: linear_model.Perceptron(random_state=r), "iris"),
        Spec("ridge-classifier", "RidgeClassifier", linear_model.RidgeClassifier, "wine"),
        # neighbours, naive Bayes, networks
        Spec("knn-classifier", "KNeighborsClassifier", neighbors.KNeighborsClassifier, "iris"),
        Spec("knn-regressor", "KNeighborsRegressor", neighbors.KNeighborsRegressor, "diabetes"),
        Spec("gaussian-nb", "GaussianNB", naive_bayes.GaussianNB, "wine"),
        Spec("bernoulli-nb", "BernoulliNB", lambda: naive_bayes.BernoulliNB(binarize=8.0),
             "digits"),
        Spec("multinomial-nb", "MultinomialNB", naive_bayes.MultinomialNB, "digits"),
        Spec("multinomial-nb-nozipmap", "MultinomialNB (zipmap=False)",
             naive_bayes.MultinomialNB, "digits", zipmap=False),
        Spec("mlp-classifier", "MLPClassifier",
             lambda: neural_network.MLPClassifier(
                 hidden_layer_sizes=(16,), max_iter=300, random_state=r), "iris"),
        Spec("mlp-regressor", "MLPRegressor",
             lambda: neural_network.MLPRegressor(
                 hidden_layer_sizes=(16,), max_iter=300, random_state=r),
             "regression"),
        # trees and ensembles
        Spec("decision-tree-binary", "DecisionTreeClassifier (binary)",
             lambda: tree.DecisionTreeClassifier(max_depth=5, random_state=r), "breast_cancer"),
        Spec("decision-tree-multiclass", "DecisionTreeClassifier (3 classes)",
             lambda: tree.DecisionTreeClassifier(max_depth=5, random_state=r), "wine"),
        Spec("decision-tree-regressor", "DecisionTreeRegressor",
             lambda: tree.DecisionTreeRegressor(max_depth=6, random_state=r), "diabetes"),
        Spec("random-forest-binary", "RandomForestClassifier (binary)",
             lambda: ensemble.RandomForestClassifier(10, max_depth=6, random_state=r),
             "breast_cancer"),
        Spec("random-forest-binary-nozipmap", "RandomForestClassifier (binary, zipmap=False)",
             lambda: ensemble.RandomForestClassifier(10, max_depth=6, random_state=r),
             "breast_cancer", zipmap=False),
        Spec("random-forest-multiclass", "RandomForestClassifier (3 classes)",
             lambda: ensemble.RandomForestClassifier(10, max_depth=6, random_state=r), "iris"),
        Spec("random-forest-multiclass-nozipmap",
             "RandomForestClassifier (3 classes, zipmap=False)",
             lambda: ensemble.RandomForestClassifier(10, max_depth=6, random_state=r), "iris",
             zipmap=False),
        Spec("random-forest-regressor", "RandomForestRegressor",
             lambda: ensemble.RandomForestRegressor(10, max_depth=6, random_state=r),
             "diabetes"),
        Spec("extra-trees-binary", "ExtraTreesClassifier (binary)",
             lambda: ensemble.ExtraTreesClassifier(10, max_depth=6, random_state=r), "binary"),
        Spec("extra-trees-multiclass", "ExtraTreesClassifier (3 classes)",
             lambda: ensemble.ExtraTreesClassifier(10, max_depth=6, random_state=r), "wine"),
        Spec("extra-trees-regressor", "ExtraTreesRegressor",
             lambda: ensemble.ExtraTreesRegressor(10, max_depth=6, random_state=r), "diabetes"),
        Spec("gradient-boosting-binary", "GradientBoostingClassifier (binary)",
             lambda: ensemble.GradientBoostingClassifier(n_estimators=20, random_state=r),
             "breast_cancer"),
        Spec("gradient-boosting-binary-nozipmap",
             "GradientBoostingClassifier (binary, zipmap=False)",
             lambda: ensemble.GradientBoostingClassifier(n_estimators=20, random_state=r),
             "breast_cancer", zipmap=False),
        Spec("gradient-boosting-multiclass", "GradientBoostingClassifier (3 classes)",
             lambda: ensemble.GradientBoostingClassifier(n_estimators=20, random_state=r),
             "iris"),
        Spec("gradient-boosting-regressor", "GradientBoostingRegressor",
             lambda: ensemble.GradientBoostingRegressor(n_estimators=20, random_state=r),
             "diabetes"),
        Spec("hist-gradient-boosting-binary", "HistGradientBoostingClassifier (binary)",
             lambda: ensemble.HistGradientBoostingClassifier(max_iter=20, random_state=r),
             "breast_cancer"),
        Spec("hist-gradient-boosting-multiclass", "HistGradientBoostingClassifier (3 classes)",
             lambda: ensemble.HistGradientBoostingClassifier(max_iter=20, random_state=r),
             "wine"),
        Spec("hist-gradient-boosting-regressor", "HistGradientBoostingRegressor",
             lambda: ensemble.HistGradientBoostingRegressor(max_iter=20, random_state=r),
             "diabetes"),
        Spec("hist-gradient-boosting-binary-patched",
             "HistGradientBoostingClassifier (binary, skl2onnx patched)",
             lambda: ensemble.HistGradientBoostingClassifier(max_iter=20, random_state=r),
             "breast_cancer", int_leaf_flags=True),
        Spec("hist-gradient-boosting-multiclass-patched",
             "HistGradientBoostingClassifier (3 classes, skl2onnx patched)",
             lambda: ensemble.HistGradientBoostingClassifier(max_iter=20, random_state=r),
             "wine", int_leaf_flags=True),
        Spec("hist-gradient-boosting-regressor-patched",
             "HistGradientBoostingRegressor (skl2onnx patched)",
             lambda: ensemble.HistGradientBoostingRegressor(max_iter=20, random_state=r),
             "diabetes", int_leaf_flags=True),
        Spec("adaboost-classifier", "AdaBoostClassifier",
             lambda: ensemble.AdaBoostClassifier(n_estimators=10, random_state=r), "iris"),
        Spec("adaboost-regressor", "AdaBoostRegressor",
             lambda: ensemble.AdaBoostRegressor(n_estimators=10, random_state=r), "diabetes"),
        Spec("isolation-forest", "IsolationForest",
             lambda: ensemble.IsolationForest(n_estimators=10, random_state=r), "wine"),
        Spec("local-outlier-factor", "LocalOutlierFactor (novelty=True)",
             lambda: neighbors.LocalOutlierFactor(novelty=True), "wine",
             prepare=_standardize),
        Spec("kmeans", "KMeans", lambda: KMeans(3, n_init=3, random_state=r), "iris"),
        Spec("gaussian-mixture", "GaussianMixture",
             lambda: GaussianMixture(3, random_state=r), "iris"),
        # linear regressors and kernels
        Spec("linear-regression", "LinearRegression", linear_model.LinearRegression, "diabetes"),
        Spec("ridge", "Ridge", linear_model.Ridge, "diabetes"),
        Spec("lasso", "Lasso", lambda: linear_model.Lasso(alpha=0.1), "diabetes"),
        Spec("elastic-net", "ElasticNet", lambda: linear_model.ElasticNet(alpha=0.01),
             "diabetes"),
        Spec("svr", "SVR (rbf)", lambda: svm.SVR(C=10.0), "diabetes"),
        Spec("nu-svr", "NuSVR", lambda: svm.NuSVR(C=10.0), "diabetes"),
        Spec("nu-svc", "NuSVC", lambda: svm.NuSVC(), "iris"),
        Spec("one-class-svm", "OneClassSVM", lambda: svm.OneClassSVM(nu=0.1), "wine",
             prepare=_standardize),
        Spec("linear-svr", "LinearSVR", lambda: svm.LinearSVR(random_state=r, max_iter=5000),
             "diabetes"),
        Spec("kernel-ridge", "KernelRidge", lambda: kernel_ridge.KernelRidge(kernel="rbf"),
             "diabetes"),
        # transformers
        Spec("standard-scaler", "StandardScaler", pre.StandardScaler, "wine"),
        Spec("minmax-scaler", "MinMaxScaler", pre.MinMaxScaler, "wine"),
        Spec("maxabs-scaler", "MaxAbsScaler", pre.MaxAbsScaler, "wine"),
        Spec("robust-scaler", "RobustScaler", pre.RobustScaler, "wine"),
        Spec("normalizer", "Normalizer", pre.Normalizer, "iris"),
        Spec("binarizer", "Binarizer", lambda: pre.Binarizer(threshold=3.0), "iris"),
        Spec("simple-imputer", "SimpleImputer (mean, NaNs fed)", SimpleImputer, "iris",
             prepare=_holes),
        Spec("polynomial-features", "PolynomialFeatures (degree 2)",
             lambda: pre.PolynomialFeatures(2), "iris"),
        Spec("pca", "PCA", lambda: PCA(3, random_state=r), "wine"),
        Spec("truncated-svd", "TruncatedSVD", lambda: TruncatedSVD(3, random_state=r), "wine"),
        Spec("kbins-discretizer-onehot", "KBinsDiscretizer (onehot-dense)",
             lambda: pre.KBinsDiscretizer(4, encode="onehot-dense", quantile_method="linear"),
             "iris"),
        Spec("kbins-discretizer-ordinal", "KBinsDiscretizer (ordinal)",
             lambda: pre.KBinsDiscretizer(4, encode="ordinal", quantile_method="linear"),
             "iris"),
        Spec("onehot-encoder", "OneHotEncoder (numeric categories)",
             lambda: pre.OneHotEncoder(handle_unknown="ignore"), "iris", prepare=_categories),
        # feature selection, meta-estimators
        Spec("select-k-best", "SelectKBest", lambda: SelectKBest(k=5), "wine"),
        Spec("variance-threshold", "VarianceThreshold",
             lambda: VarianceThreshold(threshold=0.1), "wine"),
        Spec("lda", "LinearDiscriminantAnalysis", LinearDiscriminantAnalysis, "wine"),
        Spec("voting-classifier-soft", "VotingClassifier (soft)",
             lambda: ensemble.VotingClassifier(
                 [("lr", linear_model.LogisticRegression(max_iter=500)),
                  ("dt", tree.DecisionTreeClassifier(max_depth=4, random_state=r))],
                 voting="soft"), "iris"),
        Spec("voting-classifier-soft-unflattened",
             "VotingClassifier (soft, flatten_transform=False)",
             lambda: ensemble.VotingClassifier(
                 [("lr", linear_model.LogisticRegression(max_iter=500)),
                  ("dt", tree.DecisionTreeClassifier(max_depth=4, random_state=r))],
                 voting="soft", flatten_transform=False), "iris"),
        Spec("bagging-classifier", "BaggingClassifier",
             lambda: ensemble.BaggingClassifier(n_estimators=5, random_state=r), "iris"),
        Spec("calibrated-classifier", "CalibratedClassifierCV (LinearSVC)",
             lambda: CalibratedClassifierCV(svm.LinearSVC(random_state=r), cv=3), "binary"),
        Spec("one-vs-rest", "OneVsRestClassifier (LogisticRegression)",
             lambda: OneVsRestClassifier(linear_model.LogisticRegression()), "iris"),
        Spec("stacking-classifier", "StackingClassifier",
             lambda: ensemble.StackingClassifier(
                 [("lr", linear_model.LogisticRegression(max_iter=500)),
                  ("knn", neighbors.KNeighborsClassifier())], cv=3), "iris"),
        # pipelines
        Spec("pipeline-scaler-logreg", "Pipeline (StandardScaler + LogisticRegression)",
             lambda: make_pipeline(scaled(), linear_model.LogisticRegression()),
             "breast_cancer"),
        Spec("pipeline-scaler-svc", "Pipeline (StandardScaler + SVC)",
             lambda: make_pipeline(scaled(), svm.SVC(probability=True, random_state=r)),
             "wine"),
        Spec("pipeline-scaler-pca-forest",
             "Pipeline (StandardScaler + PCA + RandomForestClassifier)",
             lambda: make_pipeline(scaled(), PCA(4, random_state=r),
                                   ensemble.RandomForestClassifier(10, random_state=r)),
             "wine"),
    ]  # fmt: skip
    return specs


UNSUPERVISED = frozenset(
    ["isolation-forest", "one-class-svm", "local-outlier-factor", "kmeans", "gaussian-mixture"]
)


def _standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / x.std(axis=0)


def _holes(x: np.ndarray) -> np.ndarray:
    """Every seventh value missing (NaN), in the data fitted and in the rows fed."""
    x = x.copy()
    x.reshape(-1)[::7] = np.nan
    return x


def _categories(x: np.ndarray) -> np.ndarray:
    return np.floor(x)


# The cases that are not one estimator on one float matrix.


def _column_transformer() -> tuple[Any, dict[str, np.ndarray], list, dict | None]:
    """A ColumnTransformer mixing numeric columns (StandardScaler) and a string column
    (OneHotEncoder), then LogisticRegression: two inputs, float and string."""
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(SEED)
    n = 200
    num = rng.standard_normal((n, 2))
    cat = rng.choice(["red", "green", "blue"], size=(n, 1))
    x = np.empty((n, 3), dtype=object)
    x[:, :2], x[:, 2:] = num, cat
    y = (num[:, 0] + (cat[:, 0] == "red") > 0.5).astype(np.int64)
    columns = ColumnTransformer(
        [("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(handle_unknown="ignore"), [2])]
    )
    fitted = make_pipeline(columns, LogisticRegression()).fit(x, y)
    feeds = {"num": num[:8].astype(np.float32), "cat": cat[:8].astype(object)}
    types = [("num", FloatTensorType([None, 2])), ("cat", StringTensorType([None, 1]))]
    return fitted, feeds, types, None


TEXTS = [
    "the sandbox runs the model",
    "a model in a sandbox is safe",
    "tract runs onnx models fast",
    "wasm isolates keep models apart",
    "the cat sat on the mat",
    "a dog and a cat played",
    "cats and dogs are pets",
    "the dog barked at the cat",
]


def _text_pipeline(
    vectorizer: str = "tfidf", classifier: str = "logreg", **params: Any
) -> Callable[[], tuple[Any, dict[str, np.ndarray], list, dict | None]]:
    """A text vectorizer (TfidfVectorizer or CountVectorizer, with `params`) and a
    classifier on a few sentences: one string input."""

    def build() -> tuple[Any, dict[str, np.ndarray], list, dict | None]:
        from skl2onnx.common.data_types import StringTensorType
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.naive_bayes import MultinomialNB
        from sklearn.pipeline import make_pipeline

        make = {"tfidf": TfidfVectorizer, "count": CountVectorizer}[vectorizer]
        model = {"logreg": LogisticRegression, "nb": MultinomialNB}[classifier]
        y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
        fitted = make_pipeline(make(**params), model()).fit(TEXTS, y)
        rows = [*TEXTS[::2], "an unseen sentence", "", "The CAT, the Dog!"]
        feeds = {"text": np.array(rows, dtype=object).reshape(-1, 1)}
        # StringNormalizer's locale, else onnxruntime's default (en_US.UTF-8), which
        # machines without that locale installed (Debian images) cannot construct.
        options = {make: {"locale": "C.UTF-8"}}
        return fitted, feeds, [("text", StringTensorType([None, 1]))], options

    return build


def _string_encoder(kind: str) -> Callable[[], tuple[Any, dict[str, np.ndarray], list, None]]:
    """OneHotEncoder or OrdinalEncoder over two string columns, or LabelEncoder over
    string labels: string inputs, skl2onnx's OneHotEncoder and LabelEncoder nodes."""

    def build() -> tuple[Any, dict[str, np.ndarray], list, None]:
        from skl2onnx.common.data_types import StringTensorType
        from sklearn import preprocessing as pre

        rng = np.random.default_rng(SEED)
        colours = rng.choice(["red", "green", "blue", "grün"], size=(100, 1))
        sizes = rng.choice(["S", "M", "L"], size=(100, 1))
        if kind == "label":
            fitted = pre.LabelEncoder().fit(colours[:, 0])
            feed = np.array(["blue", "red", "grün", "green", "red", "blue", "green", "red"])
            return (
                fitted,
                {"label": feed.astype(object)},
                [("label", StringTensorType([None]))],
                None,
            )
        x = np.hstack([colours, sizes]).astype(object)
        if kind == "onehot":
            fitted = pre.OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(x)
        else:
            fitted = pre.OrdinalEncoder().fit(x)
        feed = x[:8].copy()
        if kind == "onehot":
            feed[3, 0] = "purple"  # unknown: a row of zeros
        return fitted, {"X": feed}, [("X", StringTensorType([None, 2]))], None

    return build


SPECIAL = {
    "column-transformer": (
        "ColumnTransformer (numeric + string) + LogisticRegression",
        _column_transformer,
    ),
    "tfidf-logreg": ("Pipeline (TfidfVectorizer + LogisticRegression)", _text_pipeline()),
    "tfidf-bigrams-nb": (
        "Pipeline (TfidfVectorizer, 1-2 grams, stop words + MultinomialNB)",
        _text_pipeline("tfidf", "nb", ngram_range=(1, 2), stop_words=["the", "a", "and"]),
    ),
    "count-vectorizer-nb": (
        "Pipeline (CountVectorizer + MultinomialNB)",
        _text_pipeline("count", "nb"),
    ),
    "tfidf-char-ngrams": (
        "Pipeline (TfidfVectorizer, characters 2-3 + LogisticRegression)",
        _text_pipeline("tfidf", "logreg", analyzer="char", ngram_range=(2, 3)),
    ),
    "onehot-encoder-strings": ("OneHotEncoder (string categories)", _string_encoder("onehot")),
    "ordinal-encoder-strings": ("OrdinalEncoder (string categories)", _string_encoder("ordinal")),
    "label-encoder-strings": ("LabelEncoder (string labels)", _string_encoder("label")),
}


# --- building ---------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def _fit(spec: Spec) -> tuple[Any, dict[str, np.ndarray]]:
    x, y = _dataset(spec.data)
    if spec.prepare is not None:
        x = spec.prepare(x)
    if spec.labels == "str":
        y = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    estimator = spec.make()
    if spec.name in UNSUPERVISED:
        estimator.fit(x)  # unsupervised
    else:
        estimator.fit(x, y)
    return estimator, {"X": _rows(x).astype(np.float32)}


def onnxruntime_outputs(model: bytes, feeds: dict[str, np.ndarray]) -> list:
    from wasmhost.tools.bench import onnxruntime_session

    return onnxruntime_session(model).run(None, feeds)


def build_case(name: str) -> SkCase:
    """One case of the corpus, by name: fitted, exported, run through onnxruntime."""
    import onnx

    patch: contextlib.AbstractContextManager = contextlib.nullcontext()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and future warnings: fits are fixed
        if name in SPECIAL:
            label, build = SPECIAL[name]
            case = SkCase(name, label)
            estimator, feeds, types, options = build()
        else:
            spec = {s.name: s for s in _specs()}[name]
            case = SkCase(name, spec.estimator)
            estimator, feeds = _fit(spec)
            options = None if spec.zipmap else {id(estimator): {"zipmap": False}}
            types = None
            if spec.int_leaf_flags:
                patch = _int_leaf_flags()
        case.feeds = feeds
        try:
            with patch:
                proto = _convert(estimator, feeds, types, options)
        except Exception as e:  # skl2onnx's own limits are results too
            cause = e.__cause__ or e.__context__
            case.convert_error = (
                f"{_first_line(cause)[:200]} (raised as {_first_line(e)[:80]}...)"
                if cause
                else _first_line(e)
            )
            return case
    case.model = proto.SerializeToString()
    case.ops = sorted(
        {(f"{n.domain}:" if n.domain not in ("", "ai.onnx") else "") + n.op_type
         for n in proto.graph.node}
    )  # fmt: skip
    case.output_names = [o.name for o in proto.graph.output]
    inputs = [i.name for i in proto.graph.input]
    if list(feeds) != inputs:  # skl2onnx names the input after the data's type: follow it
        case.feeds = dict(zip(inputs, feeds.values(), strict=True))
    onnx.checker.check_model(proto)
    try:
        case.expected = onnxruntime_outputs(case.model, case.feeds)
        case.row_expected = onnxruntime_outputs(case.model, case.row_feeds())
    except Exception as e:
        case.oracle_error = _first_line(e)
    return case


def _convert(estimator: Any, feeds: dict, types: list | None, options: dict | None) -> Any:
    from skl2onnx import convert_sklearn, to_onnx

    if types is None:
        return to_onnx(estimator, feeds["X"][:1], options=options, target_opset=TARGET_OPSET)
    return convert_sklearn(  # named, else its graph's name is a random uuid
        estimator, "sklearn-corpus", types, options=options, target_opset=TARGET_OPSET
    )


@contextlib.contextmanager
def _int_leaf_flags() -> Iterator[None]:
    """skl2onnx 1.20 exports a HistGradientBoosting leaf's `nodes_missing_value_tracks_true`
    as the Python bool False, which onnx 1.23's make_attribute refuses in an ints
    attribute (so every HistGradientBoosting export fails, recorded as `convert-error`).
    Its `-patched` cases export with that flag as the int it stands for, so that the
    estimators are measured all the same."""
    from skl2onnx.common import tree_ensemble

    add_node = tree_ensemble.add_node

    def patched(*args: Any, **kwargs: Any) -> Any:
        flag = kwargs.get("nodes_missing_value_tracks_true")
        if isinstance(flag, bool):
            kwargs["nodes_missing_value_tracks_true"] = int(flag)
        return add_node(*args, **kwargs)

    tree_ensemble.add_node = patched
    try:
        yield
    finally:
        tree_ensemble.add_node = add_node


def case_names() -> list[str]:
    return [s.name for s in _specs()] + list(SPECIAL)


def build_corpus(only: str | None = None) -> list[SkCase]:
    """Every case (or those whose name matches the regular expression `only`)."""
    return [build_case(n) for n in case_names() if only is None or re.search(only, n)]


# --- comparing --------------------------------------------------------------------------


def _close(expected: np.ndarray, got: np.ndarray) -> str | None:
    """None when floats `got` are within tolerance of `expected`, else the worst one."""
    e, g = expected.astype(np.float64), got.astype(np.float64)
    finite = np.isfinite(e)
    scale = max(1.0, float(np.abs(e[finite]).max(initial=0.0)))
    with np.errstate(all="ignore"):
        ok = np.isclose(g, e, rtol=RTOL, atol=ATOL * scale, equal_nan=True)
        diff = np.abs(g - e)
    diff = np.where(ok, 0.0, np.where(np.isnan(diff), np.inf, diff))
    if ok.all():
        return None
    at = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return (
        f"{int((~ok).sum())}/{e.size} values out of tolerance, max |diff| {diff[at]:.3g}"
        f" at {list(map(int, at))} (got {g[at]:.7g}, expected {e[at]:.7g})"
    )


def _array_difference(expected: Any, got: Any) -> str | None:
    e, g = np.asarray(expected), np.asarray(got)
    if e.shape != g.shape:
        return f"shape {list(g.shape)}, expected {list(e.shape)}"
    if e.dtype.kind == "f" or g.dtype.kind == "f":
        if e.dtype != g.dtype:
            return f"dtype {g.dtype}, expected {e.dtype}"
        return _close(e, g)
    if e.dtype.kind in "OUS" or g.dtype.kind in "OUS":
        if e.dtype.kind not in "OUS" or g.dtype.kind not in "OUS":
            return f"dtype {g.dtype}, expected {e.dtype}"
        e, g = e.astype(str), g.astype(str)
    elif e.dtype != g.dtype:
        return f"dtype {g.dtype}, expected {e.dtype}"
    bad = e != g
    if not bad.any():
        return None
    at = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return (
        f"{int(bad.sum())}/{e.size} labels differ, first at {list(map(int, at))}"
        f" (got {g[at].item()!r}, expected {e[at].item()!r})"
    )


def _zipmap_difference(expected: list, got: Any) -> str | None:
    if not isinstance(got, list | tuple) or not all(isinstance(d, dict) for d in got):
        return f"{type(got).__name__}, expected a list of {len(expected)} dicts"
    if len(got) != len(expected):
        return f"{len(got)} dicts, expected {len(expected)}"
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        if [str(k) for k in g] != [str(k) for k in e] or [type(k) for k in g] != [
            type(k) for k in e
        ]:
            return f"row {i}: keys {list(g)}, expected {list(e)}"
    values = _close(
        np.array([list(d.values()) for d in expected], np.float64),
        np.array([list(d.values()) for d in got], np.float64),
    )
    return f"probabilities: {values}" if values else None


def output_difference(expected: list, got: list, names: list[str]) -> str | None:
    """None when `got` matches onnxruntime's `expected`, else the first output that does
    not, in one phrase."""
    if len(got) != len(expected):
        return f"{len(got)} outputs, expected {len(expected)}"
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        name = names[i] if i < len(names) else f"#{i}"
        if isinstance(e, list):
            found = _zipmap_difference(e, g)
        elif isinstance(g, list | tuple):
            found = f"{type(g).__name__}, expected an array"
        else:
            found = _array_difference(e, g)
        if found:
            return f"{name}: {found}"[:400]
    return None


# --- engines ----------------------------------------------------------------------------

_REFUSALS = ("InvalidModel", "UnsupportedModel")


def _verdict(case: SkCase, run: Callable[[dict], list], refused: Callable[[str], bool]):
    """Runs one session's `case.schedule()` in order, each judged against onnxruntime."""
    for k, (label, feeds, expected) in enumerate(case.schedule()):
        try:
            got = run(feeds)
        except Exception as e:  # every refusal is a result
            text = _first_line(e)
            if k == 0 and refused(text):
                return {"status": "refused", "detail": text}
            return {"status": "error", "detail": (f"{label}: " if k else "") + text}
        if (found := output_difference(expected, got, case.output_names)) is not None:
            return {"status": "mismatch", "detail": f"{label}: {found}"}
    return {"status": "pass", "detail": ""}


def run_wasmhost(case: SkCase) -> dict:
    """One `wasmhost.InferenceSession` (one isolate) through the case's runs."""
    import wasmhost

    try:
        sess = wasmhost.InferenceSession(case.model, pool_size=1)
    except (wasmhost.InvalidModel, wasmhost.UnsupportedModel) as e:
        return {"status": "refused", "detail": _first_line(e)}
    except Exception as e:
        return {"status": "error", "detail": _first_line(e)}
    with sess:
        return _verdict(
            case, lambda feeds: sess.run(None, feeds), lambda text: text.startswith(_REFUSALS)
        )


def run_onnxruntime(case: SkCase) -> dict:
    from wasmhost.tools.bench import onnxruntime_session

    try:
        sess = onnxruntime_session(case.model)
    except Exception as e:
        return {"status": "refused", "detail": _first_line(e)}
    return _verdict(case, lambda feeds: sess.run(None, feeds), lambda _: False)


class TractWorker:
    """Native tract in a child process (`wasmhost.tools.differential.peer_worker`): a panic
    or a hang there is this case's `error`, not the end of the run."""

    def __init__(self) -> None:
        from wasmhost.tools.differential import peer_worker

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=peer_worker, args=(child, "tract", 2 << 30), daemon=True)
        self.proc.start()
        child.close()

    def ask(self, model: bytes, feeds: dict, seconds: float) -> tuple[str, Any]:
        self.conn.send((model, feeds))
        try:
            if self.conn.poll(seconds):
                return self.conn.recv()
            self.close()
            return "died", f"no answer in {seconds:.0f} s"
        except EOFError:
            self.proc.join(5)
            return "died", f"tract's worker died (exit code {self.proc.exitcode})"

    def close(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def run_tract(case: SkCase, worker: TractWorker, seconds: float = 120.0) -> dict:
    """Native tract, told each input's shape and type (a plan per run), through the
    case's runs. Its Python API takes no string tensors: such a case is `n/a`."""
    from wasmhost.tools.differential import _TRACT_TYPES

    if any(np.asarray(a).dtype.name not in _TRACT_TYPES for a in case.feeds.values()):
        return {"status": "n/a", "detail": "tract's Python API takes no string tensors"}

    def once(feeds: dict) -> list:
        status, answer = worker.ask(case.model, feeds, seconds)
        if status != "answered":
            raise RuntimeError(answer)
        return answer

    # A model tract refuses fails its first run; a refusal is any TractError raised then.
    result = _verdict(case, once, lambda text: "TractError" in text)
    if "in the public API" in result["detail"]:  # an output type its Python API lacks (TDim)
        result["status"] = "n/a"
    return result


def run_corpus(
    cases: list[SkCase], engines: list[str], progress: bool = True
) -> dict[str, dict[str, dict]]:
    """results[engine][case] = {status, detail, seconds} for every case and engine."""
    results: dict[str, dict[str, dict]] = {e: {} for e in engines}
    worker = TractWorker() if "tract" in engines else None
    try:
        for case in cases:
            for engine in engines:
                start = time.perf_counter()
                if case.convert_error is not None:
                    result = {"status": "convert-error", "detail": case.convert_error}
                elif case.expected is None:
                    result = {"status": "no-oracle", "detail": case.oracle_error or ""}
                elif engine == "wasmhost":
                    result = run_wasmhost(case)
                elif engine == "onnxruntime":
                    result = run_onnxruntime(case)
                else:
                    assert worker is not None
                    if not worker.proc.is_alive():
                        worker = TractWorker()
                    result = run_tract(case, worker)
                result["seconds"] = round(time.perf_counter() - start, 3)
                results[engine][case.name] = result
            if progress:
                row = ", ".join(f"{e} {results[e][case.name]['status']}" for e in engines)
                print(f"  {case.name}: {row}", file=sys.stderr, flush=True)
    finally:
        if worker is not None:
            worker.close()
    return results


# --- reports ----------------------------------------------------------------------------


def counts(results: dict, engine: str) -> Counter:
    return Counter(r["status"] for r in results[engine].values())


def mismatches(results: dict) -> list[tuple[str, str, str]]:
    """Every wrong answer: (engine, case, detail)."""
    return [
        (e, name, r["detail"])
        for e, by_case in results.items()
        for name, r in by_case.items()
        if r["status"] == "mismatch"
    ]


def table_rows(cases: list[SkCase], engines: list[str], results: dict) -> list[list[str]]:
    return [[c.estimator, c.name, *(results[e][c.name]["status"] for e in engines)] for c in cases]


def print_report(cases: list[SkCase], engines: list[str], results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="scikit-learn corpus")
    for col in ("estimator", "case", *engines):
        table.add_column(col)
    styles = {"pass": "green", "mismatch": "bold red", "refused": "yellow", "error": "red"}
    for row in table_rows(cases, engines, results):
        table.add_row(*row[:2], *(f"[{styles.get(s, '')}]{s}" if s in styles else s
                                  for s in row[2:]))  # fmt: skip
    console.print(table)
    for e in engines:
        detail = ", ".join(f"{s} {n}" for s, n in sorted(counts(results, e).items()))
        print(f"{e}: {detail}")
    for e, name, detail in mismatches(results):
        print(f"MISMATCH (a wrong answer) {e}: {name}: {detail}")
    for e in engines:
        for name, r in results[e].items():
            if r["status"] not in ("pass", "mismatch"):
                print(f"{e} {r['status']}: {name}: {r['detail']}")


def passes(results: dict, engine: str = "wasmhost") -> list[str]:
    return sorted(n for n, r in results[engine].items() if r["status"] == "pass")


def check_expected(path: Path, results: dict) -> int:
    """1 when wasmhost gave a wrong answer, or its passes are not the ones `path` lists
    (a lost pass, or a new one the list should gain); else 0."""
    expected = sorted(set(path.read_text().split()))
    mine = results["wasmhost"]
    got = set(passes(results))
    lost = [n for n in expected if n in mine and n not in got]
    new = sorted(got - set(expected))
    wrong = [(n, r["detail"]) for n, r in sorted(mine.items()) if r["status"] == "mismatch"]
    for n, detail in wrong:
        print(f"MISMATCH {n}: wasmhost answered wrong: {detail}")
    for n in lost:
        print(f"LOST  {n}: {mine[n]['status']} {mine[n]['detail']}")
    for n in new:
        print(f"NEW   {n} passes now: add it to {path}")
    checked = sum(n in mine for n in expected)
    print(
        f"{checked} expected passes checked, {len(lost)} lost, {len(new)} new, "
        f"{len(wrong)} mismatches"
    )
    return 1 if lost or new or wrong else 0


BEGIN = "<!-- scikit-learn corpus below is written by scripts/conformance.py --suites sklearn -->"
END = "<!-- end of the scikit-learn corpus -->"


def docs_section(command: str, cases: list[SkCase], engines: list[str], results: dict) -> str:
    from importlib import metadata

    from wasmhost.runtime.engine import module_path

    versions = ", ".join(
        f"{d} {metadata.version(d)}" for d in ("scikit-learn", "skl2onnx", "onnxruntime", "tract")
    )
    guest = hashlib.sha256(module_path().read_bytes()).hexdigest()[:12]
    header = ["estimator", "case", *engines]
    lines = [
        BEGIN,
        "",
        "### Figures",
        "",
        f"Command: `{command}` ({len(cases)} cases). Versions: {versions}; the guest "
        f"module's sha256 begins {guest}; target opset {TARGET_OPSET}.",
        "",
        "| engine | " + " | ".join(STATUSES) + " |",
        "|" + "---|" * (len(STATUSES) + 1),
    ]
    for e in engines:
        c = counts(results, e)
        lines.append(f"| {e} | " + " | ".join(str(c.get(s, 0)) for s in STATUSES) + " |")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(cases, engines, results)]
    wrong = mismatches(results)
    lines += ["", "Wrong answers (`mismatch`):", ""]
    lines += [f"- {e}, `{n}`: {d}" for e, n, d in wrong] or ["None."]
    refusals = [(n, r["status"], r["detail"]) for n, r in results.get("wasmhost", {}).items()
                if r["status"] not in ("pass", "mismatch")]  # fmt: skip
    if refusals:
        lines += ["", "Why wasmhost does not run the others:", ""]
        lines += [f"- `{n}` ({s}): {d.replace('|', '/')}" for n, s, d in refusals]
    lines += ["", END]
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    """Replaces the corpus section of `path` (between BEGIN and END); the first time, puts
    it before the node suite's figures."""
    text = path.read_text()
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        text = before + section + rest.split(END, 1)[1]
    else:
        marker = "<!-- figures below are written by scripts/conformance.py -->"
        before, sep, after = text.partition(marker)
        text = before + section + "\n\n" + sep + after if sep else text + "\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    add_arguments(parser)
    return run(parser.parse_args(argv), argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--only", help="regular expression on case names")
    parser.add_argument("--docs", type=Path, help="write the corpus table into this markdown")
    parser.add_argument("--check", type=Path, help="fail on a wrong answer or other passes")
    parser.add_argument("--write-expected", type=Path, help="write wasmhost's passes")
    parser.add_argument("--results", type=Path, help="write every result as JSON")


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    engines = [e for e in args.engines.split(",") if e]
    if bad := set(engines) - set(ENGINES):
        raise SystemExit(f"unknown engines {sorted(bad)}; choose from {', '.join(ENGINES)}")
    if (args.check or args.write_expected) and "wasmhost" not in engines:
        raise SystemExit("--check and --write-expected need the wasmhost engine")
    start = time.perf_counter()
    cases = build_corpus(args.only)
    built = time.perf_counter() - start
    results = run_corpus(cases, engines)
    print_report(cases, engines, results)
    took = time.perf_counter() - start - built
    print(f"{len(cases)} cases: built in {built:.1f} s, run in {took:.1f} s")
    if getattr(args, "results", None):
        args.results.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.docs:
        words = argv if argv is not None else sys.argv[1:]
        command = "python scripts/conformance.py " + " ".join(words)
        write_docs(args.docs, docs_section(command.strip(), cases, engines, results))
    if args.write_expected:
        args.write_expected.write_text("".join(f"{n}\n" for n in passes(results)))
    if args.check:
        return check_expected(args.check, results)
    return 1 if any(e == "wasmhost" for e, _, _ in mismatches(results)) else 0


if __name__ == "__main__":
    sys.exit(main())
