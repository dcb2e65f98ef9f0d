//! ONNX-ML `LabelEncoder` (opsets 1, 2 and 4), `CategoryMapper` and `OneHotEncoder`:
//! lookup tables keyed by strings, integers or floats.

use std::collections::HashMap;
use std::hash::Hash;

use super::{check_shape, output_len};

/// A key type of these tables: how an element is looked up.
pub trait LabelKey {
    type Hashed: Eq + Hash;
    /// The element as a table key; `None` when it matches no key at all. Floats: `-0.0`
    /// is `0.0`; NaN matches a NaN key only when `nan_matches` (`LabelEncoder` opset 4;
    /// in opset 2 a NaN input gets the default, found with onnxruntime 1.32).
    fn hashed(&self, nan_matches: bool) -> Option<Self::Hashed>;
}

impl LabelKey for String {
    type Hashed = String;
    fn hashed(&self, _: bool) -> Option<String> {
        Some(self.clone())
    }
}

impl LabelKey for i64 {
    type Hashed = i64;
    fn hashed(&self, _: bool) -> Option<i64> {
        Some(*self)
    }
}

impl LabelKey for f32 {
    type Hashed = u64;
    fn hashed(&self, nan_matches: bool) -> Option<u64> {
        f64::from(*self).hashed(nan_matches)
    }
}

impl LabelKey for f64 {
    type Hashed = u64;
    fn hashed(&self, nan_matches: bool) -> Option<u64> {
        if self.is_nan() {
            nan_matches.then_some(f64::NAN.to_bits())
        } else if *self == 0.0 {
            Some(0)
        } else {
            Some(self.to_bits())
        }
    }
}

/// A checked `LabelEncoder`: `keys[i]` maps to `values[i]`, anything else to `default`.
///
/// onnxruntime: with a key listed twice, the first pair wins (opsets 2 and 4); opset 1's
/// `classes_strings` is [`LabelEncoder::from_classes`]. The attributes' defaults are
/// `-1` (int64), `"_Unused"` (string) and `-0.0` (float), the caller's to pass.
#[derive(Debug, Clone)]
pub struct LabelEncoder<K: LabelKey, V> {
    map: HashMap<K::Hashed, V>,
    default: V,
    nan_matches: bool,
}

impl<K: LabelKey, V: Clone> LabelEncoder<K, V> {
    /// `keys` and `values` must be equally long; `nan_matches` for opset 4.
    pub fn new(keys: &[K], values: &[V], default: V, nan_matches: bool) -> Result<LabelEncoder<K, V>, String> {
        if keys.len() != values.len() {
            return Err(format!("LabelEncoder: {} keys for {} values", keys.len(), values.len()));
        }
        let mut map = HashMap::with_capacity(keys.len());
        for (k, v) in keys.iter().zip(values) {
            if let Some(h) = k.hashed(nan_matches) {
                map.entry(h).or_insert_with(|| v.clone());
            }
        }
        Ok(LabelEncoder { map, default, nan_matches })
    }

    /// Each element's value, in the input's shape.
    pub fn run(&self, x: &[K]) -> Vec<V> {
        x.iter()
            .map(|k| k.hashed(self.nan_matches).and_then(|h| self.map.get(&h)).unwrap_or(&self.default).clone())
            .collect()
    }
}

impl LabelEncoder<String, i64> {
    /// Opset 1, strings to int64: a string's position in `classes_strings` (the last
    /// one when listed twice, as onnxruntime), else `default_int64` (-1 by default).
    pub fn from_classes(classes_strings: &[String], default_int64: i64) -> LabelEncoder<String, i64> {
        let mut map = HashMap::with_capacity(classes_strings.len());
        for (i, c) in classes_strings.iter().enumerate() {
            map.insert(c.clone(), i as i64);
        }
        LabelEncoder { map, default: default_int64, nan_matches: false }
    }
}

/// `LabelEncoder` opset 1, int64 to strings: `classes_strings[x]` when `x` is a
/// position in it, else `default_string` (`"_Unused"` by default).
pub fn label_encode_v1_int_to_string(x: &[i64], classes_strings: &[String], default_string: &str) -> Vec<String> {
    x.iter()
        .map(|&i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| classes_strings.get(i))
                .map_or_else(|| default_string.to_string(), Clone::clone)
        })
        .collect()
}

/// A checked `CategoryMapper`: `cats_strings[i]` and `cats_int64s[i]` map to each other
/// (the last pair wins for a category listed twice, as onnxruntime).
#[derive(Debug, Clone)]
pub struct CategoryMapper {
    to_int: HashMap<String, i64>,
    to_string: HashMap<i64, String>,
}

impl CategoryMapper {
    /// The two lists must be equally long.
    pub fn new(cats_strings: &[String], cats_int64s: &[i64]) -> Result<CategoryMapper, String> {
        if cats_strings.len() != cats_int64s.len() {
            return Err(format!(
                "CategoryMapper: {} cats_strings for {} cats_int64s",
                cats_strings.len(),
                cats_int64s.len()
            ));
        }
        let mut to_int = HashMap::with_capacity(cats_strings.len());
        let mut to_string = HashMap::with_capacity(cats_strings.len());
        for (s, &i) in cats_strings.iter().zip(cats_int64s) {
            to_int.insert(s.clone(), i);
            to_string.insert(i, s.clone());
        }
        Ok(CategoryMapper { to_int, to_string })
    }

    /// Strings to int64, `default_int64` (-1 by default) for unknown ones.
    pub fn to_int64(&self, x: &[String], default_int64: i64) -> Vec<i64> {
        x.iter().map(|s| self.to_int.get(s).copied().unwrap_or(default_int64)).collect()
    }

    /// Int64 to strings, `default_string` (`"_Unused"` by default) for unknown ones.
    pub fn to_strings(&self, x: &[i64], default_string: &str) -> Vec<String> {
        x.iter().map(|i| self.to_string.get(i).map_or_else(|| default_string.to_string(), Clone::clone)).collect()
    }
}

/// A checked `OneHotEncoder` over `cats_strings` (`K = String`) or `cats_int64s`
/// (`K = i64`; onnxruntime casts float and double inputs to int64 first).
#[derive(Debug, Clone)]
pub struct OneHotEncoder<K: Eq + Hash> {
    index: HashMap<K, usize>,
    width: usize,
}

impl<K: Eq + Hash + Clone> OneHotEncoder<K> {
    /// A category listed twice takes its last position (onnxruntime).
    pub fn new(cats: &[K]) -> OneHotEncoder<K> {
        let mut index = HashMap::with_capacity(cats.len());
        for (i, c) in cats.iter().enumerate() {
            index.insert(c.clone(), i);
        }
        OneHotEncoder { index, width: cats.len() }
    }

    /// Output of shape `shape + [categories]`, 1.0 at each element's category. An
    /// unknown element is a row of zeros when `zeros != 0`, an error otherwise.
    pub fn run(&self, x: &[K], shape: &[usize], zeros: i64) -> Result<(Vec<f32>, Vec<usize>), String> {
        check_shape(x.len(), shape)?;
        let mut out_shape = shape.to_vec();
        out_shape.push(self.width);
        let mut y = vec![0f32; output_len(&out_shape)?];
        for (i, k) in x.iter().enumerate() {
            match self.index.get(k) {
                Some(&j) => {
                    if let Some(v) = i.checked_mul(self.width).and_then(|r| r.checked_add(j)).and_then(|p| y.get_mut(p))
                    {
                        *v = 1.0;
                    }
                }
                None if zeros != 0 => {}
                None => return Err("OneHotEncoder: unknown category and zeros = 0".into()),
            }
        }
        Ok((y, out_shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    // All expected values come from onnxruntime 1.32.
    #[test]
    fn label_encoder() {
        let e = LabelEncoder::new(&s(&["a", "b", "a"]), &[1i64, 2, 3], -7, false).unwrap();
        assert_eq!(e.run(&s(&["a", "b", "c", "a"])), vec![1, 2, -7, 1]);
        let e = LabelEncoder::new(&s(&["a", "a"]), &s(&["A", "B"]), "_Unused".to_string(), false).unwrap();
        assert_eq!(e.run(&s(&["a", "q"])), s(&["A", "_Unused"]));
        let e = LabelEncoder::new(&[1i64, 2], &s(&["x", "y"]), "_Unused".into(), false).unwrap();
        assert_eq!(e.run(&[1, 2, 3]), s(&["x", "y", "_Unused"]));
        let e = LabelEncoder::new(&[1i64, 2], &[0.5f32, 1.5], -0.0, false).unwrap();
        let y = e.run(&[1, 2, 3]);
        assert_eq!(y, vec![0.5, 1.5, 0.0]);
        assert!(y[2].is_sign_negative());
        let e = LabelEncoder::new(&s(&["a"]), &[2.5f32], -0.0, false).unwrap();
        assert_eq!(e.run(&s(&["a", "q"])), vec![2.5, -0.0]);
        assert!(LabelEncoder::new(&[1i64, 2], &s(&["x"]), "_Unused".into(), false).unwrap_err().contains("keys"));
        let e = LabelEncoder::new(&s(&["a", "a"]), &[1i64, 2], -1, true).unwrap();
        assert_eq!(e.run(&s(&["a", "a", "b"])), vec![1, 1, -1]);
    }

    #[test]
    fn float_keys_nan_and_signed_zero() {
        let keys = [1.0f32, f32::NAN, 0.0];
        let x = [1.0f32, f32::NAN, 2.0, -0.0, 3.0];
        // Opset 2: NaN matches nothing.
        assert_eq!(LabelEncoder::new(&keys, &[10i64, 20, 30], -1, false).unwrap().run(&x), vec![10, -1, -1, 30, -1]);
        // Opset 4: NaN matches a NaN key.
        assert_eq!(LabelEncoder::new(&keys, &[10i64, 20, 30], -1, true).unwrap().run(&x), vec![10, 20, -1, 30, -1]);
        let y = LabelEncoder::new(&[1.0f32, 2.0], &[f32::NAN, 20.0], -0.0, true).unwrap().run(&[1.0, f32::NAN, 2.0]);
        assert!(y[0].is_nan() && y[1] == 0.0 && y[1].is_sign_negative() && y[2] == 20.0);
        let y = LabelEncoder::new(&[0.5f64], &[1i64], -1, true).unwrap().run(&[0.5, f64::NAN]);
        assert_eq!(y, vec![1, -1]);
    }

    #[test]
    fn label_encoder_opset_1() {
        let e = LabelEncoder::from_classes(&s(&["a", "b"]), -1);
        assert_eq!(e.run(&s(&["a", "z"])), vec![0, -1]);
        // The last position of a class listed twice.
        let e = LabelEncoder::from_classes(&s(&["a", "b", "a"]), -1);
        assert_eq!(e.run(&s(&["a", "z"])), vec![2, -1]);
        let classes = s(&["a", "b"]);
        assert_eq!(
            label_encode_v1_int_to_string(&[0, 1, 5, -1], &classes, "_Unused"),
            s(&["a", "b", "_Unused", "_Unused"])
        );
        assert_eq!(label_encode_v1_int_to_string(&[0, 1, 5], &classes, "Q"), s(&["a", "b", "Q"]));
    }

    #[test]
    fn category_mapper() {
        let m = CategoryMapper::new(&s(&["a", "b", "a"]), &[1, 2, 3]).unwrap();
        assert_eq!(m.to_int64(&s(&["a", "b", "z"]), -1), vec![3, 2, -1]);
        let m = CategoryMapper::new(&s(&["a", "b", "c"]), &[1, 2, 1]).unwrap();
        assert_eq!(m.to_strings(&[1, 2, 3, 7], "_Unused"), s(&["c", "b", "_Unused", "_Unused"]));
        assert!(CategoryMapper::new(&s(&["a", "b"]), &[1, 2, 1]).is_err());
    }

    #[test]
    fn one_hot() {
        let e = OneHotEncoder::new(&s(&["a", "b", "a"]));
        let (y, shape) = e.run(&s(&["a", "b", "z"]), &[3, 1], 1).unwrap();
        assert_eq!(shape, vec![3, 1, 3]);
        assert_eq!(y, vec![0., 0., 1., 0., 1., 0., 0., 0., 0.]);
        let e = OneHotEncoder::new(&s(&["a", "b"]));
        assert!(e.run(&s(&["a", "b", "z"]), &[3, 1], 0).unwrap_err().contains("zeros"));
        assert_eq!(e.run(&s(&["a", "b"]), &[2], 0).unwrap(), (vec![1., 0., 0., 1.], vec![2, 2]));
        assert_eq!(e.run(&[], &[0, 2], 1).unwrap(), (vec![], vec![0, 2, 2]));
        let e = OneHotEncoder::new(&[3i64, 1]);
        assert_eq!(e.run(&[1, 3, 2], &[3], 1).unwrap().0, vec![0., 1., 1., 0., 0., 0.]);
        let big = OneHotEncoder::new(&(0..1i64 << 15).collect::<Vec<_>>());
        assert!(big.run(&vec![0; 1 << 14], &[1 << 14], 1).unwrap_err().contains("limit"));
    }
}
