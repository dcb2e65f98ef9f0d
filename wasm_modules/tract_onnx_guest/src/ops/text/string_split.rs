//! ONNX `StringSplit` (opset 20): each string split by `delimiter` (by runs of
//! whitespace without one), at most `maxsplit` times; `Y` padded with empty strings to
//! the most parts, `Z` the count of each.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{run_error, strings, strings_in, tensor, Attrs, Parsed, TextOp};
use crate::text::string_split;

pub fn parse(ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    let delimiter = a.string("delimiter")?.filter(|d| !d.is_empty());
    let maxsplit = a.get("maxsplit").map(|v| v.i);
    let parts = ctx.template.symbols.new_with_prefix("parts");
    TextOp {
        name: "StringSplit",
        what: a.what.clone(),
        inputs: 1,
        outputs: 2,
        types: strings_in("StringSplit", &[DatumType::String, DatumType::I64]),
        shapes: Arc::new(move |shapes| {
            if let Some(shape) = super::empty(&shapes[0]) {
                let ((_, y), (_, z)) = string_split(&[], &shape, None, None).map_err(run_error)?;
                let dims = |s: Vec<usize>| s.iter().map(|d| d.to_dim()).collect();
                return Ok(tvec![dims(y), dims(z)]);
            }
            let mut y = shapes[0].clone();
            y.push(parts.to_dim());
            Ok(tvec![y, shapes[0].clone()])
        }),
        eval: Arc::new(move |inputs| {
            let x = &inputs[0];
            let ((y, y_shape), (z, z_shape)) =
                string_split(strings(x)?, x.shape(), delimiter.as_deref(), maxsplit).map_err(run_error)?;
            Ok(tvec![tensor(y, &y_shape)?, tensor(z, &z_shape)?])
        }),
    }
    .parsed()
}
