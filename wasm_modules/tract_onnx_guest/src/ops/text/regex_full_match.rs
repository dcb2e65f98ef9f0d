//! ONNX `RegexFullMatch` (opset 20): whether each string matches the pattern whole (RE2's
//! syntax and semantics, see `crate::text::re2`).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{strings, strings_in, tensor, Attrs, Parsed, TextOp};
use crate::text::RegexFullMatch;

pub fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    let pattern = a.string("pattern")?.ok_or_else(|| a.invalid("attribute pattern is required"))?;
    let kernel = RegexFullMatch::new(&pattern).map_err(|e| a.invalid(e))?;
    TextOp {
        name: "RegexFullMatch",
        what: a.what.clone(),
        inputs: 1,
        outputs: 1,
        types: strings_in("RegexFullMatch", &[DatumType::Bool]),
        shapes: Arc::new(|shapes| Ok(tvec![shapes[0].clone()])),
        eval: Arc::new(move |inputs| {
            let x = &inputs[0];
            Ok(tvec![tensor(kernel.run(strings(x)?), x.shape())?])
        }),
    }
    .parsed()
}
