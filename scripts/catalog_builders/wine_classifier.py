"""wine-classifier: standardisation + multinomial logistic regression on sklearn's bundled wine.

Needs scikit-learn, onnx and onnxruntime (the dev extra). Standard ONNX operators only
(Gemm, Softmax, ArgMax), written by hand with onnx.helper: the StandardScaler is folded
into the Gemm's weights and bias (coef / scale, intercept - coef . mean / scale, in float64),
so the model takes the raw measurements and needs no ai.onnx.ml Scaler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import PRODUCER, describe

NAME = "wine-classifier"
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17: older readers take it too


def build(directory: Path) -> dict[str, Any]:
    """Trains the model, exports it and its reference case into directory."""
    import numpy as np
    import onnx
    import onnxruntime
    import sklearn
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    wine = load_wine()
    x = wine.data.astype(np.float32)
    y = wine.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )

    def pipeline():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))

    # The held-out split is small (36 rows) and easy: a 5-fold cross-validation on all 178
    # rows says more about the method.
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    cv_accuracy = cross_val_score(pipeline(), x, y, cv=folds).mean()
    clf = pipeline().fit(x_train, y_train)
    scaler, logistic = clf.named_steps.values()

    # logits = ((x - mean) / scale) @ coef.T + intercept = x @ (coef / scale).T + bias
    coef = logistic.coef_ / scaler.scale_
    bias = logistic.intercept_ - coef @ scaler.mean_
    graph = helper.make_graph(
        nodes=[
            helper.make_node("Gemm", ["features", "coef", "bias"], ["logits"], transB=1),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
        ],
        name="wine_classifier",
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 13])],
        outputs=[
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=[
            numpy_helper.from_array(coef.astype(np.float32), "coef"),
            numpy_helper.from_array(bias.astype(np.float32), "bias"),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER[0],
        producer_version=PRODUCER[1],
        doc_string="Wine cultivar from 13 chemical measurements (scikit-learn "
        f"{sklearn.__version__} StandardScaler + LogisticRegression, folded into one Gemm).",
    )
    onnx.checker.check_model(model, full_check=True)
    path = directory / f"{NAME}.onnx"
    path.write_bytes(model.SerializeToString(deterministic=True))

    ort = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs, labels = ort.run(None, {"features": x})
    assert (labels == clf.predict(x)).all(), "the ONNX labels differ from sklearn's"
    assert np.allclose(probs, clf.predict_proba(x), atol=1e-4), "probabilities differ"
    accuracy = float((ort.run(["label"], {"features": x_test})[0] == y_test).mean())

    # Reference case: the first four held-out rows of each class, in class order.
    rows = np.concatenate([np.flatnonzero(y_test == c)[:4] for c in range(3)])
    features = x_test[rows]
    ref_probs, ref_labels = ort.run(None, {"features": features})
    reference = directory / f"{NAME}.reference.npz"
    # np.savez is deterministic: ZipFile.open(name, "w") stamps members 1980-01-01.
    np.savez(reference, features=features, probabilities=ref_probs, label=ref_labels)

    return {
        "name": NAME,
        "description": "Wine cultivar (one of three grown in the same region of Italy) from "
        "13 results of a chemical analysis, by standardisation and multinomial logistic "
        "regression.",
        "task": "tabular-classification",
        "license": "the data: UCI Wine (CC BY 4.0) as shipped in scikit-learn (BSD-3-Clause); "
        "the model: same as wasmhost",
        "source": "trained by scripts/catalog_builders/wine_classifier.py on scikit-learn's "
        f"bundled wine dataset (sklearn {sklearn.__version__})",
        "file": path.name,
        **describe(path),
        "inputs": [
            {
                "name": "features",
                "dtype": "float32",
                "shape": ["batch", 13],
                "layout": ", ".join(wine.feature_names) + " (scikit-learn's feature_names, "
                "in that order)",
                "preprocessing": "none: the raw measurements as load_wine() gives them "
                "(the standardisation is inside the model)",
            }
        ],
        "outputs": [
            {
                "name": "probabilities",
                "dtype": "float32",
                "shape": ["batch", 3],
                "meaning": "probability of each class, in the order of labels (rows sum to 1)",
            },
            {
                "name": "label",
                "dtype": "int64",
                "shape": ["batch"],
                "meaning": "index into labels (the cultivar: the data names them by number only)",
            },
        ],
        "labels": [str(name) for name in wine.target_names],
        "reference": {"file": reference.name, **describe(reference)},
        "metrics": {
            "accuracy": round(accuracy, 4),
            "evaluated_on": f"{len(y_test)} held-out rows of the {len(y)} (a stratified 80/20 "
            f"split, random_state=0; trained on the other {len(y_train)}), run by onnxruntime",
            "cv_accuracy": round(float(cv_accuracy), 4),
            "cv": f"mean accuracy of the same pipeline over a stratified 5-fold "
            f"cross-validation of all {len(y)} rows (shuffled, random_state=0), by scikit-learn",
        },
    }
