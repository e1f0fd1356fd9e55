//! Top-k collection with a bounded heap and the project's one ranking rule,
//! trec_eval's: score descending, then document id descending, compared as
//! bytes. pytrec_eval and trec_eval therefore score exactly the ranking a user
//! sees from `search`, `search_batch` and the run files written from them.
//!
//! The collector never sees ids: each document carries a *tie key*, its
//! position when the ids are sorted by bytes in descending order (see
//! `TieKeys`), so ties cost an integer comparison. A lower key ranks first.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub doc: u32,
    pub score: f32,
}

/// A hit with its tie key.
#[derive(Clone, Copy, Debug)]
struct Entry {
    score: f32,
    key: u32,
    doc: u32,
}

/// `(score_a, key_a)` ranks before `(score_b, key_b)`.
#[inline]
pub fn ranks_before(score_a: f32, key_a: u32, score_b: f32, key_b: u32) -> bool {
    score_a > score_b || (score_a == score_b && key_a < key_b)
}

/// Heap entry ordered so that the *worst* hit is the heap's maximum.
#[derive(Clone, Copy)]
struct Worst(Entry);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then(self.0.key.cmp(&other.0.key))
    }
}

/// Keeps the `k` best hits seen so far.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1)),
        }
    }

    /// Offers document `doc` with `score` and tie key `key`.
    #[inline]
    pub fn push(&mut self, doc: u32, score: f32, key: u32) {
        let e = Entry { score, key, doc };
        if self.heap.len() < self.k {
            self.heap.push(Worst(e));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if ranks_before(score, key, worst.0.score, worst.0.key) {
                *worst = Worst(e);
            }
        }
    }

    /// The score of the k-th best hit once k hits are held, None before. A new
    /// hit can enter only with a score >= this one (on equality, by its key).
    #[inline]
    pub fn threshold(&self) -> Option<f32> {
        if self.heap.len() < self.k {
            None
        } else {
            self.heap.peek().map(|w| w.0.score)
        }
    }

    /// The hits, best first.
    pub fn into_sorted(self) -> Vec<Hit> {
        // Ascending in `Worst` order is best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|w| Hit {
                doc: w.0.doc,
                score: w.0.score,
            })
            .collect()
    }
}

/// Per-document tie keys: `key[d]` is the rank of document d's id among all
/// ids sorted by bytes, descending (key 0: the largest id). Built once per
/// index (at build and at load); checks that the ids are unique.
#[derive(Clone, Debug, Default)]
pub struct TieKeys(Vec<u32>);

impl TieKeys {
    pub fn from_ids<S: AsRef<str>>(ids: &[S]) -> Result<TieKeys> {
        if ids.len() > u32::MAX as usize {
            return Err(Error::invalid(
                "a corpus holds at most 4,294,967,295 documents",
            ));
        }
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            ids[b as usize]
                .as_ref()
                .as_bytes()
                .cmp(ids[a as usize].as_ref().as_bytes())
        });
        if let Some(w) = order
            .windows(2)
            .find(|w| ids[w[0] as usize].as_ref() == ids[w[1] as usize].as_ref())
        {
            let (a, b) = (w[0].min(w[1]), w[0].max(w[1]));
            return Err(Error::invalid(format!(
                "duplicate document id {:?} (documents {a} and {b})",
                ids[a as usize].as_ref()
            )));
        }
        let mut key = vec![0u32; ids.len()];
        for (rank, &d) in order.iter().enumerate() {
            key[d as usize] = rank as u32;
        }
        Ok(TieKeys(key))
    }

    /// The keys of documents whose ids are their positions written in decimal
    /// ("0", "1", ...), the ids a corpus gets when none are given: the numbers
    /// are walked in string order (0, 1, 10, 100, 101, ..., 11, ...), in O(n).
    pub fn positional(n: usize) -> Result<TieKeys> {
        if n > u32::MAX as usize {
            return Err(Error::invalid(
                "a corpus holds at most 4,294,967,295 documents",
            ));
        }
        let mut key = vec![0u32; n];
        if n == 0 {
            return Ok(TieKeys(key));
        }
        // "0" is the smallest id, so the last in descending order.
        let last = (n - 1) as u64;
        key[0] = last as u32;
        let mut cur: u64 = 1;
        for asc in 1..=last {
            key[cur as usize] = (last - asc) as u32;
            if cur * 10 <= last {
                cur *= 10;
            } else {
                if cur >= last {
                    cur /= 10;
                }
                cur += 1;
                while cur.is_multiple_of(10) {
                    cur /= 10;
                }
            }
        }
        Ok(TieKeys(key))
    }

    #[inline]
    pub fn key(&self, doc: u32) -> u32 {
        self.0[doc as usize]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A `rows` x `cols` table filled with `fill`, or a MemoryError-style error when
/// it cannot be allocated (never an abort): result tables of a batch search are
/// allocated with this before any work starts.
pub fn try_table<T: Clone>(rows: usize, cols: usize, fill: T, what: &str) -> Result<Vec<T>> {
    let too_big = || {
        Error::OutOfMemory(format!(
            "{what} ({rows} x {cols} results): ask for a smaller k or fewer queries per call"
        ))
    };
    let n = rows.checked_mul(cols).ok_or_else(too_big)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| too_big())?;
    v.resize(n, fill);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_larger_id_by_bytes() {
        // ids by position: "b", "a10", "a9", "a2", "c"; bytes descending: c, b, a9, a2, a10
        let keys = TieKeys::from_ids(&["b", "a10", "a9", "a2", "c"]).unwrap();
        let mut t = TopK::new(4);
        for (doc, score) in [(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 0.5)] {
            t.push(doc, score, keys.key(doc));
        }
        let got: Vec<u32> = t.into_sorted().iter().map(|h| h.doc).collect();
        assert_eq!(got, vec![0, 2, 3, 1]);
    }

    #[test]
    fn positional_ids_compare_as_strings() {
        // "9" > "10" > "1" > "0" as bytes
        let keys = TieKeys::positional(11).unwrap();
        let mut t = TopK::new(3);
        for doc in [0, 1, 9, 10] {
            t.push(doc, 2.0, keys.key(doc));
        }
        let got: Vec<u32> = t.into_sorted().iter().map(|h| h.doc).collect();
        assert_eq!(got, vec![9, 10, 1]);
    }

    #[test]
    fn positional_keys_equal_keys_of_decimal_ids() {
        for n in [0usize, 1, 2, 9, 10, 11, 99, 100, 101, 1000, 1234, 10001] {
            let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            assert_eq!(
                TieKeys::positional(n).unwrap().0,
                TieKeys::from_ids(&ids).unwrap().0,
                "n = {n}"
            );
        }
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let e = TieKeys::from_ids(&["x", "y", "x"]).unwrap_err();
        assert!(e.to_string().contains("duplicate document id \"x\""), "{e}");
    }

    #[test]
    fn matches_full_sort_on_random_input() {
        let mut x: u64 = 42;
        let mut hits = Vec::new();
        for doc in 0..500u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            hits.push(Hit {
                doc,
                score: ((x >> 60) as f32) / 4.0,
            });
        }
        let ids: Vec<String> = (0..500)
            .map(|i| format!("d{}", (i * 7919) % 1000))
            .collect();
        let keys = TieKeys::from_ids(&ids).unwrap();
        let mut t = TopK::new(17);
        hits.iter()
            .for_each(|h| t.push(h.doc, h.score, keys.key(h.doc)));
        let mut sorted = hits.clone();
        sorted.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(ids[b.doc as usize].cmp(&ids[a.doc as usize]))
        });
        assert_eq!(t.into_sorted(), sorted[..17].to_vec());
    }

    #[test]
    fn an_impossible_table_is_an_error_not_an_abort() {
        assert!(matches!(
            try_table(1 << 40, 1 << 30, 0f32, "t"),
            Err(Error::OutOfMemory(_))
        ));
        assert!(matches!(
            try_table(usize::MAX, 2, 0u8, "t"),
            Err(Error::OutOfMemory(_))
        ));
        assert_eq!(try_table(2, 3, 1u8, "t").unwrap(), vec![1; 6]);
    }
}
