//! Queries over a `SegmentedIndex`: live statistics, weights computed as
//! `Bm25Index::build` computes them, scores summed in its canonical term order
//! (see `segment.rs` for why that makes them bit-identical to a fresh build).
//!
//! `search` scores every live document holding a query term; each
//! segment keeps its top k with its own tie keys, and the segments' lists are
//! merged by score, then id descending by bytes. That is exact: the global top
//! k is, segment by segment, within each segment's top k under the same
//! order. It is the reference for `search_pruned` (`segmented_prune.rs`).

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::scoring::Params;
use crate::segmented::SegmentedIndex;
use crate::topk::TopK;

/// A hit: a document of a segment (`SegmentedIndex::id` gives its id).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SegHit {
    pub segment: u32,
    pub doc: u32,
    pub score: f32,
}

/// A distinct query term known to the live documents.
pub(crate) struct QTerm {
    pub(crate) idf: f64,
    /// Score of a document without the term (BM25L, BM25+).
    pub(crate) nonocc: Option<f32>,
    /// Largest weight over its live postings, overall and per segment.
    pub(crate) max_w: f32,
    pub(crate) seg_max: Vec<f32>,
    /// The term's place in a fresh build's term ids: its first live document
    /// (segment, document) and its rank among that document's terms.
    first: (u32, u32, usize),
    /// Per segment: the local term id, where the segment has the term.
    pub(crate) local: Vec<Option<u32>>,
}

impl QTerm {
    /// The weight of a posting: the arithmetic of `Bm25Index::build`, step for step.
    #[inline]
    pub(crate) fn weight(&self, p: &Params, avgdl: f64, tf: u32, dl: u32) -> f32 {
        let mut w = self.idf * p.tfc(tf as f64, dl as f64, avgdl);
        if let Some(base) = self.nonocc {
            w = (w - base as f64).max(0.0);
        }
        w as f32
    }
}

/// A query prepared for scoring.
pub(crate) struct Plan {
    pub(crate) terms: Vec<QTerm>,
    /// Indices into `terms`, repeats kept, in canonical order.
    pub(crate) q: Vec<usize>,
    pub(crate) base: f32,
    pub(crate) avgdl: f64,
}

impl SegmentedIndex {
    /// Live statistics of the query's terms and their canonical order. Every
    /// live weight of every query term is checked finite here (through the
    /// (tf, length) pairs), so the scoring paths need not.
    pub(crate) fn plan<S: AsRef<str>>(&self, tokens: &[S]) -> Result<Plan> {
        let n = self.n_live();
        let mut plan = Plan {
            terms: Vec::new(),
            q: Vec::new(),
            base: 0.0,
            avgdl: 0.0,
        };
        if n == 0 {
            return Ok(plan);
        }
        let p = self.params;
        let avgdl = self.live_len() as f64 / n as f64;
        plan.avgdl = avgdl;
        let nonocc_tfc = p.tfc(0.0, avgdl, avgdl);
        // Token -> index in plan.terms, or None when no live document holds it.
        let mut known: FxHashMap<&str, Option<usize>> = FxHashMap::default();
        for tok in tokens {
            let tok = tok.as_ref();
            if let Some(&slot) = known.get(tok) {
                plan.q.extend(slot);
                continue;
            }
            let local: Vec<Option<u32>> = self
                .segments
                .iter()
                .map(|s| s.data.vocab.get(tok).copied())
                .collect();
            let df: u64 = self
                .segments
                .iter()
                .zip(&local)
                .filter_map(|(s, t)| t.map(|t| s.live_df(t)))
                .sum();
            if df == 0 {
                known.insert(tok, None);
                continue;
            }
            let idf = p.idf(df as f64, n as f64);
            let nonocc = if p.method.has_nonoccurrence() {
                let b = (idf * nonocc_tfc) as f32;
                if !b.is_finite() {
                    return Err(self.non_finite(b));
                }
                Some(b)
            } else {
                None
            };
            let mut qt = QTerm {
                idf,
                nonocc,
                max_w: 0.0,
                seg_max: vec![0.0; self.segments.len()],
                first: (u32::MAX, u32::MAX, usize::MAX),
                local,
            };
            for (si, s) in self.segments.iter().enumerate() {
                let Some(t) = qt.local[si] else { continue };
                let mut m = 0f32;
                for (tf, dl) in s.live_pairs(t) {
                    let w = qt.weight(&p, avgdl, tf, dl);
                    if !w.is_finite() {
                        return Err(self.non_finite(w));
                    }
                    m = m.max(w);
                }
                qt.seg_max[si] = m;
                qt.max_w = qt.max_w.max(m);
                if qt.first.0 == u32::MAX {
                    let (docs, _) = s.data.postings(t);
                    if let Some(&d) = docs.iter().find(|&&d| s.is_live(d)) {
                        let (ts, _) = s.data.forward(d);
                        let rank = ts.iter().position(|&x| x == t).unwrap_or(usize::MAX);
                        qt.first = (si as u32, d, rank);
                    }
                }
            }
            known.insert(tok, Some(plan.terms.len()));
            plan.q.push(plan.terms.len());
            plan.terms.push(qt);
        }
        let terms = &plan.terms;
        plan.q.sort_by(|&a, &b| {
            terms[b]
                .max_w
                .total_cmp(&terms[a].max_w)
                .then(terms[a].first.cmp(&terms[b].first))
        });
        if p.method.has_nonoccurrence() {
            plan.base = plan.q.iter().map(|&i| terms[i].nonocc.unwrap_or(0.0)).sum();
        }
        Ok(plan)
    }

    pub(crate) fn non_finite(&self, w: f32) -> Error {
        let p = self.params;
        Error::invalid(format!(
            "{} with k1 = {}, b = {}, delta = {} gives a non-finite term weight ({w}) on this corpus: use smaller parameters",
            p.method.name(),
            p.k1,
            p.b,
            p.delta
        ))
    }

    /// The score of every live document, in `live_ids` order.
    pub fn get_scores<S: AsRef<str>>(&self, tokens: &[S]) -> Result<Vec<f32>> {
        let plan = self.plan(tokens)?;
        let mut out = Vec::with_capacity(self.n_live());
        let mut acc = Vec::new();
        for (si, s) in self.segments.iter().enumerate() {
            acc.clear();
            acc.resize(s.data.n_docs(), 0f32);
            for &i in &plan.q {
                let qt = &plan.terms[i];
                let Some(t) = qt.local[si] else { continue };
                let (docs, tfs) = s.data.postings(t);
                for (&d, &tf) in docs.iter().zip(tfs) {
                    if s.is_live(d) {
                        acc[d as usize] +=
                            qt.weight(&self.params, plan.avgdl, tf, s.data.lens[d as usize]);
                    }
                }
            }
            for (d, &a) in acc.iter().enumerate() {
                if s.is_live(d as u32) {
                    out.push(if plan.base != 0.0 { a + plan.base } else { a });
                }
            }
        }
        Ok(out)
    }

    /// The `k` best live documents among those holding at least one query
    /// term: score descending, then id descending by bytes. Scores every
    /// live document that holds a query term (see `search_pruned`).
    pub fn search<S: AsRef<str>>(&self, tokens: &[S], k: usize) -> Result<Vec<SegHit>> {
        let k = k.min(self.n_live());
        let plan = self.plan(tokens)?;
        if plan.q.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let mut all: Vec<SegHit> = Vec::new();
        let mut acc: Vec<f32> = Vec::new();
        let mut seen: Vec<bool> = Vec::new();
        let mut touched: Vec<u32> = Vec::new();
        for (si, s) in self.segments.iter().enumerate() {
            let nd = s.data.n_docs();
            acc.clear();
            acc.resize(nd, 0.0);
            seen.clear();
            seen.resize(nd, false);
            touched.clear();
            for &i in &plan.q {
                let qt = &plan.terms[i];
                let Some(t) = qt.local[si] else { continue };
                let (docs, tfs) = s.data.postings(t);
                for (&d, &tf) in docs.iter().zip(tfs) {
                    if !s.is_live(d) {
                        continue;
                    }
                    let w = qt.weight(&self.params, plan.avgdl, tf, s.data.lens[d as usize]);
                    let di = d as usize;
                    if !seen[di] {
                        seen[di] = true;
                        touched.push(d);
                    }
                    acc[di] += w;
                }
            }
            let mut top = TopK::new(k);
            for &d in &touched {
                top.push(d, acc[d as usize] + plan.base, s.data.tie.key(d));
            }
            all.extend(top.into_sorted().into_iter().map(|h| SegHit {
                segment: si as u32,
                doc: h.doc,
                score: h.score,
            }));
        }
        all.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| self.id(b).as_bytes().cmp(self.id(a).as_bytes()))
        });
        all.truncate(k);
        Ok(all)
    }

    /// The id of a hit's document.
    pub fn id(&self, hit: &SegHit) -> &str {
        &self.segments[hit.segment as usize].data.ids[hit.doc as usize]
    }
}
