//! ONNX `StringNormalizer`: case change and stopword removal over `[C]` or `[1, C]`
//! (`locale` is not read: case changes are Unicode's simple mappings, see
//! `crate::text::normalize`).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{run_error, strings, strings_in, tensor, Attrs, Parsed, TextOp};
use crate::text::StringNormalizer;

pub fn parse(ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    let action = a.string("case_change_action")?.unwrap_or_else(|| "NONE".into());
    let stopwords = a.strings("stopwords")?.unwrap_or_default();
    let kernel =
        StringNormalizer::new(&action, a.int("is_case_sensitive", 0), &stopwords).map_err(|e| a.invalid(e))?;
    let kept = ctx.template.symbols.new_with_prefix("words");
    // Without stopwords every string is kept: the output has the input's shape, which
    // tract can then compute with (a symbol per op would multiply into shapes it cannot).
    let keeps_all = stopwords.is_empty();
    let what = a.what.clone();
    TextOp {
        name: "StringNormalizer",
        what: a.what.clone(),
        inputs: 1,
        outputs: 1,
        types: strings_in("StringNormalizer", &[DatumType::String]),
        shapes: Arc::new(move |shapes| {
            let kept = if keeps_all { shapes[0].last().cloned().unwrap_or_else(|| kept.to_dim()) } else { kept.to_dim() };
            match shapes[0].as_slice() {
                [_] => Ok(tvec![tvec![kept]]),
                [one, _] if one.to_i64().map_or(true, |d| d == 1) => Ok(tvec![tvec![1.to_dim(), kept]]),
                other => bail!("{what}: its input must be [C] or [1, C], not {other:?}"),
            }
        }),
        eval: Arc::new(move |inputs| {
            let x = &inputs[0];
            let (y, shape) = kernel.run(strings(x)?, x.shape()).map_err(run_error)?;
            Ok(tvec![tensor(y, &shape)?])
        }),
    }
    .parsed()
}
