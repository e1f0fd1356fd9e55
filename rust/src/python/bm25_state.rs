//! What a `bdnsca._core.BM25` holds, and the work behind its methods that
//! change the index (`bm25.rs` keeps the Python-facing methods thin).
//!
//! The source of truth is a `SegmentedIndex` (add, delete, update, merge
//! without a rebuild). Search and mining run on a flat `Bm25Index` compiled
//! from it on first use (`SegmentedIndex::compile`, equal to a fresh build of
//! the live documents) and cached until the next change, so they keep the
//! flat index's speed and results. An index loaded from the old single-file
//! format (weights only) has no segments: it searches, and refuses changes.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use rustc_hash::FxHashMap;

use super::convert::{extract_str, type_name, Arena, TokenDocs};
use super::errors::invalid;
use crate::index::Bm25Index;
use crate::persist::TokenizerSettings;
use crate::segmented::SegmentedIndex;
use crate::tokenizer::Tokenizer as CoreTokenizer;

/// The compiled search index with its ids in index order.
pub(super) struct Flat {
    pub(super) index: Arc<Bm25Index>,
    pub(super) ids: Arc<Vec<String>>,
    pub(super) id_pos: Arc<FxHashMap<String, u32>>,
}

impl Flat {
    pub(super) fn new(index: Bm25Index, ids: Vec<String>) -> Self {
        let id_pos = ids
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        Flat {
            index: Arc::new(index),
            ids: Arc::new(ids),
            id_pos: Arc::new(id_pos),
        }
    }
}

/// The index behind a `BM25`.
pub(super) enum State {
    /// `BM25()` before `index`/`load`.
    Empty,
    /// The segments, and the flat index compiled from them (None until a
    /// search needs it, and after every change).
    Segmented {
        seg: SegmentedIndex,
        flat: Mutex<Option<Arc<Flat>>>,
    },
    /// Loaded from the old single-file format: searchable, not changeable.
    SingleFile(Arc<Flat>),
}

pub(super) const NO_INDEX: &str =
    "this BM25 has no index yet: call .index(corpus) or BM25.load(path)";

impl State {
    pub(super) fn segmented(seg: SegmentedIndex) -> Self {
        State::Segmented {
            seg,
            flat: Mutex::new(None),
        }
    }

    /// The flat index for search and mining, compiled on first use; None when
    /// the index has no live document (every query then finds nothing).
    /// Compiles with the GIL released; concurrent callers wait for one compile.
    pub(super) fn flat(&self, py: Python<'_>) -> PyResult<Option<Arc<Flat>>> {
        match self {
            State::Empty => Err(invalid(NO_INDEX)),
            State::SingleFile(f) => Ok(Some(f.clone())),
            State::Segmented { seg, flat } => {
                if seg.n_live() == 0 {
                    return Ok(None);
                }
                py.detach(|| {
                    let mut guard = flat.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(f) = guard.as_ref() {
                        return Ok(Some(f.clone()));
                    }
                    let index = seg.compile()?;
                    let ids = seg.live_ids().into_iter().map(str::to_string).collect();
                    let f = Arc::new(Flat::new(index, ids));
                    *guard = Some(f.clone());
                    Ok(Some(f))
                })
            }
        }
    }

    /// The segments, to change them (the cached flat index is dropped), or an
    /// error saying why this index cannot change.
    pub(super) fn seg_mut(&mut self, what: &str) -> PyResult<&mut SegmentedIndex> {
        match self {
            State::Empty => Err(invalid(format!(
                "cannot {what}: this BM25 has no index yet (call .index(corpus) or BM25.load(path))"
            ))),
            State::SingleFile(_) => Err(invalid(format!(
                "cannot {what}: this index was saved in the single-file format (weights only), \
                 which cannot change; rebuild it with `bdnsca index` (or BM25.index) of this version"
            ))),
            State::Segmented { seg, flat } => {
                *flat.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(seg)
            }
        }
    }

    pub(super) fn n_docs(&self) -> usize {
        match self {
            State::Empty => 0,
            State::SingleFile(f) => f.index.n_docs(),
            State::Segmented { seg, .. } => seg.n_live(),
        }
    }
}

/// A corpus as given: raw texts or pre-tokenised documents.
pub(super) enum Corpus {
    Texts(Arena),
    Tokens(TokenDocs),
}

impl Corpus {
    pub(super) fn len(&self) -> usize {
        match self {
            Corpus::Texts(a) => a.len(),
            Corpus::Tokens(t) => t.doc_ends.len(),
        }
    }

    /// Texts when the first document is a str, token lists otherwise; a
    /// TypeError names the first document of the other kind.
    pub(super) fn extract(corpus: &Bound<'_, PyAny>) -> PyResult<Corpus> {
        let items: Vec<Bound<'_, PyAny>> = corpus.try_iter()?.collect::<PyResult<_>>()?;
        if items.first().is_some_and(|i| i.cast::<PyString>().is_ok()) {
            let mut arena = Arena::default();
            for (i, item) in items.iter().enumerate() {
                arena.push(extract_str(item, || format!("document {i}"))?);
            }
            return Ok(Corpus::Texts(arena));
        }
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
        Ok(Corpus::Tokens(TokenDocs { tokens, doc_ends }))
    }

    /// Adds the documents to `seg` as a new segment (`replace`: as an update
    /// of documents already there). Call with the GIL released.
    pub(super) fn add_to(
        &self,
        seg: &mut SegmentedIndex,
        ids: &[String],
        tok: &CoreTokenizer,
        replace: bool,
    ) -> crate::Result<()> {
        match (self, replace) {
            (Corpus::Texts(a), false) => seg.add_texts(&a.all(), ids, tok),
            (Corpus::Texts(a), true) => seg.update_texts(&a.all(), ids, tok),
            (Corpus::Tokens(t), false) => seg.add_tokens(&t.lists(), ids),
            (Corpus::Tokens(t), true) => seg.update_tokens(&t.lists(), ids),
        }
    }
}

/// Document ids as given (str, or anything with a str()), "0".."n-1" when absent.
pub(super) fn extract_ids(ids: Option<&Bound<'_, PyAny>>, n: usize) -> PyResult<Vec<String>> {
    let Some(ids) = ids else {
        return Ok((0..n).map(|i| i.to_string()).collect());
    };
    if ids.cast::<PyString>().is_ok() {
        return Err(PyTypeError::new_err(
            "ids must be a sequence of ids, got a single str",
        ));
    }
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

/// A count mismatch between documents and ids, named.
pub(super) fn check_count(ids: &[String], n: usize) -> PyResult<()> {
    if ids.len() != n {
        return Err(invalid(format!(
            "got {} ids for {} documents",
            ids.len(),
            n
        )));
    }
    Ok(())
}

pub(super) fn settings_of(tok: &CoreTokenizer) -> TokenizerSettings {
    TokenizerSettings {
        lowercase: tok.lowercase(),
        stopwords: tok.stopwords(),
        stemmer: tok.stemmer_name().map(str::to_string),
        pattern: tok.pattern(),
    }
}

pub(super) fn tokenizer_of(s: &TokenizerSettings) -> crate::Result<CoreTokenizer> {
    CoreTokenizer::with_pattern(
        s.lowercase,
        s.stopwords.clone(),
        s.stemmer.as_deref(),
        s.pattern,
    )
}

/// (live documents, segments) of the index saved in the folder `dir`, from
/// its manifest alone. A missing `dir` is a FileNotFoundError; a file (the
/// older single-file format, which cannot change) a BdnscaError saying so.
pub(super) fn folder_counts(dir: &std::path::Path) -> crate::Result<(u64, usize)> {
    match std::fs::metadata(dir) {
        Err(e) => return Err(crate::Error::io(dir, e)),
        Ok(m) if !m.is_dir() => {
            return Err(crate::Error::invalid(format!(
                "{}: this index was saved in the single-file format (weights only), which \
                 cannot change; rebuild it as a folder with BM25.index + save of this version",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    let path = dir.join(crate::seg_manifest::MANIFEST);
    let bytes =
        crate::seg_persist::read_manifest_bytes(dir)?.ok_or_else(|| crate::Error::IndexFile {
            path: dir.to_path_buf(),
            reason: format!(
                "no {}: not a bdnsca segmented index",
                crate::seg_manifest::MANIFEST
            ),
        })?;
    let m = crate::seg_manifest::parse(&bytes, &path)?;
    Ok((m.n_live, m.segments.len()))
}

/// The dict `BM25.append_to` / `delete_from` return: added, updated and
/// deleted documents, live_docs and segments after the change, and what was
/// written (segments_written, deletes_written, bytes_written; no segment
/// already there is ever rewritten).
pub(super) fn folder_stats<'py>(
    py: Python<'py>,
    s: &crate::seg_persist::SaveStats,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    d.set_item("added", s.docs_added)?;
    d.set_item("updated", s.docs_updated)?;
    d.set_item("deleted", s.docs_deleted)?;
    d.set_item("live_docs", s.live_docs)?;
    d.set_item("segments", s.segments)?;
    d.set_item("segments_written", s.segments_written)?;
    d.set_item("deletes_written", s.deletes_written)?;
    d.set_item("bytes_written", s.bytes_written)?;
    Ok(d)
}
