//! Errors of ops of our own that say which kind of refusal the host gets, wherever
//! they end up in tract's chain of errors.

#[derive(Debug)]
pub enum ModelError {
    /// The model's attributes contradict each other or its inputs: `invalid_model`.
    Inconsistent(String),
    /// Valid, but the guest would answer it differently from onnxruntime: `unsupported_model`.
    Unsupported(String),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::Inconsistent(m) | ModelError::Unsupported(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ModelError {}

/// The `ModelError` somewhere in `e`'s chain, if any.
pub fn find(e: &anyhow::Error) -> Option<&ModelError> {
    e.chain().find_map(|c| c.downcast_ref::<ModelError>())
}
