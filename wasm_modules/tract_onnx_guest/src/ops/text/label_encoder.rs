//! ONNX-ML `LabelEncoder`: opset 1 (`classes_strings`: strings to their index, int64 to
//! the string at it), opsets 2 and 4 (`keys_*` to `values_*`, strings, int64 or floats;
//! opset 4's `*_tensor` attributes and NaN keys).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{NodeProto, TensorProto};
use tract_onnx::tract_hir::internal::*;

use super::{plain, tensor, Attrs, EvalFn, Parsed, TextOp};
use crate::text::{label_encode_v1_int_to_string, LabelEncoder, LabelKey};

pub fn parse(ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let a = Attrs::new(node);
    let opset = ctx
        .model
        .opset_import
        .iter()
        .find(|o| o.domain == "ai.onnx.ml")
        .map_or(1, |o| o.version);
    let classes = a.strings("classes_strings")?;
    let both_ways = classes.is_some();
    let (input, output, eval) = if let Some(classes) = classes {
        opset_1(&a, classes)?
    } else {
        let keys = list(&a, "keys")?;
        let values = list(&a, "values")?;
        let default = default(&a, &values)?;
        encoder(&a, keys, values, default, opset >= 4)?
    };
    let what = a.what.clone();
    TextOp {
        name: "LabelEncoder",
        what: a.what.clone(),
        inputs: 1,
        outputs: 1,
        types: Arc::new(move |types| {
            if both_ways && types[0] == DatumType::I64 {
                return Ok(tvec![DatumType::String]); // opset 1, int64 to strings
            }
            ensure!(types[0] == input, "{what}: an input of {:?} for keys of {input:?}", types[0]);
            Ok(tvec![output])
        }),
        shapes: Arc::new(|shapes| Ok(tvec![shapes[0].clone()])),
        eval,
    }
    .parsed()
}

/// Opset 1: the input's type says the direction.
fn opset_1(a: &Attrs, classes: Vec<String>) -> TractResult<(DatumType, DatumType, Arc<EvalFn>)> {
    if a.get("keys_strings").is_some() || a.get("keys_int64s").is_some() {
        return Err(a.invalid("gives both classes_strings and keys"));
    }
    // The direction is the graph's: strings to int64, or int64 to strings.
    let default_string = a.string("default_string")?.unwrap_or_else(|| "_Unused".into());
    let to_int = LabelEncoder::from_classes(&classes, a.int("default_int64", -1));
    let eval: Arc<EvalFn> = Arc::new(move |inputs| {
        let x = &inputs[0];
        Ok(tvec![match x.datum_type() {
            DatumType::String => tensor(to_int.run(plain::<String>(x)?), x.shape())?,
            _ => tensor(label_encode_v1_int_to_string(plain::<i64>(x)?, &classes, &default_string), x.shape())?,
        }])
    });
    Ok((DatumType::String, DatumType::I64, eval))
}

/// The keys or values of opsets 2 and 4: exactly one of `{prefix}_strings`,
/// `{prefix}_int64s`, `{prefix}_floats`, `{prefix}_tensor`.
#[derive(Debug, Clone)]
enum List {
    Strings(Vec<String>),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Doubles(Vec<f64>),
    /// int16 and int32 values (opset 4's tensors): values only, never keys.
    Int16s(Vec<i16>),
    Int32s(Vec<i32>),
}

fn list(a: &Attrs, prefix: &str) -> TractResult<List> {
    let mut found = vec![];
    if let Some(s) = a.strings(&format!("{prefix}_strings"))? {
        found.push(List::Strings(s));
    }
    if let Some(v) = a.get(&format!("{prefix}_int64s")) {
        found.push(List::Ints(v.ints.clone()));
    }
    if let Some(v) = a.get(&format!("{prefix}_floats")) {
        found.push(List::Floats(v.floats.clone()));
    }
    if let Some(t) = a.get(&format!("{prefix}_tensor")).and_then(|v| v.t.as_ref()) {
        found.push(from_tensor(a, t)?);
    }
    match found.len() {
        1 => Ok(found.pop().unwrap()),
        n => Err(a.invalid(format!("needs exactly one of the {prefix}_* attributes, has {n}"))),
    }
}

fn from_tensor(a: &Attrs, t: &TensorProto) -> TractResult<List> {
    let raw = |size: usize| -> TractResult<Vec<[u8; 8]>> {
        if t.raw_data.len() % size != 0 {
            return Err(a.invalid(format!("tensor '{}' has {} raw bytes", t.name, t.raw_data.len())));
        }
        Ok(t.raw_data.chunks(size).map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            b
        }).collect())
    };
    Ok(match t.data_type {
        8 => List::Strings(
            t.string_data
                .iter()
                .map(|s| String::from_utf8(s.clone()).map_err(|_| a.invalid("a string is not UTF-8")))
                .collect::<TractResult<_>>()?,
        ),
        7 if t.raw_data.is_empty() => List::Ints(t.int64_data.clone()),
        7 => List::Ints(raw(8)?.into_iter().map(i64::from_le_bytes).collect()),
        1 if t.raw_data.is_empty() => List::Floats(t.float_data.clone()),
        1 => List::Floats(raw(4)?.into_iter().map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
        5 if t.raw_data.is_empty() => List::Int16s(t.int32_data.iter().map(|&v| v as i16).collect()),
        5 => List::Int16s(raw(2)?.into_iter().map(|b| i16::from_le_bytes([b[0], b[1]])).collect()),
        6 if t.raw_data.is_empty() => List::Int32s(t.int32_data.clone()),
        6 => List::Int32s(raw(4)?.into_iter().map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
        11 if t.raw_data.is_empty() => List::Doubles(t.double_data.clone()),
        11 => List::Doubles(raw(8)?.into_iter().map(f64::from_le_bytes).collect()),
        dt => {
            return Err(
                a.unsupported(format!("tensor '{}' of ONNX type {dt} (strings, int16-64, float, double)", t.name))
            )
        }
    })
}

/// The default value, of the values' type: `default_tensor` (opset 4), or the
/// attribute of that type, or ONNX's default for it.
fn default(a: &Attrs, values: &List) -> TractResult<List> {
    if let Some(t) = a.get("default_tensor").and_then(|v| v.t.as_ref()) {
        let d = from_tensor(a, t)?;
        let len = match &d {
            List::Strings(v) => v.len(),
            List::Ints(v) => v.len(),
            List::Floats(v) => v.len(),
            List::Doubles(v) => v.len(),
            List::Int16s(v) => v.len(),
            List::Int32s(v) => v.len(),
        };
        if len != 1 || std::mem::discriminant(&d) != std::mem::discriminant(values) {
            return Err(a.invalid("default_tensor must be one value of the values' type"));
        }
        return Ok(d);
    }
    Ok(match values {
        List::Strings(_) => List::Strings(vec![a.string("default_string")?.unwrap_or_else(|| "_Unused".into())]),
        List::Ints(_) => List::Ints(vec![a.int("default_int64", -1)]),
        List::Floats(_) => List::Floats(vec![a.float("default_float", -0.0)]),
        List::Doubles(_) => List::Doubles(vec![-0.0]),
        // ONNX gives these no default attribute: their default is 0... as int64's is -1.
        List::Int16s(_) => List::Int16s(vec![-1]),
        List::Int32s(_) => List::Int32s(vec![-1]),
    })
}

fn typed<K, V>(a: &Attrs, keys: Vec<K>, values: Vec<V>, default: V, nan: bool) -> TractResult<(DatumType, DatumType, Arc<EvalFn>)>
where
    K: LabelKey + Datum,
    K::Hashed: Send + Sync,
    V: Datum,
{
    let kernel = LabelEncoder::new(&keys, &values, default, nan).map_err(|e| a.invalid(e))?;
    let eval: Arc<EvalFn> = Arc::new(move |inputs| {
        let x = &inputs[0];
        Ok(tvec![tensor(kernel.run(plain::<K>(x)?), x.shape())?])
    });
    Ok((K::datum_type(), V::datum_type(), eval))
}

fn encoder(a: &Attrs, keys: List, values: List, default: List, nan: bool) -> TractResult<(DatumType, DatumType, Arc<EvalFn>)> {
    macro_rules! values {
        ($k:expr) => {
            match (values, default) {
                (List::Strings(v), List::Strings(d)) => typed(a, $k, v, d[0].clone(), nan),
                (List::Ints(v), List::Ints(d)) => typed(a, $k, v, d[0], nan),
                (List::Floats(v), List::Floats(d)) => typed(a, $k, v, d[0], nan),
                (List::Doubles(v), List::Doubles(d)) => typed(a, $k, v, d[0], nan),
                (List::Int16s(v), List::Int16s(d)) => typed(a, $k, v, d[0], nan),
                (List::Int32s(v), List::Int32s(d)) => typed(a, $k, v, d[0], nan),
                _ => Err(a.invalid("its default is not of its values' type")),
            }
        };
    }
    match keys {
        List::Strings(k) => values!(k),
        List::Ints(k) => values!(k),
        List::Floats(k) => values!(k),
        List::Doubles(k) => values!(k),
        List::Int16s(_) | List::Int32s(_) => Err(a.unsupported("int16 or int32 keys (strings, int64, float, double)")),
    }
}
