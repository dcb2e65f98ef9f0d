//! ONNX-ML `CategoryMapper`: strings to int64 (`default_int64`, -1 by default) or int64
//! to strings (`default_string`, `"_Unused"` by default), the direction given by the
//! input's type. tract-onnx 0.23.9 wants exactly one default and refuses the models that
//! give both or neither, which ONNX allows.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{plain, strings, tensor, Attrs, Parsed, TextOp};
use crate::text::CategoryMapper;

pub fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    let cats = a.strings("cats_strings")?.unwrap_or_default();
    let kernel = Arc::new(CategoryMapper::new(&cats, a.ints("cats_int64s")).map_err(|e| a.invalid(e))?);
    let default_int = a.int("default_int64", -1);
    let default_string = a.string("default_string")?.unwrap_or_else(|| "_Unused".into());
    let what = a.what.clone();
    TextOp {
        name: "CategoryMapper",
        what: a.what.clone(),
        inputs: 1,
        outputs: 1,
        types: Arc::new(move |types| match types[0] {
            DatumType::String => Ok(tvec![DatumType::I64]),
            DatumType::I64 => Ok(tvec![DatumType::String]),
            dt => bail!("{what}: an input of {dt:?} (strings or int64 expected)"),
        }),
        shapes: Arc::new(|shapes| Ok(tvec![shapes[0].clone()])),
        eval: Arc::new(move |inputs| {
            let x = &inputs[0];
            Ok(tvec![match x.datum_type() {
                DatumType::String => tensor(kernel.to_int64(strings(x)?, default_int), x.shape())?,
                _ => tensor(kernel.to_strings(plain::<i64>(x)?, &default_string), x.shape())?,
            }])
        }),
    }
    .parsed()
}
