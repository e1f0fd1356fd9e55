//! The part of a segment that only the segmented query path reads
//! (`segmented_query.rs`, `segmented_prune.rs`): postings, per-block bounds
//! and (tf, length) pairs, derived from the forward lists on first use.
//!
//! Why lazy: the Python `BM25` searches and mines a flat `Bm25Index` compiled
//! from the forward lists (`segmented_compile.rs`), so deriving these at build
//! or load time made `BM25.index` 1.5-2x slower than a flat build and held
//! about 8 more bytes a posting that nothing read (issue 14).

use rayon::prelude::*;

use crate::segment::BLOCK;

/// Terms per rayon task when the pairs are derived.
const TERMS_PER_TASK: usize = 256;

pub(crate) struct Derived {
    /// Postings of term t are `docs[indptr[t]..indptr[t + 1]]` (ascending), with `tfs`.
    pub(crate) indptr: Vec<u64>,
    pub(crate) docs: Vec<u32>,
    pub(crate) tfs: Vec<u32>,
    /// Blocks of term t: `blk_ptr[t]..blk_ptr[t + 1]`; block j of a term covers
    /// its postings `j * BLOCK..(j + 1) * BLOCK`.
    pub(crate) blk_ptr: Vec<u64>,
    pub(crate) blk_max_tf: Vec<u32>,
    pub(crate) blk_min_len: Vec<u32>,
    /// Distinct (tf, length) pairs of term t's postings, ascending, with how many
    /// postings have each: `pair_*[pair_ptr[t]..pair_ptr[t + 1]]`.
    pub(crate) pair_ptr: Vec<u64>,
    pub(crate) pair_tf: Vec<u32>,
    pub(crate) pair_len: Vec<u32>,
    pub(crate) pair_count: Vec<u32>,
}

impl Derived {
    /// From forward lists (`fwd_terms[fwd_ptr[d]..fwd_ptr[d + 1]]`, with
    /// `fwd_tfs`), each term's document frequency `df` and the lengths.
    pub(crate) fn compute(
        df: &[u32],
        fwd_ptr: &[u64],
        fwd_terms: &[u32],
        fwd_tfs: &[u32],
        lens: &[u32],
    ) -> Self {
        let n_terms = df.len();
        let n_fwd = fwd_terms.len();
        let mut indptr = vec![0u64; n_terms + 1];
        for t in 0..n_terms {
            indptr[t + 1] = indptr[t] + df[t] as u64;
        }
        let mut docs = vec![0u32; n_fwd];
        let mut tfs = vec![0u32; n_fwd];
        let mut cursor: Vec<u64> = indptr[..n_terms].to_vec();
        for d in 0..lens.len() {
            let (s, e) = (fwd_ptr[d] as usize, fwd_ptr[d + 1] as usize);
            for (&t, &tf) in fwd_terms[s..e].iter().zip(&fwd_tfs[s..e]) {
                let pos = cursor[t as usize] as usize;
                cursor[t as usize] += 1;
                docs[pos] = d as u32;
                tfs[pos] = tf;
            }
        }

        // Per group of terms, in parallel: blocks and pairs, joined in term order.
        let groups: Vec<Group> = (0..n_terms.div_ceil(TERMS_PER_TASK))
            .into_par_iter()
            .map(|g| {
                let lo = g * TERMS_PER_TASK;
                let hi = (lo + TERMS_PER_TASK).min(n_terms);
                Group::of(lo..hi, &indptr, &docs, &tfs, lens)
            })
            .collect();
        let mut blk_ptr = Vec::with_capacity(n_terms + 1);
        let mut pair_ptr = Vec::with_capacity(n_terms + 1);
        blk_ptr.push(0u64);
        pair_ptr.push(0u64);
        let n_blk: usize = groups.iter().map(|g| g.blk_max_tf.len()).sum();
        let n_pair: usize = groups.iter().map(|g| g.pair_tf.len()).sum();
        let mut blk_max_tf = Vec::with_capacity(n_blk);
        let mut blk_min_len = Vec::with_capacity(n_blk);
        let mut pair_tf = Vec::with_capacity(n_pair);
        let mut pair_len = Vec::with_capacity(n_pair);
        let mut pair_count = Vec::with_capacity(n_pair);
        for g in groups {
            let (b0, p0) = (blk_max_tf.len() as u64, pair_tf.len() as u64);
            blk_ptr.extend(g.blk_end.iter().map(|&e| b0 + e));
            pair_ptr.extend(g.pair_end.iter().map(|&e| p0 + e));
            blk_max_tf.extend(g.blk_max_tf);
            blk_min_len.extend(g.blk_min_len);
            pair_tf.extend(g.pair_tf);
            pair_len.extend(g.pair_len);
            pair_count.extend(g.pair_count);
        }
        Derived {
            indptr,
            docs,
            tfs,
            blk_ptr,
            blk_max_tf,
            blk_min_len,
            pair_ptr,
            pair_tf,
            pair_len,
            pair_count,
        }
    }
}

/// Blocks and pairs of a range of terms; `*_end` are per term, relative to the group.
#[derive(Default)]
struct Group {
    blk_end: Vec<u64>,
    blk_max_tf: Vec<u32>,
    blk_min_len: Vec<u32>,
    pair_end: Vec<u64>,
    pair_tf: Vec<u32>,
    pair_len: Vec<u32>,
    pair_count: Vec<u32>,
}

impl Group {
    fn of(
        terms: std::ops::Range<usize>,
        indptr: &[u64],
        docs: &[u32],
        tfs: &[u32],
        lens: &[u32],
    ) -> Self {
        let mut g = Group::default();
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for t in terms {
            let (s, e) = (indptr[t] as usize, indptr[t + 1] as usize);
            for (bd, bt) in docs[s..e].chunks(BLOCK).zip(tfs[s..e].chunks(BLOCK)) {
                g.blk_max_tf.push(bt.iter().copied().max().unwrap_or(0));
                g.blk_min_len
                    .push(bd.iter().map(|&d| lens[d as usize]).min().unwrap_or(0));
            }
            g.blk_end.push(g.blk_max_tf.len() as u64);

            pairs.clear();
            pairs.extend(
                docs[s..e]
                    .iter()
                    .zip(&tfs[s..e])
                    .map(|(&d, &tf)| (tf, lens[d as usize])),
            );
            pairs.sort_unstable();
            for (i, &pair) in pairs.iter().enumerate() {
                if i > 0 && pairs[i - 1] == pair {
                    if let Some(c) = g.pair_count.last_mut() {
                        *c += 1;
                    }
                } else {
                    g.pair_tf.push(pair.0);
                    g.pair_len.push(pair.1);
                    g.pair_count.push(1u32);
                }
            }
            g.pair_end.push(g.pair_tf.len() as u64);
        }
        g
    }
}
