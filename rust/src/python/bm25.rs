//! `bdnsca._core.BM25`: an index over a corpus with its document ids and the
//! tokenizer its queries go through. What it holds (segments, and a flat
//! index compiled from them for search) is in `bm25_state.rs`.
//!
//! Over 450 lines on purpose: pyo3 takes one `#[pymethods]` block per class
//! (the crate does not enable `multiple-pymethods`), and this file is that
//! block, method by method thin over `bm25_state.rs`, the core and its
//! persistence; splitting it would mean a second class or that feature.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use super::bm25_state::{
    check_count, extract_ids, folder_counts, folder_stats, settings_of, tokenizer_of, Corpus, Flat,
    State, NO_INDEX,
};
use super::convert::{extract_queries, extract_query};
use super::errors::invalid;
use super::pool::{run_in, thread_pool};
use super::tokenizer::Tokenizer;
use crate::index::{Bm25Index, HitTable};
use crate::scoring::{Method, Params};
use crate::seg_append::{self, AppendMode};
use crate::segmented::SegmentedIndex;
use crate::tokenizer::Tokenizer as CoreTokenizer;
use crate::{persist, seg_persist};

type IdsAndScores<'py> = (Vec<Vec<String>>, Bound<'py, PyArray2<f32>>);
type PositionsAndScores<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);

/// Okapi BM25 over a corpus, with the scoring variants of bm25s.
#[pyclass(module = "bdnsca._core", name = "BM25")]
pub struct Bm25 {
    params: Params,
    tokenizer: Py<Tokenizer>,
    state: State,
}

impl Bm25 {
    /// The flat index search and mining run on (compiled on first use).
    pub(super) fn index_ref(&self, py: Python<'_>) -> PyResult<Arc<Bm25Index>> {
        match self.state.flat(py)? {
            Some(f) => Ok(f.index.clone()),
            None => Err(invalid(
                "the index has no live document (all were deleted): add documents first",
            )),
        }
    }

    /// The tokenizer string queries go through.
    pub(super) fn core_tokenizer(&self) -> &CoreTokenizer {
        &self.tokenizer.get().inner
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
    ) -> PyResult<(HitTable, Option<Arc<Flat>>)> {
        let flat = self.state.flat(py)?;
        let qs = extract_queries(queries)?;
        let Some(f) = flat else {
            let table = HitTable {
                rows: qs.len(),
                cols: 0,
                docs: Vec::new(),
                scores: Vec::new(),
                lens: vec![0; qs.len()],
            };
            return Ok((table, None));
        };
        let index = f.index.clone();
        let pool = thread_pool(threads)?;
        let tok = self.tokenizer.clone_ref(py);
        let tok = &tok.get().inner;
        let table = py.detach(|| {
            run_in(&pool, || {
                index.search_table(qs.len(), k, |i| qs[i].terms(&index, tok))
            })
        })?;
        Ok((table, Some(f)))
    }

    /// Adds (or, with `replace`, updates) documents as one new segment.
    fn add_docs(
        &mut self,
        py: Python<'_>,
        corpus: &Bound<'_, PyAny>,
        ids: &Bound<'_, PyAny>,
        replace: bool,
    ) -> PyResult<()> {
        let docs = Corpus::extract(corpus)?;
        let ids = extract_ids(Some(ids), docs.len())?;
        check_count(&ids, docs.len())?;
        let tok = self.tokenizer.clone_ref(py);
        let tok = &tok.get().inner;
        let seg = self.state.seg_mut(if replace { "update" } else { "add" })?;
        Ok(py.detach(|| docs.add_to(seg, &ids, tok, replace))?)
    }

    fn from_state(py: Python<'_>, seg: SegmentedIndex, tok: CoreTokenizer) -> PyResult<Self> {
        Ok(Bm25 {
            params: seg.params(),
            tokenizer: Py::new(py, Tokenizer::from_core(tok))?,
            state: State::segmented(seg),
        })
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
        let params = Params::new(Method::parse(method)?, k1, b, delta)?;
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => Py::new(py, Tokenizer::new(true, None, None, "alnum")?)?,
        };
        Ok(Bm25 {
            params,
            tokenizer,
            state: State::Empty,
        })
    }

    /// Indexes `corpus` (raw texts, or pre-tokenised lists of tokens) under `ids`
    /// ("0".."n-1" by default) as one segment. Replaces any previous index.
    /// Returns self.
    #[pyo3(signature = (corpus, ids=None))]
    fn index<'py>(
        mut slf: PyRefMut<'py, Self>,
        corpus: &Bound<'py, PyAny>,
        ids: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let py = slf.py();
        let docs = Corpus::extract(corpus)?;
        if docs.len() == 0 {
            return Err(invalid("cannot index an empty corpus"));
        }
        let ids = extract_ids(ids, docs.len())?;
        check_count(&ids, docs.len())?;
        let params = slf.params;
        let tok = slf.tokenizer.clone_ref(py);
        let tok = &tok.get().inner;
        let (seg, flat) = py.detach(|| -> crate::Result<(SegmentedIndex, Flat)> {
            let mut seg = SegmentedIndex::new(params);
            docs.add_to(&mut seg, &ids, tok, false)?;
            // A fresh build refuses weights that overflow: so does `index`,
            // and the first search then finds the flat index ready.
            let flat = seg.compile()?;
            let live = seg.live_ids().into_iter().map(str::to_string).collect();
            Ok((seg, Flat::new(flat, live)))
        })?;
        slf.state = State::segmented(seg);
        if let State::Segmented { flat: cache, .. } = &mut slf.state {
            *cache.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(flat));
        }
        Ok(slf)
    }

    /// Adds documents (texts or token lists) under `ids` as a new segment. An
    /// id already in the index is an error naming it (use `update`).
    fn add(
        &mut self,
        py: Python<'_>,
        corpus: &Bound<'_, PyAny>,
        ids: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.add_docs(py, corpus, ids, false)
    }

    /// Replaces the documents with these ids (every one must be in the index):
    /// the old versions are deleted and the new ones appended as a new segment.
    fn update(
        &mut self,
        py: Python<'_>,
        corpus: &Bound<'_, PyAny>,
        ids: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.add_docs(py, corpus, ids, true)
    }

    /// Deletes the documents with these ids; an unknown id is an error naming
    /// it, and then nothing is deleted.
    fn delete(&mut self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<()> {
        let ids = extract_ids(Some(ids), 0)?;
        let seg = self.state.seg_mut("delete")?;
        Ok(py.detach(|| seg.delete(&ids))?)
    }

    /// Joins adjacent segments until at most `max_segments` remain and drops
    /// deleted documents; scores and rankings do not change.
    #[pyo3(signature = (max_segments=1))]
    fn merge(&mut self, py: Python<'_>, max_segments: i64) -> PyResult<()> {
        if max_segments < 1 {
            return Err(invalid(format!(
                "max_segments must be >= 1, got {max_segments}"
            )));
        }
        let seg = self.state.seg_mut("merge")?;
        Ok(py.detach(|| seg.merge(max_segments as usize))?)
    }

    /// Appends the segments of `other` (built separately, e.g. a shard) after
    /// this index's. Same method, parameters and tokenizer required; an id
    /// live in both is an error naming it.
    fn add_index(slf: &Bound<'_, Self>, other: &Bound<'_, Bm25>) -> PyResult<()> {
        if slf.is(other) {
            return Err(invalid(
                "add_index: cannot join an index with itself (every id would be live twice)",
            ));
        }
        let py = slf.py();
        let other = other.try_borrow()?;
        let mut this = slf.try_borrow_mut()?;
        let State::Segmented { seg: theirs, .. } = &other.state else {
            return Err(invalid(match other.state {
                State::Empty => "add_index: the other BM25 has no index yet",
                _ => {
                    "add_index: the other index was saved in the single-file format (weights \
                      only); rebuild it with `bdnsca index` (or BM25.index) of this version"
                }
            }));
        };
        if settings_of(other.core_tokenizer()) != settings_of(this.core_tokenizer()) {
            return Err(invalid(
                "add_index: the two indexes tokenise differently (lowercase, stopwords, stemmer \
                 or pattern differ)",
            ));
        }
        let ours = this.state.seg_mut("add an index")?;
        Ok(py.detach(|| ours.append(theirs))?)
    }

    /// The score of every document for `query` (a string or a token list), in index order.
    fn get_scores<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let q = extract_query(query, || "query".into())?;
        let Some(f) = self.state.flat(py)? else {
            return Ok(PyArray1::from_vec(py, Vec::new()));
        };
        let ids = q.terms(&f.index, self.core_tokenizer());
        let scores = py.detach(|| f.index.scores(&ids));
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
        let Some(f) = self.state.flat(py)? else {
            return Ok(Vec::new());
        };
        let ids = q.terms(&f.index, self.core_tokenizer());
        let hits = py.detach(|| f.index.search(&ids, k));
        Ok(hits
            .into_iter()
            .map(|h| (f.ids[h.doc as usize].clone(), h.score))
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
        let (t, f) = self.batch_hits(py, queries, k, threads)?;
        let mut out_ids = Vec::with_capacity(t.rows);
        for (qi, &len) in t.lens.iter().enumerate() {
            let row = &t.docs[qi * t.cols..qi * t.cols + len];
            out_ids.push(match &f {
                Some(f) => row.iter().map(|&d| f.ids[d as usize].clone()).collect(),
                None => Vec::new(),
            });
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
        let (t, _) = self.batch_hits(py, queries, k, threads)?;
        Ok((
            PyArray1::from_vec(py, t.docs).reshape([t.rows, t.cols])?,
            PyArray1::from_vec(py, t.scores).reshape([t.rows, t.cols])?,
        ))
    }

    /// Writes the index as a folder (segment files, deletes files and a
    /// manifest written last). Saving back to the folder an index was loaded
    /// from writes only what changed. An index loaded from the single-file
    /// format is written in that format again (it has no segments).
    fn save(&mut self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let settings = settings_of(self.core_tokenizer());
        match &mut self.state {
            State::Empty => Err(invalid(format!("cannot save: {NO_INDEX}"))),
            State::SingleFile(f) => {
                let f = f.clone();
                Ok(py.detach(move || persist::save(&f.index, &f.ids, &settings, &path))?)
            }
            State::Segmented { seg, .. } => {
                if path.is_file() {
                    return Err(invalid(format!(
                        "{}: a file is there (an index in the single-file format?); an index is \
                         saved as a folder: give another path, or remove the file first",
                        path.display()
                    )));
                }
                py.detach(|| seg_persist::save_dir(seg, &settings, &path))?;
                Ok(())
            }
        }
    }

    /// Loads an index saved by `save`: a folder (segmented: searchable and
    /// changeable), or a file of the older single-file format (searchable
    /// only). A truncated, corrupt or foreign index raises IndexFileError.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        if path.is_dir() {
            let (seg, tok) = py.detach(|| seg_persist::load_dir(&path))?;
            return Self::from_state(py, seg, tokenizer_of(&tok)?);
        }
        let saved = py.detach(|| persist::load(&path))?;
        Self::from_single_file(py, saved)
    }

    /// The live document ids of a saved index, in index order, without
    /// loading its postings (a folder); a single file is loaded whole.
    #[staticmethod]
    fn read_ids(py: Python<'_>, path: PathBuf) -> PyResult<Vec<String>> {
        if path.is_dir() {
            return Ok(py.detach(|| seg_persist::read_ids(&path))?);
        }
        Ok(py.detach(|| persist::load(&path))?.ids)
    }

    /// Adds `corpus` (texts, tokenised with the saved tokenizer, or token
    /// lists) under `ids` to the index saved in the folder `path` as one new
    /// segment, without loading it: only the manifest, the ids sections and
    /// the deletes files are read. `mode`: "add" (an id in the index is an
    /// error), "update" (every id must be there) or "upsert". The folder ends
    /// as load + add/update + save would leave it. Returns counts (`folder_stats`).
    #[staticmethod]
    #[pyo3(signature = (path, corpus, ids, mode="add"))]
    fn append_to<'py>(
        py: Python<'py>,
        path: PathBuf,
        corpus: &Bound<'py, PyAny>,
        ids: &Bound<'py, PyAny>,
        mode: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mode = match mode {
            "add" => AppendMode::Add,
            "update" => AppendMode::Update,
            "upsert" => AppendMode::Upsert,
            _ => {
                return Err(invalid(format!(
                    "mode must be \"add\", \"update\" or \"upsert\", got {mode:?}"
                )))
            }
        };
        let docs = Corpus::extract(corpus)?;
        let ids = extract_ids(Some(ids), docs.len())?;
        check_count(&ids, docs.len())?;
        let stats = py.detach(|| -> crate::Result<_> {
            folder_counts(&path)?; // the folder checks, before anything is read
            Ok(match &docs {
                Corpus::Texts(a) => seg_append::append_texts_dir(&path, &a.all(), &ids, mode)?,
                Corpus::Tokens(t) => seg_append::append_tokens_dir(&path, &t.lists(), &ids, mode)?,
            })
        })?;
        // Counted by the writer under the folder lock (a before/after diff of
        // the folder raced with other writers).
        folder_stats(py, &stats)
    }

    /// Deletes the documents with these ids from the index saved in the folder
    /// `path` without loading it (an unknown id is an error naming it, and
    /// nothing is written). Returns counts (`folder_stats`).
    #[staticmethod]
    fn delete_from<'py>(
        py: Python<'py>,
        path: PathBuf,
        ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ids = extract_ids(Some(ids), 0)?;
        let stats = py.detach(|| -> crate::Result<_> {
            folder_counts(&path)?; // the folder checks, before anything is read
            seg_append::delete_dir(&path, &ids)
        })?;
        folder_stats(py, &stats)
    }

    /// Pickling (e.g. to ship an index to Ray workers): the index as one
    /// checksummed blob.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let settings = settings_of(self.core_tokenizer());
        let bytes = match &self.state {
            State::SingleFile(f) => persist::to_bytes(&f.index, &f.ids, &settings),
            State::Segmented { seg, .. } => py.detach(|| seg_persist::to_bytes(seg, &settings))?,
            State::Empty => seg_persist::to_bytes(&SegmentedIndex::new(self.params), &settings)?,
        };
        let ctor = py.get_type::<Bm25>().getattr("_from_bytes")?;
        (ctor, (PyBytes::new(py, &bytes),)).into_pyobject(py)
    }

    /// The inverse of `__reduce__`'s blob.
    #[staticmethod]
    fn _from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        // The single-file format's magic (persist.rs).
        if data.starts_with(b"BDNSCAIX") {
            let saved =
                py.detach(|| persist::from_bytes(data, std::path::Path::new("<pickle>")))?;
            return Self::from_single_file(py, saved);
        }
        let (seg, tok) = py.detach(|| seg_persist::from_bytes(data))?;
        Self::from_state(py, seg, tokenizer_of(&tok)?)
    }

    /// Writes the older single-file format (weights only; it loads read-only).
    /// For tests of the old format's loader.
    fn _save_single_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let f = self.index_flat(py)?;
        let settings = settings_of(self.core_tokenizer());
        Ok(py.detach(move || persist::save(&f.index, &f.ids, &settings, &path))?)
    }

    /// The position of document `doc_id` in the index (among live documents,
    /// in index order), or None.
    fn doc_index(&self, py: Python<'_>, doc_id: &str) -> PyResult<Option<u32>> {
        Ok(match &self.state {
            State::Segmented { seg, .. } if !seg.contains(doc_id) => None,
            State::Empty => None,
            _ => self
                .state
                .flat(py)?
                .and_then(|f| f.id_pos.get(doc_id).copied()),
        })
    }

    /// The live documents' ids, in index order.
    #[getter]
    fn ids(&self) -> Vec<String> {
        match &self.state {
            State::Empty => Vec::new(),
            State::SingleFile(f) => f.ids.as_ref().clone(),
            State::Segmented { seg, .. } => {
                seg.live_ids().into_iter().map(str::to_string).collect()
            }
        }
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
    /// Live documents.
    #[getter]
    fn n_docs(&self) -> usize {
        self.state.n_docs()
    }
    /// Segments (1 for an index loaded from the single-file format).
    #[getter]
    fn n_segments(&self) -> usize {
        match &self.state {
            State::Empty => 0,
            State::SingleFile(_) => 1,
            State::Segmented { seg, .. } => seg.n_segments(),
        }
    }
    /// Terms of the live documents (compiles the search index when needed).
    #[getter]
    fn vocab_size(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.flat_or_none(py)?.map_or(0, |f| f.index.n_terms()))
    }
    #[getter]
    fn n_postings(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.flat_or_none(py)?.map_or(0, |f| f.index.n_postings()))
    }
    /// Bytes held: the search index (postings, weights, vocabulary) plus the
    /// segments it is compiled from (forward lists, lengths, ids, deletes).
    #[getter]
    fn memory_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        let flat = self.flat_or_none(py)?.map_or(0, |f| f.index.memory_bytes());
        let segments = match &self.state {
            State::Segmented { seg, .. } => seg.memory_bytes(),
            _ => 0,
        };
        Ok(flat + segments)
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
    fn index_flat(&self, py: Python<'_>) -> PyResult<Arc<Flat>> {
        self.state
            .flat(py)?
            .ok_or_else(|| invalid("the index has no live document"))
    }

    fn from_single_file(py: Python<'_>, saved: persist::Saved) -> PyResult<Self> {
        let tok = tokenizer_of(&saved.tokenizer)?;
        Ok(Bm25 {
            params: saved.index.params(),
            tokenizer: Py::new(py, Tokenizer::from_core(tok))?,
            state: State::SingleFile(Arc::new(Flat::new(saved.index, saved.ids))),
        })
    }

    fn flat_or_none(&self, py: Python<'_>) -> PyResult<Option<Arc<Flat>>> {
        match self.state {
            State::Empty => Ok(None),
            _ => self.state.flat(py),
        }
    }
}
