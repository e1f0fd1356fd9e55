//! `mine`: hard-negative mining over a BM25 index, and `DocTexts`, the corpus
//! texts copied once into Rust for repeated calls.

use std::sync::Arc;

use pyo3::prelude::*;

use super::bm25::Bm25;
use super::convert::{extract_queries, texts_arena, Arena};
use super::errors::invalid;
use crate::mining::{self, MiningConfig, MiningQuery, Sampling};

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
    let sampling = match sampling {
        "top" => Sampling::Top,
        "random" => Sampling::Random,
        other => {
            return Err(invalid(format!(
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
    let tok = bm25.core_tokenizer();
    let mined = py.detach(|| {
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
        mining::mine(&index, &texts, &domains, &queries, &cfg)
    })?;
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
