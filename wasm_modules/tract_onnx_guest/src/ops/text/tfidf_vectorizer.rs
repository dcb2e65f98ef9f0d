//! ONNX `TfIdfVectorizer`: n-gram (and skip-gram) counts of `[C]` or `[N, C]` items,
//! strings (`pool_strings`) or integers (`pool_int64s`), as TF, IDF or TFIDF, in `[W]`
//! or `[N, W]` floats.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{plain, run_error, strings, tensor, Attrs, Parsed, TextOp};
use crate::text::TfIdf;

pub fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    let mode = a.string("mode")?.ok_or_else(|| a.invalid("attribute mode is required"))?;
    let required = |name: &str| a.get(name).map(|v| v.i).ok_or_else(|| a.invalid(format!("attribute {name} is required")));
    let (min, max, skip) = (required("min_gram_length")?, required("max_gram_length")?, required("max_skip_count")?);
    let (counts, indexes, weights) = (a.ints("ngram_counts"), a.ints("ngram_indexes"), a.floats("weights"));
    let build = |pool_strings: Option<Vec<String>>| -> TractResult<(Kernel, usize)> {
        let kernel = match pool_strings {
            Some(pool) => Kernel::Strings(TfIdf::new(&mode, min, max, skip, counts, indexes, weights, &pool).map_err(|e| a.invalid(e))?),
            None => Kernel::Ints(
                TfIdf::new(&mode, min, max, skip, counts, indexes, weights, a.ints("pool_int64s")).map_err(|e| a.invalid(e))?,
            ),
        };
        let width = match &kernel {
            Kernel::Strings(k) => k.output_shape(&[1]),
            Kernel::Ints(k) => k.output_shape(&[1]),
        }
        .map_err(|e| a.invalid(e))?;
        Ok((kernel, width.last().copied().unwrap_or(0)))
    };
    let (kernel, width) = match (a.strings("pool_strings")?, a.get("pool_int64s")) {
        (Some(pool), None) => build(Some(pool))?,
        (None, Some(_)) => build(None)?,
        _ => return Err(a.invalid("needs exactly one of pool_strings and pool_int64s")),
    };
    let strings_pool = matches!(kernel, Kernel::Strings(_));
    let kernel = Arc::new(kernel);
    let (what, what_shapes) = (a.what.clone(), a.what.clone());
    TextOp {
        name: "TfIdfVectorizer",
        what: a.what.clone(),
        inputs: 1,
        outputs: 1,
        types: Arc::new(move |types| {
            let ok = match types[0] {
                DatumType::String => strings_pool,
                DatumType::I64 | DatumType::I32 => !strings_pool,
                _ => false,
            };
            ensure!(ok, "{what}: an input of {:?} for a pool of {}", types[0], if strings_pool { "strings" } else { "integers" });
            Ok(tvec![DatumType::F32])
        }),
        shapes: Arc::new(move |shapes| match shapes[0].as_slice() {
            [_] => Ok(tvec![tvec![width.to_dim()]]),
            [n, _] => Ok(tvec![tvec![n.clone(), width.to_dim()]]),
            other => bail!("{what_shapes}: its input must be [C] or [N, C], not {other:?}"),
        }),
        eval: Arc::new(move |inputs| {
            let x = &inputs[0];
            let (y, shape) = match &*kernel {
                Kernel::Strings(k) => k.run(strings(x)?, x.shape()),
                Kernel::Ints(k) => {
                    let ints = x.cast_to::<i64>()?;
                    k.run(plain::<i64>(&ints)?, x.shape())
                }
            }
            .map_err(run_error)?;
            Ok(tvec![tensor(y, &shape)?])
        }),
    }
    .parsed()
}

#[derive(Debug)]
enum Kernel {
    Strings(TfIdf<String>),
    Ints(TfIdf<i64>),
}
