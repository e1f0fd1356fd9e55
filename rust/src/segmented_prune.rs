//! Block-max MaxScore over a `SegmentedIndex`, document at a time, exact.
//!
//! One collector of the k best (score, then id descending by bytes) is shared
//! by all segments; its k-th best score `theta` rises as documents are scored.
//! In a segment, each query term's bound is its largest live weight there
//! (from the (tf, length) pairs) times its repeats in the query. Terms are
//! taken by bound ascending; the longest prefix whose bounds together cannot
//! bring a document level with `theta` is *non-essential*: a document holding
//! only those terms cannot enter, so candidates come from the other
//! (essential) lists alone. A candidate's bound is then refined with the
//! per-block maxima (largest tf, smallest length of the block holding or
//! following it); when even that cannot reach `theta`, every document up to
//! the end of the shortest of those blocks is skipped at once. Otherwise the
//! bound of the candidate alone (the blocks of the terms it holds) decides
//! whether it is scored.
//!
//! Exactness: a candidate is scored in full with the arithmetic and term
//! order of the exhaustive path (so its score is bit-identical), and a
//! document is passed over only when its score is certainly *below* `theta`
//! (`could_reach` bounds float rounding generously; a document that could tie
//! may still win on its id). Block bounds are weights computed at (largest tf,
//! smallest length), raised by a relative 1e-9 before rounding to f32: every
//! method's term-frequency part grows with tf and falls with length, and f64
//! rounding of the formula is ~1e-15 relative, so no posting's f32 weight can
//! exceed its block's bound.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::Result;
use crate::search::gallop;
use crate::segment::{Segment, BLOCK};
use crate::segmented::SegmentedIndex;
use crate::segmented_query::{Plan, SegHit};

/// Whether a document whose f32 score is a sum of `adds` non-negative weights
/// with (f64) total at most `upper`, plus `base` >= 0, could end level with or
/// above `theta` (the k-th best final score).
#[inline]
fn could_reach(upper: f64, adds: usize, base: f32, theta: f32) -> bool {
    const U: f64 = 2.0 * f32::EPSILON as f64;
    let upper = upper * (1.0 + (adds as f64 + 1.0) * U);
    (upper + base as f64) * (1.0 + U) >= theta as f64
}

/// A collected hit; the heap's maximum is the worst (lowest score, then smallest id).
struct Worst<'a> {
    score: f32,
    id: &'a [u8],
    segment: u32,
    doc: u32,
}

impl PartialEq for Worst<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst<'_> {}
impl PartialOrd for Worst<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| other.id.cmp(self.id))
    }
}

/// One distinct query term's postings in one segment, with a cursor.
struct Cursor {
    term: usize,
    /// How often the term is in the query.
    mult: usize,
    /// Postings range [start, end) in the segment's arrays, cursor `pos`.
    start: usize,
    end: usize,
    pos: usize,
    /// First block of the term in the segment's block arrays.
    blk0: usize,
    /// Bound of the term's contribution to any document of the segment.
    bound: f64,
    /// The block the bound below is for (relative to the term's first), its
    /// bound (times `mult`) and its last document.
    blk: usize,
    blk_ub: f64,
    blk_last: u32,
}

impl SegmentedIndex {
    /// `search` by block-max MaxScore: equal to it hit for hit and bit for
    /// bit. Not yet the default: on a 50k-document synthetic corpus (one
    /// thread, loaded shared machine) it took 2.5-2.8x the time of the
    /// exhaustive `search` at k = 10, 100 and 1000 (its per-candidate work
    /// costs more than the dense accumulation it saves at that size); §2
    /// measures it at 1M documents and tunes it before switching.
    pub fn search_pruned<S: AsRef<str>>(&self, tokens: &[S], k: usize) -> Result<Vec<SegHit>> {
        let k = k.min(self.n_live());
        let plan = self.plan(tokens)?;
        if plan.q.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k + 1);
        for (si, s) in self.segments.iter().enumerate() {
            self.prune_segment(&plan, si, s, k, &mut heap);
        }
        Ok(heap
            .into_sorted_vec()
            .into_iter()
            .map(|w| SegHit {
                segment: w.segment,
                doc: w.doc,
                score: w.score,
            })
            .collect())
    }

    fn prune_segment<'a>(
        &self,
        plan: &Plan,
        si: usize,
        s: &'a Segment,
        k: usize,
        heap: &mut BinaryHeap<Worst<'a>>,
    ) {
        let data = &*s.data;
        let dv = data.derived();
        let p = self.params;
        let adds = plan.q.len();
        let mut cur: Vec<Cursor> = Vec::new();
        for (ti, qt) in plan.terms.iter().enumerate() {
            let Some(t) = qt.local[si] else { continue };
            let mult = plan.q.iter().filter(|&&i| i == ti).count();
            let (start, end) = (
                dv.indptr[t as usize] as usize,
                dv.indptr[t as usize + 1] as usize,
            );
            if mult == 0 || start == end {
                continue;
            }
            cur.push(Cursor {
                term: ti,
                mult,
                start,
                end,
                pos: start,
                blk0: dv.blk_ptr[t as usize] as usize,
                bound: qt.seg_max[si] as f64 * mult as f64,
                blk: usize::MAX,
                blk_ub: 0.0,
                blk_last: 0,
            });
        }
        // Bound ascending: a prefix is the non-essential terms.
        cur.sort_by(|a, b| a.bound.total_cmp(&b.bound));
        // prefix[j]: the bounds of terms 0..j together.
        let mut prefix = vec![0f64; cur.len() + 1];
        for j in 0..cur.len() {
            prefix[j + 1] = prefix[j] + cur[j].bound;
        }
        let theta = |heap: &BinaryHeap<Worst>| {
            if heap.len() < k {
                f32::NEG_INFINITY
            } else {
                heap.peek().map_or(f32::NEG_INFINITY, |w| w.score)
            }
        };
        let n_terms = cur.len();
        let n_noness = |th: f32| {
            (0..=n_terms)
                .take_while(|&j| !could_reach(prefix[j], adds, plan.base, th))
                .last()
                .unwrap_or(0)
        };
        let mut th = theta(heap);
        let mut ne = n_noness(th);
        // The bound of a cursor's current block (and the block's last document),
        // recomputed only when the cursor enters another block.
        let refresh = |c: &mut Cursor| {
            let rel = (c.pos - c.start) / BLOCK;
            if rel == c.blk {
                return;
            }
            c.blk = rel;
            let j = c.blk0 + rel;
            let qt = &plan.terms[c.term];
            let w = qt.idf
                * p.tfc(
                    dv.blk_max_tf[j] as f64,
                    dv.blk_min_len[j] as f64,
                    plan.avgdl,
                )
                * (1.0 + 1e-9);
            let w = match qt.nonocc {
                Some(b) => (w - b as f64).max(0.0),
                None => w,
            } as f32;
            c.blk_ub = if w.is_nan() {
                f64::INFINITY
            } else {
                w as f64 * c.mult as f64
            };
            let blk_end = (c.start + (rel + 1) * BLOCK).min(c.end);
            c.blk_last = dv.docs[blk_end - 1];
        };
        // For each query term occurrence (canonical order), its cursor.
        let qcur: Vec<Option<usize>> = plan
            .q
            .iter()
            .map(|&i| cur.iter().position(|c| c.term == i))
            .collect();
        while ne < cur.len() {
            // The next candidate: the smallest document under an essential cursor.
            let Some(d) = cur[ne..]
                .iter()
                .filter(|c| c.pos < c.end)
                .map(|c| dv.docs[c.pos])
                .min()
            else {
                break;
            };
            // Block-max bound over every term, and how far it holds.
            let mut upper = 0f64;
            let mut upper_d = 0f64;
            let mut holds_to = u32::MAX;
            for c in cur.iter_mut() {
                c.pos += gallop(&dv.docs[c.pos..c.end], d);
                if c.pos < c.end {
                    refresh(c);
                    upper += c.blk_ub;
                    if dv.docs[c.pos] == d {
                        upper_d += c.blk_ub;
                    }
                    holds_to = holds_to.min(c.blk_last);
                }
            }
            if !could_reach(upper, adds, plan.base, th) {
                // No document in d..=holds_to can enter.
                let next = holds_to.saturating_add(1);
                for c in cur[ne..].iter_mut() {
                    c.pos += gallop(&dv.docs[c.pos..c.end], next);
                }
                if holds_to == u32::MAX {
                    break;
                }
                continue;
            }
            // d itself holds only the terms whose cursor is on it.
            if s.is_live(d) && could_reach(upper_d, adds, plan.base, th) {
                #[cfg(test)]
                SCORED.with(|n| n.set(n.get() + 1));
                let dl = data.lens[d as usize];
                let mut score = 0f32;
                for (&i, &ci) in plan.q.iter().zip(&qcur) {
                    if let Some(c) = ci.map(|ci| &cur[ci]) {
                        if c.pos < c.end && dv.docs[c.pos] == d {
                            score += plan.terms[i].weight(&p, plan.avgdl, dv.tfs[c.pos], dl);
                        }
                    }
                }
                let score = score + plan.base;
                let e = Worst {
                    score,
                    id: data.ids[d as usize].as_bytes(),
                    segment: si as u32,
                    doc: d,
                };
                if heap.len() < k {
                    heap.push(e);
                } else if let Some(mut worst) = heap.peek_mut() {
                    if e < *worst {
                        *worst = e;
                    }
                }
                let t2 = theta(heap);
                if t2 != th {
                    th = t2;
                    ne = n_noness(th);
                }
            }
            for c in cur[ne..].iter_mut() {
                if c.pos < c.end && dv.docs[c.pos] == d {
                    c.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Documents scored in full by `search` on this thread (tests check that pruning happens).
    pub(crate) static SCORED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
