//! `mine`: hard-negative mining over a BM25 index. `MiningParams` carries the
//! core's settings, `DocTexts` the corpus texts copied once for repeated calls,
//! and `MiningOutput` the results as named numpy columns.

use std::sync::Arc;

use numpy::PyArray1;
use pyo3::prelude::*;

use super::bm25::Bm25;
use super::convert::{extract_queries, texts_arena, Arena};
use super::errors::invalid;
use crate::mining::{self, MiningQuery, MiningSettings, Sampling, Skip};

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

/// The miner's settings, checked when built (BdnscaError for an empty rank
/// window, a ratio <= 0, a threshold outside (0, 1], an unknown sampling).
#[pyclass(module = "bdnsca._core", frozen)]
pub struct MiningParams {
    inner: MiningSettings,
}

#[pymethods]
impl MiningParams {
    #[new]
    #[pyo3(signature = (*, depth, rank_min, rank_max, same_domain, cross_domain,
        max_score_ratio=None, near_dup_threshold=None, sampling="top", seed=0, max_pairs=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        depth: usize,
        rank_min: usize,
        rank_max: usize,
        same_domain: usize,
        cross_domain: usize,
        max_score_ratio: Option<f64>,
        near_dup_threshold: Option<f64>,
        sampling: &str,
        seed: u64,
        max_pairs: Option<usize>,
    ) -> PyResult<Self> {
        let sampling = match sampling {
            "top" => Sampling::Top,
            "random" => Sampling::Random,
            other => {
                return Err(invalid(format!(
                    "sampling must be 'top' or 'random', got {other:?}"
                )))
            }
        };
        let inner = MiningSettings {
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
        inner.validate()?;
        Ok(MiningParams { inner })
    }

    #[getter]
    fn depth(&self) -> usize {
        self.inner.depth
    }
    #[getter]
    fn rank_min(&self) -> usize {
        self.inner.rank_min
    }
    #[getter]
    fn rank_max(&self) -> usize {
        self.inner.rank_max
    }
    #[getter]
    fn same_domain(&self) -> usize {
        self.inner.same_domain
    }
    #[getter]
    fn cross_domain(&self) -> usize {
        self.inner.cross_domain
    }
    #[getter]
    fn max_score_ratio(&self) -> Option<f64> {
        self.inner.max_score_ratio
    }
    #[getter]
    fn near_dup_threshold(&self) -> Option<f64> {
        self.inner.near_dup_threshold
    }
    #[getter]
    fn sampling(&self) -> &'static str {
        match self.inner.sampling {
            Sampling::Top => "top",
            Sampling::Random => "random",
        }
    }
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed
    }
    #[getter]
    fn max_pairs(&self) -> Option<usize> {
        self.inner.max_pairs
    }

    fn __repr__(&self) -> String {
        format!("MiningParams({:?})", self.inner)
    }
}

/// What `mine` found, as numpy columns. Per-item columns are concatenated over
/// the queries; query i's items are rows `offsets[i]:offsets[i + 1]` of the
/// matching `*_offsets` column (int64, n_queries + 1 long). Documents are index
/// positions. Per-query columns have one row per query.
#[pyclass(module = "bdnsca._core", frozen, get_all)]
pub struct MiningOutput {
    n_queries: usize,
    /// Negatives, same-domain ones first (each part best first).
    negative_offsets: Py<PyArray1<i64>>,
    negative_doc: Py<PyArray1<i64>>,
    negative_score: Py<PyArray1<f32>>,
    /// 1-based rank in the BM25 ranking.
    negative_rank: Py<PyArray1<i64>>,
    negative_same_domain: Py<PyArray1<bool>>,
    /// Suspected false negatives: near duplicates of a relevant document.
    suspect_offsets: Py<PyArray1<i64>>,
    suspect_doc: Py<PyArray1<i64>>,
    suspect_duplicate_of: Py<PyArray1<i64>>,
    suspect_similarity: Py<PyArray1<f64>>,
    suspect_score: Py<PyArray1<f32>>,
    suspect_rank: Py<PyArray1<i64>>,
    /// The score of each positive given, in the order given.
    positive_offsets: Py<PyArray1<i64>>,
    positive_score: Py<PyArray1<f32>>,
    /// (positive, negative) pairs.
    pair_offsets: Py<PyArray1<i64>>,
    pair_positive: Py<PyArray1<i64>>,
    pair_negative: Py<PyArray1<i64>>,
    /// Per query: candidates dropped by the rank window and by the score ceiling,
    /// and the eligible same- and cross-domain candidates.
    dropped_by_rank: Py<PyArray1<i64>>,
    dropped_by_score: Py<PyArray1<i64>>,
    available_same: Py<PyArray1<i64>>,
    available_cross: Py<PyArray1<i64>>,
    /// Per query: True when it was skipped because a score ceiling was asked for
    /// and every positive scores 0 (then it has no negatives, suspects or pairs).
    skipped_no_positive_scored: Py<PyArray1<bool>>,
}

/// Columns being filled, one query at a time.
#[derive(Default)]
struct Columns {
    neg_off: Vec<i64>,
    neg_doc: Vec<i64>,
    neg_score: Vec<f32>,
    neg_rank: Vec<i64>,
    neg_same: Vec<bool>,
    sus_off: Vec<i64>,
    sus_doc: Vec<i64>,
    sus_twin: Vec<i64>,
    sus_sim: Vec<f64>,
    sus_score: Vec<f32>,
    sus_rank: Vec<i64>,
    pos_off: Vec<i64>,
    pos_score: Vec<f32>,
    pair_off: Vec<i64>,
    pair_pos: Vec<i64>,
    pair_neg: Vec<i64>,
    dropped_rank: Vec<i64>,
    dropped_score: Vec<i64>,
    avail_same: Vec<i64>,
    avail_cross: Vec<i64>,
    skipped: Vec<bool>,
}

impl Columns {
    fn from_mined(mined: Vec<mining::Mined>) -> Self {
        let mut c = Columns {
            neg_off: vec![0],
            sus_off: vec![0],
            pos_off: vec![0],
            pair_off: vec![0],
            ..Columns::default()
        };
        for m in mined {
            for (cands, same) in [(&m.same, true), (&m.cross, false)] {
                for n in cands {
                    c.neg_doc.push(n.doc as i64);
                    c.neg_score.push(n.score);
                    c.neg_rank.push(n.rank as i64);
                    c.neg_same.push(same);
                }
            }
            c.neg_off.push(c.neg_doc.len() as i64);
            for s in &m.suspects {
                c.sus_doc.push(s.doc as i64);
                c.sus_twin.push(s.twin_of as i64);
                c.sus_sim.push(s.similarity);
                c.sus_score.push(s.score);
                c.sus_rank.push(s.rank as i64);
            }
            c.sus_off.push(c.sus_doc.len() as i64);
            c.pos_score.extend_from_slice(&m.positive_scores);
            c.pos_off.push(c.pos_score.len() as i64);
            for &(p, n) in &m.pairs {
                c.pair_pos.push(p as i64);
                c.pair_neg.push(n as i64);
            }
            c.pair_off.push(c.pair_pos.len() as i64);
            c.dropped_rank.push(m.dropped_by_rank as i64);
            c.dropped_score.push(m.dropped_by_score as i64);
            c.avail_same.push(m.available_same as i64);
            c.avail_cross.push(m.available_cross as i64);
            c.skipped.push(m.skipped == Some(Skip::NoPositiveScored));
        }
        c
    }

    fn into_output(self, py: Python<'_>) -> MiningOutput {
        fn arr<T: numpy::Element>(py: Python<'_>, v: Vec<T>) -> Py<PyArray1<T>> {
            PyArray1::from_vec(py, v).unbind()
        }
        MiningOutput {
            n_queries: self.skipped.len(),
            negative_offsets: arr(py, self.neg_off),
            negative_doc: arr(py, self.neg_doc),
            negative_score: arr(py, self.neg_score),
            negative_rank: arr(py, self.neg_rank),
            negative_same_domain: arr(py, self.neg_same),
            suspect_offsets: arr(py, self.sus_off),
            suspect_doc: arr(py, self.sus_doc),
            suspect_duplicate_of: arr(py, self.sus_twin),
            suspect_similarity: arr(py, self.sus_sim),
            suspect_score: arr(py, self.sus_score),
            suspect_rank: arr(py, self.sus_rank),
            positive_offsets: arr(py, self.pos_off),
            positive_score: arr(py, self.pos_score),
            pair_offsets: arr(py, self.pair_off),
            pair_positive: arr(py, self.pair_pos),
            pair_negative: arr(py, self.pair_neg),
            dropped_by_rank: arr(py, self.dropped_rank),
            dropped_by_score: arr(py, self.dropped_score),
            available_same: arr(py, self.avail_same),
            available_cross: arr(py, self.avail_cross),
            skipped_no_positive_scored: arr(py, self.skipped),
        }
    }
}

#[pymethods]
impl MiningOutput {
    fn __len__(&self) -> usize {
        self.n_queries
    }
}

/// Mines hard negatives for every query in parallel (the GIL released); see
/// `bdnsca.mine_hard_negatives` for the user-facing function.
#[pyfunction]
#[pyo3(signature = (bm25, texts, *, domains, queries, positives, relevant, query_domains,
    query_ids, params))]
#[allow(clippy::too_many_arguments)]
pub fn mine(
    py: Python<'_>,
    bm25: &Bm25,
    texts: &DocTexts,
    domains: Vec<u32>,
    queries: &Bound<'_, PyAny>,
    positives: Vec<Vec<u32>>,
    relevant: Vec<Vec<u32>>,
    query_domains: Vec<u32>,
    query_ids: Vec<String>,
    params: &MiningParams,
) -> PyResult<MiningOutput> {
    let index = bm25.index_ref(py)?;
    let arena = texts.arena.clone();
    let qs = extract_queries(queries)?;
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
        return Err(invalid(
            "queries, positives, relevant, query_domains and query_ids differ in length",
        ));
    }
    let settings = &params.inner;
    let tok = bm25.core_tokenizer();
    let columns = py.detach(|| {
        let texts = arena.all();
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
        mining::mine(&index, &texts, &domains, &queries, settings).map(Columns::from_mined)
    })?;
    Ok(columns.into_output(py))
}
