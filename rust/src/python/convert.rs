//! Conversions at the boundary: Python strings, token lists and queries copied
//! into owned Rust buffers, so the heavy work can run with the GIL released
//! without borrowing from objects other threads may change.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::index::Bm25Index;
use crate::tokenizer::Tokenizer;

/// Strings packed into one buffer, with their end offsets beside it.
#[derive(Default)]
pub struct Arena {
    buf: String,
    ends: Vec<usize>,
}

impl Arena {
    pub fn push(&mut self, s: &str) {
        self.buf.push_str(s);
        self.ends.push(self.buf.len());
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
    pub fn all(&self) -> Vec<&str> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

/// Pre-tokenised documents: tokens in one arena, document boundaries beside it.
pub struct TokenDocs {
    pub tokens: Arena,
    pub doc_ends: Vec<usize>,
}

impl TokenDocs {
    pub fn doc(&self, d: usize) -> impl Iterator<Item = &str> {
        let start = if d == 0 { 0 } else { self.doc_ends[d - 1] };
        (start..self.doc_ends[d]).map(move |i| self.tokens.get(i))
    }
    pub fn lists(&self) -> Vec<Vec<&str>> {
        (0..self.doc_ends.len())
            .map(|d| self.doc(d).collect())
            .collect()
    }
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `obj` as a str, or a TypeError naming `what()`.
pub fn extract_str<'a>(obj: &'a Bound<'_, PyAny>, what: impl Fn() -> String) -> PyResult<&'a str> {
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("{} must be a str, got {}", what(), type_name(obj)))
    })?;
    s.to_str()
}

/// A single string, or an iterable of strings, copied into an arena.
pub fn texts_arena(texts: &Bound<'_, PyAny>) -> PyResult<Arena> {
    let mut arena = Arena::default();
    if let Ok(s) = texts.cast::<PyString>() {
        arena.push(s.to_str()?);
        return Ok(arena);
    }
    for (i, item) in texts.try_iter()?.enumerate() {
        let item = item?;
        arena.push(extract_str(&item, || format!("text {i}"))?);
    }
    Ok(arena)
}

/// A query as the user gave it: a string to tokenise or a list of tokens.
pub enum Query {
    Text(String),
    Tokens(Vec<String>),
}

impl Query {
    /// The index's term ids for this query: text goes through `tok`, tokens as given.
    pub fn terms(&self, index: &Bm25Index, tok: &Tokenizer) -> Vec<u32> {
        match self {
            Query::Text(t) => index.term_ids(&tok.tokenize(t)),
            Query::Tokens(toks) => index.term_ids(toks),
        }
    }
}

pub fn extract_query(obj: &Bound<'_, PyAny>, what: impl Fn() -> String) -> PyResult<Query> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Query::Text(s.to_str()?.to_string()));
    }
    if obj.cast::<PyList>().is_ok() || obj.hasattr("__iter__")? {
        let mut toks = Vec::new();
        for t in obj.try_iter()? {
            let t = t?;
            toks.push(extract_str(&t, || format!("each token of {}", what()))?.to_string());
        }
        return Ok(Query::Tokens(toks));
    }
    Err(PyTypeError::new_err(format!(
        "{} must be a str or a list of str tokens, got {}",
        what(),
        type_name(obj)
    )))
}

/// Every query of an iterable, each a string or a list of tokens.
pub fn extract_queries(queries: &Bound<'_, PyAny>) -> PyResult<Vec<Query>> {
    let mut qs = Vec::new();
    for (i, q) in queries.try_iter()?.enumerate() {
        qs.push(extract_query(&q?, || format!("query {i}"))?);
    }
    Ok(qs)
}
