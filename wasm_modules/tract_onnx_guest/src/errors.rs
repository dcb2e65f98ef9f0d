//! tract's errors as the host sees them: the refusals ops of our own choose
//! ([`ModelError`], wherever they end up in tract's chain of errors), and tract's
//! chains of causes cut to a readable length.

use crate::wire::GuestError;

/// Error chains from tract can be long (they embed node dumps): the host gets the start.
const MAX_MESSAGE: usize = 4000;

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

/// The refusal an op of our own chose, if one is in `e`'s chain, as the guest error it means.
pub fn chosen_refusal(e: &anyhow::Error) -> Option<GuestError> {
    Some(match e.chain().find_map(|c| c.downcast_ref::<ModelError>())? {
        ModelError::Inconsistent(m) => GuestError::invalid_model(m.clone()),
        ModelError::Unsupported(m) => GuestError::unsupported_model(m.clone()),
    })
}

/// `e` and its causes in one line, cut after `MAX_MESSAGE` bytes.
pub fn chain(e: &anyhow::Error) -> String {
    let mut s = format!("{e:#}");
    if s.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" [...]");
    }
    s
}
