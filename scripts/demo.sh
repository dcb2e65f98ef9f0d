#!/usr/bin/env bash
# The demo: run SqueezeNet (shipped inside the onnx package) on a random image
# in a sandboxed isolate, from the shell, and compare with onnxruntime.
set -euo pipefail
py=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

model=$("$py" -c 'import onnx, pathlib; print(pathlib.Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx")')
"$py" -c 'import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32))' "$work/x.npy"

echo "\$ wasmhost inspect light_squeezenet.onnx"
wasmhost inspect "$model"
echo
echo "\$ wasmhost run light_squeezenet.onnx x.npy --output out.npz --stats"
wasmhost run "$model" "$work/x.npy" --output "$work/out.npz" --stats
echo "(the light_* models carry constant weights, so every class scores alike; what matters is the match)"
"$py" - "$model" "$work/x.npy" "$work/out.npz" <<'PY'
import sys
import numpy as np
import onnxruntime as ort
model, x, out = sys.argv[1:]
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
ref = sess.run(None, {sess.get_inputs()[0].name: np.load(x)})
got = np.load(out)
for meta, r in zip(sess.get_outputs(), ref):
    diff = float(np.max(np.abs(got[meta.name] - r)))
    print(f"{meta.name}: max |wasmhost - onnxruntime| = {diff:.2e}")
PY
