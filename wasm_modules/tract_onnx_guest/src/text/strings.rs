//! ONNX `StringConcat`, `StringSplit` and `RegexFullMatch` (opset 20).

use super::re2::Pattern;
use super::{check_shape, output_len};

/// `StringConcat` on two equally long slices (the caller broadcasts): `a[i] + b[i]`.
pub fn string_concat(a: &[String], b: &[String]) -> Result<Vec<String>, String> {
    if a.len() != b.len() {
        return Err(format!("StringConcat: {} strings and {} strings", a.len(), b.len()));
    }
    Ok(a.iter().zip(b).map(|(x, y)| format!("{x}{y}")).collect())
}

/// The parts of one string as onnxruntime's `StringSplit` cuts it. With a non-empty
/// `delimiter`, Python's `str.split(delimiter, maxsplit)` except that the empty string
/// has no part; without one (absent or empty), runs of spaces (U+0020 only: not tabs,
/// newlines or other Unicode spaces) separate the parts, with leading and trailing spaces
/// ignored, the remainder after `maxsplit` splits included. `maxsplit` `None` or
/// negative: no limit; 0: no split.
pub fn split_one<'a>(s: &'a str, delimiter: Option<&str>, maxsplit: Option<i64>) -> Vec<&'a str> {
    let limit = maxsplit.and_then(|m| usize::try_from(m).ok());
    match delimiter.filter(|d| !d.is_empty()) {
        Some(d) => {
            if s.is_empty() {
                Vec::new()
            } else {
                match limit {
                    Some(m) => s.splitn(m.saturating_add(1), d).collect(),
                    None => s.split(d).collect(),
                }
            }
        }
        None => {
            let mut parts = Vec::new();
            let mut rest = s.trim_matches(' ');
            while !rest.is_empty() {
                if limit.is_some_and(|m| parts.len() >= m) {
                    parts.push(rest);
                    break;
                }
                match rest.find(' ') {
                    Some(i) => {
                        parts.push(&rest[..i]);
                        rest = rest[i..].trim_start_matches(' ');
                    }
                    None => {
                        parts.push(rest);
                        break;
                    }
                }
            }
            parts
        }
    }
}

/// `StringSplit` of `x` (any shape, a scalar included): `Y` of shape `shape + [P]`, `P`
/// the most parts of any string, each row padded with empty strings, and `Z` (int64, of
/// `shape`) the number of parts of each string. No part anywhere (an input without
/// elements, or only empty strings) gives `P = 0` (onnxruntime: `[0]` gives `Y` of shape
/// `[0, 0]`).
#[allow(clippy::type_complexity)]
pub fn string_split(
    x: &[String],
    shape: &[usize],
    delimiter: Option<&str>,
    maxsplit: Option<i64>,
) -> Result<((Vec<String>, Vec<usize>), (Vec<i64>, Vec<usize>)), String> {
    check_shape(x.len(), shape)?;
    let rows: Vec<Vec<&str>> = x.iter().map(|s| split_one(s, delimiter, maxsplit)).collect();
    let most = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut y_shape = shape.to_vec();
    y_shape.push(most);
    let mut y = Vec::with_capacity(output_len(&y_shape)?);
    let mut z = Vec::with_capacity(x.len());
    for row in rows {
        z.push(row.len() as i64);
        let start = y.len();
        y.extend(row.into_iter().map(str::to_string));
        y.resize(start + most, String::new());
    }
    Ok(((y, y_shape), (z, shape.to_vec())))
}

/// A checked `RegexFullMatch` node: RE2's `FullMatch` (the whole string must match;
/// `.` does not match a newline; `\w`, `\d`, `\s`, `\b` are ASCII). Back-references and
/// look-around are invalid patterns, as in RE2.
#[derive(Debug, Clone)]
pub struct RegexFullMatch {
    pattern: Pattern,
}

impl RegexFullMatch {
    /// Invalid patterns, and patterns whose compiled form exceeds
    /// [`super::PATTERN_SIZE_LIMIT`], are errors.
    pub fn new(pattern: &str) -> Result<RegexFullMatch, String> {
        let pattern = Pattern::new_full(pattern).map_err(|e| format!("RegexFullMatch: {e}"))?;
        Ok(RegexFullMatch { pattern })
    }

    /// One boolean per string, in the input's shape.
    pub fn run(&self, x: &[String]) -> Vec<bool> {
        x.iter().map(|s| self.pattern.full_match(s)).collect()
    }
}

/// [`RegexFullMatch`] in one call.
pub fn regex_full_match(pattern: &str, x: &[String]) -> Result<Vec<bool>, String> {
    Ok(RegexFullMatch::new(pattern)?.run(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    // All expected values come from onnxruntime 1.32.
    #[test]
    fn concat() {
        assert_eq!(string_concat(&s(&["a", "é"]), &s(&["b", ""])).unwrap(), s(&["ab", "é"]));
        assert_eq!(string_concat(&[], &[]).unwrap(), s(&[]));
        assert!(string_concat(&s(&["a"]), &[]).is_err());
    }

    fn split(x: &[&str], shape: &[usize], d: Option<&str>, m: Option<i64>) -> (Vec<String>, Vec<usize>, Vec<i64>) {
        let ((y, ys), (z, zs)) = string_split(&s(x), shape, d, m).unwrap();
        assert_eq!(zs, shape);
        (y, ys, z)
    }

    #[test]
    fn split_by_delimiter() {
        let x = ["a b  c", " x ", "", "   "];
        let (y, ys, z) = split(&x, &[4], Some(" "), None);
        assert_eq!(ys, vec![4, 4]);
        assert_eq!(z, vec![4, 3, 0, 4]);
        let want = ["a", "b", "", "c", "", "x", "", "", "", "", "", "", "", "", "", ""];
        assert_eq!(y, s(&want));
        let x = ["a,b,,c", ",x", ""];
        assert_eq!(
            split(&x, &[3], Some(","), Some(1)),
            (s(&["a", "b,,c", "", "x", "", ""]), vec![3, 2], vec![2, 2, 0])
        );
        assert_eq!(split(&x, &[3], Some(","), Some(0)), (s(&["a,b,,c", ",x", ""]), vec![3, 1], vec![1, 1, 0]));
        assert_eq!(
            split(&["a<>b<>c", "<><>"], &[2], Some("<>"), None),
            (s(&["a", "b", "c", "", "", ""]), vec![2, 3], vec![3, 3])
        );
        assert_eq!(
            split(&["a,b", "c,d"], &[2, 1], Some(","), None),
            (s(&["a", "b", "c", "d"]), vec![2, 1, 2], vec![2, 2])
        );
        assert_eq!(split(&[], &[0], Some(","), None), (vec![], vec![0, 0], vec![]));
        assert_eq!(split(&["", ""], &[2], Some(","), None), (vec![], vec![2, 0], vec![0, 0]));
        assert_eq!(split(&["a,b"], &[1], Some(","), Some(-1)), (s(&["a", "b"]), vec![1, 2], vec![2]));
        assert_eq!(split(&["a,b"], &[1], Some(","), Some(-2)), (s(&["a", "b"]), vec![1, 2], vec![2]));
        assert_eq!(split(&["x"], &[1], Some(","), None), (s(&["x"]), vec![1, 1], vec![1]));
        assert_eq!(
            split(&[",a,", "a,,"], &[2], Some(","), Some(1)),
            (s(&["", "a,", "a", ","]), vec![2, 2], vec![2, 2])
        );
        assert!(string_split(&s(&["a"]), &[2], None, None).is_err());
    }

    #[test]
    fn split_by_spaces() {
        let x = ["a b  c", " x ", "", "   "];
        for d in [None, Some("")] {
            let (y, ys, z) = split(&x, &[4], d, None);
            assert_eq!((ys, z), (vec![4, 3], vec![3, 1, 0, 0]));
            assert_eq!(y, s(&["a", "b", "c", "x", "", "", "", "", "", "", "", ""]));
        }
        let (y, _, z) = split(&["a\tb\nc\u{a0}d\u{2003}e\u{b}f"], &[1], None, None);
        assert_eq!((y, z), (s(&["a\tb\nc\u{a0}d\u{2003}e\u{b}f"]), vec![1]));
        let x = ["a b c  d  ", "  x  ", "a  b", " a b "];
        let (y, _, z) = split(&x, &[4], None, Some(2));
        assert_eq!(z, vec![3, 1, 2, 2]);
        assert_eq!(y, s(&["a", "b", "c  d", "x", "", "", "a", "b", "", "a", "b", ""]));
        let (y, _, z) = split(&x, &[4], None, Some(1));
        assert_eq!(z, vec![2, 1, 2, 2]);
        assert_eq!(y, s(&["a", "b c  d", "x", "", "a", "b", "a", "b"]));
        let (y, _, z) = split(&x, &[4], None, Some(0));
        assert_eq!((y, z), (s(&["a b c  d", "x", "a  b", "a b"]), vec![1, 1, 1, 1]));
        let (y, _, z) = split(&["a b c d", "  x y z "], &[2], None, Some(2));
        assert_eq!((y, z), (s(&["a", "b", "c d", "x", "y", "z"]), vec![3, 3]));
        assert_eq!(split(&["\ta\t b"], &[1], None, None), (s(&["\ta\t", "b"]), vec![1, 2], vec![2]));
        // A scalar.
        assert_eq!(split(&["a b"], &[], None, None), (s(&["a", "b"]), vec![2], vec![2]));
    }

    #[test]
    fn full_match() {
        let x = s(&["abc", "ab", "abcd", "", "ABC"]);
        assert_eq!(regex_full_match("a.c|", &x).unwrap(), vec![true, false, false, true, false]);
        let x = s(&["ab", "abab", "a\nb"]);
        assert_eq!(regex_full_match("a|ab|(ab)*", &x).unwrap(), vec![true, true, false]);
        assert_eq!(regex_full_match("a.b", &s(&["a\nb", "a"])).unwrap(), vec![false, false]);
        assert_eq!(regex_full_match("\\w", &s(&["é", "1", "\u{663}"])).unwrap(), vec![false, true, false]);
        assert_eq!(regex_full_match("\\d", &s(&["é", "1", "\u{663}"])).unwrap(), vec![false, true, false]);
        assert_eq!(regex_full_match("^ab$", &s(&["ab"])).unwrap(), vec![true]);
        assert_eq!(regex_full_match("(?i)ab", &s(&["aB"])).unwrap(), vec![true]);
        assert_eq!(regex_full_match("", &s(&["ab", ""])).unwrap(), vec![false, true]);
        assert_eq!(
            regex_full_match("[\\w.+-]+@[\\w-]+\\.[\\w.-]+", &s(&["a.b@c.org", "a@b"])).unwrap(),
            vec![true, false]
        );
        assert!(regex_full_match("a(", &[]).unwrap_err().contains("RegexFullMatch"));
        assert!(regex_full_match("(a)\\1", &[]).is_err());
        assert!(regex_full_match("a)|(b", &[]).is_err());
        assert!(regex_full_match("(?=a)", &[]).is_err());
        assert!(regex_full_match("[a-z]{1000}{1000}", &[]).is_err());
        // Valid, but over the compiled size limit: refused, quickly.
        let e = regex_full_match("(?:[a-z]{1000}){1000}", &[]).unwrap_err();
        assert!(e.contains("too large") || e.contains("size"), "{e}");
        let e = regex_full_match("(?:\\pL{100}){100}", &[]).unwrap_err();
        assert!(e.contains("too large") || e.contains("size"), "{e}");
    }
}
