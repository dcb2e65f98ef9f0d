//! The arithmetic of the guest's numeric ONNX-ML operators (`ops/ml_numeric.rs`), on
//! plain slices and without tract, so that its unit tests run natively in seconds.
//!
//! Each function computes what onnxruntime's CPU kernel computes for the operator, on
//! a tensor read as rows of `width` features (its last axis).

/// ONNX-ML `Normalizer`'s three norms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Norm {
    /// Divided by the row's largest value (not its largest magnitude: onnxruntime's).
    Max,
    /// Divided by the sum of the magnitudes.
    L1,
    /// Divided by the square root of the sum of squares.
    L2,
}

impl Norm {
    pub fn parse(s: &str) -> Option<Norm> {
        match s {
            "MAX" => Some(Norm::Max),
            "L1" => Some(Norm::L1),
            "L2" => Some(Norm::L2),
            _ => None,
        }
    }
}

/// `Scaler`: `(x - offset) * scale`, `offset` and `scale` each of length 1 or `width`.
pub fn scale(x: &[f32], width: usize, offset: &[f32], scale: &[f32]) -> Vec<f32> {
    let pick = |v: &[f32], j: usize| if v.len() == 1 { v[0] } else { v[j] };
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(width.max(1)) {
        for (j, &v) in row.iter().enumerate() {
            y.push((v - pick(offset, j)) * pick(scale, j));
        }
    }
    y
}

/// `Normalizer`, row by row. A row whose norm is zero is copied, as onnxruntime does.
pub fn normalize(x: &[f32], width: usize, norm: Norm) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(width.max(1)) {
        match norm {
            Norm::Max => {
                let max = row.iter().fold(f32::MIN, |m, &v| m.max(v));
                y.extend(row.iter().map(|&v| if max != 0.0 { v / max } else { v }));
            }
            Norm::L1 => {
                let sum: f32 = row.iter().map(|v| v.abs()).sum();
                y.extend(row.iter().map(|&v| if sum != 0.0 { v / sum } else { v }));
            }
            Norm::L2 => {
                let sum: f32 = row.iter().map(|v| v * v).sum();
                y.extend(row.iter().map(|&v| {
                    if sum == 0.0 {
                        v
                    } else {
                        let r = (v * v / sum).sqrt();
                        if v < 0.0 {
                            -r
                        } else {
                            r
                        }
                    }
                }));
            }
        }
    }
    y
}

/// `Imputer`: every element `is_missing` says is missing becomes the imputed value of
/// its column (`imputed` holds 1 or `width` values).
pub fn impute<T: Copy>(x: &[T], width: usize, imputed: &[T], is_missing: impl Fn(T) -> bool) -> Vec<T> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(width.max(1)) {
        for (j, &v) in row.iter().enumerate() {
            y.push(if is_missing(v) { imputed[if imputed.len() == 1 { 0 } else { j }] } else { v });
        }
    }
    y
}

/// `ArrayFeatureExtractor`: the columns `indices` of each row, in their order.
pub fn extract<T: Clone>(x: &[T], width: usize, indices: &[i64]) -> Result<Vec<T>, String> {
    if let Some(&bad) = indices.iter().find(|&&i| i < 0 || i as u64 >= width as u64) {
        return Err(format!("index {bad} is out of range for {width} features"));
    }
    let mut y = Vec::with_capacity(x.len() / width.max(1) * indices.len());
    for row in x.chunks(width.max(1)) {
        y.extend(indices.iter().map(|&i| row[i as usize].clone()));
    }
    Ok(y)
}

/// `OneHotEncoder` over integer categories: a row of `categories.len()` per element,
/// 1 at its category. An element of no category gives zeros when `zeros`, else an error.
pub fn one_hot(x: &[i64], categories: &[i64], zeros: bool) -> Result<Vec<f32>, String> {
    let mut y = vec![0f32; x.len() * categories.len()];
    for (i, &v) in x.iter().enumerate() {
        match categories.iter().position(|&c| c == v) {
            Some(k) => y[i * categories.len() + k] = 1.0,
            None if zeros => {}
            None => return Err(format!("{v} is not one of the categories, and zeros is 0")),
        }
    }
    Ok(y)
}

/// `FeatureVectorizer`: the rows of each input (`rows` rows of its own width) side by side.
pub fn concat_rows(inputs: &[(&[f32], usize)], rows: usize) -> Vec<f32> {
    let total: usize = inputs.iter().map(|(_, w)| w).sum();
    let mut y = Vec::with_capacity(rows * total);
    for r in 0..rows {
        for &(x, w) in inputs {
            y.extend_from_slice(&x[r * w..(r + 1) * w]);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_broadcasts_a_single_value() {
        assert_eq!(scale(&[1.0, 2.0, 3.0, 4.0], 2, &[1.0], &[2.0, 3.0]), vec![0.0, 3.0, 4.0, 9.0]);
    }

    #[test]
    fn norms_follow_onnxruntime() {
        let x = [-3.0, 4.0, 0.0, 0.0];
        assert_eq!(normalize(&x, 2, Norm::L2), vec![-0.6, 0.8, 0.0, 0.0]);
        assert_eq!(normalize(&x, 2, Norm::L1), vec![-3.0 / 7.0, 4.0 / 7.0, 0.0, 0.0]);
        assert_eq!(normalize(&x, 2, Norm::Max), vec![-0.75, 1.0, 0.0, 0.0]);
        // The largest value, not magnitude: a negative one flips the signs.
        assert_eq!(normalize(&[-2.0, -4.0], 2, Norm::Max), vec![1.0, 2.0]);
    }

    #[test]
    fn impute_per_column_and_broadcast() {
        let x = [f32::NAN, 1.0, 2.0, f32::NAN];
        let y = impute(&x, 2, &[7.0, 8.0], f32::is_nan);
        assert_eq!(y, vec![7.0, 1.0, 2.0, 8.0]);
        assert_eq!(impute(&[0i64, 5, -1], 3, &[9], |v| v == -1), vec![0, 5, 9]);
    }

    #[test]
    fn extract_checks_indices() {
        assert_eq!(extract(&[1, 2, 3, 4, 5, 6], 3, &[2, 0, 2]).unwrap(), vec![3, 1, 3, 6, 4, 6]);
        assert!(extract(&[1, 2, 3], 3, &[3]).unwrap_err().contains("index 3 is out of range"));
        assert!(extract(&[1, 2, 3], 3, &[-1]).is_err());
    }

    #[test]
    fn one_hot_zeros_or_error() {
        assert_eq!(one_hot(&[5, 7, 9], &[7, 5], true).unwrap(), vec![0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        assert!(one_hot(&[9], &[7, 5], false).is_err());
    }

    #[test]
    fn concat_side_by_side() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0];
        assert_eq!(concat_rows(&[(&a, 2), (&b, 1)], 2), vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
    }
}
