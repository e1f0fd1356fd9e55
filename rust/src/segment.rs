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
//! first live document; memory is about 16 bytes a posting (postings and
//! forward list: document or term, and tf) plus the pairs and blocks.
//! Files: `seg_persist.rs` (issue 14's format v2) stores the forward lists,
//! ids and deletes; everything else is derived again on load (`from_forward`).
//! The Python `BM25` keeps a `SegmentedIndex` and searches a flat
//! `Bm25Index` compiled from it (`segmented_compile.rs`).
//!
//! Differences from a fresh build: parameters that overflow a weight are an
//! error when a query meets such a weight (a fresh build refuses the whole
//! corpus); an index with no live document is allowed (every query finds
//! nothing).

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::topk::TieKeys;

/// Postings per block of the block-max bounds.
pub const BLOCK: usize = 128;

/// Documents are counted in chunks of this many, in parallel (as `index.rs`).
const CHUNK: usize = 16384;

/// The immutable part of a segment.
pub struct SegmentData {
    pub(crate) vocab: FxHashMap<String, u32>,
    /// Postings of term t are `docs[indptr[t]..indptr[t + 1]]` (ascending), with `tfs`.
    pub(crate) indptr: Vec<u64>,
    pub(crate) docs: Vec<u32>,
    pub(crate) tfs: Vec<u32>,
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
        let tie = TieKeys::from_ids(&ids)?;
        let mut chunks: Vec<Counted> = docs
            .par_chunks(CHUNK)
            .map(|c| count_chunk(c, emit_of))
            .collect::<Result<_>>()?;

        // Term ids follow first appearance: chunks in order, local ids in order.
        let (vocab, remaps) =
            crate::index::merge_vocabularies(chunks.iter_mut().map(|c| &mut c.terms));

        let n_fwd: usize = chunks.iter().map(|c| c.entries.len()).sum();
        let mut fwd_ptr = Vec::with_capacity(docs.len() + 1);
        let mut fwd_terms = Vec::with_capacity(n_fwd);
        let mut fwd_tfs = Vec::with_capacity(n_fwd);
        let mut lens = Vec::with_capacity(docs.len());
        fwd_ptr.push(0u64);
        for (c, remap) in chunks.iter().zip(&remaps) {
            let mut start = 0;
            for (d, &end) in c.ends.iter().enumerate() {
                for &(lt, tf) in &c.entries[start..end] {
                    let t = remap[lt as usize];
                    fwd_terms.push(t);
                    fwd_tfs.push(tf);
                }
                fwd_ptr.push(fwd_terms.len() as u64);
                lens.push(c.lens[d]);
                start = end;
            }
        }
        drop(chunks);
        Ok(Self::from_forward(
            vocab, fwd_ptr, fwd_terms, fwd_tfs, lens, ids, tie,
        ))
    }

    /// The rest of a segment from its forward lists: postings, block bounds
    /// and (tf, length) pairs. `fwd_terms` must hold ids below `vocab.len()`,
    /// each at most once per document, and every term must occur; `lens[d]` is
    /// the sum of document d's tfs (`build` and the loader of `seg_persist.rs`
    /// check this, so derived data is never read from a file).
    pub(crate) fn from_forward(
        vocab: FxHashMap<String, u32>,
        fwd_ptr: Vec<u64>,
        fwd_terms: Vec<u32>,
        fwd_tfs: Vec<u32>,
        lens: Vec<u32>,
        ids: Vec<String>,
        tie: TieKeys,
    ) -> Self {
        let n_terms = vocab.len();
        let n_fwd = fwd_terms.len();
        let mut df = vec![0u64; n_terms];
        for &t in &fwd_terms {
            df[t as usize] += 1;
        }
        let total_len = lens.iter().map(|&l| l as u64).sum();

        let mut indptr = vec![0u64; n_terms + 1];
        for t in 0..n_terms {
            indptr[t + 1] = indptr[t] + df[t];
        }
        let mut post_docs = vec![0u32; n_fwd];
        let mut tfs = vec![0u32; n_fwd];
        let mut cursor: Vec<u64> = indptr[..n_terms].to_vec();
        for d in 0..lens.len() {
            let (s, e) = (fwd_ptr[d] as usize, fwd_ptr[d + 1] as usize);
            for (&t, &tf) in fwd_terms[s..e].iter().zip(&fwd_tfs[s..e]) {
                let pos = cursor[t as usize] as usize;
                cursor[t as usize] += 1;
                post_docs[pos] = d as u32;
                tfs[pos] = tf;
            }
        }

        let mut blk_ptr = Vec::with_capacity(n_terms + 1);
        let mut blk_max_tf = Vec::new();
        let mut blk_min_len = Vec::new();
        blk_ptr.push(0u64);
        for t in 0..n_terms {
            let (s, e) = (indptr[t] as usize, indptr[t + 1] as usize);
            for (bd, bt) in post_docs[s..e].chunks(BLOCK).zip(tfs[s..e].chunks(BLOCK)) {
                blk_max_tf.push(bt.iter().copied().max().unwrap_or(0));
                blk_min_len.push(bd.iter().map(|&d| lens[d as usize]).min().unwrap_or(0));
            }
            blk_ptr.push(blk_max_tf.len() as u64);
        }

        let mut pair_ptr = Vec::with_capacity(n_terms + 1);
        let mut pair_tf = Vec::new();
        let mut pair_len = Vec::new();
        let mut pair_count = Vec::new();
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        pair_ptr.push(0u64);
        for t in 0..n_terms {
            let (s, e) = (indptr[t] as usize, indptr[t + 1] as usize);
            pairs.clear();
            pairs.extend(
                post_docs[s..e]
                    .iter()
                    .zip(&tfs[s..e])
                    .map(|(&d, &tf)| (tf, lens[d as usize])),
            );
            pairs.sort_unstable();
            for (i, &pair) in pairs.iter().enumerate() {
                if i > 0 && pairs[i - 1] == pair {
                    if let Some(c) = pair_count.last_mut() {
                        *c += 1;
                    }
                } else {
                    pair_tf.push(pair.0);
                    pair_len.push(pair.1);
                    pair_count.push(1u32);
                }
            }
            pair_ptr.push(pair_tf.len() as u64);
        }

        SegmentData {
            vocab,
            indptr,
            docs: post_docs,
            tfs,
            fwd_ptr,
            fwd_terms,
            fwd_tfs,
            lens,
            total_len,
            ids,
            tie,
            blk_ptr,
            blk_max_tf,
            blk_min_len,
            pair_ptr,
            pair_tf,
            pair_len,
            pair_count,
        }
    }

    pub fn n_docs(&self) -> usize {
        self.lens.len()
    }

    pub fn n_terms(&self) -> usize {
        self.vocab.len()
    }

    /// Postings of local term `t`: (documents, tfs).
    pub(crate) fn postings(&self, t: u32) -> (&[u32], &[u32]) {
        let (s, e) = (
            self.indptr[t as usize] as usize,
            self.indptr[t as usize + 1] as usize,
        );
        (&self.docs[s..e], &self.tfs[s..e])
    }

    /// The index of pair (tf, len) among term t's pairs (it is there when some
    /// posting of t has it).
    fn pair_index(&self, t: u32, tf: u32, len: u32) -> usize {
        let (s, e) = (
            self.pair_ptr[t as usize] as usize,
            self.pair_ptr[t as usize + 1] as usize,
        );
        let (mut lo, mut hi) = (s, e);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if (self.pair_tf[mid], self.pair_len[mid]) < (tf, len) {
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
    /// Per (tf, length) pair of `data`: postings whose document is deleted.
    pub(crate) pair_del: Vec<u32>,
    /// The files this segment was last loaded from or saved to
    /// (`seg_persist.rs`), so that a save to the same folder reuses them.
    pub(crate) stored: Option<crate::seg_persist::Stored>,
}

impl Segment {
    pub(crate) fn new(data: SegmentData) -> Self {
        let words = data.n_docs().div_ceil(64);
        let n_terms = data.n_terms();
        let n_pairs = data.pair_tf.len();
        Segment {
            pair_del: vec![0; n_pairs],
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
        for (&t, &tf) in terms.iter().zip(tfs) {
            self.del_df[t as usize] += 1;
            self.pair_del[self.data.pair_index(t, tf, len)] += 1;
        }
    }

    pub(crate) fn n_live(&self) -> usize {
        self.data.n_docs() - self.n_deleted
    }

    pub(crate) fn live_len(&self) -> u64 {
        self.data.total_len - self.deleted_len
    }

    /// The (tf, length) pairs of local term `t` that some live posting has.
    pub(crate) fn live_pairs(&self, t: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let (s, e) = (
            self.data.pair_ptr[t as usize] as usize,
            self.data.pair_ptr[t as usize + 1] as usize,
        );
        (s..e)
            .filter(|&i| self.data.pair_count[i] > self.pair_del[i])
            .map(|i| (self.data.pair_tf[i], self.data.pair_len[i]))
    }

    /// Live postings of local term `t`.
    pub(crate) fn live_df(&self, t: u32) -> u64 {
        (self.data.indptr[t as usize + 1] - self.data.indptr[t as usize])
            - self.del_df[t as usize] as u64
    }
}
