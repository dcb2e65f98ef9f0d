//! ONNX `StringConcat` (opset 20): `X + Y` elementwise, with numpy's broadcasting.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::broadcast::multi_broadcast;
use tract_onnx::tract_hir::internal::*;

use super::{run_error, strings_in, tensor, Attrs, Parsed, TextOp};
use crate::text::string_concat;

pub fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    TextOp {
        name: "StringConcat",
        what: a.what.clone(),
        inputs: 2,
        outputs: 1,
        types: strings_in("StringConcat", &[DatumType::String]),
        shapes: Arc::new(|shapes| Ok(tvec![multi_broadcast(&[&shapes[0], &shapes[1]])?])),
        eval: Arc::new(|inputs| {
            let shape = multi_broadcast(&[inputs[0].shape(), inputs[1].shape()])?;
            let side = |t: &Tensor| -> TractResult<Vec<String>> {
                let view = t.to_plain_array_view::<String>()?;
                let wide = view.broadcast(shape.as_slice()).ok_or_else(|| format_err!("cannot broadcast"))?;
                Ok(wide.iter().cloned().collect())
            };
            let joined = string_concat(&side(&inputs[0])?, &side(&inputs[1])?).map_err(run_error)?;
            Ok(tvec![tensor(joined, &shape)?])
        }),
    }
    .parsed()
}
