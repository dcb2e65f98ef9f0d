//! `com.microsoft` `Tokenizer`, as skl2onnx emits it for `TfidfVectorizer` and
//! `CountVectorizer`: `[N]` or `[N, C]` strings to `[N, T]` or `[N, C, T]` tokens, padded.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{run_error, strings, strings_in, tensor, Attrs, Parsed, TextOp};
use crate::text::Tokenizer;

pub fn parse(ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    let pad_value = a.string("pad_value")?.ok_or_else(|| a.invalid("attribute pad_value is required"))?;
    let mincharnum = a.get("mincharnum").map(|v| v.i).ok_or_else(|| a.invalid("attribute mincharnum is required"))?;
    let separators = a.strings("separators")?;
    let tokenexp = a.string("tokenexp")?;
    let kernel = Arc::new(Tokenizer::new(a.int("mark", 0), mincharnum, &pad_value, separators.as_deref(), tokenexp.as_deref())
        .map_err(|e| a.invalid(e))?);
    let empty_kernel = kernel.clone();
    let tokens = ctx.template.symbols.new_with_prefix("tokens");
    let what = a.what.clone();
    TextOp {
        name: "Tokenizer",
        what: a.what.clone(),
        inputs: 1,
        outputs: 1,
        types: strings_in("Tokenizer", &[DatumType::String]),
        shapes: Arc::new(move |shapes| {
            let x = &shapes[0];
            ensure!(matches!(x.len(), 1 | 2), "{what}: its input must be [N] or [N, C], not {x:?}");
            if let Some(shape) = super::empty(x) {
                // No strings, no tokens: onnxruntime's shape for that (see the kernel).
                return Ok(tvec![empty_kernel.run(&[], &shape).map_err(run_error)?.1.iter().map(|d| d.to_dim()).collect()]);
            }
            let mut y = x.clone();
            y.push(tokens.to_dim());
            Ok(tvec![y])
        }),
        eval: Arc::new(move |inputs| {
            let x = &inputs[0];
            let (y, shape) = kernel.run(strings(x)?, x.shape()).map_err(run_error)?;
            Ok(tvec![tensor(y, &shape)?])
        }),
    }
    .parsed()
}
