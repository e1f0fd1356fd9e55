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
//! - postings of a term: its live postings segment after segment (documents
//!   ascending within a segment, segments in order, so ascending overall);
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
use crate::index::Bm25Index;
use crate::segmented::SegmentedIndex;
use crate::topk::TieKeys;

/// Marks a deleted document or a term with no live posting.
const NONE: u32 = u32::MAX;

/// Per segment: local document -> global document, and its live terms in
/// order of first live appearance.
struct SegMap {
    doc_of: Vec<u32>,
    first_order: Vec<u32>,
}

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
        let mut offsets = Vec::with_capacity(self.segments.len());
        let mut acc = 0usize;
        for s in &self.segments {
            offsets.push(acc);
            acc += s.n_live();
        }

        // Per segment, in parallel: global document numbers and the order in
        // which its terms first appear among its live documents.
        let maps: Vec<SegMap> = self
            .segments
            .par_iter()
            .zip(offsets.par_iter())
            .map(|(s, &off)| {
                let nd = s.data.n_docs();
                let mut doc_of = vec![NONE; nd];
                let mut seen = vec![false; s.data.n_terms()];
                let mut first_order = Vec::new();
                let mut g = off as u32;
                for d in 0..nd as u32 {
                    if !s.is_live(d) {
                        continue;
                    }
                    doc_of[d as usize] = g;
                    g += 1;
                    for &t in s.data.forward(d).0 {
                        if !seen[t as usize] {
                            seen[t as usize] = true;
                            first_order.push(t);
                        }
                    }
                }
                SegMap {
                    doc_of,
                    first_order,
                }
            })
            .collect();

        // Global term ids, and per term its sources (segment, local term) in
        // segment order. Sequential: one hash look-up per live local term.
        let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
        let mut df: Vec<u64> = Vec::new();
        let mut sources: Vec<Vec<(u32, u32)>> = Vec::new();
        for (si, (s, m)) in self.segments.iter().zip(&maps).enumerate() {
            let terms = s.data.terms();
            for &t in &m.first_order {
                let name = terms[t as usize];
                let g = match vocab.get(name) {
                    Some(&g) => g as usize,
                    None => {
                        let g = vocab.len();
                        vocab.insert(name.to_string(), g as u32);
                        df.push(0);
                        sources.push(Vec::new());
                        g
                    }
                };
                df[g] += s.live_df(t);
                sources[g].push((si as u32, t));
            }
        }
        let n_terms = vocab.len();
        let mut indptr = vec![0u64; n_terms + 1];
        for t in 0..n_terms {
            indptr[t + 1] = indptr[t] + df[t];
        }

        let nf = n as f64;
        let avgdl = self.live_len() as f64 / nf;
        let idf: Vec<f64> = df.iter().map(|&d| params.idf(d as f64, nf)).collect();
        let nonocc: Vec<f32> = if params.method.has_nonoccurrence() {
            idf.iter()
                .map(|&i| (i * params.tfc(0.0, avgdl, avgdl)) as f32)
                .collect()
        } else {
            Vec::new()
        };
        if let Some(bad) = nonocc.iter().find(|w| !w.is_finite()) {
            return Err(self.non_finite(*bad));
        }

        // Postings, term by term in parallel, each into its own slice.
        let n_post = indptr[n_terms] as usize;
        let mut post_docs = vec![0u32; n_post];
        let mut weights = vec![0f32; n_post];
        let mut slices: Vec<(&mut [u32], &mut [f32])> = Vec::with_capacity(n_terms);
        {
            let (mut rest_d, mut rest_w) = (post_docs.as_mut_slice(), weights.as_mut_slice());
            for &d in &df {
                let (a, b) = std::mem::take(&mut rest_d).split_at_mut(d as usize);
                let (c, e) = std::mem::take(&mut rest_w).split_at_mut(d as usize);
                slices.push((a, c));
                rest_d = b;
                rest_w = e;
            }
        }
        slices
            .par_iter_mut()
            .with_min_len(64)
            .enumerate()
            .try_for_each(|(t, (out_d, out_w))| -> Result<()> {
                let base = nonocc.get(t).copied();
                let mut i = 0usize;
                for &(si, lt) in &sources[t] {
                    let s = &self.segments[si as usize];
                    let doc_of = &maps[si as usize].doc_of;
                    let (docs, tfs) = s.data.postings(lt);
                    for (&d, &tf) in docs.iter().zip(tfs) {
                        let g = doc_of[d as usize];
                        if g == NONE {
                            continue;
                        }
                        let dl = s.data.lens[d as usize] as f64;
                        let mut w = idf[t] * params.tfc(tf as f64, dl, avgdl);
                        if let Some(base) = base {
                            w = (w - base as f64).max(0.0);
                        }
                        let w = w as f32;
                        if !w.is_finite() {
                            return Err(self.non_finite(w));
                        }
                        out_d[i] = g;
                        out_w[i] = w;
                        i += 1;
                    }
                }
                Ok(())
            })?;
        drop(slices);

        let tie = TieKeys::from_ids(&self.live_ids())?;
        Ok(Bm25Index::from_parts(
            params, vocab, indptr, post_docs, weights, nonocc, n, avgdl, tie,
        ))
    }
}

#[cfg(test)]
#[path = "segmented_compile_tests.rs"]
mod tests;
