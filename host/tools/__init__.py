"""Tools over the runtime: fuzzing (and its differential checks), benchmarks, and the
onnx backend interface."""
