//! Text to tokens: lower-casing, splitting into words by one of two patterns,
//! an optional stopword list and an optional Snowball stemmer.
//!
//! Patterns: `alnum` (the default) keeps every run of Unicode alphanumerics
//! (Rust's `char::is_alphanumeric`), one-character tokens included; `bm25s`
//! is bm25s's `(?u)\b\w\w+\b` after Python's `str.lower()`: runs of at least
//! two characters that Python's `re` calls `\w` (alphanumerics and "_", but
//! no combining marks), with Python's own lower-casing, so that a corpus
//! tokenised here gives exactly `bm25s.tokenize`'s tokens (tables in `pyunicode.rs`).

use rust_stemmers::{Algorithm, Stemmer};
use rustc_hash::FxHashSet;
use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::pyunicode;

/// Lucene's English stopword set, the one bm25s calls `en`.
pub const STOPWORDS_EN: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// How text is split into words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Every run of Unicode alphanumerics.
    Alnum,
    /// bm25s's `(?u)\b\w\w+\b`, with Python's `\w` and `str.lower()`.
    Bm25s,
}

impl Pattern {
    pub fn parse(name: &str) -> Result<Pattern> {
        match name {
            "alnum" => Ok(Pattern::Alnum),
            "bm25s" => Ok(Pattern::Bm25s),
            other => Err(Error::invalid(format!(
                "unknown token pattern {other:?}: use \"alnum\" or \"bm25s\""
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pattern::Alnum => "alnum",
            Pattern::Bm25s => "bm25s",
        }
    }
}

pub struct Tokenizer {
    lowercase: bool,
    pattern: Pattern,
    stopwords: FxHashSet<String>,
    stemmer: Option<Stemmer>,
    stemmer_name: Option<String>,
}

impl Tokenizer {
    /// `stemmer` is a Snowball language name; only "english" is offered for now.
    /// Splits with the `alnum` pattern; see `with_pattern`.
    pub fn new(lowercase: bool, stopwords: Vec<String>, stemmer: Option<&str>) -> Result<Self> {
        Self::with_pattern(lowercase, stopwords, stemmer, Pattern::Alnum)
    }

    pub fn with_pattern(
        lowercase: bool,
        stopwords: Vec<String>,
        stemmer: Option<&str>,
        pattern: Pattern,
    ) -> Result<Self> {
        let stemmer_obj = match stemmer {
            None => None,
            Some("english") | Some("en") | Some("porter2") => {
                Some(Stemmer::create(Algorithm::English))
            }
            Some(other) => {
                return Err(Error::invalid(format!(
                    "unknown stemmer {other:?}: use None or \"english\""
                )))
            }
        };
        let stopwords = stopwords
            .into_iter()
            // bm25s compares lower-cased tokens with its stopwords as given.
            .map(|w| match (lowercase, pattern) {
                (true, Pattern::Alnum) => w.to_lowercase(),
                _ => w,
            })
            .collect();
        Ok(Tokenizer {
            lowercase,
            pattern,
            stopwords,
            stemmer: stemmer_obj,
            stemmer_name: stemmer.map(|_| "english".to_string()),
        })
    }

    pub fn lowercase(&self) -> bool {
        self.lowercase
    }

    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    pub fn stemmer_name(&self) -> Option<&str> {
        self.stemmer_name.as_deref()
    }

    pub fn stopwords(&self) -> Vec<String> {
        let mut v: Vec<String> = self.stopwords.iter().cloned().collect();
        v.sort();
        v
    }

    /// Calls `emit` once per token of `text`, in order. Tokens borrow from a
    /// lower-cased copy where possible, so the hot path allocates little.
    pub fn for_each_token<F: FnMut(&str)>(&self, text: &str, mut emit: F) {
        let mut finish = |raw: &str| {
            if raw.is_empty() || self.stopwords.contains(raw) {
                return;
            }
            match &self.stemmer {
                Some(st) => emit(&st.stem(raw)),
                None => emit(raw),
            }
        };
        match self.pattern {
            Pattern::Alnum => self.split_alnum(text, finish),
            Pattern::Bm25s => py_words(text, self.lowercase, &mut finish),
        }
    }

    fn split_alnum<F: FnMut(&str)>(&self, text: &str, mut finish: F) {
        let lowered: Cow<str> = if self.lowercase && text.chars().any(|c| c.is_uppercase()) {
            Cow::Owned(text.to_lowercase())
        } else {
            Cow::Borrowed(text)
        };
        for raw in lowered.split(|c: char| !c.is_alphanumeric()) {
            finish(raw);
        }
    }

    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_token(text, |t| out.push(t.to_string()));
        out
    }
}

#[inline]
fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    let i = table.partition_point(|&(_, hi)| hi < c);
    i < table.len() && table[i].0 <= c
}

/// Python's `re` `\w`: `str.isalnum()` or "_".
#[inline]
fn py_is_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        in_ranges(pyunicode::WORD, c)
    }
}

/// Python's `str.lower()` of `c` at byte `at` of `text` (U+03A3 depends on
/// its neighbours: CPython's Final_Sigma rule), pushed onto `out`.
fn py_lower_char(text: &str, at: usize, c: char, out: &mut impl FnMut(char)) {
    if c.is_ascii() {
        return out(c.to_ascii_lowercase());
    }
    match c {
        '\u{130}' => {
            out('i');
            out('\u{307}');
        }
        '\u{3A3}' => {
            let cased = |c: char| in_ranges(pyunicode::CASED, c);
            let ignorable = |c: char| in_ranges(pyunicode::CASE_IGNORABLE, c);
            let before = text[..at].chars().rev().find(|&c| !ignorable(c));
            let after = text[at + c.len_utf8()..].chars().find(|&c| !ignorable(c));
            let last = before.is_some_and(cased) && !after.is_some_and(cased);
            out(if last { '\u{3C2}' } else { '\u{3C3}' });
        }
        _ => {
            let t = pyunicode::LOWER;
            match t.binary_search_by_key(&(c as u32), |&(from, _)| from) {
                Ok(i) => out(char::from_u32(t[i].1).unwrap_or(c)),
                Err(_) => out(c),
            }
        }
    }
}

/// Python's `str.lower()`.
pub fn py_lower(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for (at, c) in text.char_indices() {
        py_lower_char(text, at, c, &mut |l| s.push(l));
    }
    s
}

/// bm25s's words: the matches of `(?u)\b\w\w+\b` in `text` (after Python's
/// `str.lower()` when `lowercase`), that is every maximal run of Python word
/// characters at least two characters long.
fn py_words(text: &str, lowercase: bool, emit: &mut impl FnMut(&str)) {
    let mut word = String::new();
    let mut chars = 0usize;
    let mut push = |c: char, word: &mut String, chars: &mut usize| {
        if py_is_word(c) {
            word.push(c);
            *chars += 1;
        } else {
            if *chars >= 2 {
                emit(word);
            }
            word.clear();
            *chars = 0;
        }
    };
    for (at, c) in text.char_indices() {
        if lowercase {
            py_lower_char(text, at, c, &mut |l| push(l, &mut word, &mut chars));
        } else {
            push(c, &mut word, &mut chars);
        }
    }
    push(' ', &mut word, &mut chars);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lowercases_and_filters() {
        let t = Tokenizer::new(
            true,
            STOPWORDS_EN.iter().map(|s| s.to_string()).collect(),
            None,
        )
        .unwrap();
        assert_eq!(
            t.tokenize("The Élan of  ÜBER-cats, 42x!"),
            vec!["élan", "über", "cats", "42x"]
        );
    }

    #[test]
    fn stems_english() {
        let t = Tokenizer::new(true, vec![], Some("english")).unwrap();
        assert_eq!(
            t.tokenize("running runners ran"),
            vec!["run", "runner", "ran"]
        );
    }

    #[test]
    fn unknown_stemmer_is_an_error() {
        assert!(Tokenizer::new(true, vec![], Some("klingon")).is_err());
    }

    fn bm25s(text: &str) -> Vec<String> {
        Tokenizer::with_pattern(true, vec![], None, Pattern::Bm25s)
            .unwrap()
            .tokenize(text)
    }

    #[test]
    fn bm25s_pattern_drops_one_character_words() {
        // Python: re.findall(r"(?u)\b\w\w+\b", "Mach 3, c = e x 2.5 under_score A1!".lower())
        assert_eq!(
            bm25s("Mach 3, c = e x 2.5 under_score A1!"),
            vec!["mach", "under_score", "a1"]
        );
    }

    #[test]
    fn bm25s_pattern_follows_python_not_rust_unicode() {
        // "e" + COMBINING ACUTE: Python's \w excludes the mark, so "cafe\u301" is
        // "cafe" and the lone mark splits "re\u301sume\u301" into "re", "sume".
        assert_eq!(
            bm25s("cafe\u{301} re\u{301}sume\u{301}"),
            vec!["cafe", "re", "sume"]
        );
        // İ lowers to "i" + U+0307 (not a word character) in Python.
        assert_eq!(bm25s("İstanbul"), vec!["stanbul"]);
        // Final sigma: Python's str.lower() writes ς at a word's end.
        assert_eq!(bm25s("ΟΔΟΣ ΣΟΦΟΣ"), vec!["οδος", "σοφος"]);
        assert_eq!(py_lower("AΣ\u{301}"), "aς\u{301}");
        assert_eq!(py_lower("ΣA"), "σa");
    }

    #[test]
    fn bm25s_stopwords_and_case() {
        // As in bm25s, stopwords are compared with the lower-cased tokens as given.
        let t =
            Tokenizer::with_pattern(true, vec!["the".into(), "Mat".into()], None, Pattern::Bm25s)
                .unwrap();
        assert_eq!(
            t.tokenize("THE cat is on the Mat"),
            vec!["cat", "is", "on", "mat"]
        );
        let t = Tokenizer::with_pattern(false, vec![], None, Pattern::Bm25s).unwrap();
        assert_eq!(t.tokenize("The Cat"), vec!["The", "Cat"]);
        assert!(Pattern::parse("regex").is_err());
    }
}
