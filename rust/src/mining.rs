//! Hard-negative mining and reranker pair assembly on the BM25 index.
//!
//! For each query: retrieve the `depth` best documents, drop the judged
//! relevant ones and report candidates that are near duplicates of a relevant
//! document as suspected false negatives (never negatives), apply the rank
//! window and the positive-aware score ceiling, then pick same-domain negatives
//! (hardest first, or sampled) and cross-domain negatives spread across domains
//! round-robin, and pair every positive with every negative.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::index::{Bm25Index, Scratch};
use crate::neardup::{
    jaccard, max_shingles, normalise_into, shingles_of_normalised, Shingle, Twin, TwinScratch,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    Top,
    Random,
}

#[derive(Clone, Debug)]
pub struct MiningSettings {
    /// How deep in the BM25 ranking to look.
    pub depth: usize,
    /// Negatives must rank in `rank_min..=rank_max` (1 = the top document).
    pub rank_min: usize,
    pub rank_max: usize,
    /// Drop candidates scoring above this times the lowest non-zero score of a
    /// positive. Positives scoring 0 (sharing no term with the query) do not set
    /// the ceiling; a query whose positives all score 0 is skipped.
    pub max_score_ratio: Option<f64>,
    /// Shingle Jaccard at or above which a candidate is a near duplicate of a
    /// relevant document; `None` catches exact duplicates (after normalisation) only.
    pub near_dup_threshold: Option<f64>,
    pub same_domain: usize,
    pub cross_domain: usize,
    pub sampling: Sampling,
    pub seed: u64,
    pub max_pairs: Option<usize>,
}

impl MiningSettings {
    pub fn validate(&self) -> Result<()> {
        if self.depth == 0 {
            return Err(Error::invalid("candidate depth must be >= 1"));
        }
        if self.rank_min == 0 || self.rank_min > self.rank_max {
            return Err(Error::invalid(format!(
                "rank range {}:{} is empty: use MIN:MAX with 1 <= MIN <= MAX",
                self.rank_min, self.rank_max
            )));
        }
        if let Some(r) = self.max_score_ratio {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::invalid(format!(
                    "max score ratio must be > 0, got {r}"
                )));
            }
        }
        if let Some(t) = self.near_dup_threshold {
            if !(0.0..=1.0).contains(&t) || t == 0.0 {
                return Err(Error::invalid(format!(
                    "near-duplicate threshold must lie in (0, 1], got {t}"
                )));
            }
        }
        Ok(())
    }
}

pub struct MiningQuery {
    pub terms: Vec<u32>,
    /// Documents good enough to pair with (grade >= the minimum), best grade first.
    pub positives: Vec<u32>,
    /// Every document judged relevant (grade > 0): never a negative.
    pub relevant: Vec<u32>,
    pub domain: u32,
    /// Seeds this query's sampling, so results do not depend on thread scheduling.
    pub key: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub doc: u32,
    pub score: f32,
    pub rank: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Suspect {
    pub doc: u32,
    pub twin_of: u32,
    pub similarity: f64,
    pub score: f32,
    pub rank: u32,
}

/// Why a query was not mined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A score ceiling was asked for, but every positive scores 0, so there is no
    /// positive score to scale (a ceiling of 0 would drop every candidate).
    NoPositiveScored,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mined {
    /// Set when the query was skipped; then only `positive_scores` is filled.
    pub skipped: Option<Skip>,
    pub same: Vec<Candidate>,
    pub cross: Vec<Candidate>,
    pub suspects: Vec<Suspect>,
    pub positive_scores: Vec<f32>,
    /// (positive document, negative document)
    pub pairs: Vec<(u32, u32)>,
    pub dropped_by_rank: u32,
    pub dropped_by_score: u32,
    pub available_same: u32,
    pub available_cross: u32,
}

/// splitmix64: a small, well-mixed generator for reproducible sampling.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Stable 64-bit key of a string (FNV-1a), for per-query seeds.
pub fn key_of(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

pub fn mine(
    index: &Bm25Index,
    texts: &[&str],
    domains: &[u32],
    queries: &[MiningQuery],
    cfg: &MiningSettings,
) -> Result<Vec<Mined>> {
    cfg.validate()?;
    if texts.len() != index.n_docs() || domains.len() != index.n_docs() {
        return Err(Error::invalid(format!(
            "{} texts and {} domains for an index of {} documents",
            texts.len(),
            domains.len(),
            index.n_docs()
        )));
    }
    let n = index.n_docs() as u32;
    for (i, q) in queries.iter().enumerate() {
        if q.positives.iter().chain(&q.relevant).any(|&d| d >= n) {
            return Err(Error::invalid(format!(
                "query {i}: a relevant document is outside the index"
            )));
        }
    }
    Ok(queries
        .par_iter()
        .map_init(
            || (Scratch::default(), TwinScratch::default()),
            |(s, ts), q| mine_one(index, texts, domains, q, cfg, s, ts),
        )
        .collect())
}

fn mine_one(
    index: &Bm25Index,
    texts: &[&str],
    domains: &[u32],
    q: &MiningQuery,
    cfg: &MiningSettings,
    scratch: &mut Scratch,
    twin_scratch: &mut TwinScratch,
) -> Mined {
    let mut out = Mined {
        positive_scores: index.score_docs(&q.terms, &q.positives),
        ..Mined::default()
    };
    let ceiling = match cfg.max_score_ratio {
        None => None,
        Some(r) => {
            let lowest = out
                .positive_scores
                .iter()
                .copied()
                .filter(|&s| s > 0.0)
                .fold(f32::INFINITY, f32::min);
            if lowest == f32::INFINITY {
                out.skipped = Some(Skip::NoPositiveScored);
                return out;
            }
            Some(r * lowest as f64)
        }
    };
    let relevant: Vec<Twin> = q
        .relevant
        .iter()
        .map(|&d| Twin::new(d, texts[d as usize]))
        .collect();
    let mut same = Vec::new();
    let mut cross = Vec::new();
    for (r, hit) in index
        .top_k(&q.terms, cfg.depth, scratch)
        .into_iter()
        .enumerate()
    {
        let c = Candidate {
            doc: hit.doc,
            score: hit.score,
            rank: r as u32 + 1,
        };
        if q.relevant.contains(&c.doc) {
            continue;
        }
        if let Some((twin_of, similarity)) = twin(
            texts[c.doc as usize],
            &relevant,
            cfg.near_dup_threshold,
            twin_scratch,
        ) {
            out.suspects.push(Suspect {
                doc: c.doc,
                twin_of,
                similarity,
                score: c.score,
                rank: c.rank,
            });
            continue;
        }
        if (c.rank as usize) < cfg.rank_min || (c.rank as usize) > cfg.rank_max {
            out.dropped_by_rank += 1;
            continue;
        }
        if ceiling.is_some_and(|m| c.score as f64 > m) {
            out.dropped_by_score += 1;
            continue;
        }
        if domains[c.doc as usize] == q.domain {
            same.push(c);
        } else {
            cross.push(c);
        }
    }
    out.available_same = same.len() as u32;
    out.available_cross = cross.len() as u32;
    let mut rng = Rng(cfg.seed ^ q.key);
    out.same = pick_same(same, cfg, &mut rng);
    out.cross = pick_cross(cross, domains, cfg, &mut rng);
    let limit = cfg.max_pairs.unwrap_or(usize::MAX);
    'pairs: for &p in &q.positives {
        for neg in out.same.iter().chain(&out.cross) {
            if out.pairs.len() >= limit {
                break 'pairs;
            }
            out.pairs.push((p, neg.doc));
        }
    }
    out
}

/// The relevant document `text` duplicates (exactly, or at or above the
/// threshold) and the similarity, if any.
fn twin(
    text: &str,
    relevant: &[Twin],
    threshold: Option<f64>,
    scratch: &mut TwinScratch,
) -> Option<(u32, f64)> {
    // Almost every candidate is a distinct document, which each relevant one
    // rules out within a few dozen characters (without a threshold, at the
    // first shingle it lacks: only an exact duplicate counts). Ruled out by
    // all, it is neither a twin nor a duplicate; otherwise the full test.
    let t = threshold.unwrap_or(1.0);
    if text.is_ascii()
        && relevant
            .iter()
            .all(|r| r.rules_out_ascii(text.as_bytes(), t, scratch))
    {
        return None;
    }
    let mut norm = std::mem::take(&mut scratch.norm);
    normalise_into(text, &mut norm);
    let found = twin_of_normalised(&norm, relevant, threshold, scratch);
    scratch.norm = norm;
    found
}

fn twin_of_normalised(
    norm: &str,
    relevant: &[Twin],
    threshold: Option<f64>,
    scratch: &mut TwinScratch,
) -> Option<(u32, f64)> {
    if let Some(r) = relevant.iter().find(|r| r.norm == norm) {
        return Some((r.doc, 1.0));
    }
    let t = threshold?;
    // Jaccard >= t needs |A| >= t |R|: a text too short for every relevant
    // document is ruled out before its shingles are built.
    let most = max_shingles(norm) as f64;
    if relevant.iter().all(|r| most < t * r.shingles.len() as f64) {
        return None;
    }
    // Built only for a candidate that a relevant document cannot rule out
    // cheaply (`Twin::rules_out`): a near twin, almost never anything else.
    let mut sh: Option<Vec<Shingle>> = None;
    let mut best: Option<(u32, f64)> = None;
    for r in relevant {
        if r.rules_out(norm, t, scratch) {
            continue;
        }
        let sh = sh.get_or_insert_with(|| shingles_of_normalised(norm));
        let rs = &r.shingles;
        let (a, b) = (sh.len().min(rs.len()), sh.len().max(rs.len()));
        if (a as f64) < t * b as f64 {
            continue; // sizes alone rule out a Jaccard of t
        }
        let j = jaccard(sh, rs);
        if j >= t && best.is_none_or(|(_, bj)| j > bj) {
            best = Some((r.doc, j));
        }
    }
    best
}

fn pick_same(mut eligible: Vec<Candidate>, cfg: &MiningSettings, rng: &mut Rng) -> Vec<Candidate> {
    if cfg.sampling == Sampling::Random {
        rng.shuffle(&mut eligible);
        eligible.truncate(cfg.same_domain);
        eligible.sort_by_key(|c| c.rank);
    } else {
        eligible.truncate(cfg.same_domain);
    }
    eligible
}

/// Strongest candidates from other domains, one domain at a time in turn
/// (domains ordered by their best candidate), so no single domain dominates.
fn pick_cross(
    eligible: Vec<Candidate>,
    domains: &[u32],
    cfg: &MiningSettings,
    rng: &mut Rng,
) -> Vec<Candidate> {
    let mut groups: Vec<(u32, Vec<Candidate>)> = Vec::new();
    for c in eligible {
        let dom = domains[c.doc as usize];
        match groups.iter_mut().find(|(d, _)| *d == dom) {
            Some((_, g)) => g.push(c),
            None => groups.push((dom, vec![c])),
        }
    }
    if cfg.sampling == Sampling::Random {
        rng.shuffle(&mut groups);
        for (_, g) in groups.iter_mut() {
            rng.shuffle(g);
        }
    }
    let mut out = Vec::new();
    let mut round = 0;
    while out.len() < cfg.cross_domain {
        let mut took = false;
        for (_, g) in &groups {
            if out.len() == cfg.cross_domain {
                break;
            }
            if let Some(&c) = g.get(round) {
                out.push(c);
                took = true;
            }
        }
        if !took {
            break;
        }
        round += 1;
    }
    out
}

#[cfg(test)]
#[path = "mining_tests.rs"]
mod tests;
