//! The msgpack messages of guest ABI v1 (docs/guest-abi.md): requests decoded
//! without copying tensor payloads, responses encoded straight into one buffer.
//! Free of tract so that its tests build natively in seconds.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// A guest error, sent to the host as `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestError {
    pub code: &'static str,
    pub message: String,
}

impl GuestError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        GuestError { code, message: message.into() }
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new("invalid_request", message)
    }
    pub fn invalid_model(message: impl Into<String>) -> Self {
        Self::new("invalid_model", message)
    }
    pub fn unsupported_model(message: impl Into<String>) -> Self {
        Self::new("unsupported_model", message)
    }
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new("invalid_input", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("internal", message)
    }
}

pub type GuestResult<T> = Result<T, GuestError>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoadOptions {
    pub plan_cache: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct LoadRequest<'a> {
    #[serde(borrow, with = "serde_bytes")]
    pub model: &'a [u8],
    #[serde(default)]
    pub options: Option<LoadOptions>,
}

#[derive(Debug, Deserialize)]
pub struct TensorIn<'a> {
    #[serde(borrow)]
    pub name: &'a str,
    #[serde(borrow)]
    pub dtype: &'a str,
    pub shape: Vec<u64>,
    #[serde(borrow)]
    pub data: Payload<'a>,
}

/// The dtype of string tensors (ABI 1.1), whose payload is a msgpack array of str.
pub const STRING: &str = "string";

/// A tensor's payload, borrowed from the request: raw little-endian bytes (`bin`), or,
/// for a `string` tensor (ABI 1.1), one msgpack `str` per element in C order.
#[derive(Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    Bytes(&'a [u8]),
    Strings(Vec<&'a str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Payload<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PayloadVisitor;
        impl<'de> Visitor<'de> for PayloadVisitor {
            type Value = Payload<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bin, or an array of str")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Payload::Bytes(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // The announced length is not trusted for the allocation.
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 12));
                while let Some(s) = seq.next_element::<&'de str>()? {
                    items.push(s);
                }
                Ok(Payload::Strings(items))
            }
        }
        d.deserialize_any(PayloadVisitor)
    }
}

#[derive(Debug, Deserialize)]
pub struct RunRequest<'a> {
    #[serde(borrow)]
    pub inputs: Vec<TensorIn<'a>>,
    #[serde(default)]
    pub outputs: Option<Vec<String>>,
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> GuestResult<T> {
    rmp_serde::from_slice(bytes)
        .map_err(|e| GuestError::invalid_request(format!("malformed {what} request: {e}")))
}

/// `prod(shape)`, or an error naming the input when it overflows.
pub fn element_count(name: &str, shape: &[u64]) -> GuestResult<u64> {
    shape.iter().try_fold(1u64, |n, &d| {
        n.checked_mul(d).ok_or_else(|| {
            GuestError::invalid_input(format!("input '{name}': shape {shape:?} overflows"))
        })
    })
}

/// Checks that a string tensor holds exactly `prod(shape)` strings.
pub fn check_tensor_strings(name: &str, shape: &[u64], len: usize) -> GuestResult<()> {
    let count = element_count(name, shape)?;
    if count != len as u64 {
        return Err(GuestError::invalid_input(format!(
            "input '{name}': shape {shape:?} holds {count} strings, got {len}"
        )));
    }
    Ok(())
}

/// Checks that `data` holds exactly `prod(shape)` items of `dtype`, without overflow.
pub fn check_tensor_bytes(name: &str, dtype: &str, shape: &[u64], len: usize) -> GuestResult<()> {
    let size = crate::dtypes::itemsize(dtype).ok_or_else(|| {
        GuestError::invalid_input(format!("input '{name}': unsupported dtype '{dtype}'"))
    })?;
    let count = element_count(name, shape)?;
    let expected = count.checked_mul(size as u64).ok_or_else(|| {
        GuestError::invalid_input(format!("input '{name}': shape {shape:?} overflows"))
    })?;
    if expected != len as u64 {
        return Err(GuestError::invalid_input(format!(
            "input '{name}': shape {shape:?} of {dtype} needs {expected} bytes, got {len}"
        )));
    }
    Ok(())
}

/// A dimension of a signature: known, symbolic, or unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Known(i64),
    Symbol(String),
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub dtype: String,
    pub shape: Option<Vec<Dim>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub producer_name: String,
    pub producer_version: String,
    pub domain: String,
    pub doc_string: String,
    pub graph_name: String,
    pub graph_description: String,
    pub model_version: i64,
    pub ir_version: i64,
    pub opset: Vec<(String, i64)>,
    pub ops: Vec<(String, u64)>,
    pub metadata_props: Vec<(String, String)>,
}

/// An encoder writing msgpack straight into the response buffer. Writes to a
/// `Vec` cannot fail, so encoding errors are unreachable and unwrapped.
pub struct Writer<'a>(pub &'a mut Vec<u8>);

impl Writer<'_> {
    pub fn map(&mut self, len: usize) {
        rmp::encode::write_map_len(self.0, len as u32).unwrap();
    }
    pub fn array(&mut self, len: usize) {
        rmp::encode::write_array_len(self.0, len as u32).unwrap();
    }
    pub fn str(&mut self, s: &str) {
        rmp::encode::write_str(self.0, s).unwrap();
    }
    pub fn int(&mut self, i: i64) {
        rmp::encode::write_sint(self.0, i).unwrap();
    }
    pub fn uint(&mut self, u: u64) {
        rmp::encode::write_uint(self.0, u).unwrap();
    }
    pub fn nil(&mut self) {
        rmp::encode::write_nil(self.0).unwrap();
    }
    pub fn bin(&mut self, data: &[u8]) {
        rmp::encode::write_bin_len(self.0, data.len() as u32).unwrap();
        self.0.extend_from_slice(data);
    }
    pub fn str_map(&mut self, entries: &[(String, String)]) {
        self.map(entries.len());
        for (k, v) in entries {
            self.str(k);
            self.str(v);
        }
    }
}

pub fn encode_error(out: &mut Vec<u8>, err: &GuestError) {
    out.clear();
    let mut w = Writer(out);
    w.map(1);
    w.str("error");
    w.map(2);
    w.str("code");
    w.str(err.code);
    w.str("message");
    w.str(&err.message);
}

fn encode_signature(w: &mut Writer, sig: &Signature) {
    w.map(3);
    w.str("name");
    w.str(&sig.name);
    w.str("dtype");
    w.str(&sig.dtype);
    w.str("shape");
    match &sig.shape {
        None => w.nil(),
        Some(dims) => {
            w.array(dims.len());
            for d in dims {
                match d {
                    Dim::Known(v) => w.int(*v),
                    Dim::Symbol(s) => w.str(s),
                    Dim::Unknown => w.nil(),
                }
            }
        }
    }
}

pub fn encode_load_response(
    out: &mut Vec<u8>,
    inputs: &[Signature],
    outputs: &[Signature],
    meta: &Meta,
) {
    out.clear();
    let mut w = Writer(out);
    w.map(3);
    for (key, sigs) in [("inputs", inputs), ("outputs", outputs)] {
        w.str(key);
        w.array(sigs.len());
        for s in sigs {
            encode_signature(&mut w, s);
        }
    }
    w.str("meta");
    w.map(11);
    for (k, v) in [
        ("producer_name", &meta.producer_name),
        ("producer_version", &meta.producer_version),
        ("domain", &meta.domain),
        ("doc_string", &meta.doc_string),
        ("graph_name", &meta.graph_name),
        ("graph_description", &meta.graph_description),
    ] {
        w.str(k);
        w.str(v);
    }
    w.str("model_version");
    w.int(meta.model_version);
    w.str("ir_version");
    w.int(meta.ir_version);
    w.str("opset");
    w.map(meta.opset.len());
    for (d, v) in &meta.opset {
        w.str(d);
        w.int(*v);
    }
    w.str("ops");
    w.map(meta.ops.len());
    for (op, n) in &meta.ops {
        w.str(op);
        w.uint(*n);
    }
    w.str("metadata_props");
    w.str_map(&meta.metadata_props);
}

/// Starts a run response holding `n` tensors; follow with `n` calls to `encode_tensor`.
pub fn begin_run_response(out: &mut Vec<u8>, n: usize) {
    out.clear();
    let mut w = Writer(out);
    w.map(1);
    w.str("outputs");
    w.array(n);
}

/// The msgpack ext type of a payload left in guest memory: 8 bytes, its address and
/// length as little-endian u32s. Outputs travel so, saving the guest a copy of each
/// into the response (docs/guest-abi.md); the host bounds-checks the range.
pub const EXT_GUEST_BYTES: i8 = 1;

/// Appends one tensor whose `len` bytes of payload stay at guest address `addr`.
pub fn encode_tensor(out: &mut Vec<u8>, name: &str, dtype: &str, shape: &[usize], addr: u32, len: u32) {
    let mut w = Writer(out);
    w.map(4);
    w.str("name");
    w.str(name);
    w.str("dtype");
    w.str(dtype);
    w.str("shape");
    w.array(shape.len());
    for d in shape {
        w.uint(*d as u64);
    }
    w.str("data");
    rmp::encode::write_ext_meta(w.0, 8, EXT_GUEST_BYTES).unwrap();
    w.0.extend_from_slice(&addr.to_le_bytes());
    w.0.extend_from_slice(&len.to_le_bytes());
}

/// Appends one string tensor, its strings inline (ABI 1.1): they are not contiguous in
/// guest memory, and a response is small next to the tensors it describes.
pub fn encode_strings<S: AsRef<str>>(out: &mut Vec<u8>, name: &str, shape: &[usize], strings: &[S]) {
    let mut w = Writer(out);
    w.map(4);
    w.str("name");
    w.str(name);
    w.str("dtype");
    w.str(STRING);
    w.str("shape");
    w.array(shape.len());
    for d in shape {
        w.uint(*d as u64);
    }
    w.str("data");
    w.array(strings.len());
    for s in strings {
        w.str(s.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct TensorOut<'a> {
        name: &'a str,
        dtype: &'a str,
        shape: Vec<u64>,
        #[serde(with = "serde_bytes")]
        data: &'a [u8],
    }

    #[derive(Serialize)]
    struct RunOut<'a> {
        inputs: Vec<TensorOut<'a>>,
        outputs: Option<Vec<&'a str>>,
    }

    fn named<T: Serialize>(v: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(v).unwrap()
    }

    #[test]
    fn run_request_borrows_payload() {
        let payload = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let bytes = named(&RunOut {
            inputs: vec![TensorOut { name: "x", dtype: "float32", shape: vec![2], data: &payload }],
            outputs: Some(vec!["y"]),
        });
        let req: RunRequest = decode(&bytes, "run").unwrap();
        assert_eq!(req.inputs.len(), 1);
        let t = &req.inputs[0];
        assert_eq!((t.name, t.dtype, t.shape.as_slice()), ("x", "float32", &[2u64][..]));
        let Payload::Bytes(data) = t.data else { panic!("not bytes: {:?}", t.data) };
        assert_eq!(data, &payload);
        // Borrowed, not copied: the slice points into the request buffer.
        let range = bytes.as_ptr_range();
        assert!(range.contains(&data.as_ptr()));
        assert_eq!(req.outputs, Some(vec!["y".to_string()]));
    }

    #[test]
    fn string_payloads_borrowed_and_checked() {
        #[derive(Serialize)]
        struct StrTensor<'a> {
            name: &'a str,
            dtype: &'a str,
            shape: Vec<u64>,
            data: Vec<&'a str>,
        }
        #[derive(Serialize)]
        struct Run<'a> {
            inputs: Vec<StrTensor<'a>>,
        }
        let bytes = named(&Run {
            inputs: vec![StrTensor { name: "s", dtype: STRING, shape: vec![3], data: vec!["a", "", "é∑"] }],
        });
        let req: RunRequest = decode(&bytes, "run").unwrap();
        let Payload::Strings(items) = &req.inputs[0].data else { panic!("not strings") };
        assert_eq!(items, &["a", "", "é∑"]);
        assert!(bytes.as_ptr_range().contains(&items[2].as_ptr()));
        assert!(check_tensor_strings("s", &[3], 3).is_ok());
        assert!(check_tensor_strings("s", &[0, 7], 0).is_ok());
        let e = check_tensor_strings("s", &[2, 2], 3).unwrap_err();
        assert!(e.message.contains("4 strings, got 3"), "{}", e.message);
        assert!(check_tensor_strings("s", &[u64::MAX, 3], 0).unwrap_err().message.contains("overflows"));
        // Anything else where a payload belongs is a malformed request: numbers in the
        // array, invalid UTF-8 in a str, a map.
        for data in [&b"\x92\x01\x02"[..], b"\x91\xa2\xff\xfe", b"\x80"] {
            let mut bytes = b"\x81\xa6inputs\x91\x84\xa4name\xa1s\xa5dtype\xa6string\xa5shape\x91\x02\xa4data".to_vec();
            bytes.extend_from_slice(data);
            assert_eq!(decode::<RunRequest>(&bytes, "run").unwrap_err().code, "invalid_request");
        }
    }

    #[test]
    fn string_outputs_inline() {
        let mut out = vec![];
        begin_run_response(&mut out, 1);
        encode_strings(&mut out, "label", &[2, 1], &["setosa", "virginica"]);
        let v = value(&out);
        let t = &v["outputs"][0];
        assert_eq!(t["dtype"].as_str(), Some(STRING));
        assert_eq!(t["shape"][0].as_u64(), Some(2));
        let items: Vec<_> = t["data"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        assert_eq!(items, ["setosa", "virginica"]);
    }

    #[test]
    fn run_request_outputs_nil_and_unknown_keys() {
        #[derive(Serialize)]
        struct Extra<'a> {
            inputs: Vec<TensorOut<'a>>,
            outputs: Option<Vec<&'a str>>,
            future: u8,
        }
        let bytes = named(&Extra { inputs: vec![], outputs: None, future: 1 });
        let req: RunRequest = decode(&bytes, "run").unwrap();
        assert!(req.inputs.is_empty());
        assert!(req.outputs.is_none());
    }

    #[test]
    fn load_request_with_and_without_options() {
        #[derive(Serialize)]
        struct Load<'a> {
            #[serde(with = "serde_bytes")]
            model: &'a [u8],
        }
        let bytes = named(&Load { model: b"abc" });
        let req: LoadRequest = decode(&bytes, "load").unwrap();
        assert_eq!(req.model, b"abc");
        assert!(req.options.is_none());

        #[derive(Serialize)]
        struct Opts {
            plan_cache: u32,
        }
        #[derive(Serialize)]
        struct LoadOpts<'a> {
            #[serde(with = "serde_bytes")]
            model: &'a [u8],
            options: Opts,
        }
        let bytes = named(&LoadOpts { model: b"", options: Opts { plan_cache: 7 } });
        let req: LoadRequest = decode(&bytes, "load").unwrap();
        assert_eq!(req.options.unwrap().plan_cache, Some(7));
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        for bytes in [&b""[..], b"\xc1", b"\x93\x01\x02", b"\x81\xa6inputs\x01", b"\xdf\xff\xff\xff\xff"]
        {
            let err = decode::<RunRequest>(bytes, "run").unwrap_err();
            assert_eq!(err.code, "invalid_request");
        }
        // A number where bytes are expected.
        #[derive(Serialize)]
        struct Bad {
            model: u32,
        }
        let err = decode::<LoadRequest>(&named(&Bad { model: 7 }), "load").unwrap_err();
        assert_eq!(err.code, "invalid_request");
    }

    #[test]
    fn tensor_byte_checks() {
        assert!(check_tensor_bytes("x", "float32", &[2, 3], 24).is_ok());
        assert!(check_tensor_bytes("x", "bool", &[], 1).is_ok());
        assert!(check_tensor_bytes("x", "int64", &[0, 5], 0).is_ok());
        let e = check_tensor_bytes("x", "float32", &[2, 3], 23).unwrap_err();
        assert_eq!(e.code, "invalid_input");
        assert!(e.message.contains("'x'") && e.message.contains("24"), "{}", e.message);
        let e = check_tensor_bytes("x", "string", &[1], 1).unwrap_err();
        assert!(e.message.contains("string"));
        let e = check_tensor_bytes("x", "float64", &[u64::MAX, 2], 0).unwrap_err();
        assert!(e.message.contains("overflows"));
    }

    fn value(bytes: &[u8]) -> rmpv::Value {
        rmpv::decode::read_value(&mut &bytes[..]).unwrap()
    }

    #[test]
    fn error_response_shape() {
        let mut out = vec![9, 9, 9];
        encode_error(&mut out, &GuestError::invalid_model("nope"));
        let v = value(&out);
        let err = &v["error"];
        assert_eq!(err["code"].as_str(), Some("invalid_model"));
        assert_eq!(err["message"].as_str(), Some("nope"));
    }

    #[test]
    fn load_response_shape() {
        let mut out = vec![];
        let sig = Signature {
            name: "x".into(),
            dtype: "float32".into(),
            shape: Some(vec![Dim::Symbol("N".into()), Dim::Known(3), Dim::Unknown]),
        };
        let unranked = Signature { name: "y".into(), dtype: "unknown".into(), shape: None };
        let meta = Meta {
            producer_name: "p".into(),
            opset: vec![("".into(), 13)],
            ops: vec![("Relu".into(), 2)],
            metadata_props: vec![("k".into(), "v".into())],
            ..Meta::default()
        };
        encode_load_response(&mut out, &[sig], &[unranked], &meta);
        let v = value(&out);
        let x = &v["inputs"][0];
        assert_eq!(x["name"].as_str(), Some("x"));
        assert_eq!(x["shape"][0].as_str(), Some("N"));
        assert_eq!(x["shape"][1].as_i64(), Some(3));
        assert!(x["shape"][2].is_nil());
        assert!(v["outputs"][0]["shape"].is_nil());
        assert_eq!(v["meta"]["producer_name"].as_str(), Some("p"));
        assert_eq!(v["meta"]["ops"]["Relu"].as_u64(), Some(2));
        assert_eq!(v["meta"]["metadata_props"]["k"].as_str(), Some("v"));
    }

    #[test]
    fn run_response_payloads_by_reference() {
        let mut out = vec![];
        begin_run_response(&mut out, 2);
        encode_tensor(&mut out, "a", "int16", &[2], 0x0102_0304, 4);
        encode_tensor(&mut out, "b", "uint8", &[70_000], 16, 70_000);
        let v = value(&out);
        let outs = v["outputs"].as_array().unwrap();
        assert_eq!(outs[0]["shape"][0].as_u64(), Some(2));
        assert_eq!(outs[1]["name"].as_str(), Some("b"));
        let rmpv::Value::Ext(code, data) = &outs[0]["data"] else { panic!("not an ext") };
        assert_eq!((*code, data.as_slice()), (EXT_GUEST_BYTES, &[4u8, 3, 2, 1, 4, 0, 0, 0][..]));
        let rmpv::Value::Ext(_, data) = &outs[1]["data"] else { panic!("not an ext") };
        assert_eq!(data.as_slice(), &[16u8, 0, 0, 0, 0x70, 0x11, 1, 0][..]);
    }
}
