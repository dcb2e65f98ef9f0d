//! ONNX `TfIdfVectorizer`.

use std::collections::HashMap;
use std::hash::Hash;

use super::{check_shape, output_len};

/// `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TfIdfMode {
    Tf,
    Idf,
    TfIdf,
}

impl TfIdfMode {
    pub fn parse(s: &str) -> Result<TfIdfMode, String> {
        match s {
            "TF" => Ok(TfIdfMode::Tf),
            "IDF" => Ok(TfIdfMode::Idf),
            "TFIDF" => Ok(TfIdfMode::TfIdf),
            _ => Err(format!("TfIdfVectorizer: mode {s:?} is not TF, IDF or TFIDF")),
        }
    }
}

/// A checked `TfIdfVectorizer` node over items of type `K` (`i64` for `pool_int64s`,
/// with int32 inputs widened by the caller; `String` for `pool_strings`).
///
/// onnxruntime's semantics, found by running it: the pool holds, from
/// `ngram_counts[0]` on, the 1-grams, then from `ngram_counts[1]` the 2-grams, and so on
/// (items before `ngram_counts[0]` are ignored); the n-grams, all sizes together, are
/// numbered in pool order, and n-gram `i` counts into output column `ngram_indexes[i]`
/// with weight `weights[i]`. Only sizes within `[min_gram_length, max_gram_length]` are
/// counted, but every size takes its numbers. Each row is scanned with skip distances 1
/// to `max_skip_count + 1` (n-gram items `distance` apart), 1-grams only once. Per
/// occurrence, TF adds 1, TFIDF adds the weight, and IDF *sets* the column to the weight
/// (so with duplicate `ngram_indexes` the last occurrence scanned wins). Nothing is
/// special about pad tokens: the Tokenizer's `pad_value` is an item like any other.
#[derive(Debug, Clone)]
pub struct TfIdf<K> {
    mode: TfIdfMode,
    min_gram: usize,
    max_gram: usize,
    max_skip: usize,
    /// Every loaded n-gram and every prefix of one, to its number plus 1 (0: a prefix
    /// only), as onnxruntime's trie.
    grams: HashMap<Vec<K>, usize>,
    indexes: Vec<usize>,
    weights: Vec<f32>,
    width: usize,
}

/// The most items (n-grams' and their prefixes') the n-gram table may hold: a pool that
/// is one 100000-gram would otherwise need 5 * 10^9.
pub const MAX_TABLE_ITEMS: usize = 1 << 24;

fn attr_usize(name: &str, v: i64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("TfIdfVectorizer: {name} {v} is negative or too large"))
}

impl<K: Eq + Hash + Clone> TfIdf<K> {
    /// Checks the attributes as onnxruntime does, and more: `min_gram_length > 0`,
    /// `max_gram_length >= min_gram_length`, both at most `ngram_counts.len()`,
    /// `max_skip_count >= 0`, `ngram_indexes` not negative, `weights` empty or as long as
    /// `ngram_indexes`, the pool not empty, `ngram_counts` within the pool and not
    /// decreasing, each size's items whole n-grams, no n-gram twice among the counted
    /// sizes; and (where onnxruntime reads out of bounds) an index for every counted
    /// n-gram. The output width is `max(ngram_indexes) + 1`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mode: &str,
        min_gram_length: i64,
        max_gram_length: i64,
        max_skip_count: i64,
        ngram_counts: &[i64],
        ngram_indexes: &[i64],
        weights: &[f32],
        pool: &[K],
    ) -> Result<TfIdf<K>, String> {
        let mode = TfIdfMode::parse(mode)?;
        let min_gram = attr_usize("min_gram_length", min_gram_length)?;
        let max_gram = attr_usize("max_gram_length", max_gram_length)?;
        let max_skip = attr_usize("max_skip_count", max_skip_count)?;
        if min_gram == 0 {
            return Err("TfIdfVectorizer: min_gram_length must be positive".into());
        }
        if max_gram < min_gram {
            return Err(format!("TfIdfVectorizer: max_gram_length {max_gram} is less than min_gram_length {min_gram}"));
        }
        if max_gram > ngram_counts.len() {
            return Err(format!(
                "TfIdfVectorizer: max_gram_length {max_gram} exceeds the {} entries of ngram_counts",
                ngram_counts.len()
            ));
        }
        let indexes =
            ngram_indexes.iter().map(|&i| attr_usize("ngram_indexes", i)).collect::<Result<Vec<usize>, String>>()?;
        if !weights.is_empty() && weights.len() != indexes.len() {
            return Err(format!("TfIdfVectorizer: {} weights for {} ngram_indexes", weights.len(), indexes.len()));
        }
        if pool.is_empty() {
            return Err("TfIdfVectorizer: the pool (pool_int64s or pool_strings) is empty".into());
        }
        let width = match indexes.iter().max() {
            Some(&m) => m.checked_add(1).ok_or("TfIdfVectorizer: ngram_indexes overflow")?,
            None => 0,
        };
        output_len(&[width])?;
        let mut grams: HashMap<Vec<K>, usize> = HashMap::new();
        let mut id = 0usize;
        // Items held by the table, prefixes included: n(n+1)/2 per n-gram.
        let mut held = 0usize;
        for (i, &start) in ngram_counts.iter().enumerate() {
            let n = i + 1;
            let end = ngram_counts.get(i + 1).copied().unwrap_or(pool.len() as i64);
            let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
                return Err(format!("TfIdfVectorizer: ngram_counts {ngram_counts:?} has a negative entry"));
            };
            if end < start || end > pool.len() {
                return Err(format!(
                    "TfIdfVectorizer: ngram_counts {ngram_counts:?} out of bounds for {n}-grams (pool of {})",
                    pool.len()
                ));
            }
            let items = &pool[start..end];
            if !items.len().is_multiple_of(n) {
                return Err(format!(
                    "TfIdfVectorizer: {} pool items for {n}-grams do not make whole {n}-grams",
                    items.len()
                ));
            }
            let counted = n >= min_gram && n <= max_gram;
            for gram in items.chunks(n) {
                id += 1;
                if !counted {
                    continue;
                }
                if id > indexes.len() {
                    return Err(format!(
                        "TfIdfVectorizer: n-gram {id} of the pool has no entry in the {} ngram_indexes",
                        indexes.len()
                    ));
                }
                held = n
                    .checked_mul(n + 1)
                    .map(|h| h / 2)
                    .and_then(|h| held.checked_add(h))
                    .filter(|&h| h <= MAX_TABLE_ITEMS)
                    .ok_or_else(|| {
                        format!("TfIdfVectorizer: the pool's n-grams and their prefixes exceed {MAX_TABLE_ITEMS} items")
                    })?;
                for k in 1..n {
                    grams.entry(gram[..k].to_vec()).or_insert(0);
                }
                let slot = grams.entry(gram.to_vec()).or_insert(0);
                if *slot != 0 {
                    return Err(format!("TfIdfVectorizer: the pool holds a {n}-gram twice"));
                }
                *slot = id;
            }
        }
        Ok(TfIdf { mode, min_gram, max_gram, max_skip, grams, indexes, weights: weights.to_vec(), width })
    }

    /// The output's shape for an input of shape `[C]` (`[width]`) or `[N, C]` with
    /// `N > 0` (`[N, width]`); `C` may be 0 (zeros). Other shapes are errors.
    pub fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>, String> {
        let out = match shape {
            [_] => vec![self.width],
            [n, _] if *n > 0 => vec![*n, self.width],
            _ => return Err(format!("TfIdfVectorizer: input shape {shape:?} is neither [C] nor [N, C] with N > 0")),
        };
        output_len(&out)?;
        Ok(out)
    }

    /// Vectorizes `x`, whose shape [`TfIdf::output_shape`] accepts. (An input whose type
    /// differs from the pool's, strings for `pool_int64s` say, gives zeros in onnxruntime:
    /// zeros of `output_shape`.)
    pub fn run(&self, x: &[K], shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>), String> {
        check_shape(x.len(), shape)?;
        let out_shape = self.output_shape(shape)?;
        let mut y = vec![0f32; output_len(&out_shape)?];
        let c = *shape.last().unwrap_or(&0);
        if c == 0 || self.width == 0 {
            return Ok((y, out_shape));
        }
        for (row, out) in x.chunks(c).zip(y.chunks_mut(self.width)) {
            self.count_row(row, out);
        }
        Ok((y, out_shape))
    }

    fn count_row(&self, row: &[K], out: &mut [f32]) {
        let c = row.len();
        let mut start_gram = self.min_gram;
        // Distances beyond the row cannot gather two items: a bound on hostile skips.
        let max_distance = self.max_skip.saturating_add(1).min(c.max(1));
        for distance in 1..=max_distance {
            for start in 0..c {
                // Too far for an n-gram of the smallest size counted at this distance.
                let reach = (start_gram - 1).checked_mul(distance).and_then(|r| r.checked_add(start));
                if reach.is_none_or(|r| r >= c) {
                    break;
                }
                let mut key: Vec<K> = Vec::with_capacity(self.max_gram);
                let mut pos = start;
                for n in 1..=self.max_gram {
                    if pos >= c {
                        break;
                    }
                    key.push(row[pos].clone());
                    let Some(&id) = self.grams.get(&key) else { break };
                    if n >= start_gram && id != 0 {
                        self.count(id - 1, out);
                    }
                    pos = match pos.checked_add(distance) {
                        Some(p) => p,
                        None => break,
                    };
                }
            }
            // 1-grams are counted once, whatever the distance.
            if start_gram == 1 {
                start_gram = 2;
                if start_gram > self.max_gram {
                    break;
                }
            }
        }
    }

    fn count(&self, id: usize, out: &mut [f32]) {
        let (Some(&col), w) = (self.indexes.get(id), self.weights.get(id).copied().unwrap_or(1.0)) else {
            return;
        };
        let Some(v) = out.get_mut(col) else { return };
        match self.mode {
            TfIdfMode::Tf => *v += 1.0,
            TfIdfMode::TfIdf => *v += w,
            TfIdfMode::Idf => *v = w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: [i64; 8] = [2, 3, 5, 4, 5, 6, 7, 8];

    fn ints(mode: &str, min: i64, max: i64, skip: i64, idx: &[i64], w: &[f32]) -> Result<TfIdf<i64>, String> {
        TfIdf::new(mode, min, max, skip, &[0, 4], idx, w, &POOL)
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    const IDX: [i64; 6] = [0, 1, 2, 3, 4, 5];

    // All expected values come from onnxruntime 1.32.
    #[test]
    fn counts_rows_and_shapes() {
        let t = ints("TF", 1, 2, 0, &IDX, &[]).unwrap();
        let x = [1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8];
        let want = vec![0., 3., 0., 0., 0., 0., 0., 0., 1., 0., 1., 0.];
        assert_eq!(t.run(&x, &[2, 6]).unwrap(), (want, vec![2, 6]));
        assert_eq!(t.run(&x[..6], &[6]).unwrap(), (vec![0., 3., 0., 0., 0., 0.], vec![6]));
        assert_eq!(t.run(&[], &[0]).unwrap(), (vec![0.; 6], vec![6]));
        assert_eq!(t.run(&[], &[2, 0]).unwrap(), (vec![0.; 12], vec![2, 6]));
        assert!(t.run(&[], &[0, 3]).is_err());
        assert!(t.run(&[1, 2, 3], &[1, 1, 3]).is_err());
        assert!(t.run(&[1], &[]).is_err());
        assert!(t.run(&[1, 2], &[3]).is_err());
        // Only 1-grams counted.
        let t = ints("TF", 1, 1, 0, &IDX, &[]).unwrap();
        assert_eq!(t.run(&x, &[2, 6]).unwrap().0, vec![0., 3., 0., 0., 0., 0., 0., 0., 1., 0., 0., 0.]);
        // Output width is the largest index plus one.
        let t = ints("TF", 1, 2, 0, &[0, 1, 2, 3, 4, 50], &[]).unwrap();
        assert_eq!(t.run(&x, &[2, 6]).unwrap().1, vec![2, 51]);
        // Duplicate indexes add up (TF).
        let t = ints("TF", 1, 2, 0, &[0, 0, 1, 1, 2, 2], &[]).unwrap();
        assert_eq!(t.run(&x, &[2, 6]).unwrap().0, vec![3., 0., 0., 0., 1., 1.]);
        assert_eq!(t.run(&[2, 3, 3], &[3]).unwrap().0, vec![3., 0., 0.]);
    }

    #[test]
    fn skip_grams() {
        let x = [5, 6, 7, 8, 6, 7];
        let t = ints("TF", 1, 2, 1, &IDX, &[]).unwrap();
        assert_eq!(t.run(&x, &[6]).unwrap().0, vec![0., 0., 1., 0., 1., 1.]);
        let t = ints("TF", 2, 2, 5, &IDX, &[]).unwrap();
        assert_eq!(t.run(&x, &[6]).unwrap().0, vec![0., 0., 0., 0., 2., 1.]);
        // A hostile skip count is bounded by the row.
        let t = ints("TF", 2, 2, i64::MAX, &IDX, &[]).unwrap();
        assert_eq!(t.run(&x, &[6]).unwrap().0, vec![0., 0., 0., 0., 2., 1.]);
        let t = ints("TF", 1, 2, 0, &IDX, &[]).unwrap();
        assert_eq!(t.run(&[7, 8, 5, 6], &[4]).unwrap().0, vec![0., 0., 1., 0., 1., 1.]);
        let t = ints("TF", 2, 2, 0, &IDX, &[]).unwrap();
        assert_eq!(t.run(&[7, 8, 5, 6], &[4]).unwrap().0, vec![0., 0., 0., 0., 1., 1.]);
    }

    #[test]
    fn weights() {
        let w = [1., 2., 3., 4., 5., 6.];
        let t = ints("IDF", 1, 2, 0, &IDX, &w).unwrap();
        assert_eq!(t.run(&[5, 6, 7, 8, 6, 7], &[6]).unwrap().0, vec![0., 0., 3., 0., 5., 6.]);
        let t = ints("TFIDF", 1, 2, 0, &IDX, &w).unwrap();
        assert_eq!(t.run(&[5, 6, 7, 8, 6, 7, 7, 8, 5, 5], &[10]).unwrap().0, vec![0., 0., 9., 0., 5., 12.]);
        let t = ints("IDF", 1, 2, 0, &IDX, &[]).unwrap();
        assert_eq!(t.run(&[7, 8, 5, 6], &[4]).unwrap().0, vec![0., 0., 1., 0., 1., 1.]);
        let t = ints("TF", 1, 2, 0, &IDX, &w).unwrap();
        assert_eq!(t.run(&[7, 8, 5], &[3]).unwrap().0, vec![0., 0., 1., 0., 0., 1.]);
        // Weights belong to the n-gram, not to the column.
        let x = [5, 6, 7, 8, 6, 7, 5];
        let t = ints("TFIDF", 1, 2, 0, &[5, 4, 3, 2, 1, 0], &w).unwrap();
        assert_eq!(t.run(&x, &[7]).unwrap().0, vec![6., 5., 0., 6., 0., 0.]);
        let t = ints("IDF", 1, 2, 0, &[5, 4, 3, 2, 1, 0], &w).unwrap();
        assert_eq!(t.run(&x, &[7]).unwrap().0, vec![6., 5., 0., 3., 0., 0.]);
        let t = ints("TFIDF", 1, 2, 0, &[0, 1, 9, 3, 4, 5], &w).unwrap();
        assert_eq!(t.run(&x, &[7]).unwrap().0, vec![0., 0., 0., 0., 5., 6., 0., 0., 0., 6.]);
        // Duplicate indexes: TFIDF adds, IDF keeps the last occurrence's weight.
        let t = ints("TFIDF", 1, 2, 0, &[0, 0, 1, 1, 2, 2], &w).unwrap();
        assert_eq!(t.run(&[2, 3, 3, 3, 2, 2], &[2, 3]).unwrap().0, vec![5., 0., 0., 4., 0., 0.]);
        let t = ints("IDF", 1, 2, 0, &[0, 0, 1, 1, 2, 2], &[6., 5., 4., 3., 2., 1.]).unwrap();
        assert_eq!(t.run(&[2, 3, 3], &[3]).unwrap().0, vec![5., 0., 0.]);
        assert_eq!(t.run(&[3, 2, 2], &[3]).unwrap().0, vec![6., 0., 0.]);
        let t = ints("IDF", 1, 2, 0, &[0, 1, 2, 2, 3, 3], &[6., 5., 4., 3., 2., 1.]).unwrap();
        assert_eq!(t.run(&[5, 4], &[2]).unwrap().0, vec![0., 0., 3., 0.]);
    }

    #[test]
    fn weights_accumulate_in_single_precision() {
        // onnxruntime adds the weight once per occurrence (not count * weight).
        let t = TfIdf::new("TFIDF", 1, 1, 0, &[0], &[0, 1], &[0.1, 0.7], &[1i64, 2]).unwrap();
        let mut x = vec![1i64; 10];
        x.extend([2; 10]);
        assert_eq!(t.run(&x, &[20]).unwrap().0, vec![1.000_000_1, 6.999_999]);
    }

    #[test]
    fn strings_and_pad_tokens() {
        // skl2onnx feeds the Tokenizer's rows, pads ("#") included: they are items.
        let pool = s(&["a", "b", "#", "a", "b", "b", "#"]);
        let t = TfIdf::new("TF", 1, 2, 0, &[0, 3], &[0, 1, 2, 3, 4], &[], &pool).unwrap();
        assert_eq!(t.run(&s(&["a", "b", "#", "#"]), &[4]).unwrap(), (vec![1., 1., 2., 1., 1.], vec![5]));
        let x = s(&["a", "b", "#", "#", "a", "b"]);
        assert_eq!(t.run(&x, &[2, 3]).unwrap().0, vec![1., 1., 1., 1., 1., 1., 1., 1., 1., 0.]);
        assert_eq!(t.run(&s(&["a", "b", "", "a"]), &[1, 4]).unwrap().0, vec![2., 1., 0., 1., 0.]);
        // Pool items before ngram_counts[0] are ignored; unused indexes still widen.
        let t = TfIdf::new("TF", 1, 2, 0, &[2, 4], &IDX, &[], &POOL).unwrap();
        let x = [1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8];
        assert_eq!(t.run(&x, &[2, 6]).unwrap().0, vec![0., 0., 0., 0., 0., 0., 1., 0., 1., 0., 0., 0.]);
    }

    #[test]
    fn refusals() {
        let bad = |mode: &str, min, max, skip, counts: &[i64], idx: &[i64], w: &[f32], pool: &[i64]| {
            TfIdf::new(mode, min, max, skip, counts, idx, w, pool).unwrap_err()
        };
        assert!(bad("XX", 1, 2, 0, &[0, 4], &IDX, &[], &POOL).contains("mode"));
        assert!(bad("TF", 0, 2, 0, &[0, 4], &IDX, &[], &POOL).contains("min_gram_length"));
        assert!(bad("TF", -1, 2, 0, &[0, 4], &IDX, &[], &POOL).contains("min_gram_length"));
        assert!(bad("TF", 3, 2, 0, &[0, 4], &IDX, &[], &POOL).contains("max_gram_length"));
        assert!(bad("TF", 3, 3, 0, &[0, 4], &IDX, &[], &POOL).contains("max_gram_length"));
        assert!(bad("TF", 1, i64::MAX, 0, &[0, 4], &IDX, &[], &POOL).contains("max_gram_length"));
        assert!(bad("TF", 1, 2, -1, &[0, 4], &IDX, &[], &POOL).contains("max_skip_count"));
        assert!(bad("TF", 1, 2, 0, &[0, 4], &[0, 1, 2, 3, 4, -1], &[], &POOL).contains("ngram_indexes"));
        assert!(bad("TF", 1, 2, 0, &[0, 4], &IDX, &[1., 2.], &POOL).contains("weights"));
        assert!(bad("TF", 1, 2, 0, &[0, 5], &IDX, &[], &POOL).contains("twice"));
        assert!(bad("TF", 1, 2, 0, &[0, 9], &IDX, &[], &POOL).contains("out of bounds"));
        assert!(bad("TF", 1, 2, 0, &[0, 3], &IDX, &[], &POOL).contains("whole"));
        assert!(bad("TF", 1, 2, 0, &[0, 4, 6], &IDX, &[], &POOL).contains("whole"));
        assert!(bad("TF", 1, 2, 0, &[0, -4], &IDX, &[], &POOL).contains("negative"));
        assert!(bad("TF", 1, 2, 0, &[5, 4], &IDX, &[], &POOL).contains("out of bounds"));
        assert!(bad("TF", 1, 2, 0, &[0, 4], &IDX, &[], &[2, 3, 5, 5, 5, 6, 7, 8]).contains("twice"));
        assert!(bad("TF", 1, 2, 0, &[0, 4], &IDX, &[], &POOL[..7]).contains("whole"));
        assert!(bad("TF", 1, 2, 0, &[], &IDX, &[], &POOL).contains("ngram_counts"));
        assert!(bad("TF", 1, 2, 0, &[0, 0], &IDX, &[], &[]).contains("empty"));
        // Fewer indexes than counted n-grams: onnxruntime reads out of bounds.
        assert!(bad("TF", 1, 2, 0, &[0, 4], &[0, 1, 2, 3, 4], &[], &POOL).contains("no entry"));
        // A width beyond the output limit.
        assert!(bad("TF", 1, 2, 0, &[0, 4], &[0, 1, 2, 3, 4, 1 << 40], &[], &POOL).contains("limit"));
        bad("TF", 1, 2, 0, &[0, 4], &[0, 1, 2, 3, 4, i64::MAX], &[], &POOL);
        // One huge n-gram: its prefixes would take 5 * 10^9 items.
        let pool: Vec<i64> = (0..100_000).collect();
        let counts = vec![0i64; 100_000];
        let e = TfIdf::new("TF", 100_000, 100_000, 0, &counts, &[0], &[], &pool).unwrap_err();
        assert!(e.contains("exceed"), "{e}");
        // Sizes outside [min, max] are not checked for duplicates (as onnxruntime).
        assert!(TfIdf::new("TF", 2, 2, 0, &[0, 4], &IDX, &[], &[5, 5, 5, 4, 5, 6, 7, 8]).is_ok());
        // Accepted, and harmless: indexes past the counted n-grams.
        assert!(TfIdf::new("TF", 1, 2, 0, &[0, 4, 8], &IDX, &[], &POOL).is_ok());
        // Rows times width beyond the limit.
        let t = TfIdf::new("TF", 1, 1, 0, &[0], &[0, 1 << 27], &[], &[1i64, 2]).unwrap();
        assert!(t.run(&[1, 2, 3, 4], &[4, 1]).unwrap_err().contains("limit"));
    }
}
