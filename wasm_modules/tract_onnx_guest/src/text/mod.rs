//! The computations of the text operators (ONNX `StringNormalizer`, `TfIdfVectorizer`,
//! `StringConcat`, `StringSplit`, `RegexFullMatch`; `com.microsoft` `Tokenizer`; ONNX-ML
//! `LabelEncoder`, `CategoryMapper`, `OneHotEncoder` over strings), on plain slices and
//! without tract, so that their unit tests run natively in seconds.
//!
//! Each function computes what onnxruntime's CPU kernel computes (checked against
//! onnxruntime 1.32: the tests' expected values come from running it). Tensors are a
//! row-major slice and a shape (`&[usize]`). Nothing here panics on any input: the
//! attributes and inputs are untrusted, so inconsistent attributes, bad shapes and
//! patterns that are invalid or too big are `Err` with a message naming what is wrong,
//! and an output is never larger than [`MAX_OUTPUT_ELEMENTS`].

pub mod labels;
pub mod normalize;
pub mod re2;
pub mod strings;
pub mod tfidf;
pub mod tokenize;

pub use labels::{label_encode_v1_int_to_string, CategoryMapper, LabelEncoder, LabelKey, OneHotEncoder};
pub use normalize::{CaseChange, StringNormalizer};
pub use re2::{Pattern, PATTERN_SIZE_LIMIT};
pub use strings::{regex_full_match, split_one, string_concat, string_split, RegexFullMatch};
pub use tfidf::{TfIdf, TfIdfMode, MAX_TABLE_ITEMS};
pub use tokenize::Tokenizer;

/// The most elements an output of these kernels may have (2^28), so that a hostile
/// model's attributes times its input cannot exhaust the guest's memory.
pub const MAX_OUTPUT_ELEMENTS: usize = 1 << 28;

/// The number of elements of `dims`, an error if it overflows or exceeds
/// [`MAX_OUTPUT_ELEMENTS`].
pub fn output_len(dims: &[usize]) -> Result<usize, String> {
    let n = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("output shape {dims:?} overflows"))?;
    if n > MAX_OUTPUT_ELEMENTS {
        return Err(format!("output shape {dims:?} has {n} elements, more than the limit of {MAX_OUTPUT_ELEMENTS}"));
    }
    Ok(n)
}

/// Checks that `len` elements fill `shape`.
pub(crate) fn check_shape(len: usize, shape: &[usize]) -> Result<(), String> {
    let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if n != Some(len) {
        return Err(format!("{len} elements do not fill shape {shape:?}"));
    }
    Ok(())
}
