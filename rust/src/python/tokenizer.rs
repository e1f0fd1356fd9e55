//! `bdnsca._core.Tokenizer`: the core tokenizer, built from Python arguments.

use pyo3::prelude::*;
use pyo3::types::PyString;
use rayon::prelude::*;

use super::convert::{extract_str, texts_arena};
use super::errors::invalid;
use crate::tokenizer::{self, Pattern, Tokenizer as CoreTokenizer};

/// Splits text into tokens: lower-casing, splitting into words by a pattern
/// ("alnum", or "bm25s" for bm25s.tokenize's tokens), an optional stopword list
/// and an optional Snowball English stemmer.
#[pyclass(module = "bdnsca._core", frozen)]
pub struct Tokenizer {
    pub(super) inner: CoreTokenizer,
}

impl Tokenizer {
    pub(super) fn from_core(inner: CoreTokenizer) -> Self {
        Tokenizer { inner }
    }
}

fn resolve_stopwords(stopwords: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(sw) = stopwords else {
        return Ok(Vec::new());
    };
    if sw.is_none() {
        return Ok(Vec::new());
    }
    if let Ok(s) = sw.cast::<PyString>() {
        return match s.to_str()? {
            "en" | "english" => Ok(tokenizer::STOPWORDS_EN
                .iter()
                .map(|s| s.to_string())
                .collect()),
            other => Err(invalid(format!(
                "unknown stopword list {other:?}: use None, \"en\" or a list of words"
            ))),
        };
    }
    let mut out = Vec::new();
    for item in sw.try_iter()? {
        let item = item?;
        out.push(extract_str(&item, || "each stopword".into())?.to_string());
    }
    Ok(out)
}

#[pymethods]
impl Tokenizer {
    #[new]
    #[pyo3(signature = (lowercase=true, stopwords=None, stemmer=None, pattern="alnum"))]
    pub(super) fn new(
        lowercase: bool,
        stopwords: Option<&Bound<'_, PyAny>>,
        stemmer: Option<&str>,
        pattern: &str,
    ) -> PyResult<Self> {
        let words = resolve_stopwords(stopwords)?;
        let pattern = Pattern::parse(pattern)?;
        Ok(Tokenizer {
            inner: CoreTokenizer::with_pattern(lowercase, words, stemmer, pattern)?,
        })
    }

    /// Tokenises each text; a single string is taken as a list of one.
    fn tokenize(&self, py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<String>>> {
        let arena = texts_arena(texts)?;
        let tok = &self.inner;
        Ok(py.detach(|| {
            (0..arena.len())
                .into_par_iter()
                .map(|i| tok.tokenize(arena.get(i)))
                .collect()
        }))
    }

    #[getter]
    fn lowercase(&self) -> bool {
        self.inner.lowercase()
    }
    #[getter]
    fn stopwords(&self) -> Vec<String> {
        self.inner.stopwords()
    }
    #[getter]
    fn stemmer(&self) -> Option<String> {
        self.inner.stemmer_name().map(str::to_string)
    }
    #[getter]
    fn pattern(&self) -> &'static str {
        self.inner.pattern().name()
    }

    fn __repr__(&self) -> String {
        format!(
            "Tokenizer(lowercase={}, stopwords={} words, stemmer={:?}, pattern={:?})",
            if self.inner.lowercase() {
                "True"
            } else {
                "False"
            },
            self.inner.stopwords().len(),
            self.inner.stemmer_name(),
            self.inner.pattern().name()
        )
    }
}
