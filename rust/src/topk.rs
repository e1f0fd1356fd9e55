//! Top-k collection with a bounded heap and one deterministic order:
//! score descending, then document index ascending.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub doc: u32,
    pub score: f32,
}

/// `a` ranks before `b`.
#[inline]
pub fn ranks_before(a: &Hit, b: &Hit) -> bool {
    a.score > b.score || (a.score == b.score && a.doc < b.doc)
}

/// Heap entry ordered so that the *worst* hit is the heap's maximum.
#[derive(Clone, Copy)]
struct Worst(Hit);

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
            .then(self.0.doc.cmp(&other.0.doc))
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
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    #[inline]
    pub fn push(&mut self, hit: Hit) {
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if ranks_before(&hit, &worst.0) {
                *worst = Worst(hit);
            }
        }
    }

    /// The score a new hit must beat once k hits are held (ties lose to earlier,
    /// lower-index hits); None while fewer than k are held.
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
            .map(|w| w.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_with_index_tiebreak() {
        let mut t = TopK::new(3);
        for (doc, score) in [(5, 1.0), (1, 2.0), (3, 1.0), (0, 1.0), (9, 3.0)] {
            t.push(Hit { doc, score });
        }
        let got: Vec<u32> = t.into_sorted().iter().map(|h| h.doc).collect();
        assert_eq!(got, vec![9, 1, 0]);
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
        let mut t = TopK::new(17);
        hits.iter().for_each(|h| t.push(*h));
        let mut sorted = hits.clone();
        sorted.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
        assert_eq!(t.into_sorted(), sorted[..17].to_vec());
    }
}
