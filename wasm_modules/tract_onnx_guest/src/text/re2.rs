//! Patterns in RE2's syntax (what onnxruntime compiles with RE2) run by regex-automata:
//! both are linear-time engines with nearly the same syntax. The differences that
//! matter are bridged: RE2's Perl classes `\d \s \w \b` are ASCII-only (Rust's are
//! Unicode), RE2 takes `[` and `&&`/`--`/`~~` inside a class literally, and RE2 can match
//! leftmost-longest (what onnxruntime's Tokenizer asks for) where regex-automata's
//! default is leftmost-first. Back-references, look-around and `\C` are errors in both.
//! RE2's `\S` matches a vertical tab inside a bracket class (`[\S]`), ours does not.

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

/// The compiled size allowed to a pattern (bytes of NFA, each engine): a hostile
/// pattern such as `(a{1000}){1000}` is an error instead of gigabytes.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Leftmost-first: where the leftmost match starts, and full matches.
    first: Regex,
    /// All matches: the longest match anchored at a given start.
    all: Regex,
}

/// Translates RE2 syntax into regex-automata's (see the module's documentation).
pub fn translate(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    // Position (in chars) of the class's first member, where `]` is literal.
    let mut class_start = 0;
    // Whether the last thing outside a class was a repetition operator.
    let mut last_repeat = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            last_repeat = false;
            let Some(&e) = chars.get(i + 1) else {
                return Err(format!("pattern {pattern:?} ends with a lone backslash"));
            };
            i += 2;
            let rep = if in_class {
                match e {
                    'd' => Some("0-9"),
                    'w' => Some("0-9A-Za-z_"),
                    's' => Some("\\t\\n\\x0C\\r "),
                    'D' => Some("[:^digit:]"),
                    'W' => Some("[:^word:]"),
                    'S' => Some("[:^space:]"),
                    _ => None,
                }
            } else {
                match e {
                    'd' => Some("[0-9]"),
                    'w' => Some("[0-9A-Za-z_]"),
                    's' => Some("[\\t\\n\\x0C\\r ]"),
                    'D' => Some("[^0-9]"),
                    'W' => Some("[^0-9A-Za-z_]"),
                    'S' => Some("[^\\t\\n\\x0C\\r ]"),
                    'b' => Some("(?-u:\\b)"),
                    'B' => Some("(?-u:\\B)"),
                    _ => None,
                }
            };
            match rep {
                Some(r) => out.push_str(r),
                None => {
                    out.push('\\');
                    out.push(e);
                    // `\p{Greek}`, `\x{41}`: the braces belong to the escape.
                    if matches!(e, 'p' | 'P' | 'x') && chars.get(i) == Some(&'{') {
                        let Some(close) = chars[i..].iter().position(|&c| c == '}') else {
                            return Err(format!("pattern {pattern:?}: unclosed \\{e}{{"));
                        };
                        out.extend(&chars[i..=i + close]);
                        i += close + 1;
                    }
                }
            }
            continue;
        }
        if !in_class {
            // RE2 refuses stacked repetitions (`a**`, `a+{2}`; a lazy `?` is not one) and
            // reads a `{` that does not start `{n}`, `{n,}` or `{n,m}` as a literal.
            let repeat = match c {
                '*' | '+' | '?' => Some(1),
                '{' => repeat_len(&chars[i..]),
                _ => None,
            };
            if let Some(len) = repeat {
                if last_repeat {
                    return Err(format!("pattern {pattern:?}: bad repetition operator at character {i}"));
                }
                out.extend(&chars[i..i + len]);
                i += len;
                if chars.get(i) == Some(&'?') {
                    out.push('?');
                    i += 1;
                }
                last_repeat = true;
                continue;
            }
            last_repeat = false;
            if c == '{' || c == '}' {
                out.push('\\');
                out.push(c);
                i += 1;
                continue;
            }
            if c == '[' {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i;
                continue;
            }
            out.push(c);
            i += 1;
            continue;
        }
        // Inside a bracket class.
        match c {
            ']' if i == class_start => out.push_str("\\]"),
            ']' => in_class = false,
            '[' if chars.get(i + 1) == Some(&':') => {
                // A POSIX class `[:name:]` (ASCII in both), copied whole.
                let rest: String = chars[i..].iter().collect();
                match rest.find(":]") {
                    Some(end) if end >= 2 => {
                        out.push_str(&rest[..end + 2]);
                        i += rest[..end + 2].chars().count();
                        continue;
                    }
                    _ => out.push_str("\\["),
                }
            }
            '[' => out.push_str("\\["),
            '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                out.push('-');
                out.push_str("\\-");
                i += 2;
                continue;
            }
            _ => out.push(c),
        }
        if c == ']' && !in_class {
            out.push(']');
        }
        i += 1;
    }
    Ok(out)
}

/// The length in characters of the repetition `{n}`, `{n,}` or `{n,m}` that `chars`
/// starts with, if it does.
fn repeat_len(chars: &[char]) -> Option<usize> {
    let digits = |from: usize| chars.get(from..).map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
    let lo = digits(1);
    if lo == 0 {
        return None;
    }
    let mut i = 1 + lo;
    if chars.get(i) == Some(&',') {
        i += 1 + digits(i + 1);
    }
    (chars.get(i) == Some(&'}')).then_some(i + 1)
}

fn build(pattern: &str, kind: MatchKind) -> Result<Regex, String> {
    Regex::builder()
        .syntax(syntax::Config::new().nest_limit(100))
        .configure(
            meta::Config::new()
                .match_kind(kind)
                .nfa_size_limit(Some(PATTERN_SIZE_LIMIT))
                .onepass_size_limit(Some(PATTERN_SIZE_LIMIT))
                .dfa_size_limit(Some(PATTERN_SIZE_LIMIT))
                .hybrid_cache_capacity(PATTERN_SIZE_LIMIT),
        )
        .build(pattern)
        .map_err(|e| format!("invalid or too large pattern {pattern:?}: {e}"))
}

impl Pattern {
    /// Compiles an RE2 pattern.
    pub fn new(pattern: &str) -> Result<Pattern, String> {
        let translated = translate(pattern)?;
        let first = build(&translated, MatchKind::LeftmostFirst)?;
        let all = build(&translated, MatchKind::All)?;
        Ok(Pattern { first, all })
    }

    /// The leftmost-longest match in `text[from..]` (RE2's `longest_match`), with the
    /// whole text as context for `^`, `$` and `\b`; byte offsets into `text`.
    pub fn find_longest(&self, text: &str, from: usize) -> Option<(usize, usize)> {
        if from > text.len() || !text.is_char_boundary(from) {
            return None;
        }
        let m = self.first.search(&Input::new(text).range(from..))?;
        let start = m.start();
        let input = Input::new(text).range(start..).anchored(Anchored::Yes);
        let end = self.all.search(&input).map_or(m.end(), |l| l.end().max(m.end()));
        Some((start, end))
    }

    /// Compiles an RE2 pattern to be matched against whole texts only
    /// ([`Pattern::full_match`]; `find_longest` then finds full matches only).
    pub fn new_full(pattern: &str) -> Result<Pattern, String> {
        let translated = translate(pattern)?;
        // Parsed alone first: `a)|(b` must not become valid once wrapped.
        syntax::parse_with(&translated, &syntax::Config::new().nest_limit(100))
            .map_err(|e| format!("invalid pattern {pattern:?}: {e}"))?;
        let translated = format!("\\A(?:{translated})\\z");
        let first = build(&translated, MatchKind::LeftmostFirst)?;
        Ok(Pattern { first: first.clone(), all: first })
    }

    /// Whether the pattern matches the whole of `text` (RE2's `FullMatch`; the pattern
    /// compiled by [`Pattern::new_full`]).
    pub fn full_match(&self, text: &str) -> bool {
        self.first.is_match(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation() {
        let t = |p: &str| translate(p).unwrap();
        assert_eq!(t("\\w+\\d\\s\\b"), "[0-9A-Za-z_]+[0-9][\\t\\n\\x0C\\r ](?-u:\\b)");
        assert_eq!(t("[\\w\\D-]"), "[0-9A-Za-z_[:^digit:]-]");
        assert_eq!(t("[[]&&[:alpha:]~~"), "[\\[]&&[:alpha:]~~");
        assert_eq!(t("[a&&b~~c--d]"), "[a\\&\\&b\\~\\~c-\\-d]");
        assert_eq!(t("[]a][^]b]"), "[\\]a][^\\]b]");
        // RE2 reads a brace that does not make a repetition as a literal.
        assert_eq!(t("a{2}b{2,}c{2,3}?{x}{,2}}"), "a{2}b{2,}c{2,3}?\\{x\\}\\{,2\\}\\}");
        assert_eq!(t("\\p{Greek}\\P{L}\\x{41}\\pL"), "\\p{Greek}\\P{L}\\x{41}\\pL");
        // Stacked repetitions are refused, a lazy ? is not one.
        for p in ["a**", "a++", "a?+", "a+{2}", "a{2}{2}", "a*??"] {
            assert!(translate(p).is_err(), "{p}");
        }
        assert_eq!(t("a*?b+?c??d{2}?"), "a*?b+?c??d{2}?");
        assert!(translate("a\\").is_err());
        assert!(translate("\\p{Greek").is_err());
    }

    #[test]
    fn leftmost_longest() {
        let p = Pattern::new("a|ab|abc").unwrap();
        assert_eq!(p.find_longest("xabcab", 0), Some((1, 4)));
        assert_eq!(p.find_longest("xabcab", 4), Some((4, 6)));
        assert_eq!(p.find_longest("xabcab", 6), None);
        // Out of range or inside a character: no match, no panic.
        assert_eq!(p.find_longest("ab", 3), None);
        assert_eq!(Pattern::new("b").unwrap().find_longest("éb", 1), None);
        assert!(Pattern::new_full("a|ab").unwrap().full_match("ab"));
        assert!(!Pattern::new_full("a|ab").unwrap().full_match("abc"));
    }
}
