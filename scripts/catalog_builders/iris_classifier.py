"""iris-classifier: multinomial logistic regression on scikit-learn's bundled iris.

Needs scikit-learn, onnx and onnxruntime (the dev extra). The model uses standard ONNX
operators only (Gemm, Softmax, ArgMax), written by hand with onnx.helper, not skl2onnx's
ai.onnx.ml graph: the sandbox's coverage of ai.onnx.ml (Scaler, LinearClassifier, ZipMap)
is a separate open issue, and a catalog entry must run there as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import PRODUCER, describe

NAME = "iris-classifier"
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17: older readers take it too


def build(directory: Path) -> dict[str, Any]:
    """Trains the model, exports it and its reference case into directory."""
    import numpy as np
    import onnx
    import onnxruntime
    import sklearn
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    iris = load_iris()
    x = iris.data.astype(np.float32)
    y = iris.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    # lbfgs on three classes is multinomial (scikit-learn >= 1.5 has no multi_class).
    clf = LogisticRegression(max_iter=1000, random_state=0).fit(x_train, y_train)
    logits = clf.decision_function(x_test)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    assert np.allclose(softmax, clf.predict_proba(x_test)), "not multinomial"

    graph = helper.make_graph(
        nodes=[
            helper.make_node("Gemm", ["features", "coef", "intercept"], ["logits"], transB=1),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
        ],
        name="iris_classifier",
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        outputs=[
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=[
            numpy_helper.from_array(clf.coef_.astype(np.float32), "coef"),
            numpy_helper.from_array(clf.intercept_.astype(np.float32), "intercept"),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER[0],
        producer_version=PRODUCER[1],
        doc_string="Iris species from sepal and petal sizes in cm (scikit-learn "
        f"{sklearn.__version__} LogisticRegression).",
    )
    onnx.checker.check_model(model, full_check=True)
    path = directory / "iris-classifier.onnx"
    path.write_bytes(model.SerializeToString(deterministic=True))

    ort = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs, labels = ort.run(None, {"features": x})
    assert (labels == clf.predict(x)).all(), "the ONNX labels differ from sklearn's"
    assert np.allclose(probs, clf.predict_proba(x), atol=1e-5), "probabilities differ"
    accuracy = float((ort.run(["label"], {"features": x_test})[0] == y_test).mean())

    # Reference case: the first four held-out rows of each class, in class order.
    rows = np.concatenate([np.flatnonzero(y_test == c)[:4] for c in range(3)])
    features = x_test[rows]
    ref_probs, ref_labels = ort.run(None, {"features": features})
    reference = directory / "iris-classifier.reference.npz"
    # np.savez is deterministic: ZipFile.open(name, "w") stamps members 1980-01-01.
    np.savez(reference, features=features, probabilities=ref_probs, label=ref_labels)

    return {
        "name": NAME,
        "description": "Iris species (setosa, versicolor, virginica) from four flower "
        "measurements in cm, by multinomial logistic regression.",
        "task": "tabular-classification",
        "license": "BSD-3-Clause (the iris data as shipped in scikit-learn); "
        "the model: same as wasmhost",
        "source": "trained by scripts/build_catalog.py on scikit-learn's bundled iris "
        f"dataset (sklearn {sklearn.__version__})",
        "file": path.name,
        **describe(path),
        "inputs": [
            {
                "name": "features",
                "dtype": "float32",
                "shape": ["batch", 4],
                "layout": "sepal length, sepal width, petal length, petal width (cm)",
                "preprocessing": "none: raw centimetres",
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
                "meaning": "index into labels",
            },
        ],
        "labels": [str(name) for name in iris.target_names],
        "reference": {"file": reference.name, **describe(reference)},
        "metrics": {
            "accuracy": round(accuracy, 4),
            "evaluated_on": f"{len(y_test)} held-out rows of the 150 (a stratified 80/20 "
            f"split, random_state=0; trained on the other {len(y_train)}), run by onnxruntime",
        },
    }
