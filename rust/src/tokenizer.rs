//! Text to tokens: Unicode lower-casing, splitting on non-alphanumerics, an optional
//! stopword list and an optional Snowball stemmer.

use rust_stemmers::{Algorithm, Stemmer};
use rustc_hash::FxHashSet;
use std::borrow::Cow;

use crate::error::{Error, Result};

/// Lucene's English stopword set, the one bm25s calls `en`.
pub const STOPWORDS_EN: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

pub struct Tokenizer {
    lowercase: bool,
    stopwords: FxHashSet<String>,
    stemmer: Option<Stemmer>,
    stemmer_name: Option<String>,
}

impl Tokenizer {
    /// `stemmer` is a Snowball language name; only "english" is offered for now.
    pub fn new(lowercase: bool, stopwords: Vec<String>, stemmer: Option<&str>) -> Result<Self> {
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
            .map(|w| if lowercase { w.to_lowercase() } else { w })
            .collect();
        Ok(Tokenizer {
            lowercase,
            stopwords,
            stemmer: stemmer_obj,
            stemmer_name: stemmer.map(|_| "english".to_string()),
        })
    }

    pub fn lowercase(&self) -> bool {
        self.lowercase
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
        let lowered: Cow<str> = if self.lowercase && text.chars().any(|c| c.is_uppercase()) {
            Cow::Owned(text.to_lowercase())
        } else {
            Cow::Borrowed(text)
        };
        for raw in lowered.split(|c: char| !c.is_alphanumeric()) {
            if raw.is_empty() || self.stopwords.contains(raw) {
                continue;
            }
            match &self.stemmer {
                Some(st) => emit(&st.stem(raw)),
                None => emit(raw),
            }
        }
    }

    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_token(text, |t| out.push(t.to_string()));
        out
    }
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
}
