//! The Python binding: thin wrappers over the core, the one place where core
//! errors become Python exceptions, and the GIL released around heavy work.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::Error;
use crate::index::Bm25Index;
use crate::metrics::{self, Metric, QueryInput};
use crate::mining::{self, MiningConfig, MiningQuery, Sampling};
use crate::pareto;
use crate::persist::{self, TokenizerSettings};
use crate::scoring::{Method, Params};
use crate::tokenizer::{self, Tokenizer as CoreTokenizer};

create_exception!(
    _core,
    BdnscaError,
    PyValueError,
    "Base class of bdnsca's errors (a ValueError)."
);
create_exception!(
    _core,
    IndexFileError,
    BdnscaError,
    "An index file is truncated, corrupt or foreign."
);

fn to_py(e: Error) -> PyErr {
    match e {
        Error::InvalidArgument(msg) => BdnscaError::new_err(msg),
        e @ Error::IndexFile { .. } => IndexFileError::new_err(e.to_string()),
        Error::Io { path, source } => {
            let msg = format!("{}: {}", path.display(), source);
            if source.kind() == std::io::ErrorKind::NotFound {
                PyFileNotFoundError::new_err(msg)
            } else {
                PyOSError::new_err(msg)
            }
        }
    }
}

type IdsAndScores<'py> = (Vec<Vec<String>>, Bound<'py, PyArray2<f32>>);
type PositionsAndScores<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);
/// (query ids, metric names, values, qrels queries the run lacks, run queries qrels lack)
type EvalMatrix<'py> = (
    Vec<String>,
    Vec<String>,
    Bound<'py, PyArray2<f64>>,
    usize,
    usize,
);

/// Texts copied out of Python objects into one buffer, so heavy work can run
/// with the GIL released without borrowing from objects other threads may change.
#[derive(Default)]
struct Arena {
    buf: String,
    ends: Vec<usize>,
}

impl Arena {
    fn push(&mut self, s: &str) {
        self.buf.push_str(s);
        self.ends.push(self.buf.len());
    }
    fn len(&self) -> usize {
        self.ends.len()
    }
    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
}

/// Pre-tokenised documents: tokens in one arena, document boundaries beside it.
struct TokenDocs {
    tokens: Arena,
    doc_ends: Vec<usize>,
}

impl TokenDocs {
    fn doc(&self, d: usize) -> impl Iterator<Item = &str> {
        let start = if d == 0 { 0 } else { self.doc_ends[d - 1] };
        (start..self.doc_ends[d]).map(move |i| self.tokens.get(i))
    }
}

fn extract_str<'a>(obj: &'a Bound<'_, PyAny>, what: impl Fn() -> String) -> PyResult<&'a str> {
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("{} must be a str, got {}", what(), type_name(obj)))
    })?;
    s.to_str()
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn thread_pool(threads: Option<usize>) -> PyResult<Option<Arc<rayon::ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let Some(n) = threads else { return Ok(None) };
    if n == 0 {
        return Err(BdnscaError::new_err(
            "threads must be >= 1 (or None for all cores)",
        ));
    }
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = pools
        .lock()
        .map_err(|_| BdnscaError::new_err("thread pool registry poisoned"))?;
    if let Some(p) = guard.get(&n) {
        return Ok(Some(p.clone()));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| BdnscaError::new_err(format!("cannot start {n} threads: {e}")))?;
    let pool = Arc::new(pool);
    guard.insert(n, pool.clone());
    Ok(Some(pool))
}

fn run_in<T: Send>(pool: &Option<Arc<rayon::ThreadPool>>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Splits text into tokens: Unicode lower-casing, splitting on non-alphanumerics,
/// an optional stopword list and an optional Snowball English stemmer.
#[pyclass(module = "bdnsca._core", frozen)]
pub struct Tokenizer {
    inner: CoreTokenizer,
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
            other => Err(BdnscaError::new_err(format!(
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
    #[pyo3(signature = (lowercase=true, stopwords=None, stemmer=None))]
    fn new(
        lowercase: bool,
        stopwords: Option<&Bound<'_, PyAny>>,
        stemmer: Option<&str>,
    ) -> PyResult<Self> {
        let words = resolve_stopwords(stopwords)?;
        Ok(Tokenizer {
            inner: CoreTokenizer::new(lowercase, words, stemmer).map_err(to_py)?,
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

    fn __repr__(&self) -> String {
        format!(
            "Tokenizer(lowercase={}, stopwords={} words, stemmer={:?})",
            if self.inner.lowercase() {
                "True"
            } else {
                "False"
            },
            self.inner.stopwords().len(),
            self.inner.stemmer_name()
        )
    }
}

fn texts_arena(texts: &Bound<'_, PyAny>) -> PyResult<Arena> {
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
enum Query {
    Text(String),
    Tokens(Vec<String>),
}

impl Query {
    /// The index's term ids for this query: text goes through `tok`, tokens as given.
    fn terms(&self, index: &Bm25Index, tok: &CoreTokenizer) -> Vec<u32> {
        match self {
            Query::Text(t) => index.term_ids(&tok.tokenize(t)),
            Query::Tokens(toks) => index.term_ids(toks),
        }
    }
}

fn extract_query(obj: &Bound<'_, PyAny>, what: impl Fn() -> String) -> PyResult<Query> {
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
    fn index_ref(&self) -> PyResult<&Arc<Bm25Index>> {
        self.index.as_ref().ok_or_else(|| {
            BdnscaError::new_err(
                "this BM25 has no index yet: call .index(corpus) or BM25.load(path)",
            )
        })
    }

    fn term_ids(&self, q: &Query) -> PyResult<Vec<u32>> {
        Ok(q.terms(self.index_ref()?, &self.tokenizer.get().inner))
    }

    /// k as a count of results: >= 1, and no more than the documents indexed (so that
    /// a huge k never turns into a huge allocation).
    fn check_k(&self, k: i64) -> PyResult<usize> {
        if k <= 0 {
            return Err(BdnscaError::new_err(format!("k must be >= 1, got {k}")));
        }
        Ok((k as u64).min(self.n_docs().max(1) as u64) as usize)
    }
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
        let params =
            Params::new(Method::parse(method).map_err(to_py)?, k1, b, delta).map_err(to_py)?;
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => Py::new(py, Tokenizer::new(true, None, None)?)?,
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
            return Err(BdnscaError::new_err("cannot index an empty corpus"));
        }
        let id_list: Vec<String> = match ids {
            None => (0..items.len()).map(|i| i.to_string()).collect(),
            Some(ids) => {
                let mut v = Vec::with_capacity(items.len());
                for id in ids.try_iter()? {
                    let id = id?;
                    v.push(match id.cast::<PyString>() {
                        Ok(s) => s.to_str()?.to_string(),
                        Err(_) => id.str()?.to_str()?.to_string(),
                    });
                }
                v
            }
        };
        if id_list.len() != items.len() {
            return Err(BdnscaError::new_err(format!(
                "got {} ids for {} documents",
                id_list.len(),
                items.len()
            )));
        }
        let mut id_pos: FxHashMap<String, u32> = FxHashMap::default();
        id_pos.reserve(id_list.len());
        for (i, id) in id_list.iter().enumerate() {
            if let Some(first) = id_pos.insert(id.clone(), i as u32) {
                return Err(BdnscaError::new_err(format!(
                    "duplicate document id {id:?} (documents {first} and {i})"
                )));
            }
        }
        let params = slf.params;
        let index = if items[0].cast::<PyString>().is_ok() {
            let mut arena = Arena::default();
            for (i, item) in items.iter().enumerate() {
                arena.push(extract_str(item, || format!("document {i}"))?);
            }
            let tok = slf.tokenizer.clone_ref(py);
            let tok = &tok.get().inner;
            py.detach(|| {
                let texts: Vec<&str> = (0..arena.len()).map(|i| arena.get(i)).collect();
                Bm25Index::from_texts(&texts, tok, params)
            })
        } else {
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
            let docs = TokenDocs { tokens, doc_ends };
            py.detach(|| {
                let lists: Vec<Vec<&str>> = (0..docs.doc_ends.len()).map(|d| docs.doc(d).collect()).collect();
                Bm25Index::from_tokens(&lists, params)
            })
        }
        .map_err(to_py)?;
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
        let (hits, n) = self.batch_hits(py, queries, k, threads)?;
        let mut flat = vec![f32::NAN; n * k];
        let mut out_ids = Vec::with_capacity(n);
        for (qi, row) in hits.iter().enumerate() {
            let mut ids = Vec::with_capacity(row.len());
            for (j, h) in row.iter().enumerate() {
                flat[qi * k + j] = h.score;
                ids.push(self.ids[h.doc as usize].clone());
            }
            out_ids.push(ids);
        }
        let arr = PyArray1::from_vec(py, flat).reshape([n, k])?;
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
        let (hits, n) = self.batch_hits(py, queries, k, threads)?;
        let mut scores = vec![f32::NAN; n * k];
        let mut docs = vec![-1i64; n * k];
        for (qi, row) in hits.iter().enumerate() {
            for (j, h) in row.iter().enumerate() {
                scores[qi * k + j] = h.score;
                docs[qi * k + j] = h.doc as i64;
            }
        }
        Ok((
            PyArray1::from_vec(py, docs).reshape([n, k])?,
            PyArray1::from_vec(py, scores).reshape([n, k])?,
        ))
    }

    /// Writes the index to one versioned, checksummed file, atomically.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let index = self.index_ref()?.clone();
        let tok = &self.tokenizer.get().inner;
        let ids = self.ids.clone();
        let settings = TokenizerSettings {
            lowercase: tok.lowercase(),
            stopwords: tok.stopwords(),
            stemmer: tok.stemmer_name().map(str::to_string),
        };
        py.detach(move || persist::save(&index, &ids, &settings, &path))
            .map_err(to_py)
    }

    /// Loads an index written by `save`. A truncated, corrupt or foreign file
    /// raises IndexFileError.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let saved = py.detach(|| persist::load(&path)).map_err(to_py)?;
        let tokenizer = Py::new(
            py,
            Tokenizer {
                inner: CoreTokenizer::new(
                    saved.tokenizer.lowercase,
                    saved.tokenizer.stopwords,
                    saved.tokenizer.stemmer.as_deref(),
                )
                .map_err(to_py)?,
            },
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

impl Bm25 {
    fn batch_hits(
        &self,
        py: Python<'_>,
        queries: &Bound<'_, PyAny>,
        k: usize,
        threads: Option<usize>,
    ) -> PyResult<(Vec<Vec<crate::topk::Hit>>, usize)> {
        let index = self.index_ref()?.clone();
        let mut qs = Vec::new();
        for (i, q) in queries.try_iter()?.enumerate() {
            qs.push(extract_query(&q?, || format!("query {i}"))?);
        }
        let pool = thread_pool(threads)?;
        let tok = self.tokenizer.clone_ref(py);
        let tok = &tok.get().inner;
        let n = qs.len();
        let hits = py.detach(|| {
            run_in(&pool, || {
                qs.par_iter()
                    .map_init(crate::index::Scratch::default, |s, q| {
                        index.top_k(&q.terms(&index, tok), k, s)
                    })
                    .collect()
            })
        });
        Ok((hits, n))
    }
}

/// One query's mining result, as plain Python values: (same-domain negatives,
/// cross-domain negatives, suspected false negatives, positive scores, pairs,
/// dropped by rank, dropped by score, available same, available cross). A
/// negative is (doc, score, rank); a suspect (doc, twin_of, similarity, score, rank).
type MinedTuple = (
    Vec<(u32, f32, u32)>,
    Vec<(u32, f32, u32)>,
    Vec<(u32, u32, f64, f32, u32)>,
    Vec<f32>,
    Vec<(u32, u32)>,
    u32,
    u32,
    u32,
    u32,
);

/// Document texts copied once into Rust, for repeated mining calls over one corpus.
#[pyclass(module = "bdnsca._core", frozen)]
pub struct DocTexts {
    arena: Arc<Arena>,
}

#[pymethods]
impl DocTexts {
    #[new]
    fn new(texts: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(DocTexts {
            arena: Arc::new(texts_arena(texts)?),
        })
    }

    fn __len__(&self) -> usize {
        self.arena.len()
    }
}

/// Mines hard negatives for every query in parallel (the GIL released); see
/// `bdnsca.mining.mine_hard_negatives` for the user-facing function.
#[pyfunction]
#[pyo3(signature = (bm25, texts, domains, queries, positives, relevant, query_domains, query_ids, *,
    depth, rank_min, rank_max, max_score_ratio, near_dup_threshold, same_domain, cross_domain,
    sampling, seed, max_pairs))]
#[allow(clippy::too_many_arguments)]
fn mine(
    py: Python<'_>,
    bm25: &Bm25,
    texts: &DocTexts,
    domains: Vec<u32>,
    queries: &Bound<'_, PyAny>,
    positives: Vec<Vec<u32>>,
    relevant: Vec<Vec<u32>>,
    query_domains: Vec<u32>,
    query_ids: Vec<String>,
    depth: usize,
    rank_min: usize,
    rank_max: usize,
    max_score_ratio: Option<f64>,
    near_dup_threshold: Option<f64>,
    same_domain: usize,
    cross_domain: usize,
    sampling: &str,
    seed: u64,
    max_pairs: Option<usize>,
) -> PyResult<Vec<MinedTuple>> {
    let index = bm25.index_ref()?.clone();
    let arena = texts.arena.clone();
    let mut qs = Vec::new();
    for (i, q) in queries.try_iter()?.enumerate() {
        qs.push(extract_query(&q?, || format!("query {i}"))?);
    }
    let n = qs.len();
    if [
        positives.len(),
        relevant.len(),
        query_domains.len(),
        query_ids.len(),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err(BdnscaError::new_err(
            "queries, positives, relevant, query_domains and query_ids differ in length",
        ));
    }
    let sampling = match sampling {
        "top" => Sampling::Top,
        "random" => Sampling::Random,
        other => {
            return Err(BdnscaError::new_err(format!(
                "sampling must be 'top' or 'random', got {other:?}"
            )))
        }
    };
    let cfg = MiningConfig {
        depth,
        rank_min,
        rank_max,
        max_score_ratio,
        near_dup_threshold,
        same_domain,
        cross_domain,
        sampling,
        seed,
        max_pairs,
    };
    let tok = bm25.tokenizer.clone_ref(py);
    let tok = &tok.get().inner;
    let mined = py
        .detach(|| {
            let texts: Vec<&str> = (0..arena.len()).map(|i| arena.get(i)).collect();
            let queries: Vec<MiningQuery> = qs
                .iter()
                .zip(positives)
                .zip(relevant)
                .zip(query_domains)
                .zip(&query_ids)
                .map(|((((q, positives), relevant), domain), id)| MiningQuery {
                    terms: q.terms(&index, tok),
                    positives,
                    relevant,
                    domain,
                    key: mining::key_of(id),
                })
                .collect();
            mining::mine(&index, &texts, &domains, &queries, &cfg)
        })
        .map_err(to_py)?;
    Ok(mined
        .into_iter()
        .map(|m| {
            let neg = |v: Vec<mining::Candidate>| {
                v.into_iter().map(|c| (c.doc, c.score, c.rank)).collect()
            };
            (
                neg(m.same),
                neg(m.cross),
                m.suspects
                    .into_iter()
                    .map(|s| (s.doc, s.twin_of, s.similarity, s.score, s.rank))
                    .collect(),
                m.positive_scores,
                m.pairs,
                m.dropped_by_rank,
                m.dropped_by_score,
                m.available_same,
                m.available_cross,
            )
        })
        .collect())
}

/// Indices (ascending, int64) of the non-dominated rows of a C-contiguous float64
/// (n, d) array; `maximize[j]` says whether column j is maximised.
#[pyfunction]
fn pareto_frontier<'py>(
    py: Python<'py>,
    points: PyReadonlyArray2<'py, f64>,
    maximize: Vec<bool>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let d = points.shape()[1];
    let flat = points
        .as_slice()
        .map_err(|_| BdnscaError::new_err("points must be C-contiguous"))?;
    let idx = py
        .detach(|| pareto::pareto_frontier(flat, d, &maximize))
        .map_err(to_py)?;
    Ok(PyArray1::from_vec(
        py,
        idx.into_iter().map(|i| i as i64).collect(),
    ))
}

/// latency / the lowest latency among configurations at least as good in quality.
#[pyfunction]
fn frontier_ratio<'py>(
    py: Python<'py>,
    latency: PyReadonlyArray1<'py, f64>,
    quality: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let l = latency
        .as_slice()
        .map_err(|_| BdnscaError::new_err("latency must be contiguous"))?
        .to_vec();
    let q = quality
        .as_slice()
        .map_err(|_| BdnscaError::new_err("quality must be contiguous"))?
        .to_vec();
    let r = py
        .detach(|| pareto::frontier_ratio(&l, &q))
        .map_err(to_py)?;
    Ok(PyArray1::from_vec(py, r))
}

/// Per-query metric values for `qrels` and `run` (dicts of dicts). Returns the
/// query ids of qrels in order, the metric names, a float64 array
/// (n_queries, n_metrics), and how many qrels queries the run lacks and how
/// many run queries qrels lacks.
#[pyfunction]
fn evaluate_matrix<'py>(
    py: Python<'py>,
    qrels: &Bound<'py, PyDict>,
    run: &Bound<'py, PyDict>,
    metrics: Vec<String>,
) -> PyResult<EvalMatrix<'py>> {
    let parsed: Vec<Metric> = metrics
        .iter()
        .map(|m| Metric::parse(m))
        .collect::<Result<_, _>>()
        .map_err(to_py)?;
    if parsed.is_empty() {
        return Err(BdnscaError::new_err("no metrics asked for"));
    }
    // Copy what the metrics need out of the dicts: doc ids into one arena,
    // (score, arena index, judgement) per ranked document.
    let mut qids = Vec::with_capacity(qrels.len());
    let mut docids = Arena::default();
    let mut entries: Vec<(f64, usize, i32)> = Vec::new();
    let mut judged: Vec<i32> = Vec::new();
    let mut spans: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(qrels.len());
    let mut missing_in_run = 0usize;
    for (qid, qdict) in qrels.iter() {
        let qid_s = extract_str(&qid, || "each qrels query id".into())?.to_string();
        let qdict = qdict.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!("qrels[{qid_s:?}] must be a dict of doc id -> int"))
        })?;
        let j0 = judged.len();
        let owned: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)> = qdict.iter().collect();
        let mut rels: FxHashMap<&str, i32> = FxHashMap::default();
        for (d, r) in &owned {
            let d = extract_str(d, || format!("each doc id in qrels[{qid_s:?}]"))?;
            let r: i32 = r.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "qrels[{qid_s:?}][{d:?}] must be an int, got {}",
                    type_name(r)
                ))
            })?;
            rels.insert(d, r);
            judged.push(r);
        }
        let e0 = entries.len();
        match run.get_item(&qid)? {
            Some(rdict) => {
                let rdict = rdict.cast::<PyDict>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "run[{qid_s:?}] must be a dict of doc id -> score"
                    ))
                })?;
                for (d, s) in rdict.iter() {
                    let ds = extract_str(&d, || format!("each doc id in run[{qid_s:?}]"))?;
                    let score: f64 = s.extract().map_err(|_| {
                        PyTypeError::new_err(format!(
                            "run[{qid_s:?}][{ds:?}] must be a number, got {}",
                            type_name(&s)
                        ))
                    })?;
                    let rel = rels.get(ds).copied().unwrap_or(0);
                    docids.push(ds);
                    entries.push((score, docids.len() - 1, rel));
                }
            }
            None => missing_in_run += 1,
        }
        spans.push((e0, entries.len(), j0, judged.len()));
        qids.push(qid_s);
    }
    let mut run_only = 0usize;
    for qid in run.keys() {
        if !qrels.contains(&qid)? {
            run_only += 1;
        }
    }
    let n_m = parsed.len();
    let values: Vec<f64> = py.detach(|| {
        let mut inputs: Vec<QueryInput> = spans
            .iter()
            .map(|&(e0, e1, j0, j1)| QueryInput {
                ranked: entries[e0..e1]
                    .iter()
                    .map(|&(s, d, r)| (s, docids.get(d), r))
                    .collect(),
                judged: judged[j0..j1].to_vec(),
            })
            .collect();
        metrics::evaluate(&mut inputs, &parsed)
            .into_iter()
            .flatten()
            .collect()
    });
    let n_q = qids.len();
    let arr = PyArray1::from_vec(py, values).reshape([n_q, n_m])?;
    Ok((qids, metrics, arr, missing_in_run, run_only))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Tokenizer>()?;
    m.add_class::<Bm25>()?;
    m.add_class::<DocTexts>()?;
    m.add_function(wrap_pyfunction!(evaluate_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(mine, m)?)?;
    m.add_function(wrap_pyfunction!(pareto_frontier, m)?)?;
    m.add_function(wrap_pyfunction!(frontier_ratio, m)?)?;
    m.add("BdnscaError", m.py().get_type::<BdnscaError>())?;
    m.add("IndexFileError", m.py().get_type::<IndexFileError>())?;
    m.add("STOPWORDS_EN", tokenizer::STOPWORDS_EN.to_vec())?;
    m.add("INDEX_FORMAT_VERSION", persist::FORMAT_VERSION)?;
    Ok(())
}
