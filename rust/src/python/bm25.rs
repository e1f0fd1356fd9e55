//! `bdnsca._core.BM25`: an index over a corpus with its document ids and the
//! tokenizer its queries go through.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use rustc_hash::FxHashMap;

use super::convert::{
    extract_queries, extract_query, extract_str, type_name, Arena, Query, TokenDocs,
};
use super::errors::invalid;
use super::pool::{run_in, thread_pool};
use super::tokenizer::Tokenizer;
use crate::index::{Bm25Index, HitTable};
use crate::persist::{self, TokenizerSettings};
use crate::scoring::{Method, Params};
use crate::tokenizer::Tokenizer as CoreTokenizer;

type IdsAndScores<'py> = (Vec<Vec<String>>, Bound<'py, PyArray2<f32>>);
type PositionsAndScores<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);

/// Okapi BM25 over a corpus, with the scoring variants of bm25s.
#[pyclass(module = "bdnsca._core", name = "BM25")]
pub struct Bm25 {
    params: Params,
    tokenizer: Py<Tokenizer>,
    index: Option<Arc<Bm25Index>>,
    ids: Arc<Vec<String>>,
    id_pos: Option<Arc<FxHashMap<String, u32>>>,
}

impl Bm25 {
    pub(super) fn index_ref(&self) -> PyResult<&Arc<Bm25Index>> {
        self.index.as_ref().ok_or_else(|| {
            invalid("this BM25 has no index yet: call .index(corpus) or BM25.load(path)")
        })
    }

    /// The tokenizer string queries go through.
    pub(super) fn core_tokenizer(&self) -> &CoreTokenizer {
        &self.tokenizer.get().inner
    }

    fn term_ids(&self, q: &Query) -> PyResult<Vec<u32>> {
        Ok(q.terms(self.index_ref()?, self.core_tokenizer()))
    }

    /// k as a count of results: >= 1, and no more than the documents indexed (so that
    /// a huge k never turns into a huge allocation).
    fn check_k(&self, k: i64) -> PyResult<usize> {
        if k <= 0 {
            return Err(invalid(format!("k must be >= 1, got {k}")));
        }
        Ok((k as u64).min(self.n_docs().max(1) as u64) as usize)
    }

    /// The top k of every query into padded tables: allocated (checked, so a
    /// huge request is a MemoryError) before any query runs.
    fn batch_hits(
        &self,
        py: Python<'_>,
        queries: &Bound<'_, PyAny>,
        k: usize,
        threads: Option<usize>,
    ) -> PyResult<HitTable> {
        let index = self.index_ref()?.clone();
        let qs = extract_queries(queries)?;
        let pool = thread_pool(threads)?;
        let tok = self.tokenizer.clone_ref(py);
        let tok = &tok.get().inner;
        Ok(py.detach(|| {
            run_in(&pool, || {
                index.search_table(qs.len(), k, |i| qs[i].terms(&index, tok))
            })
        })?)
    }
}

/// Document ids as given (str, or anything with a str()), "0".."n-1" when absent.
fn extract_ids(ids: Option<&Bound<'_, PyAny>>, n: usize) -> PyResult<Vec<String>> {
    let Some(ids) = ids else {
        return Ok((0..n).map(|i| i.to_string()).collect());
    };
    let mut v = Vec::with_capacity(n);
    for id in ids.try_iter()? {
        let id = id?;
        v.push(match id.cast::<PyString>() {
            Ok(s) => s.to_str()?.to_string(),
            Err(_) => id.str()?.to_str()?.to_string(),
        });
    }
    Ok(v)
}

/// Token lists of every document, or a TypeError naming the first that is not one.
fn extract_token_docs(items: &[Bound<'_, PyAny>]) -> PyResult<TokenDocs> {
    let mut tokens = Arena::default();
    let mut doc_ends = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if item.cast::<PyString>().is_ok() {
            return Err(PyTypeError::new_err(format!(
                "document {i} is a str but document 0 is a token list: pass all texts or all token lists"
            )));
        }
        for t in item.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "document {i} must be a str or a list of str tokens, got {}",
                type_name(item)
            ))
        })? {
            let t = t?;
            tokens.push(extract_str(&t, || format!("each token of document {i}"))?);
        }
        doc_ends.push(tokens.len());
    }
    Ok(TokenDocs { tokens, doc_ends })
}

#[pymethods]
impl Bm25 {
    #[new]
    #[pyo3(signature = (method="lucene", k1=1.5, b=0.75, delta=0.5, tokenizer=None))]
    fn new(
        py: Python<'_>,
        method: &str,
        k1: f64,
        b: f64,
        delta: f64,
        tokenizer: Option<Py<Tokenizer>>,
    ) -> PyResult<Self> {
        let params = Params::new(Method::parse(method)?, k1, b, delta)?;
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => Py::new(py, Tokenizer::new(true, None, None, "alnum")?)?,
        };
        Ok(Bm25 {
            params,
            tokenizer,
            index: None,
            ids: Arc::new(Vec::new()),
            id_pos: None,
        })
    }

    /// Indexes `corpus` (raw texts, or pre-tokenised lists of tokens) under `ids`
    /// ("0".."n-1" by default). Replaces any previous index. Returns self.
    #[pyo3(signature = (corpus, ids=None))]
    fn index<'py>(
        mut slf: PyRefMut<'py, Self>,
        corpus: &Bound<'py, PyAny>,
        ids: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let py = slf.py();
        let items: Vec<Bound<'py, PyAny>> = corpus.try_iter()?.collect::<PyResult<_>>()?;
        if items.is_empty() {
            return Err(invalid("cannot index an empty corpus"));
        }
        let id_list = extract_ids(ids, items.len())?;
        if id_list.len() != items.len() {
            return Err(invalid(format!(
                "got {} ids for {} documents",
                id_list.len(),
                items.len()
            )));
        }
        let mut id_pos: FxHashMap<String, u32> = FxHashMap::default();
        id_pos.reserve(id_list.len());
        for (i, id) in id_list.iter().enumerate() {
            if let Some(first) = id_pos.insert(id.clone(), i as u32) {
                return Err(invalid(format!(
                    "duplicate document id {id:?} (documents {first} and {i})"
                )));
            }
        }
        let params = slf.params;
        let custom_ids = ids.is_some();
        let index = if items[0].cast::<PyString>().is_ok() {
            let mut arena = Arena::default();
            for (i, item) in items.iter().enumerate() {
                arena.push(extract_str(item, || format!("document {i}"))?);
            }
            let tok = slf.tokenizer.clone_ref(py);
            let tok = &tok.get().inner;
            py.detach(|| Bm25Index::from_texts(&arena.all(), tok, params))
        } else {
            let docs = extract_token_docs(&items)?;
            py.detach(|| Bm25Index::from_tokens(&docs.lists(), params))
        }?;
        // Ties rank by id; without ids the core's positional ids are these.
        let index = if custom_ids {
            index.with_ids(&id_list)?
        } else {
            index
        };
        slf.index = Some(Arc::new(index));
        slf.ids = Arc::new(id_list);
        slf.id_pos = Some(Arc::new(id_pos));
        Ok(slf)
    }

    /// The score of every document for `query` (a string or a token list), in index order.
    fn get_scores<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let q = extract_query(query, || "query".into())?;
        let ids = self.term_ids(&q)?;
        let index = self.index_ref()?.clone();
        let scores = py.detach(|| index.scores(&ids));
        Ok(PyArray1::from_vec(py, scores))
    }

    /// The `k` best documents for `query` as (id, score), best first. Only
    /// documents holding at least one query term are returned.
    #[pyo3(signature = (query, k=10))]
    fn search(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        k: i64,
    ) -> PyResult<Vec<(String, f32)>> {
        let k = self.check_k(k)?;
        let q = extract_query(query, || "query".into())?;
        let ids = self.term_ids(&q)?;
        let index = self.index_ref()?.clone();
        let hits = py.detach(|| index.search(&ids, k));
        Ok(hits
            .into_iter()
            .map(|h| (self.ids[h.doc as usize].clone(), h.score))
            .collect())
    }

    /// Top-k for many queries in parallel (the GIL released). Returns
    /// (ids, scores): `ids[i]` lists query i's documents, best first (fewer than
    /// k when fewer documents match); `scores` is a float32 array (n_queries, k)
    /// padded with NaN.
    #[pyo3(signature = (queries, k=10, threads=None))]
    fn search_batch<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
        threads: Option<usize>,
    ) -> PyResult<IdsAndScores<'py>> {
        let k = self.check_k(k)?;
        let t = self.batch_hits(py, queries, k, threads)?;
        let mut out_ids = Vec::with_capacity(t.rows);
        for (qi, &len) in t.lens.iter().enumerate() {
            let row = &t.docs[qi * t.cols..qi * t.cols + len];
            out_ids.push(
                row.iter()
                    .map(|&d| self.ids[d as usize].clone())
                    .collect::<Vec<_>>(),
            );
        }
        let arr = PyArray1::from_vec(py, t.scores).reshape([t.rows, t.cols])?;
        Ok((out_ids, arr))
    }

    /// Like `search_batch`, but returns document positions (int64, -1 padded)
    /// instead of ids, with no per-result Python objects.
    #[pyo3(signature = (queries, k=10, threads=None))]
    fn search_batch_indices<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
        threads: Option<usize>,
    ) -> PyResult<PositionsAndScores<'py>> {
        let k = self.check_k(k)?;
        let t = self.batch_hits(py, queries, k, threads)?;
        Ok((
            PyArray1::from_vec(py, t.docs).reshape([t.rows, t.cols])?,
            PyArray1::from_vec(py, t.scores).reshape([t.rows, t.cols])?,
        ))
    }

    /// Writes the index to one versioned, checksummed file, atomically.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let index = self.index_ref()?.clone();
        let tok = self.core_tokenizer();
        let ids = self.ids.clone();
        let settings = TokenizerSettings {
            lowercase: tok.lowercase(),
            stopwords: tok.stopwords(),
            stemmer: tok.stemmer_name().map(str::to_string),
            pattern: tok.pattern(),
        };
        Ok(py.detach(move || persist::save(&index, &ids, &settings, &path))?)
    }

    /// Loads an index written by `save`. A truncated, corrupt or foreign file
    /// raises IndexFileError.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let saved = py.detach(|| persist::load(&path))?;
        let tokenizer = Py::new(
            py,
            Tokenizer::from_core(CoreTokenizer::with_pattern(
                saved.tokenizer.lowercase,
                saved.tokenizer.stopwords,
                saved.tokenizer.stemmer.as_deref(),
                saved.tokenizer.pattern,
            )?),
        )?;
        let params = saved.index.params();
        let id_pos: FxHashMap<String, u32> = saved
            .ids
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        Ok(Bm25 {
            params,
            tokenizer,
            index: Some(Arc::new(saved.index)),
            ids: Arc::new(saved.ids),
            id_pos: Some(Arc::new(id_pos)),
        })
    }

    /// The position of document `doc_id` in the index, or None.
    fn doc_index(&self, doc_id: &str) -> Option<u32> {
        self.id_pos.as_ref().and_then(|m| m.get(doc_id).copied())
    }

    #[getter]
    fn ids(&self) -> Vec<String> {
        self.ids.as_ref().clone()
    }
    #[getter]
    fn method(&self) -> &'static str {
        self.params.method.name()
    }
    #[getter]
    fn k1(&self) -> f64 {
        self.params.k1
    }
    #[getter]
    fn b(&self) -> f64 {
        self.params.b
    }
    #[getter]
    fn delta(&self) -> f64 {
        self.params.delta
    }
    #[getter]
    fn tokenizer(&self, py: Python<'_>) -> Py<Tokenizer> {
        self.tokenizer.clone_ref(py)
    }
    #[getter]
    fn n_docs(&self) -> usize {
        self.index.as_ref().map_or(0, |i| i.n_docs())
    }
    #[getter]
    fn vocab_size(&self) -> usize {
        self.index.as_ref().map_or(0, |i| i.n_terms())
    }
    #[getter]
    fn n_postings(&self) -> usize {
        self.index.as_ref().map_or(0, |i| i.n_postings())
    }
    /// Bytes held by the index (postings, weights, vocabulary).
    #[getter]
    fn memory_bytes(&self) -> usize {
        self.index.as_ref().map_or(0, |i| i.memory_bytes())
    }

    fn __len__(&self) -> usize {
        self.n_docs()
    }

    fn __repr__(&self) -> String {
        format!(
            "BM25(method={:?}, k1={}, b={}, delta={}, n_docs={})",
            self.params.method.name(),
            self.params.k1,
            self.params.b,
            self.params.delta,
            self.n_docs()
        )
    }
}
