//! Immutable index segments: the storage under `SegmentedIndex` (issue 14, §1).
//!
//! # Design
//!
//! An index is an ordered list of segments. A segment is built once from a
//! batch of documents and never changes; what changes is a small mutable part
//! beside it (`Segment`): a deletes bitset and the counts it implies.
//!
//! A segment stores *statistics*, not weights (`Bm25Index` bakes N, df and
//! avgdl into its weights, so it cannot add or delete):
//! - a segment-local vocabulary (term ids in order of first appearance);
//! - per term, postings of (document, tf), documents ascending;
//! - per document, its length and a forward list of (term, tf) in order of
//!   first appearance in the document: it keeps per-term deleted counts exact
//!   on delete, rebuilds documents on merge, and gives the term order below;
//! - per term, per block of `BLOCK` postings, the largest tf and the smallest
//!   document length: an upper bound of any weight in the block for the
//!   methods whose term-frequency part grows with tf and falls with length
//!   (for block-max pruning, `segmented_prune.rs`);
//! - per term, its distinct (tf, length) pairs with their posting counts
//!   (deletes keep a count per pair beside): a term's largest live weight,
//!   which fixes the order of its sum, is a max over these pairs, computed
//!   exactly, and in far fewer steps than a scan of its postings;
//! - the documents' ids, and their tie keys within the segment.
//!
//! At query time (`segmented_query.rs`) N, each query term's df and avgdl are
//! sums over segments of the live counts (N = documents - deleted, df =
//! postings - deleted postings, total length - deleted length), and each
//! weight is computed with exactly the arithmetic of `Bm25Index::build` (f64
//! idf times tfc, minus the non-occurrence score for BM25L/BM25+, clamped at
//! 0, rounded to f32). Scores are then f32 sums in `Bm25Index`'s canonical
//! term order: largest per-term maximum weight first, then the term id a
//! fresh build would give, which is the order of first appearance over the
//! live documents (segment order, then document order, then position of
//! first appearance in the document: the forward list). So after any
//! sequence of adds, deletes, updates and merges, scores are bit-identical to
//! a fresh `Bm25Index` of the live documents taken in that order, and hits
//! follow the project's rule (score descending, then id descending by bytes).
//!
//! Order of the live documents: segments in the order they were added, each
//! segment's documents in their order. `update` deletes the old versions and
//! appends the new ones as a new segment (like a delete followed by an add);
//! `merge` only joins adjacent segments, so it never reorders documents.
//!
//! Costs (not measured yet): a query reads, per term and segment, one hash
//! look-up, the term's live (tf, length) pairs and the postings up to its
//! first live document; memory is about 8 bytes a posting (forward list: term
//! and tf), and 8 more plus the pairs and blocks once a segmented query has
//! needed them.
//! Files: `seg_persist.rs` (issue 14's format v2) stores the forward lists,
//! ids and deletes; everything else is derived again on load (`from_forward`).
//! The Python `BM25` keeps a `SegmentedIndex` and searches a flat
//! `Bm25Index` compiled from its forward lists (`segmented_compile.rs`), so
//! the postings, blocks and pairs, which only the segmented query path reads,
//! are derived on first use (`segment_derived.rs`), not at build or load.
//!
//! Differences from a fresh build: parameters that overflow a weight are an
//! error when a query meets such a weight (a fresh build refuses the whole
//! corpus); an index with no live document is allowed (every query finds
//! nothing).

use std::sync::OnceLock;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::segment_derived::Derived;
use crate::topk::TieKeys;

/// Postings per block of the block-max bounds.
pub const BLOCK: usize = 128;

/// Documents are counted in chunks of this many, in parallel (as `index.rs`).
const CHUNK: usize = 16384;

/// The immutable part of a segment.
pub struct SegmentData {
    pub(crate) vocab: FxHashMap<String, u32>,
    /// Postings per term (document frequency in this segment).
    pub(crate) df: Vec<u32>,
    /// Document d's (term, tf) in order of first appearance:
    /// `fwd_terms[fwd_ptr[d]..fwd_ptr[d + 1]]`, with `fwd_tfs`.
    pub(crate) fwd_ptr: Vec<u64>,
    pub(crate) fwd_terms: Vec<u32>,
    pub(crate) fwd_tfs: Vec<u32>,
    pub(crate) lens: Vec<u32>,
    pub(crate) total_len: u64,
    pub(crate) ids: Vec<String>,
    /// Tie keys among this segment's ids (a lower key ranks first on equal scores).
    pub(crate) tie: TieKeys,
    /// Postings, block bounds and (tf, length) pairs: see `derived`.
    derived: OnceLock<Derived>,
}

/// Documents of one chunk counted with a chunk-local vocabulary.
struct Counted {
    terms: Vec<String>,
    /// (local term, tf), document after document, each in order of first appearance.
    entries: Vec<(u32, u32)>,
    ends: Vec<usize>,
    lens: Vec<u32>,
}

/// `emit_of(doc, emit)` calls `emit(term, count)` for the document's tokens in
/// order; a token read from text has count 1, a term of a rebuilt document its tf.
fn count_chunk<T, F>(docs: &[T], emit_of: &F) -> Result<Counted>
where
    F: Fn(&T, &mut dyn FnMut(&str, u32)),
{
    let mut local: FxHashMap<String, u32> = FxHashMap::default();
    let mut entries: Vec<(u32, u32)> = Vec::new();
    let mut ends = Vec::with_capacity(docs.len());
    let mut lens = Vec::with_capacity(docs.len());
    // Per local term: the document (1-based) that last saw it and its entry there.
    let mut stamp: Vec<usize> = Vec::new();
    let mut slot: Vec<usize> = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let mut len = 0u64;
        let mut tf_overflow = false;
        emit_of(doc, &mut |tok: &str, c: u32| {
            let id = match local.get(tok) {
                Some(&id) => id as usize,
                None => {
                    let id = local.len();
                    local.insert(tok.to_string(), id as u32);
                    stamp.push(0);
                    slot.push(0);
                    id
                }
            };
            len += c as u64;
            if stamp[id] == i + 1 {
                let e = &mut entries[slot[id]].1;
                match e.checked_add(c) {
                    Some(v) => *e = v,
                    None => tf_overflow = true,
                }
            } else {
                stamp[id] = i + 1;
                slot[id] = entries.len();
                entries.push((id as u32, c));
            }
        });
        if tf_overflow || len > u32::MAX as u64 {
            return Err(Error::invalid(
                "a document holds at most 4,294,967,295 tokens",
            ));
        }
        lens.push(len as u32);
        ends.push(entries.len());
    }
    let mut terms = vec![String::new(); local.len()];
    for (t, id) in local {
        terms[id as usize] = t;
    }
    Ok(Counted {
        terms,
        entries,
        ends,
        lens,
    })
}

impl SegmentData {
    /// Builds a segment from `docs` with ids `ids` (as many, unique).
    pub(crate) fn build<T: Sync, F>(docs: &[T], ids: Vec<String>, emit_of: &F) -> Result<Self>
    where
        F: Fn(&T, &mut dyn FnMut(&str, u32)) + Sync,
    {
        if ids.len() != docs.len() {
            return Err(Error::invalid(format!(
                "got {} ids for {} documents",
                ids.len(),
                docs.len()
            )));
        }
        // Also checks the count fits u32 and the ids are unique.
        let tie = tie_keys(&ids)?;
        let mut chunks: Vec<Counted> = docs
            .par_chunks(CHUNK)
            .map(|c| count_chunk(c, emit_of))
            .collect::<Result<_>>()?;

        // Term ids follow first appearance: chunks in order, local ids in order.
        let (vocab, remaps) =
            crate::index::merge_vocabularies(chunks.iter_mut().map(|c| &mut c.terms));

        let n_fwd: usize = chunks.iter().map(|c| c.entries.len()).sum();
        let mut fwd_ptr = Vec::with_capacity(docs.len() + 1);
        let mut lens = Vec::with_capacity(docs.len());
        fwd_ptr.push(0u64);
        let mut base = 0u64;
        for c in &chunks {
            fwd_ptr.extend(c.ends.iter().map(|&e| base + e as u64));
            lens.extend_from_slice(&c.lens);
            base += c.entries.len() as u64;
        }
        // Entries to global term ids, chunk by chunk in parallel, each into
        // its own slice.
        let mut fwd_terms = vec![0u32; n_fwd];
        let mut fwd_tfs = vec![0u32; n_fwd];
        let mut parts = Vec::with_capacity(chunks.len());
        {
            let (mut rest_t, mut rest_f) = (fwd_terms.as_mut_slice(), fwd_tfs.as_mut_slice());
            for (c, remap) in chunks.iter().zip(&remaps) {
                let n = c.entries.len();
                let (a, b) = std::mem::take(&mut rest_t).split_at_mut(n);
                let (e, f) = std::mem::take(&mut rest_f).split_at_mut(n);
                parts.push((c, remap, a, e));
                rest_t = b;
                rest_f = f;
            }
        }
        parts.par_iter_mut().for_each(|(c, remap, out_t, out_f)| {
            for ((&(lt, tf), t), f) in c.entries.iter().zip(out_t.iter_mut()).zip(out_f.iter_mut())
            {
                *t = remap[lt as usize];
                *f = tf;
            }
        });
        drop(parts);
        drop(chunks);
        Ok(Self::from_forward(
            vocab, fwd_ptr, fwd_terms, fwd_tfs, lens, ids, tie,
        ))
    }

    /// The rest of a segment from its forward lists (postings, block bounds
    /// and pairs are derived on first use, `derived`). `fwd_terms` must hold
    /// ids below `vocab.len()`, each at most once per document, and every
    /// term must occur; `lens[d]` is the sum of document d's tfs (`build` and
    /// the loader of `seg_persist.rs` check this, so derived data is never
    /// read from a file).
    pub(crate) fn from_forward(
        vocab: FxHashMap<String, u32>,
        fwd_ptr: Vec<u64>,
        fwd_terms: Vec<u32>,
        fwd_tfs: Vec<u32>,
        lens: Vec<u32>,
        ids: Vec<String>,
        tie: TieKeys,
    ) -> Self {
        // A term is in a document at most once, and documents number < 2^32.
        let mut df = vec![0u32; vocab.len()];
        for &t in &fwd_terms {
            df[t as usize] += 1;
        }
        let total_len = lens.iter().map(|&l| l as u64).sum();
        SegmentData {
            vocab,
            df,
            fwd_ptr,
            fwd_terms,
            fwd_tfs,
            lens,
            total_len,
            ids,
            tie,
            derived: OnceLock::new(),
        }
    }

    /// Postings, block bounds and (tf, length) pairs, derived from the forward
    /// lists on first call (only the segmented query path needs them).
    pub(crate) fn derived(&self) -> &Derived {
        self.derived.get_or_init(|| {
            Derived::compute(
                &self.df,
                &self.fwd_ptr,
                &self.fwd_terms,
                &self.fwd_tfs,
                &self.lens,
            )
        })
    }

    pub fn n_docs(&self) -> usize {
        self.lens.len()
    }

    pub fn n_terms(&self) -> usize {
        self.vocab.len()
    }

    /// Bytes held: vocabulary (table at capacity and strings), forward lists,
    /// lengths, ids (headers and bytes), tie keys, and the derived postings,
    /// blocks and pairs once a segmented query has built them.
    pub fn memory_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(String, u32)>() + 1;
        let vocab =
            self.vocab.capacity() * slot + self.vocab.keys().map(|t| t.len()).sum::<usize>();
        let ids = self.ids.len() * std::mem::size_of::<String>()
            + self.ids.iter().map(|i| i.len()).sum::<usize>();
        let arrays = (self.df.len() + self.fwd_terms.len() + self.fwd_tfs.len() + self.lens.len())
            * 4
            + self.fwd_ptr.len() * 8
            + self.tie.len() * 4;
        let derived = self.derived.get().map_or(0, |d| {
            (d.indptr.len() + d.blk_ptr.len() + d.pair_ptr.len()) * 8
                + (d.docs.len()
                    + d.tfs.len()
                    + d.blk_max_tf.len()
                    + d.blk_min_len.len()
                    + d.pair_tf.len()
                    + d.pair_len.len()
                    + d.pair_count.len())
                    * 4
        });
        vocab + ids + arrays + derived
    }

    /// Postings of local term `t`: (documents, tfs).
    pub(crate) fn postings(&self, t: u32) -> (&[u32], &[u32]) {
        let dv = self.derived();
        let (s, e) = (
            dv.indptr[t as usize] as usize,
            dv.indptr[t as usize + 1] as usize,
        );
        (&dv.docs[s..e], &dv.tfs[s..e])
    }

    /// The index of pair (tf, len) among term t's pairs (it is there when some
    /// posting of t has it).
    fn pair_index(&self, t: u32, tf: u32, len: u32) -> usize {
        let dv = self.derived();
        let (s, e) = (
            dv.pair_ptr[t as usize] as usize,
            dv.pair_ptr[t as usize + 1] as usize,
        );
        let (mut lo, mut hi) = (s, e);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if (dv.pair_tf[mid], dv.pair_len[mid]) < (tf, len) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Document d's (terms, tfs) in order of first appearance.
    pub(crate) fn forward(&self, d: u32) -> (&[u32], &[u32]) {
        let (s, e) = (
            self.fwd_ptr[d as usize] as usize,
            self.fwd_ptr[d as usize + 1] as usize,
        );
        (&self.fwd_terms[s..e], &self.fwd_tfs[s..e])
    }

    /// The vocabulary in local term-id order.
    pub(crate) fn terms(&self) -> Vec<&str> {
        let mut terms = vec![""; self.vocab.len()];
        for (t, &id) in &self.vocab {
            terms[id as usize] = t.as_str();
        }
        terms
    }
}

/// A segment and its deletes: the only part of an index that changes in place.
/// A clone shares the immutable data and copies the deletes.
#[derive(Clone)]
pub struct Segment {
    pub(crate) data: std::sync::Arc<SegmentData>,
    deleted: Vec<u64>,
    pub(crate) n_deleted: usize,
    pub(crate) deleted_len: u64,
    /// Per local term: postings whose document is deleted.
    pub(crate) del_df: Vec<u32>,
    /// Per (tf, length) pair of `data`: postings whose document is deleted;
    /// counted on first use (`pair_del`), then kept up to date by `delete`.
    pair_del: OnceLock<Vec<u32>>,
    /// The files this segment was last loaded from or saved to
    /// (`seg_persist.rs`), so that a save to the same folder reuses them.
    pub(crate) stored: Option<crate::seg_persist::Stored>,
}

impl Segment {
    /// Bytes held by the data and the deletes (bitset and counts).
    pub fn memory_bytes(&self) -> usize {
        self.data.memory_bytes()
            + self.deleted.len() * 8
            + self.del_df.len() * 4
            + self.pair_del.get().map_or(0, |p| p.len() * 4)
    }

    pub(crate) fn new(data: SegmentData) -> Self {
        let words = data.n_docs().div_ceil(64);
        let n_terms = data.n_terms();
        Segment {
            pair_del: OnceLock::new(),
            data: std::sync::Arc::new(data),
            deleted: vec![0; words],
            n_deleted: 0,
            deleted_len: 0,
            del_df: vec![0; n_terms],
            stored: None,
        }
    }

    /// The deletes bitset: bit d % 64 of word d / 64 is set when d is deleted.
    pub(crate) fn deleted_words(&self) -> &[u64] {
        &self.deleted
    }

    #[inline]
    pub(crate) fn is_live(&self, d: u32) -> bool {
        (self.deleted[d as usize / 64] >> (d % 64)) & 1 == 0
    }

    /// Marks live document `d` deleted and updates the live counts.
    pub(crate) fn delete(&mut self, d: u32) {
        debug_assert!(self.is_live(d));
        self.deleted[d as usize / 64] |= 1 << (d % 64);
        self.n_deleted += 1;
        self.deleted_len += self.data.lens[d as usize] as u64;
        let len = self.data.lens[d as usize];
        let (terms, tfs) = self.data.forward(d);
        for &t in terms {
            self.del_df[t as usize] += 1;
        }
        if let Some(pair_del) = self.pair_del.get_mut() {
            for (&t, &tf) in terms.iter().zip(tfs) {
                pair_del[self.data.pair_index(t, tf, len)] += 1;
            }
        }
    }

    /// Per (tf, length) pair: postings whose document is deleted, counted
    /// from the deletes bitset on first call.
    fn pair_del(&self) -> &[u32] {
        self.pair_del.get_or_init(|| {
            let mut del = vec![0u32; self.data.derived().pair_tf.len()];
            for d in 0..self.data.n_docs() as u32 {
                if self.is_live(d) {
                    continue;
                }
                let len = self.data.lens[d as usize];
                let (terms, tfs) = self.data.forward(d);
                for (&t, &tf) in terms.iter().zip(tfs) {
                    del[self.data.pair_index(t, tf, len)] += 1;
                }
            }
            del
        })
    }

    pub(crate) fn n_live(&self) -> usize {
        self.data.n_docs() - self.n_deleted
    }

    pub(crate) fn live_len(&self) -> u64 {
        self.data.total_len - self.deleted_len
    }

    /// The (tf, length) pairs of local term `t` that some live posting has.
    pub(crate) fn live_pairs(&self, t: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let dv = self.data.derived();
        let del = self.pair_del();
        let (s, e) = (
            dv.pair_ptr[t as usize] as usize,
            dv.pair_ptr[t as usize + 1] as usize,
        );
        (s..e)
            .filter(move |&i| dv.pair_count[i] > del[i])
            .map(move |i| (dv.pair_tf[i], dv.pair_len[i]))
    }

    /// Live postings of local term `t`.
    pub(crate) fn live_df(&self, t: u32) -> u64 {
        (self.data.df[t as usize] - self.del_df[t as usize]) as u64
    }
}

/// Tie keys of these ids (checks they are unique and fit u32); the positional
/// ids "0".."n-1" a corpus gets when none are given take `TieKeys::positional`
/// (the same keys, in O(n) instead of a sort of the id strings).
pub(crate) fn tie_keys<S: AsRef<str>>(ids: &[S]) -> Result<TieKeys> {
    let mut buf = String::new();
    let positional = ids.iter().enumerate().all(|(i, id)| {
        use std::fmt::Write;
        buf.clear();
        let _ = write!(buf, "{i}");
        buf == id.as_ref()
    });
    if positional {
        TieKeys::positional(ids.len())
    } else {
        TieKeys::from_ids(ids)
    }
}

#[cfg(test)]
#[path = "segment_lazy_tests.rs"]
mod lazy_tests;
