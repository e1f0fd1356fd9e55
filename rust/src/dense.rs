//! Exact dense retrieval: the top-k documents of each query by dot product of
//! float32 embeddings (cosine when rows are unit length: [`normalize_rows`]), with
//! the project's tie rule (score descending, compared as float32 in IEEE total
//! order, then document id descending by UTF-8 bytes).
//!
//! Scores are computed a block of queries against a tile of documents at a time
//! by a single-precision matrix product (`matrixmultiply::sgemm`), each tile's
//! scores folded into per-query bounded heaps; tiles run in parallel (rayon) and
//! their heaps are merged, so the result is exact and independent of scheduling.
//!
//! Past the ~450-line guide only by its unit tests, kept beside the code they check.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Queries scored together by one matrix product.
const QUERY_BLOCK: usize = 256;
/// Documents per tile (one parallel work item).
const DOC_TILE: usize = 2048;

/// A `Vec` of `n` copies of `v`, or OutOfMemory naming `what`.
fn checked_vec<T: Clone>(n: usize, v: T, what: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory(format!("{what} ({n} values)")))?;
    out.resize(n, v);
    Ok(out)
}

/// Scales every row of `data` (rows of `dim` values) to unit L2 norm, the norm
/// computed in float64; a zero row stays zero.
pub fn normalize_rows(data: &mut [f32], dim: usize) {
    if dim == 0 {
        return;
    }
    for row in data.chunks_exact_mut(dim) {
        let norm = row
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for x in row.iter_mut() {
                *x = (f64::from(*x) / norm) as f32;
            }
        }
    }
}

/// Checks that `data` holds whole rows of `dim` finite values; `what(i)` names row i.
fn check_matrix(data: &[f32], dim: usize, what: &dyn Fn(usize) -> String) -> Result<usize> {
    if dim == 0 {
        return Err(Error::invalid(
            "embeddings must have at least one dimension",
        ));
    }
    if !data.len().is_multiple_of(dim) {
        return Err(Error::invalid(format!(
            "{} values do not make rows of {dim}",
            data.len()
        )));
    }
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(format!(
            "{}: value {} (column {}) is not finite",
            what(i / dim),
            data[i],
            i % dim
        )));
    }
    Ok(data.len() / dim)
}

/// A scored document: its score and the rank of its id in ascending byte order.
#[derive(Clone, Copy, Debug)]
struct Cand {
    score: f32,
    rank: u32,
    doc: u32,
}

/// `a` ranks before `b`: score descending (total order), then id descending.
#[inline]
fn better(a: &Cand, b: &Cand) -> bool {
    match a.score.total_cmp(&b.score) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => a.rank > b.rank,
    }
}

/// Heap entry whose maximum is the worst candidate.
#[derive(Clone, Copy)]
struct Worst(Cand);

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
            .then(other.0.rank.cmp(&self.0.rank))
    }
}

#[derive(Clone)]
struct Heap {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl Heap {
    fn new(k: usize) -> Self {
        Heap {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    #[inline]
    fn push(&mut self, c: Cand) {
        if self.heap.len() < self.k {
            self.heap.push(Worst(c));
        } else if let Some(mut top) = self.heap.peek_mut() {
            if better(&c, &top.0) {
                *top = Worst(c);
            }
        }
    }

    /// The score below which nothing enters (None while not full).
    #[inline]
    fn floor(&self) -> Option<f32> {
        if self.heap.len() < self.k {
            None
        } else {
            self.heap.peek().map(|w| w.0.score)
        }
    }
}

/// Document embeddings ready for exact search: rows of `dim` finite float32 values
/// and, per document, the rank of its id in ascending UTF-8 byte order.
pub struct DenseIndex {
    docs: Vec<f32>,
    dim: usize,
    ranks: Vec<u32>,
}

/// Search results, row-major `(n_queries, k)`: document positions and scores,
/// each row best first.
#[derive(Debug, PartialEq)]
pub struct Hits {
    pub k: usize,
    pub docs: Vec<u32>,
    pub scores: Vec<f32>,
}

impl DenseIndex {
    /// `docs`: `ids.len()` rows of `dim` values (the index takes them as given:
    /// normalise first for cosine). Errors: no documents, a ragged or non-finite
    /// matrix, duplicate ids, more than u32::MAX documents.
    pub fn new(docs: Vec<f32>, dim: usize, ids: &[&str]) -> Result<Self> {
        let n = check_matrix(&docs, dim, &|i| match ids.get(i) {
            Some(id) => format!("document {id:?}"),
            None => format!("document row {i}"),
        })?;
        if n != ids.len() {
            return Err(Error::invalid(format!(
                "{n} embedding rows but {} document ids",
                ids.len()
            )));
        }
        if n == 0 {
            return Err(Error::invalid("no document embeddings"));
        }
        if n > u32::MAX as usize {
            return Err(Error::invalid(format!(
                "{n} documents: at most {} fit",
                u32::MAX
            )));
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.par_sort_unstable_by(|&a, &b| {
            ids[a as usize].as_bytes().cmp(ids[b as usize].as_bytes())
        });
        if let Some(w) = order
            .windows(2)
            .find(|w| ids[w[0] as usize] == ids[w[1] as usize])
        {
            return Err(Error::invalid(format!(
                "document id {:?} appears twice",
                ids[w[0] as usize]
            )));
        }
        let mut ranks = checked_vec(n, 0u32, "document ranks")?;
        for (r, &d) in order.iter().enumerate() {
            ranks[d as usize] = r as u32;
        }
        Ok(DenseIndex { docs, dim, ranks })
    }

    pub fn n_docs(&self) -> usize {
        self.ranks.len()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The top `min(k, n_docs)` documents of each query (rows of `dim` values) by dot
    /// product. Errors: k = 0, a ragged or non-finite query matrix, a result that
    /// does not fit in memory.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Hits> {
        if k == 0 {
            return Err(Error::invalid("k must be >= 1"));
        }
        let dim = self.dim;
        if !queries.len().is_multiple_of(dim) {
            return Err(Error::invalid(format!(
                "queries have {} values, not rows of the index's {dim} dimensions",
                queries.len()
            )));
        }
        let nq = check_matrix(queries, dim, &|i| format!("query row {i}"))?;
        let k = k.min(self.n_docs());
        let total = nq
            .checked_mul(k)
            .ok_or_else(|| Error::OutOfMemory(format!("{nq} queries x {k} results")))?;
        let mut docs_out = checked_vec(total, 0u32, "search results")?;
        let mut scores_out = checked_vec(total, 0f32, "search scores")?;
        for (b, block) in queries.chunks(QUERY_BLOCK * dim).enumerate() {
            let heaps = self.search_block(block, k);
            for (j, heap) in heaps.into_iter().enumerate() {
                let mut v: Vec<Cand> = heap.heap.into_iter().map(|w| w.0).collect();
                v.sort_unstable_by(|a, b| {
                    if better(a, b) {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                });
                let row = (b * QUERY_BLOCK + j) * k;
                for (i, c) in v.iter().enumerate() {
                    docs_out[row + i] = c.doc;
                    scores_out[row + i] = c.score;
                }
            }
        }
        Ok(Hits {
            k,
            docs: docs_out,
            scores: scores_out,
        })
    }

    /// One block of queries against every document tile, in parallel.
    fn search_block(&self, block: &[f32], k: usize) -> Vec<Heap> {
        let dim = self.dim;
        let m = block.len() / dim;
        let empty = || (vec![Heap::new(k); m], Vec::<f32>::new());
        self.docs
            .par_chunks(DOC_TILE * dim)
            .enumerate()
            .fold(empty, |(mut heaps, mut c), (t, tile)| {
                let n = tile.len() / dim;
                c.resize(m * n, 0.0);
                // C (m x n) = Q (m x dim) . T^T, T being the tile's n rows of dim.
                // SAFETY: the pointers cover exactly the strides given: Q is m rows of
                // dim contiguous values, T n rows of dim, C m rows of n.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        dim,
                        n,
                        1.0,
                        block.as_ptr(),
                        dim as isize,
                        1,
                        tile.as_ptr(),
                        1,
                        dim as isize,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
                let base = t * DOC_TILE;
                for (q, heap) in heaps.iter_mut().enumerate() {
                    let row = &c[q * n..(q + 1) * n];
                    let mut floor = heap.floor();
                    for (i, &s) in row.iter().enumerate() {
                        if let Some(f) = floor {
                            if s < f {
                                continue;
                            }
                        }
                        let doc = base + i;
                        heap.push(Cand {
                            score: s,
                            rank: self.ranks[doc],
                            doc: doc as u32,
                        });
                        floor = heap.floor();
                    }
                }
                (heaps, c)
            })
            .map(|(heaps, _)| heaps)
            .reduce(
                || vec![Heap::new(k); m],
                |mut a, b| {
                    for (ha, hb) in a.iter_mut().zip(b) {
                        for w in hb.heap {
                            ha.push(w.0);
                        }
                    }
                    a
                },
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: every score in float64 (exact for the small integers used), the
    /// tie rule by sorting.
    fn brute(docs: &[f32], ids: &[&str], queries: &[f32], dim: usize, k: usize) -> Vec<Vec<usize>> {
        let n = ids.len();
        queries
            .chunks(dim)
            .map(|q| {
                let mut scored: Vec<(f64, usize)> = (0..n)
                    .map(|d| {
                        let s = (0..dim)
                            .map(|j| f64::from(q[j]) * f64::from(docs[d * dim + j]))
                            .sum();
                        (s, d)
                    })
                    .collect();
                scored.sort_by(|a, b| {
                    b.0.total_cmp(&a.0)
                        .then_with(|| ids[b.1].as_bytes().cmp(ids[a.1].as_bytes()))
                });
                scored.iter().take(k).map(|x| x.1).collect()
            })
            .collect()
    }

    /// A tiny deterministic generator (no dependency): values in {-2, ..., 2}.
    fn small_ints(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) % 5) as f32 - 2.0
            })
            .collect()
    }

    #[test]
    fn equals_brute_force_with_ties_across_tiles() {
        let dim = 3;
        // More documents than one tile, few distinct scores: ties everywhere, and
        // the best documents spread over tiles.
        let n = DOC_TILE * 2 + 37;
        let docs = small_ints(n * dim, 1);
        let names: Vec<String> = (0..n).map(|i| format!("d{}", (i * 7919) % 10007)).collect();
        let ids: Vec<&str> = names.iter().map(String::as_str).collect();
        let queries = small_ints(5 * dim, 2);
        let index = DenseIndex::new(docs.clone(), dim, &ids).unwrap();
        for k in [1, 10, 100, n, n + 5] {
            let hits = index.search(&queries, k).unwrap();
            let want = brute(&docs, &ids, &queries, dim, k);
            let kk = k.min(n);
            assert_eq!(hits.k, kk);
            for (q, w) in want.iter().enumerate() {
                let got: Vec<usize> = hits.docs[q * kk..(q + 1) * kk]
                    .iter()
                    .map(|&d| d as usize)
                    .collect();
                assert_eq!(&got, w, "query {q}, k {k}");
            }
        }
    }

    #[test]
    fn more_queries_than_one_block() {
        let dim = 4;
        let n = 50;
        let docs = small_ints(n * dim, 3);
        let names: Vec<String> = (0..n).map(|i| format!("doc-{i:03}")).collect();
        let ids: Vec<&str> = names.iter().map(String::as_str).collect();
        let nq = QUERY_BLOCK + 3;
        let queries = small_ints(nq * dim, 4);
        let hits = DenseIndex::new(docs.clone(), dim, &ids)
            .unwrap()
            .search(&queries, 7)
            .unwrap();
        let want = brute(&docs, &ids, &queries, dim, 7);
        for (q, w) in want.iter().enumerate() {
            let got: Vec<usize> = hits.docs[q * 7..(q + 1) * 7]
                .iter()
                .map(|&d| d as usize)
                .collect();
            assert_eq!(&got, w);
        }
    }

    #[test]
    fn tie_on_score_goes_to_greater_id_bytes() {
        // Same vector three times: "b" > "a" > "B" in bytes.
        let docs = vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let index = DenseIndex::new(docs, 2, &["a", "B", "b"]).unwrap();
        let hits = index.search(&[1.0, 0.0], 3).unwrap();
        assert_eq!(hits.docs, vec![2, 0, 1]);
        assert_eq!(hits.scores, vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn normalize_rows_unit_length_and_zero_rows() {
        let mut m = vec![3.0, 4.0, 0.0, 0.0];
        normalize_rows(&mut m, 2);
        assert_eq!(m, vec![0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(DenseIndex::new(vec![], 2, &[]).is_err());
        assert!(DenseIndex::new(vec![1.0, 2.0, 3.0], 2, &["a", "b"]).is_err());
        let err = DenseIndex::new(vec![1.0, f32::NAN], 1, &["a", "b"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("\"b\""), "{err}");
        assert!(DenseIndex::new(vec![1.0, 2.0], 1, &["a", "a"]).is_err());
        let index = DenseIndex::new(vec![1.0, 2.0], 1, &["a", "b"]).unwrap();
        assert!(index.search(&[1.0], 0).is_err());
        assert!(index.search(&[f32::INFINITY], 1).is_err());
        let index2 = DenseIndex::new(vec![1.0, 2.0, 3.0, 4.0], 2, &["a", "b"]).unwrap();
        assert!(index2.search(&[1.0, 2.0, 3.0], 1).is_err());
        assert!(index2.search(&[], 1).unwrap().docs.is_empty());
    }
}
