"""breast-cancer-anomaly: PCA reconstruction error, trained on benign breast-cancer samples only.

Needs scikit-learn, onnx and onnxruntime (the dev extra). Standard ONNX operators only
(Sub, Div, MatMul, Mul, ReduceMean, Greater), written by hand with onnx.helper: an
IsolationForest would need ai.onnx.ml's TreeEnsembleRegressor, which the sandbox does not
cover yet.

The detector learns what benign looks like and nothing else: the features are standardised
with the benign training rows' mean and standard deviation, a PCA keeps the fewest
components that explain 90% of their variance, and a sample's score is the mean squared
residual of its standardised features off that subspace. The threshold is the 95th
percentile of the benign training rows' scores: by construction about 5% of benign-like
samples are flagged. The malignant samples are used for evaluation only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import PRODUCER, describe

NAME = "breast-cancer-anomaly"
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17: older readers take it too
VARIANCE = 0.90  # the PCA keeps the fewest components that explain this much
PERCENTILE = 95  # the threshold: this percentile of the benign training scores


def build(directory: Path) -> dict[str, Any]:
    """Fits the detector, exports it and its reference case into directory."""
    import numpy as np
    import onnx
    import onnxruntime
    import sklearn
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.datasets import load_breast_cancer
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    assert list(data.target_names) == ["malignant", "benign"]
    x = data.data  # float64: the statistics are fitted in float64, the model is float32
    benign, malignant = x[data.target == 1], x[data.target == 0]
    train, benign_test = train_test_split(benign, test_size=0.3, random_state=0)

    mean, scale = train.mean(axis=0), train.std(axis=0)
    z = (train - mean) / scale
    explained = np.cumsum(PCA().fit(z).explained_variance_ratio_)
    k = int(np.searchsorted(explained, VARIANCE) + 1)
    pca = PCA(n_components=k).fit(z)
    # residual = (z - mu) - (z - mu) V.T V = ((x - center) / scale) @ (I - V.T V)
    center = mean + pca.mean_ * scale
    project_out = np.eye(x.shape[1]) - pca.components_.T @ pca.components_

    def reference_scores(rows):
        """The score in float64 by scikit-learn, to check the exported graph against."""
        zr = (rows - mean) / scale
        return ((zr - pca.inverse_transform(pca.transform(zr))) ** 2).mean(axis=1)

    def export(threshold: float) -> bytes:
        graph = helper.make_graph(
            nodes=[
                helper.make_node("Sub", ["features", "center"], ["centered"]),
                helper.make_node("Div", ["centered", "scale"], ["standardised"]),
                helper.make_node("MatMul", ["standardised", "project_out"], ["residual"]),
                helper.make_node("Mul", ["residual", "residual"], ["squared"]),
                helper.make_node("ReduceMean", ["squared"], ["score"], axes=[1], keepdims=0),
                helper.make_node("Greater", ["score", "threshold"], ["anomaly"]),
            ],
            name="breast_cancer_anomaly",
            inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 30])],
            outputs=[
                helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
                helper.make_tensor_value_info("anomaly", TensorProto.BOOL, ["batch"]),
            ],
            initializer=[
                numpy_helper.from_array(center.astype(np.float32), "center"),
                numpy_helper.from_array(scale.astype(np.float32), "scale"),
                numpy_helper.from_array(project_out.astype(np.float32), "project_out"),
                numpy_helper.from_array(np.array(threshold, dtype=np.float32), "threshold"),
            ],
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name=PRODUCER[0],
            producer_version=PRODUCER[1],
            doc_string="Anomaly score of a breast mass from 30 features of a fine needle "
            f"aspirate's image: PCA ({k} components) reconstruction error learned on benign "
            f"samples only (scikit-learn {sklearn.__version__}).",
        )
        onnx.checker.check_model(model, full_check=True)
        return model.SerializeToString(deterministic=True)

    def run(model: bytes, rows):
        ort = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        return ort.run(None, {"features": rows.astype(np.float32)})

    # The threshold is a percentile of the scores the exported graph itself gives the
    # benign training rows (the threshold input does not change the score).
    train_scores = run(export(0.0), train)[0]
    threshold = float(np.float32(np.percentile(train_scores.astype(np.float64), PERCENTILE)))
    model = export(threshold)
    path = directory / f"{NAME}.onnx"
    path.write_bytes(model)

    scores, flagged = run(model, x)
    assert np.allclose(scores, reference_scores(x), rtol=1e-3, atol=1e-5), "scores differ"
    assert (flagged == (scores > np.float32(threshold))).all()
    test_rows = np.concatenate([benign_test, malignant])
    truth = np.r_[np.zeros(len(benign_test), bool), np.ones(len(malignant), bool)]
    test_scores, test_flagged = run(model, test_rows)
    true_positives = int((test_flagged & truth).sum())
    auc = roc_auc_score(truth, test_scores)
    precision = true_positives / int(test_flagged.sum())
    recall = true_positives / int(truth.sum())
    false_positive_rate = int((test_flagged & ~truth).sum()) / int((~truth).sum())

    # Reference case: six held-out benign rows, then six malignant ones, in dataset order.
    features = np.concatenate([benign_test[:6], malignant[:6]]).astype(np.float32)
    ref_scores, ref_flagged = run(model, features)
    reference = directory / f"{NAME}.reference.npz"
    # np.savez is deterministic: ZipFile.open(name, "w") stamps members 1980-01-01.
    np.savez(reference, features=features, score=ref_scores, anomaly=ref_flagged)

    return {
        "name": NAME,
        "description": "Anomaly score of a breast mass from 30 features of a digitised fine "
        "needle aspirate: the reconstruction error of a PCA learned on benign samples only, "
        "and whether it exceeds a threshold (malignant masses score high).",
        "task": "tabular-anomaly-detection",
        "license": "the data: UCI Breast Cancer Wisconsin (Diagnostic) (CC BY 4.0) as shipped "
        "in scikit-learn (BSD-3-Clause); the model: same as wasmhost",
        "source": "fitted by scripts/catalog_builders/breast_cancer_anomaly.py on the benign "
        f"rows of scikit-learn's bundled breast_cancer dataset (sklearn {sklearn.__version__})",
        "file": path.name,
        **describe(path),
        "inputs": [
            {
                "name": "features",
                "dtype": "float32",
                "shape": ["batch", 30],
                "layout": ", ".join(data.feature_names) + " (scikit-learn's feature_names, "
                "in that order)",
                "preprocessing": "none: the raw values as load_breast_cancer() gives them (the "
                "standardisation, with the benign training rows' mean and standard deviation, "
                "is inside the model)",
            }
        ],
        "outputs": [
            {
                "name": "score",
                "dtype": "float32",
                "shape": ["batch"],
                "meaning": "mean squared residual of the standardised features off the "
                f"benign samples' {k}-component PCA subspace: higher is less benign-like",
            },
            {
                "name": "anomaly",
                "dtype": "bool",
                "shape": ["batch"],
                "meaning": f"score > {threshold:.6g} (the {PERCENTILE}th percentile of the "
                "benign training rows' scores): labels[1] if true",
            },
        ],
        "labels": ["normal", "anomaly"],
        "reference": {"file": reference.name, **describe(reference)},
        "metrics": {
            "roc_auc": round(float(auc), 4),
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "false_positive_rate": round(false_positive_rate, 4),
            "evaluated_on": f"{len(benign_test)} held-out benign rows (30% of the "
            f"{len(benign)}, random_state=0) against all {len(malignant)} malignant rows, "
            "run by onnxruntime; malignant is the positive class, precision and recall at "
            f"the threshold (malignant is {truth.mean():.0%} of this test set, "
            f"{len(malignant) / len(x):.0%} of the data)",
            "threshold": threshold,
            "threshold_rule": f"numpy's percentile {PERCENTILE} (linear interpolation) of the "
            f"scores of the {len(train)} benign training rows, rounded to float32",
            "components": k,
            "component_rule": f"the fewest principal components explaining >= {VARIANCE:.0%} "
            f"of the standardised benign training rows' variance "
            f"({explained[k - 1]:.1%} with {k})",
        },
    }
