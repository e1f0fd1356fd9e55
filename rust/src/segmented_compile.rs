//! `SegmentedIndex::compile`: the flat `Bm25Index` a fresh build of the live
//! documents would give (same term ids, postings, weights, document order and
//! tie keys), made from the segments' stored statistics without re-tokenising.
//!
//! Why: the Python `BM25` keeps a `SegmentedIndex` as its source of truth and
//! a compiled flat index as a cache for search and mining, which then run at
//! the flat index's speed; a mutation drops the cache and the next search
//! compiles again.
//!
//! How it matches a fresh build (`Bm25Index::build`):
//! - documents: the live documents in `live_ids` order, numbered from 0;
//! - term ids: first appearance over those documents; within a segment the
//!   forward lists give each document's terms in order of first appearance,
//!   so a scan of the live documents' forward lists (in parallel, one per
//!   segment) gives each segment's terms in first-live-appearance order, and
//!   joining those lists in segment order gives the global order;
//! - postings of a term: the live forward lists transposed, documents taken
//!   in order (so ascending), as `build` transposes its counts; made from the
//!   forward lists, not the segments' postings, which a compile then never
//!   derives (`segment_derived.rs`);
//! - weights: N, df and avgdl of the live documents with the arithmetic of
//!   `build`, step for step (f64 idf times tfc, minus the non-occurrence score
//!   for BM25L/BM25+, clamped at 0, rounded to f32), checked finite;
//! - tie keys: from the live ids (the positional ids "0".."n-1" give the same
//!   keys as `TieKeys::positional`, see `topk.rs`);
//! - the index itself is made by `Bm25Index::from_parts`, the constructor
//!   `build` and the loader use, so data it derives is derived here too.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::index::{term_table, Bm25Index};
use crate::segmented::SegmentedIndex;

/// Marks a deleted document or a term with no live posting.
const NONE: u32 = u32::MAX;

impl SegmentedIndex {
    /// The flat index of the live documents, equal to a fresh
    /// `Bm25Index::from_tokens(live documents).with_ids(live ids)`.
    /// An index with no live document is an error (a fresh build refuses an
    /// empty corpus too).
    pub fn compile(&self) -> Result<Bm25Index> {
        let n = self.n_live();
        if n == 0 {
            return Err(Error::invalid(
                "the index has no live document: add documents first",
            ));
        }
        if n > u32::MAX as usize {
            return Err(Error::invalid(
                "a corpus holds at most 4,294,967,295 documents",
            ));
        }
        let params = self.params;

        // Per segment, in parallel: the order in which its terms first appear
        // among its live documents.
        let first: Vec<Vec<u32>> = self
            .segments
            .par_iter()
            .map(|s| {
                // Terms are numbered by first appearance (`build` numbers them
                // so, the loader checks it): with no delete, that is the order.
                if s.n_deleted == 0 {
                    return (0..s.data.n_terms() as u32).collect();
                }
                let mut seen = vec![false; s.data.n_terms()];
                let mut first_order = Vec::new();
                for d in 0..s.data.n_docs() as u32 {
                    if !s.is_live(d) {
                        continue;
                    }
                    for &t in s.data.forward(d).0 {
                        if !seen[t as usize] {
                            seen[t as usize] = true;
                            first_order.push(t);
                        }
                    }
                }
                first_order
            })
            .collect();

        // Global term ids and, per segment, local term -> global term (NONE:
        // no live posting). Sequential: one hash look-up per live local term,
        // but the first segment's vocabulary is copied whole when its terms
        // first appear in local-id order (always so for a fresh build, whose
        // ids follow first appearance and which has no deletes).
        let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
        let mut df: Vec<u64> = Vec::new();
        let mut remaps: Vec<Vec<u32>> = Vec::with_capacity(self.segments.len());
        for (s, order) in self.segments.iter().zip(&first) {
            let mut remap = vec![NONE; s.data.n_terms()];
            let identity = vocab.is_empty()
                && order.len() == s.data.n_terms()
                && order.iter().enumerate().all(|(i, &t)| t as usize == i);
            if identity {
                vocab = s.data.vocab.clone();
                for (t, r) in remap.iter_mut().enumerate() {
                    *r = t as u32;
                    df.push(s.live_df(t as u32));
                }
            } else {
                let terms = s.data.terms();
                for &t in order {
                    let name = terms[t as usize];
                    let g = match vocab.get(name) {
                        Some(&g) => g as usize,
                        None => {
                            let g = vocab.len();
                            vocab.insert(name.to_string(), g as u32);
                            df.push(0);
                            g
                        }
                    };
                    df[g] += s.live_df(t);
                    remap[t as usize] = g as u32;
                }
            }
            remaps.push(remap);
        }
        drop(first);
        let n_terms = vocab.len();
        let nf = n as f64;
        let avgdl = self.live_len() as f64 / nf;
        let (indptr, idf, nonocc) = term_table(&df, nf, avgdl, &params);
        if let Some(bad) = nonocc.iter().find(|w| !w.is_finite()) {
            return Err(self.non_finite(*bad));
        }

        // Postings: the live forward lists transposed, in parallel over ranges
        // of terms with about equal postings, each filling its own slice
        // (every part reads all forward lists and keeps its terms).
        let n_post = indptr[n_terms] as usize;
        let mut post_docs = vec![0u32; n_post];
        let mut weights = vec![0f32; n_post];
        let n_parts = rayon::current_num_threads().clamp(1, 64);
        let mut bounds = vec![0usize];
        for p in 1..n_parts {
            let target = (n_post as u64 * p as u64 / n_parts as u64).max(1);
            let t = indptr.partition_point(|&x| x < target).min(n_terms);
            if t > *bounds.last().unwrap_or(&0) {
                bounds.push(t);
            }
        }
        bounds.push(n_terms);
        let mut parts: Vec<(usize, usize, &mut [u32], &mut [f32])> = Vec::new();
        {
            let (mut rest_d, mut rest_w) = (post_docs.as_mut_slice(), weights.as_mut_slice());
            for w in bounds.windows(2) {
                let len = (indptr[w[1]] - indptr[w[0]]) as usize;
                let (a, b) = std::mem::take(&mut rest_d).split_at_mut(len);
                let (c, e) = std::mem::take(&mut rest_w).split_at_mut(len);
                parts.push((w[0], w[1], a, c));
                rest_d = b;
                rest_w = e;
            }
        }
        parts
            .par_iter_mut()
            .try_for_each(|(lo, hi, out_d, out_w)| -> Result<()> {
                let (lo, hi) = (*lo as u32, *hi as u32);
                let base0 = indptr[lo as usize];
                let mut cursor: Vec<usize> = indptr[lo as usize..hi as usize]
                    .iter()
                    .map(|&x| (x - base0) as usize)
                    .collect();
                let mut g = 0u32;
                for (s, remap) in self.segments.iter().zip(&remaps) {
                    for d in 0..s.data.n_docs() as u32 {
                        if !s.is_live(d) {
                            continue;
                        }
                        let dl = s.data.lens[d as usize] as f64;
                        let (ts, tfs) = s.data.forward(d);
                        for (&lt, &tf) in ts.iter().zip(tfs) {
                            let t = remap[lt as usize];
                            if t < lo || t >= hi {
                                continue;
                            }
                            let t = t as usize;
                            let mut w = idf[t] * params.tfc(tf as f64, dl, avgdl);
                            if let Some(&base) = nonocc.get(t) {
                                w = (w - base as f64).max(0.0);
                            }
                            let w = w as f32;
                            if !w.is_finite() {
                                return Err(self.non_finite(w));
                            }
                            let c = &mut cursor[t - lo as usize];
                            out_d[*c] = g;
                            out_w[*c] = w;
                            *c += 1;
                        }
                        g += 1;
                    }
                }
                Ok(())
            })?;
        drop(parts);

        // A single segment without deletes already has the live ids' keys.
        let tie = match &self.segments[..] {
            [s] if s.n_deleted == 0 => s.data.tie.clone(),
            _ => crate::segment::tie_keys(&self.live_ids())?,
        };
        Ok(Bm25Index::from_parts(
            params, vocab, indptr, post_docs, weights, nonocc, n, avgdl, tie,
        ))
    }
}

#[cfg(test)]
#[path = "segmented_compile_tests.rs"]
mod tests;
