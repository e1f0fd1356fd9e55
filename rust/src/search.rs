//! Top-k search over a `Bm25Index`: a dense scan, term-at-a-time MaxScore
//! with exact pruning, and an exhaustive path for indexes with zero weights;
//! batches in parallel, into padded tables allocated up front (checked).
//!
//! Ranking rule, the same on every path: score descending, then document id
//! descending by bytes (trec_eval's order; tie keys in `topk.rs`). Every path
//! sums a query's terms in one canonical order, so a document's score is
//! bit-identical to `Bm25Index::scores`'s.

use rayon::prelude::*;

use crate::error::Result;
use crate::index::Bm25Index;
use crate::topk::{try_table, Hit, TopK};

/// The top k of many queries as two padded row-major tables (rows: queries).
pub struct HitTable {
    pub rows: usize,
    /// Columns: min(k, documents indexed).
    pub cols: usize,
    /// Document positions, -1 past a row's hits.
    pub docs: Vec<i64>,
    /// Scores, NaN past a row's hits.
    pub scores: Vec<f32>,
    /// Hits in each row.
    pub lens: Vec<usize>,
}

impl Bm25Index {
    /// The `k` best documents among those holding at least one query term:
    /// score descending, then document id descending by bytes (the module's rule).
    pub fn top_k(&self, q: &[u32], k: usize, scratch: &mut Scratch) -> Vec<Hit> {
        // No more hits than documents: a huge k must not become a huge allocation.
        let k = k.min(self.n_docs);
        if q.is_empty() || k == 0 {
            // No known term: no document matches (and no dense scan to find that out).
            return Vec::new();
        }
        let q = self.canonical(q);
        // Terms whose weights are all 0 (idf 0: Robertson's at df >= N/2,
        // ATIRE's at df = N) add nothing to any score, yet would send the
        // query down the exhaustive path. They sort last in canonical order, so
        // the other terms are searched alone, with bit-identical scores (adding
        // 0 changes no sum). The documents that only the zero terms match score
        // exactly 0, so that answer is the top k whenever its k-th score is
        // > 0; else (fewer than k documents score > 0) the full query runs.
        // Only without a base score (BM25L/BM25+ have one and no zero terms).
        if self.nonocc.is_empty() {
            let nz = q
                .iter()
                .take_while(|&&t| self.max_w[t as usize] > 0.0)
                .count();
            if nz > 0 && nz < q.len() {
                let hits = self.top_k_canonical(&q[..nz], k, scratch);
                if hits.len() == k && hits[k - 1].score > 0.0 {
                    #[cfg(test)]
                    tests::ZERO_TERMS_DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return hits;
                }
            }
        }
        self.top_k_canonical(&q, k, scratch)
    }

    /// `top_k` for a query in canonical order.
    fn top_k_canonical(&self, q: &[u32], k: usize, scratch: &mut Scratch) -> Vec<Hit> {
        if !q.iter().all(|&t| self.positive[t as usize]) {
            return self.top_k_exhaustive(q, k, scratch);
        }
        // A query whose rarest term already covers much of the corpus has nothing
        // to prune: a dense scan beats bookkeeping per document.
        match q.first() {
            Some(&t) if self.df(t) * 16 < self.n_docs => self.top_k_maxscore(q, k, scratch),
            _ => self.top_k_dense(q, k, scratch),
        }
    }

    fn df(&self, t: u32) -> usize {
        (self.indptr[t as usize + 1] - self.indptr[t as usize]) as usize
    }

    /// Accumulates into a dense array and scans it.
    fn top_k_dense(&self, q: &[u32], k: usize, scratch: &mut Scratch) -> Vec<Hit> {
        let acc = &mut scratch.dense;
        if acc.len() != self.n_docs {
            *acc = vec![0.0; self.n_docs];
        }
        for &t in q {
            let (docs, ws) = self.postings(t);
            for (&d, &w) in docs.iter().zip(ws) {
                acc[d as usize] += w;
            }
        }
        self.scan_dense(acc, self.base_score(q), k)
    }

    /// The top k of a dense accumulator (every weight > 0, so a document matches
    /// exactly when its entry is > 0). A document scoring exactly the k-th
    /// best score may still enter by its tie key, so the filters below keep
    /// equality. Leaves `acc` all zero.
    fn scan_dense(&self, acc: &mut [f32], base: f32, k: usize) -> Vec<Hit> {
        let mut top = TopK::new(k);
        let mut threshold = f32::NEG_INFINITY;
        const BLOCK: usize = 64;
        for (b, block) in acc.chunks_mut(BLOCK).enumerate() {
            // A block whose best cannot enter is skipped whole. Entries are >= 0,
            // and non-negative floats order like their bit patterns: an integer
            // max, which vectorises where a float max would not.
            let best = f32::from_bits(block.iter().map(|x| x.to_bits()).max().unwrap_or(0));
            if best > 0.0 && best + base >= threshold {
                for (j, s) in block.iter().enumerate() {
                    // Every weight is > 0 here, so s > 0 exactly when the document matches.
                    if *s > 0.0 && *s + base >= threshold {
                        let doc = (b * BLOCK + j) as u32;
                        top.push(doc, *s + base, self.tie.key(doc));
                        threshold = top.threshold().unwrap_or(f32::NEG_INFINITY);
                    }
                }
            }
            block.fill(0.0);
        }
        top.into_sorted()
    }

    /// The k-th best of `scores`, or None when there are fewer than k.
    fn kth_best(scores: impl Iterator<Item = f32>, k: usize) -> Option<f32> {
        let mut top = TopK::new(k);
        let mut threshold = f32::NEG_INFINITY;
        for (i, s) in scores.enumerate() {
            if s > threshold {
                top.push(i as u32, s, 0);
                threshold = top.threshold().unwrap_or(f32::NEG_INFINITY);
            }
        }
        top.threshold()
    }

    /// Term-at-a-time MaxScore. Terms are added rarest first; once the k-th best
    /// partial score exceeds what all remaining terms together could add, no
    /// document still unseen can enter the top k, so the remaining (common, long)
    /// postings lists are only probed for the surviving candidates instead of
    /// being scanned. Needs every weight > 0, so that a zero accumulator means
    /// "not seen yet" and partial scores only grow.
    ///
    /// Exactness: a document is dropped only when its final score is certainly
    /// *below* the k-th best final score, float rounding included (`may_tie`):
    /// one that could tie might still win on its id.
    fn top_k_maxscore(&self, q: &[u32], k: usize, scratch: &mut Scratch) -> Vec<Hit> {
        if scratch.dense.len() != self.n_docs {
            scratch.dense = vec![0.0; self.n_docs];
        }
        // One slot more than documents: the branch-free append below writes
        // before it knows whether the document is new.
        if scratch.slots.len() != self.n_docs + 1 {
            scratch.slots = vec![0; self.n_docs + 1];
        }
        let Scratch {
            dense: acc,
            slots: touched,
            ..
        } = scratch;
        let base = self.base_score(q);
        let mut n_touched = 0usize;
        // remaining[i]: the most terms i.. can add to any document.
        let mut remaining = vec![0f64; q.len() + 1];
        let mut volume_after = vec![0usize; q.len() + 1];
        for i in (0..q.len()).rev() {
            remaining[i] = remaining[i + 1] + self.max_w[q[i] as usize] as f64;
            volume_after[i] = volume_after[i + 1] + self.df(q[i]);
        }
        let mut theta = f32::NEG_INFINITY;
        let mut stop = None;
        let mut tracking = true;
        for (i, &t) in q.iter().enumerate() {
            let (docs, ws) = self.postings(t);
            if !tracking {
                for (&d, &w) in docs.iter().zip(ws) {
                    acc[d as usize] += w;
                }
                continue;
            }
            for (&d, &w) in docs.iter().zip(ws) {
                let a = &mut acc[d as usize];
                touched[n_touched] = d;
                n_touched += (*a == 0.0) as usize;
                *a += w;
            }
            // Checking costs O(touched): worth it only when the lists left are
            // longer and when the terms added so far could outweigh the rest.
            let rest = remaining[i + 1];
            if n_touched >= k
                && i + 1 < q.len()
                && volume_after[i + 1] > n_touched
                && remaining[0] - rest > rest
            {
                let seen = touched[..n_touched].iter().map(|&d| acc[d as usize]);
                theta = Self::kth_best(seen, k).unwrap_or(f32::NEG_INFINITY);
                // An unseen document holds only terms i+1..: if even their
                // maxima cannot bring it level with the k-th best, stop scanning.
                if !may_tie(rest, q.len() - i - 1, base, theta) {
                    #[cfg(test)]
                    tests::PRUNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    stop = Some(i + 1);
                    break;
                }
            }
            // Most of the corpus is touched and nothing pruned: finish densely.
            if n_touched * 16 >= self.n_docs {
                tracking = false;
            }
        }
        if !tracking {
            return self.scan_dense(acc, base, k);
        }
        let touched = &touched[..n_touched];
        let mut top = TopK::new(k);
        if let Some(stop) = stop {
            // Candidates that could still reach theta, in document order.
            let left = q.len() - stop;
            let rest = remaining[stop];
            let mut cands: Vec<u32> = touched
                .iter()
                .copied()
                .filter(|&d| may_tie(acc[d as usize] as f64 + rest, left, base, theta))
                .collect();
            cands.sort_unstable();
            for (j, &t) in q.iter().enumerate().skip(stop) {
                let (docs, ws) = self.postings(t);
                let mut lo = 0usize;
                for &d in &cands {
                    lo += gallop(&docs[lo..], d);
                    if lo < docs.len() && docs[lo] == d {
                        acc[d as usize] += ws[lo];
                    }
                }
                // Partial scores grew: raise theta and drop the candidates that
                // can no longer reach it before probing the next, longer list.
                if j + 1 < q.len() && cands.len() > k {
                    let left = q.len() - j - 1;
                    let rest = remaining[j + 1];
                    theta =
                        Self::kth_best(cands.iter().map(|&d| acc[d as usize]), k).unwrap_or(theta);
                    cands.retain(|&d| may_tie(acc[d as usize] as f64 + rest, left, base, theta));
                }
            }
            for &d in &cands {
                top.push(d, acc[d as usize] + base, self.tie.key(d));
            }
        } else {
            let mut threshold = f32::NEG_INFINITY;
            for &d in touched {
                let s = acc[d as usize] + base;
                if s >= threshold {
                    top.push(d, s, self.tie.key(d));
                    threshold = top.threshold().unwrap_or(f32::NEG_INFINITY);
                }
            }
        }
        for &d in touched {
            acc[d as usize] = 0.0;
        }
        top.into_sorted()
    }

    /// Every matching document scored in full; works for any weights.
    fn top_k_exhaustive(&self, q: &[u32], k: usize, scratch: &mut Scratch) -> Vec<Hit> {
        scratch.prepare(self.n_docs);
        let Scratch {
            acc,
            seen,
            touched,
            epoch,
            ..
        } = scratch;
        for &t in q {
            let (docs, ws) = self.postings(t);
            for (&d, &w) in docs.iter().zip(ws) {
                let di = d as usize;
                if seen[di] != *epoch {
                    seen[di] = *epoch;
                    acc[di] = 0.0;
                    touched.push(d);
                }
                acc[di] += w;
            }
        }
        let base = self.base_score(q);
        let mut top = TopK::new(k);
        for &d in touched.iter() {
            top.push(d, acc[d as usize] + base, self.tie.key(d));
        }
        top.into_sorted()
    }

    /// `top_k` with this thread's scratch, kept between calls: a fresh one
    /// costs O(documents) to allocate and zero for every query.
    pub fn search(&self, q: &[u32], k: usize) -> Vec<Hit> {
        thread_local! {
            static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
        }
        // Taken out while in use (a nested or panicking call finds a fresh
        // one, never a half-used accumulator), put back after.
        let mut s = SCRATCH.take();
        let hits = self.top_k(q, k, &mut s);
        SCRATCH.set(s);
        hits
    }

    /// Top-k for many queries at once, in parallel on the current rayon pool.
    pub fn search_batch(&self, queries: &[Vec<u32>], k: usize) -> Vec<Vec<Hit>> {
        queries
            .par_iter()
            .map_init(Scratch::default, |s, q| self.top_k(q, k, s))
            .collect()
    }

    /// Top-k for `n` queries in parallel on the current rayon pool, query i's
    /// term ids given by `terms_of(i)`, into padded tables. The tables are
    /// allocated first, checked: a k or n too large for memory is an
    /// `Error::OutOfMemory` before any search runs, never an abort.
    pub fn search_table<F>(&self, n: usize, k: usize, terms_of: F) -> Result<HitTable>
    where
        F: Fn(usize) -> Vec<u32> + Sync,
    {
        let cols = k.min(self.n_docs);
        let mut docs = try_table(n, cols, -1i64, "search_batch")?;
        let mut scores = try_table(n, cols, f32::NAN, "search_batch")?;
        let mut lens = try_table(n, 1, 0usize, "search_batch")?;
        if cols > 0 {
            docs.par_chunks_mut(cols)
                .zip(scores.par_chunks_mut(cols))
                .zip(lens.par_iter_mut())
                .enumerate()
                .for_each_init(Scratch::default, |s, (i, ((drow, srow), len))| {
                    let hits = self.top_k(&terms_of(i), cols, s);
                    *len = hits.len();
                    for (j, h) in hits.iter().enumerate() {
                        drow[j] = h.doc as i64;
                        srow[j] = h.score;
                    }
                });
        }
        Ok(HitTable {
            rows: n,
            cols,
            docs,
            scores,
            lens,
        })
    }
}

/// Whether a document could end level with or above the k-th best, where
/// `upper` (an f64 sum of f32 values) bounds its exact partial score plus what
/// its `left` remaining terms (weights > 0) add, `base` is added to every final
/// score, and `theta` is the k-th best partial score (the k-th best final score
/// is at least fl(theta + base): float sums of positive terms only grow).
/// Rounding is bounded generously: each of the `left` additions and the one of
/// `base` may round up by a relative 2^-24 (U counts it four times), and adding
/// `base` may round two different partial scores to one final score (a tie
/// that the document could win on its id).
#[inline]
fn may_tie(upper: f64, left: usize, base: f32, theta: f32) -> bool {
    const U: f64 = 2.0 * f32::EPSILON as f64;
    let base = base as f64;
    let upper = upper * (1.0 + (left as f64 + 1.0) * U);
    let highest = upper + base + (upper + base.abs()) * U;
    let k_th = theta as f64 + base - ((theta as f64).abs() + base.abs()) * U;
    highest >= k_th
}

/// The position of the first element >= `target` in the ascending `docs`,
/// found by exponential then binary search (cheap when it is near the front).
#[inline]
pub(crate) fn gallop(docs: &[u32], target: u32) -> usize {
    let mut hi = 1usize;
    while hi < docs.len() && docs[hi - 1] < target {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(docs.len());
    lo + docs[lo..hi].partition_point(|&d| d < target)
}

/// Per-thread working memory for `top_k`, reused across queries.
#[derive(Default)]
pub struct Scratch {
    /// MaxScore and dense paths: an accumulator kept all zero between queries,
    /// and a slot per document for the branch-free list of documents touched.
    dense: Vec<f32>,
    slots: Vec<u32>,
    /// Exhaustive path: accumulator, epoch stamps and the documents touched.
    acc: Vec<f32>,
    seen: Vec<u32>,
    touched: Vec<u32>,
    epoch: u32,
}

impl Scratch {
    fn prepare(&mut self, n_docs: usize) {
        if self.acc.len() != n_docs {
            self.acc = vec![0.0; n_docs];
            self.seen = vec![0; n_docs];
            self.epoch = 0;
        }
        self.touched.clear();
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
    }
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
