//! `com.microsoft` `Tokenizer` (what skl2onnx emits for `CountVectorizer` and
//! `TfidfVectorizer`: `mark=0`, `mincharnum=1`, `pad_value="#"`, `tokenexp` the
//! vectorizer's token pattern, e.g. `[a-zA-Z0-9_]+` for the default one, or `.` for
//! `analyzer="char"`).

use super::re2::Pattern;
use super::{check_shape, output_len};

/// onnxruntime's start-of-text mark (`mark=1`).
pub const START_MARK: &str = "\u{2}";
/// onnxruntime's end-of-text mark.
pub const END_MARK: &str = "\u{3}";

#[derive(Debug, Clone)]
enum Splitter {
    /// Every character a token: `separators == [""]` or `tokenexp == "."`.
    Chars,
    /// Split by each separator in turn.
    Separators(Vec<Pattern>),
    /// Tokens are the matches.
    TokenExp(Pattern),
}

/// A checked `Tokenizer` node.
///
/// onnxruntime's semantics, found by running it: patterns are RE2 with leftmost-longest
/// matching (`a|ab` matches `ab`) and `.` not matching a newline, except that
/// `tokenexp="."` and `separators=[""]` tokenize by character (newlines included).
/// With `tokenexp`, the tokens are the successive non-overlapping matches (an empty match
/// moves on one character). With `separators` (which win when both attributes are
/// given), the text is split by the first separator, each piece by the second, and so
/// on; where a separator matches the empty string, the character there is dropped
/// (`" *"` yields no token at all, `"^"` drops the first character, `"\\b"` each word's
/// first character). Tokens of fewer than `mincharnum`
/// characters are dropped. Each input string gives a row of the output's last axis:
/// `[start mark] tokens [end mark]` padded with `pad_value` to the longest row.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    mark: bool,
    mincharnum: usize,
    pad_value: String,
    splitter: Splitter,
}

impl Tokenizer {
    /// `mark != 0`; `mincharnum > 0` (`< 2` for character tokenization); `separators`
    /// (`None` when absent; `Some(&[])` counts as absent) or `tokenexp` (`None` when
    /// absent; an empty one is an error), one of them required. Invalid patterns, and
    /// patterns whose compiled form exceeds [`super::PATTERN_SIZE_LIMIT`], are errors.
    pub fn new(
        mark: i64,
        mincharnum: i64,
        pad_value: &str,
        separators: Option<&[String]>,
        tokenexp: Option<&str>,
    ) -> Result<Tokenizer, String> {
        if mincharnum <= 0 {
            return Err(format!("Tokenizer: mincharnum must be positive, got {mincharnum}"));
        }
        let mincharnum = usize::try_from(mincharnum).unwrap_or(usize::MAX);
        let separators = separators.filter(|s| !s.is_empty());
        let splitter = match (separators, tokenexp) {
            (Some(seps), _) if seps.len() == 1 && seps[0].is_empty() => Splitter::Chars,
            (Some(seps), _) => {
                let mut compiled = Vec::with_capacity(seps.len());
                for s in seps {
                    compiled.push(Pattern::new(s).map_err(|e| format!("Tokenizer: separators: {e}"))?);
                }
                Splitter::Separators(compiled)
            }
            (None, Some("")) => return Err("Tokenizer: tokenexp is empty".into()),
            (None, Some(".")) => Splitter::Chars,
            (None, Some(exp)) => {
                Splitter::TokenExp(Pattern::new(exp).map_err(|e| format!("Tokenizer: tokenexp: {e}"))?)
            }
            (None, None) => return Err("Tokenizer: either separators or tokenexp is required".into()),
        };
        if matches!(splitter, Splitter::Chars) && mincharnum >= 2 {
            return Err(format!("Tokenizer: mincharnum {mincharnum} is too big for tokenization by character"));
        }
        Ok(Tokenizer { mark: mark != 0, mincharnum, pad_value: pad_value.to_string(), splitter })
    }

    /// The tokens of one string, before marks and padding.
    pub fn tokens<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let long_enough = |t: &&str| !t.is_empty() && t.chars().take(self.mincharnum).count() >= self.mincharnum;
        match &self.splitter {
            Splitter::Chars => text.char_indices().map(|(i, c)| &text[i..i + c.len_utf8()]).collect(),
            Splitter::TokenExp(re) => {
                let mut tokens = Vec::new();
                let mut pos = 0;
                while pos <= text.len() {
                    let Some((start, end)) = re.find_longest(text, pos) else { break };
                    if end > start {
                        let t = &text[start..end];
                        if long_enough(&t) {
                            tokens.push(t);
                        }
                        pos = end;
                    } else {
                        // An empty match: move on one character.
                        match text[start..].chars().next() {
                            Some(c) => pos = start + c.len_utf8(),
                            None => break,
                        }
                    }
                }
                tokens
            }
            Splitter::Separators(seps) => {
                let mut pieces = vec![text];
                for sep in seps {
                    let mut next = Vec::with_capacity(pieces.len());
                    for piece in pieces {
                        let mut pos = 0;
                        loop {
                            match sep.find_longest(piece, pos) {
                                None => {
                                    if pos < piece.len() {
                                        next.push(&piece[pos..]);
                                    }
                                    break;
                                }
                                Some((start, end)) => {
                                    if start > pos {
                                        next.push(&piece[pos..start]);
                                    }
                                    if end > start {
                                        pos = end;
                                    } else {
                                        // An empty separator match: onnxruntime drops the
                                        // character there and goes on after it.
                                        match piece[start..].chars().next() {
                                            Some(c) => pos = start + c.len_utf8(),
                                            None => break,
                                        }
                                    }
                                    if pos >= piece.len() {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    pieces = next;
                }
                pieces.retain(long_enough);
                pieces
            }
        }
    }

    /// Tokenizes `x` of shape `[C]` or `[N, C]`: the output has shape `[C, T]` or
    /// `[N, C, T]`, `T` the most tokens of any string plus 2 with marks. onnxruntime's
    /// edge cases: no string has a token (all empty, say) gives `T = 0`, marks or not;
    /// an input without elements gives its own shape with the last axis 0 (`[0]` gives
    /// `[0]`, `[0, 3]` gives `[0, 0]`, `[2, 0]` gives `[2, 0]`); other ranks are errors.
    pub fn run(&self, x: &[String], shape: &[usize]) -> Result<(Vec<String>, Vec<usize>), String> {
        check_shape(x.len(), shape)?;
        if shape.is_empty() || shape.len() > 2 {
            return Err(format!("Tokenizer: input shape {shape:?} is neither [C] nor [N, C]"));
        }
        if x.is_empty() {
            let mut out = shape.to_vec();
            if let Some(last) = out.last_mut() {
                *last = 0;
            }
            return Ok((Vec::new(), out));
        }
        let rows: Vec<Vec<&str>> = x.iter().map(|s| self.tokens(s)).collect();
        let most = rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = if most == 0 {
            0
        } else if self.mark {
            most + 2
        } else {
            most
        };
        let mut out_shape = shape.to_vec();
        out_shape.push(width);
        let len = output_len(&out_shape)?;
        let mut y = Vec::with_capacity(len);
        if width > 0 {
            for row in rows {
                let start = y.len();
                if self.mark {
                    y.push(START_MARK.to_string());
                }
                y.extend(row.into_iter().map(str::to_string));
                if self.mark {
                    y.push(END_MARK.to_string());
                }
                y.resize(start + width, self.pad_value.clone());
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

    fn exp(e: &str) -> Tokenizer {
        Tokenizer::new(0, 1, "#", None, Some(e)).unwrap()
    }

    fn seps(v: &[&str]) -> Tokenizer {
        Tokenizer::new(0, 1, "#", Some(&s(v)), None).unwrap()
    }

    fn toks(t: &Tokenizer, text: &str) -> Vec<String> {
        t.tokens(text).into_iter().map(str::to_string).collect()
    }

    const SKL: &str = "[a-zA-Z0-9_]+";

    // All expected values below come from onnxruntime 1.32.
    #[test]
    fn skl2onnx_default_configuration() {
        let t = exp(SKL);
        let x = s(&["this is a test", "héllo wörld 42_x", "", "..."]);
        let (y, shape) = t.run(&x, &[4]).unwrap();
        assert_eq!(shape, vec![4, 5]);
        let want = [
            "this", "is", "a", "test", "#", "h", "llo", "w", "rld", "42_x", "#", "#", "#", "#", "#", "#", "#", "#",
            "#", "#",
        ];
        assert_eq!(y, s(&want));
        assert_eq!(toks(&t, "Café 3.14, naïve—ÉTÉ x_y"), s(&["Caf", "3", "14", "na", "ve", "T", "x_y"]));
        assert_eq!(toks(&t, "\u{1F600}ab\tcd\nEF"), s(&["ab", "cd", "EF"]));
    }

    #[test]
    fn marks_padding_and_empty_rows() {
        let t = Tokenizer::new(1, 1, "#", None, Some(SKL)).unwrap();
        let (y, shape) = t.run(&s(&["ab cd", ""]), &[2]).unwrap();
        assert_eq!(shape, vec![2, 4]);
        assert_eq!(y, s(&["\u{2}", "ab", "cd", "\u{3}", "\u{2}", "\u{3}", "#", "#"]));
        // No token anywhere: width 0 even with marks.
        assert_eq!(t.run(&s(&["", ""]), &[2]).unwrap(), (vec![], vec![2, 0]));
        assert_eq!(t.run(&s(&["...", ";"]), &[2]).unwrap(), (vec![], vec![2, 0]));
        assert_eq!(exp(SKL).run(&s(&["..", ";;"]), &[1, 2]).unwrap(), (vec![], vec![1, 2, 0]));
        // No elements: the input's shape with its last axis 0.
        assert_eq!(t.run(&[], &[0]).unwrap(), (vec![], vec![0]));
        assert_eq!(t.run(&[], &[0, 3]).unwrap(), (vec![], vec![0, 0]));
        assert_eq!(t.run(&[], &[2, 0]).unwrap(), (vec![], vec![2, 0]));
        let x = s(&["ab cd", "x y z", "", "q"]);
        let (y, shape) = t.run(&x, &[2, 2]).unwrap();
        assert_eq!(shape, vec![2, 2, 5]);
        let want = [
            "\u{2}", "ab", "cd", "\u{3}", "#", "\u{2}", "x", "y", "z", "\u{3}", "\u{2}", "\u{3}", "#", "#", "#",
            "\u{2}", "q", "\u{3}", "#", "#",
        ];
        assert_eq!(y, s(&want));
        let t = Tokenizer::new(1, 1, "PAD", Some(&s(&[" "])), None).unwrap();
        assert_eq!(t.run(&s(&["a b"]), &[1]).unwrap(), (s(&["\u{2}", "a", "b", "\u{3}"]), vec![1, 4]));
        let t = Tokenizer::new(0, 1, "", None, Some("[a-z]")).unwrap();
        assert_eq!(t.run(&s(&["ab", "cd"]), &[2]).unwrap(), (s(&["a", "b", "c", "d"]), vec![2, 2]));
    }

    #[test]
    fn mincharnum_counts_characters() {
        let t = Tokenizer::new(1, 2, "#", None, Some(SKL)).unwrap();
        let (y, shape) = t.run(&s(&["ab cd e", "x"]), &[2]).unwrap();
        assert_eq!(shape, vec![2, 4]);
        assert_eq!(y, s(&["\u{2}", "ab", "cd", "\u{3}", "\u{2}", "\u{3}", "#", "#"]));
        let t = Tokenizer::new(0, 2, "#", None, Some("[^ ]+")).unwrap();
        assert_eq!(t.run(&s(&["é", "éé", "ab"]), &[3]).unwrap(), (s(&["#", "éé", "ab"]), vec![3, 1]));
        let t = Tokenizer::new(0, 2, "#", Some(&s(&[" "])), None).unwrap();
        assert_eq!(t.run(&s(&["é", "éé", "ab"]), &[3]).unwrap(), (s(&["#", "éé", "ab"]), vec![3, 1]));
        let t = Tokenizer::new(0, 3, "#", Some(&s(&["\\s"])), None).unwrap();
        assert_eq!(t.run(&s(&["ab cd ef"]), &[1]).unwrap(), (vec![], vec![1, 0]));
    }

    #[test]
    fn by_character() {
        for t in [seps(&[""]), exp(".")] {
            assert_eq!(t.run(&s(&["abc", "éü"]), &[2]).unwrap(), (s(&["a", "b", "c", "é", "ü", "#"]), vec![2, 3]));
            assert_eq!(toks(&t, "ab\ncd"), s(&["a", "b", "\n", "c", "d"]));
        }
        let t = Tokenizer::new(1, 1, "#", Some(&s(&[""])), None).unwrap();
        let (y, shape) = t.run(&s(&["abé", ""]), &[2]).unwrap();
        assert_eq!(shape, vec![2, 5]);
        assert_eq!(y, s(&["\u{2}", "a", "b", "é", "\u{3}", "\u{2}", "\u{3}", "#", "#", "#"]));
        assert!(Tokenizer::new(0, 2, "#", Some(&s(&[""])), None).unwrap_err().contains("mincharnum"));
        assert!(Tokenizer::new(0, 2, "#", None, Some(".")).unwrap_err().contains("mincharnum"));
    }

    #[test]
    fn token_expressions() {
        assert_eq!(toks(&exp("[a-z]"), "a1b2c3"), s(&["a", "b", "c"]));
        assert_eq!(toks(&exp("(a)(b)"), "abc abcd"), s(&["ab", "ab"]));
        // Leftmost-longest, as RE2 with longest_match.
        assert_eq!(toks(&exp("a|ab"), "ab"), s(&["ab"]));
        assert_eq!(toks(&exp("b*"), "abbc abbb"), s(&["bb", "bbb"]));
        assert_eq!(toks(&exp("b*"), "ébbé"), s(&["bb"]));
        assert_eq!(toks(&exp("x*"), "abc"), s(&[]));
        assert_eq!(toks(&exp(".."), "ab\ncd"), s(&["ab", "cd"]));
        assert_eq!(toks(&exp("a.b"), "a\nb"), s(&[]));
        assert_eq!(toks(&exp("[^.]+"), "a.b\nc"), s(&["a", "b\nc"]));
        assert_eq!(toks(&exp("^."), "ab\ncd"), s(&["a"]));
        assert_eq!(toks(&exp(".$"), "ab\ncd"), s(&["d"]));
        assert_eq!(toks(&exp("\\."), "a.b"), s(&["."]));
        // RE2's Perl classes are ASCII.
        assert_eq!(toks(&exp("\\w+"), "x é Δ"), s(&["x"]));
        assert_eq!(toks(&exp("\\d+|\\pL+"), "x é Δ \u{663}"), s(&["x", "é", "Δ"]));
        assert_eq!(toks(&exp("\\d"), "a\u{663}b"), s(&[]));
        assert_eq!(toks(&exp("\\S+"), "a\u{b}b c\u{c}d"), s(&["a\u{b}b", "c", "d"]));
        assert_eq!(toks(&exp("\\W"), "aé_b"), s(&["é"]));
        assert_eq!(toks(&exp("[\\w]+"), "x aé_b"), s(&["x", "a", "_b"]));
        assert_eq!(toks(&exp("[^\\w ]+"), "x aé_b"), s(&["é"]));
        assert_eq!(toks(&exp("[\\W]+"), "x aé_b"), s(&[" ", "é"]));
        assert_eq!(toks(&exp("\\b[a-z]"), "éa bé"), s(&["a", "b"]));
        assert_eq!(toks(&exp("\\b\\w"), "ab cd"), s(&["a", "c"]));
        assert_eq!(toks(&exp("(?i)A"), "ab"), s(&["a"]));
        assert_eq!(toks(&exp("(?i)[[:lower:]]+"), "abAB"), s(&["abAB"]));
    }

    #[test]
    fn separators() {
        assert_eq!(
            seps(&[" ", ";"]).run(&s(&["ab cd;ef", "x;;y"]), &[2]).unwrap().0,
            s(&["ab", "cd", "ef", "x", "y", "#"])
        );
        assert_eq!(toks(&seps(&["X"]), "aXbXXc"), s(&["a", "b", "c"]));
        assert_eq!(toks(&seps(&["X", "Y", "XY"]), "aXYbYXc"), s(&["a", "b", "c"]));
        // Applied one after the other, not as one alternation.
        assert_eq!(toks(&seps(&["XY", "X"]), "aXYb"), s(&["a", "b"]));
        assert_eq!(toks(&seps(&["X", "XY"]), "aXYb"), s(&["a", "Yb"]));
        assert_eq!(toks(&seps(&["XYZ", "Y"]), "aXYbXYZc"), s(&["aX", "b", "c"]));
        assert_eq!(toks(&seps(&["Y", "XYZ"]), "aXYbXYZc"), s(&["aX", "bX", "Zc"]));
        assert_eq!(toks(&seps(&["X", "b"]), "aXbXc"), s(&["a", "c"]));
        assert_eq!(toks(&seps(&["a|ab"]), "xaby"), s(&["x", "y"]));
        assert_eq!(toks(&seps(&["^a"]), "abc"), s(&["bc"]));
        assert_eq!(toks(&seps(&[" "]), "ab  cd"), s(&["ab", "cd"]));
        // An empty separator match drops the character where it matches.
        for v in [&[" *"][..], &[" *", " "], &[" ", " *"], &["b*"], &["c|"], &["", "b"], &["b", ""]] {
            assert_eq!(toks(&seps(v), "abc de"), s(&[]), "{v:?}");
        }
        assert_eq!(toks(&seps(&["X|"]), "abXc"), s(&[]));
        assert_eq!(toks(&seps(&["X|$"]), "aXb"), s(&["a", "b"]));
        assert_eq!(toks(&seps(&["X|c$"]), "aXbXc"), s(&["a", "b"]));
        assert_eq!(toks(&seps(&["X", "c|$"]), "aXbXc"), s(&["a", "b"]));
        assert_eq!(toks(&seps(&["Y", "X|b"]), "aXbYc"), s(&["a", "c"]));
        assert_eq!(toks(&seps(&["\\s"]), "a\u{b}b c\u{c}d"), s(&["a\u{b}b", "c", "d"]));
        assert_eq!(toks(&seps(&["^", " "]), "abc a b\nc éÉ日本 42_x"), s(&["bc", "a", "b\nc", "éÉ日本", "42_x"]));
        assert_eq!(toks(&seps(&["^"]), "éÉ日本"), s(&["É日本"]));
        let x = ["abc", "a b\nc", "aaaa bbbb", "AbA Ab\u{b}\u{a0}x"];
        let want = [&["bc"][..], &[], &["aaa", "bbb"], &["bA", "b", "\u{a0}"]];
        for (x, want) in x.iter().zip(want) {
            assert_eq!(toks(&seps(&["\\b", " "]), x), s(want), "{x:?}");
        }
        // Each piece is a text of its own for the next separators' ^, $ and \b.
        assert_eq!(toks(&seps(&["X", "^b"]), "aXbc"), s(&["a", "c"]));
        assert_eq!(toks(&seps(&["X", "c$", "a$"]), "aXbc"), s(&["b"]));
        assert_eq!(toks(&seps(&[" ", "\\bc"]), "ab cd"), s(&["ab", "d"]));
        assert_eq!(toks(&seps(&["\\+", "\\Bd"]), "ab+cd"), s(&["ab", "c"]));
        // separators win over tokenexp.
        let t = Tokenizer::new(0, 1, "#", Some(&s(&["b"])), Some("[a-z]")).unwrap();
        assert_eq!(toks(&t, "abc"), s(&["a", "c"]));
    }

    #[test]
    fn refusals() {
        assert!(Tokenizer::new(0, 1, "#", None, Some("")).is_err());
        assert!(Tokenizer::new(0, 1, "#", None, None).is_err());
        assert!(Tokenizer::new(0, 1, "#", Some(&[]), None).is_err());
        assert!(Tokenizer::new(0, 0, "#", None, Some(SKL)).is_err());
        assert!(Tokenizer::new(0, -5, "#", None, Some(SKL)).is_err());
        assert!(Tokenizer::new(0, 1, "#", None, Some("a(")).unwrap_err().contains("tokenexp"));
        assert!(Tokenizer::new(0, 1, "#", Some(&s(&["("])), None).unwrap_err().contains("separators"));
        assert!(Tokenizer::new(0, 1, "#", None, Some("(a)\\1")).is_err());
        assert!(Tokenizer::new(0, 1, "#", None, Some("a\\")).is_err());
        // Too big once compiled: an error, quickly, not gigabytes.
        assert!(Tokenizer::new(0, 1, "#", None, Some("((a{1000}){1000}){1000}")).is_err());
        assert!(Tokenizer::new(0, 1, "#", None, Some("\\pL{500}")).is_err());
        let deep = format!("{}a{}", "(".repeat(1000), ")".repeat(1000));
        assert!(Tokenizer::new(0, 1, "#", None, Some(&deep)).is_err());
        let t = exp(SKL);
        assert!(t.run(&s(&["a b"]), &[1, 1, 1]).is_err());
        assert!(t.run(&s(&["a"]), &[]).is_err());
        assert!(t.run(&s(&["a"]), &[2]).is_err());
    }
}
