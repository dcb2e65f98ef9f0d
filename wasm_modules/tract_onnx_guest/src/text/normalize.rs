//! ONNX `StringNormalizer`.

use std::collections::HashSet;

use super::check_shape;

/// `case_change_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseChange {
    Lower,
    Upper,
    None,
}

impl CaseChange {
    /// `"LOWER"`, `"UPPER"` or `"NONE"` (the attribute's default); anything else is an
    /// error, as in onnxruntime.
    pub fn parse(s: &str) -> Result<CaseChange, String> {
        match s {
            "LOWER" => Ok(CaseChange::Lower),
            "UPPER" => Ok(CaseChange::Upper),
            "NONE" => Ok(CaseChange::None),
            _ => Err(format!("StringNormalizer: case_change_action {s:?} is not LOWER, UPPER or NONE")),
        }
    }
}

/// A character's simple (one to one) lowercase mapping, what onnxruntime's
/// `std::ctype<wchar_t>::tolower` gives in a UTF-8 locale: `'İ'` becomes `'i'`, a
/// final `'Σ'` becomes `'σ'` (no context), `'ß'` and ligatures stay.
pub fn lower_char(c: char) -> char {
    // Only U+0130 has a multi-character full lowercase; its simple one is 'i'.
    c.to_lowercase().next().unwrap_or(c)
}

/// A character's simple uppercase mapping (glibc's `towupper`): `'ß'`, `'ﬁ'`, `'ŉ'`
/// stay (their full uppercase has several characters), `'ᾳ'` becomes `'ᾼ'`.
pub fn upper_char(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => {
            // The Greek letters with ypogegrammeni: simple uppercase is the titlecase
            // letter with prosgegrammeni (U+1F80..U+1FFC); others are unchanged.
            let u = c as u32;
            let mapped = match u {
                0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => u + 8,
                0x1FB3 => 0x1FBC,
                0x1FC3 => 0x1FCC,
                0x1FF3 => 0x1FFC,
                _ => u,
            };
            char::from_u32(mapped).unwrap_or(c)
        }
    }
}

/// `s` with [`lower_char`] applied to each character.
pub fn to_lower(s: &str) -> String {
    s.chars().map(lower_char).collect()
}

/// `s` with [`upper_char`] applied to each character.
pub fn to_upper(s: &str) -> String {
    s.chars().map(upper_char).collect()
}

/// A checked `StringNormalizer` node.
///
/// onnxruntime: stopwords are compared with the input strings as they are (before the
/// case change), case-insensitively (both sides lowercased) when `is_case_sensitive` is
/// 0; the survivors then get the case change. The `locale` attribute only selects the
/// C++ locale doing the case change (an unknown one fails the session in onnxruntime;
/// here case mapping is Unicode's, whatever the locale).
#[derive(Debug, Clone)]
pub struct StringNormalizer {
    case_change: CaseChange,
    case_sensitive: bool,
    stopwords: HashSet<String>,
}

impl StringNormalizer {
    /// `case_change_action` as [`CaseChange::parse`] reads it, `is_case_sensitive != 0`,
    /// the `stopwords`.
    pub fn new(
        case_change_action: &str,
        is_case_sensitive: i64,
        stopwords: &[String],
    ) -> Result<StringNormalizer, String> {
        let case_change = CaseChange::parse(case_change_action)?;
        let case_sensitive = is_case_sensitive != 0;
        let stopwords = stopwords.iter().map(|w| if case_sensitive { w.clone() } else { to_lower(w) }).collect();
        Ok(StringNormalizer { case_change, case_sensitive, stopwords })
    }

    /// Normalizes `x` of shape `[C]` or `[1, C]` with `C > 0` (onnxruntime refuses any
    /// other shape, `[0]` and `[1, 0]` included). The output has shape `[C']` or
    /// `[1, C']`, the strings that are not stopwords in their order; when every string is
    /// a stopword it is one empty string, shape `[1]` or `[1, 1]`.
    pub fn run(&self, x: &[String], shape: &[usize]) -> Result<(Vec<String>, Vec<usize>), String> {
        check_shape(x.len(), shape)?;
        match shape {
            [c] if *c > 0 => {}
            [1, c] if *c > 0 => {}
            [_] => return Err("StringNormalizer: input dimension [C] must have C > 0".into()),
            _ => return Err(format!("StringNormalizer: input shape {shape:?} is neither [C] nor [1, C] with C > 0")),
        }
        let mut y: Vec<String> = x
            .iter()
            .filter(|s| {
                if self.stopwords.is_empty() {
                    true
                } else if self.case_sensitive {
                    !self.stopwords.contains(s.as_str())
                } else {
                    !self.stopwords.contains(&to_lower(s))
                }
            })
            .map(|s| match self.case_change {
                CaseChange::Lower => to_lower(s),
                CaseChange::Upper => to_upper(s),
                CaseChange::None => s.clone(),
            })
            .collect();
        if y.is_empty() {
            y.push(String::new());
        }
        let out_shape = if shape.len() == 1 { vec![y.len()] } else { vec![1, y.len()] };
        Ok((y, out_shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn run(
        case: &str,
        sensitive: i64,
        stop: &[&str],
        x: &[&str],
        shape: &[usize],
    ) -> Result<(Vec<String>, Vec<usize>), String> {
        StringNormalizer::new(case, sensitive, &s(stop))?.run(&s(x), shape)
    }

    // Expected values from onnxruntime 1.32 (locale "C.UTF-8").
    #[test]
    fn stopwords_and_case() {
        let x = ["a", "B", "c"];
        assert_eq!(run("NONE", 0, &["b"], &x, &[3]).unwrap(), (s(&["a", "c"]), vec![2]));
        assert_eq!(run("NONE", 1, &["b"], &x, &[3]).unwrap(), (s(&["a", "B", "c"]), vec![3]));
        assert_eq!(run("UPPER", 0, &["b"], &x, &[3]).unwrap(), (s(&["A", "C"]), vec![2]));
        assert_eq!(run("LOWER", 1, &["B"], &x, &[3]).unwrap(), (s(&["a", "c"]), vec![2]));
        // Case-sensitive stopwords compare with the input before its case change.
        assert_eq!(run("LOWER", 1, &["b"], &x, &[3]).unwrap(), (s(&["a", "b", "c"]), vec![3]));
        assert_eq!(run("UPPER", 0, &[], &["a", "b"], &[1, 2]).unwrap(), (s(&["A", "B"]), vec![1, 2]));
        assert_eq!(run("NONE", 0, &["b", "b"], &x, &[3]).unwrap(), (s(&["a", "c"]), vec![2]));
        assert_eq!(run("NONE", 0, &[""], &["a", "b", ""], &[3]).unwrap(), (s(&["a", "b"]), vec![2]));
        assert_eq!(run("LOWER", 0, &["A"], &["a", "b", ""], &[3]).unwrap(), (s(&["b", ""]), vec![2]));
    }

    #[test]
    fn everything_removed_is_one_empty_string() {
        assert_eq!(run("NONE", 0, &["a", "b"], &["a", "b"], &[2]).unwrap(), (s(&[""]), vec![1]));
        assert_eq!(run("NONE", 0, &["a", "b"], &["a", "B"], &[1, 2]).unwrap(), (s(&[""]), vec![1, 1]));
    }

    #[test]
    fn unicode_simple_case_mapping() {
        let x = ["Éa", "ßx", "İi", "ǅ", "ΣΑΣ", "ﬁ"];
        assert_eq!(run("LOWER", 0, &[], &x, &[6]).unwrap().0, s(&["éa", "ßx", "ii", "ǆ", "σασ", "ﬁ"]));
        let x = ["Éa", "ßx", "İi", "ǅ", "ΣΑΣ", "ﬁ", "ǆ"];
        assert_eq!(run("UPPER", 0, &[], &x, &[7]).unwrap().0, s(&["ÉA", "ßX", "İI", "Ǆ", "ΣΑΣ", "ﬁ", "Ǆ"]));
        let x = ["ᾳ", "ŉ", "ǰ", "ΐ", "ﬀ", "ᾼ", "Ω", "\u{2126}"];
        assert_eq!(run("UPPER", 0, &[], &x, &[8]).unwrap().0, s(&["ᾼ", "ŉ", "ǰ", "ΐ", "ﬀ", "ᾼ", "Ω", "\u{2126}"]));
        let x = ["ᾳ", "ŉ", "ǰ", "ΐ", "ﬀ", "ᾼ", "Ω", "\u{2126}", "ǅ"];
        assert_eq!(run("LOWER", 0, &[], &x, &[9]).unwrap().0, s(&["ᾳ", "ŉ", "ǰ", "ΐ", "ﬀ", "ᾳ", "ω", "ω", "ǆ"]));
        // Case-insensitive stopwords: both sides lowercased ('ſ' lowercases to itself,
        // the Kelvin sign to 'k').
        let x = ["ſ", "S", "s", "\u{212a}", "k"];
        assert_eq!(run("NONE", 0, &["s"], &x, &[5]).unwrap().0, s(&["ſ", "\u{212a}", "k"]));
        assert_eq!(run("NONE", 0, &["\u{212a}"], &x, &[5]).unwrap().0, s(&["ſ", "S", "s"]));
        assert_eq!(run("NONE", 0, &["éa"], &["Éa", "ÉA", "éa"], &[3]).unwrap().0, s(&[""]));
        assert_eq!(run("NONE", 1, &["ÉA"], &["Éa", "ÉA", "éa"], &[3]).unwrap().0, s(&["Éa", "éa"]));
    }

    #[test]
    fn refusals() {
        assert!(run("FOO", 0, &[], &["a"], &[1]).unwrap_err().contains("case_change_action"));
        assert!(run("", 0, &[], &["a"], &[1]).is_err());
        for shape in [&[2usize, 1][..], &[1, 1, 2], &[0], &[1, 0], &[]] {
            let n = shape.iter().product::<usize>();
            assert!(run("UPPER", 0, &[], &vec!["a"; n], shape).is_err(), "{shape:?}");
        }
        assert!(run("NONE", 0, &[], &["a"], &[2]).is_err());
    }
}
