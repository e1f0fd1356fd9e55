//! Queries over a `SegmentedIndex`: live statistics, weights computed as
//! `Bm25Index::build` computes them, scores summed in its canonical term order
//! (see `segment.rs` for why that makes them bit-identical to a fresh build).
//!
//! `search` is exhaustive for now: every live document holding a query term
//! is scored; each segment keeps its top k with its own tie keys, and the
//! segments' lists are merged by score, then id descending by bytes. That is
//! exact: the global top k is, segment by segment, within each segment's top
//! k under the same order.

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
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
struct QTerm {
    /// Score of a document without the term (BM25L, BM25+), else 0.
    nonocc: f32,
    /// Largest weight over its live postings.
    max_w: f32,
    /// The term's place in a fresh build's term ids: its first live document
    /// (segment, document) and its rank among that document's terms.
    first: (u32, u32, usize),
    /// Per segment: live postings (document, weight).
    lists: Vec<Vec<(u32, f32)>>,
}

/// A query prepared for scoring.
struct Plan {
    terms: Vec<QTerm>,
    /// Indices into `terms`, repeats kept, in canonical order.
    q: Vec<usize>,
    base: f32,
}

impl SegmentedIndex {
    fn plan<S: AsRef<str>>(&self, tokens: &[S]) -> Result<Plan> {
        let n = self.n_live();
        let mut plan = Plan {
            terms: Vec::new(),
            q: Vec::new(),
            base: 0.0,
        };
        if n == 0 {
            return Ok(plan);
        }
        let p = self.params;
        let avgdl = self.live_len() as f64 / n as f64;
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
            let mut max_w = 0f32;
            let mut first = None;
            let mut lists = Vec::with_capacity(self.segments.len());
            for (si, (s, t)) in self.segments.iter().zip(&local).enumerate() {
                let mut list = Vec::new();
                if let Some(t) = *t {
                    let (docs, tfs) = s.data.postings(t);
                    list.reserve(docs.len());
                    for (&d, &tf) in docs.iter().zip(tfs) {
                        if !s.is_live(d) {
                            continue;
                        }
                        let dl = s.data.lens[d as usize] as f64;
                        // The arithmetic of `Bm25Index::build`, step for step.
                        let mut w = idf * p.tfc(tf as f64, dl, avgdl);
                        if let Some(base) = nonocc {
                            w = (w - base as f64).max(0.0);
                        }
                        let w = w as f32;
                        if !w.is_finite() {
                            return Err(self.non_finite(w));
                        }
                        max_w = max_w.max(w);
                        if first.is_none() {
                            let (ts, _) = s.data.forward(d);
                            let rank = ts.iter().position(|&x| x == t).unwrap_or(usize::MAX);
                            first = Some((si as u32, d, rank));
                        }
                        list.push((d, w));
                    }
                }
                lists.push(list);
            }
            known.insert(tok, Some(plan.terms.len()));
            plan.q.push(plan.terms.len());
            plan.terms.push(QTerm {
                nonocc: nonocc.unwrap_or(0.0),
                max_w,
                first: first.unwrap_or((u32::MAX, u32::MAX, usize::MAX)),
                lists,
            });
        }
        let terms = &plan.terms;
        plan.q.sort_by(|&a, &b| {
            terms[b]
                .max_w
                .total_cmp(&terms[a].max_w)
                .then(terms[a].first.cmp(&terms[b].first))
        });
        if p.method.has_nonoccurrence() {
            plan.base = plan.q.iter().map(|&i| terms[i].nonocc).sum();
        }
        Ok(plan)
    }

    fn non_finite(&self, w: f32) -> Error {
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
                for &(d, w) in &plan.terms[i].lists[si] {
                    acc[d as usize] += w;
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
    /// term: score descending, then id descending by bytes.
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
                for &(d, w) in &plan.terms[i].lists[si] {
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
