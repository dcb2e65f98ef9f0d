//! The one table of element types: numpy's name (the wire's), ONNX's `elem_type`, and,
//! for the types the guest exchanges with the host, their item size and tract's
//! `DatumType`. Every conversion between the three namings derives from it.
//!
//! tract's column exists only with the `tract` feature, so that the wire codec (which
//! needs names and item sizes) and its tests build natively without tract.

#[cfg(feature = "tract")]
use tract_onnx::prelude::DatumType;

/// One element type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dtype {
    /// numpy's name, which the wire carries; ONNX's own for the types numpy lacks.
    pub name: &'static str,
    /// ONNX's `TensorProto.DataType`.
    pub onnx: i32,
    /// Bytes per element, for the types exchanged with the host; `None` for the rest.
    pub itemsize: Option<usize>,
    /// tract's type, for the types exchanged with the host; `None` for the rest.
    #[cfg(feature = "tract")]
    pub datum: Option<DatumType>,
}

/// Writes [`DTYPES`]: one row per type, `name onnx` and, for an exchanged type,
/// `(itemsize, DatumType variant)`.
macro_rules! table {
    ($($name:literal $onnx:literal $(($size:literal, $datum:ident))?;)*) => {
        /// Every ONNX element type, in ONNX's order.
        pub const DTYPES: &[Dtype] = &[$(Dtype {
            name: $name,
            onnx: $onnx,
            itemsize: table!(@option $($size)?),
            #[cfg(feature = "tract")]
            datum: table!(@option $(DatumType::$datum)?),
        },)*];
    };
    (@option) => { None };
    (@option $e:expr) => { Some($e) };
}

table! {
    "float32" 1 (4, F32);
    "uint8" 2 (1, U8);
    "int8" 3 (1, I8);
    "uint16" 4 (2, U16);
    "int16" 5 (2, I16);
    "int32" 6 (4, I32);
    "int64" 7 (8, I64);
    "string" 8;
    "bool" 9 (1, Bool);
    "float16" 10 (2, F16);
    "float64" 11 (8, F64);
    "uint32" 12 (4, U32);
    "uint64" 13 (8, U64);
    "complex64" 14;
    "complex128" 15;
    "bfloat16" 16;
    "float8e4m3fn" 17;
    "float8e4m3fnuz" 18;
    "float8e5m2" 19;
    "float8e5m2fnuz" 20;
    "uint4" 21;
    "int4" 22;
    "float4e2m1" 23;
}

/// The name signatures give an element type outside the table (0 is ONNX's UNDEFINED).
pub const UNKNOWN: &str = "unknown";

pub fn by_name(name: &str) -> Option<&'static Dtype> {
    DTYPES.iter().find(|d| d.name == name)
}

pub fn by_onnx(elem_type: i32) -> Option<&'static Dtype> {
    DTYPES.iter().find(|d| d.onnx == elem_type)
}

/// numpy's name for an ONNX element type (ONNX's own for the types not exchanged).
pub fn onnx_name(elem_type: i32) -> &'static str {
    by_onnx(elem_type).map_or(UNKNOWN, |d| d.name)
}

/// The item size of an exchanged type, by numpy name.
pub fn itemsize(name: &str) -> Option<usize> {
    by_name(name).and_then(|d| d.itemsize)
}

/// tract's type for an exchanged type, by numpy name.
#[cfg(feature = "tract")]
pub fn datum_type(name: &str) -> Option<DatumType> {
    by_name(name).and_then(|d| d.datum)
}

/// tract's type for any dtype the host exchanges: the table's, and strings (ABI 1.1),
/// which travel as arrays of str rather than bytes.
#[cfg(feature = "tract")]
pub fn exchanged(name: &str) -> Option<DatumType> {
    if name == crate::wire::STRING {
        return Some(DatumType::String);
    }
    datum_type(name)
}

/// numpy's name for one of tract's types, if it is exchanged.
#[cfg(feature = "tract")]
pub fn name_of(dt: DatumType) -> Option<&'static str> {
    DTYPES.iter().find(|d| d.datum == Some(dt)).map(|d| d.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_onnx_types_are_unique() {
        for (i, a) in DTYPES.iter().enumerate() {
            assert_eq!(a.onnx, i as i32 + 1, "{} out of ONNX's order", a.name);
            for b in &DTYPES[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
        assert!(by_name(UNKNOWN).is_none());
    }

    #[test]
    fn exchanged_types() {
        let exchanged: Vec<_> = DTYPES.iter().filter(|d| d.itemsize.is_some()).map(|d| d.name).collect();
        assert_eq!(
            exchanged,
            ["float32", "uint8", "int8", "uint16", "int16", "int32", "int64", "bool", "float16", "float64", "uint32", "uint64"]
        );
        assert_eq!(itemsize("float16"), Some(2));
        assert_eq!(itemsize("string"), None);
        assert_eq!(onnx_name(16), "bfloat16");
        assert_eq!(onnx_name(0), UNKNOWN);
        assert_eq!(onnx_name(99), UNKNOWN);
        #[cfg(feature = "tract")]
        for d in DTYPES {
            assert_eq!(d.datum.is_some(), d.itemsize.is_some(), "{}", d.name);
            if let Some(dt) = d.datum {
                assert_eq!(name_of(dt), Some(d.name));
                assert_eq!(dt.size_of(), d.itemsize.unwrap());
            }
        }
    }
}
