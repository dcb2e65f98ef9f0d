//! The guest's own operators, and its guards on tract's, registered in tract's ONNX
//! operator register under the ONNX names they take over, the way tract-onnx's op
//! modules register theirs. One file per operator; `guard` and `slices` are what
//! they share.

mod guard;
mod if_fold;
mod lrn;
mod maxpool;
mod ml_linear;
mod ml_numeric;
mod ml_tree;
mod rnn_shapes;
mod slices;
mod string_labels;
mod svm;
mod text;
mod tree_ensemble;
mod tree_regressor;

/// Registers every op of ours in `onnx`, each over tract's builder for its name.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    lrn::register(onnx);
    maxpool::register(onnx);
    if_fold::register(onnx);
    ml_linear::register(onnx);
    ml_numeric::register(onnx);
    ml_tree::register(onnx);
    rnn_shapes::register(onnx);
    tree_regressor::register(onnx);
    svm::register(onnx);
    tree_ensemble::register(onnx);
    text::register(onnx);
}
