//! The BM25 index: postings with precomputed per-(term, document) weights
//! ("eager scoring", as bm25s does), so a query is a sum of a few postings
//! lists followed by a top-k collection.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::scoring::Params;
use crate::tokenizer::Tokenizer;
use crate::topk::{Hit, TopK};

/// Documents are counted in chunks of this many, in parallel; chunking by
/// document count (not thread count) keeps term ids identical on any machine.
const CHUNK: usize = 16384;

pub struct Bm25Index {
    pub(crate) params: Params,
    pub(crate) vocab: FxHashMap<String, u32>,
    /// Postings of term t are `docs[indptr[t]..indptr[t + 1]]`, ascending.
    pub(crate) indptr: Vec<u64>,
    pub(crate) docs: Vec<u32>,
    pub(crate) weights: Vec<f32>,
    /// Per-term score of a document *without* the term (BM25L, BM25+); empty otherwise.
    /// Postings then hold `weight - nonoccurrence` so that a query adds the sum back once.
    pub(crate) nonocc: Vec<f32>,
    pub(crate) n_docs: usize,
    pub(crate) avgdl: f64,
    /// Whether every posting of term t has a weight > 0 (false when its idf is 0,
    /// as Robertson's and ATIRE's can be); lets `top_k` tell matches by score alone.
    pub(crate) positive: Vec<bool>,
    /// The largest weight in each term's postings: the most it adds to a score.
    pub(crate) max_w: Vec<f32>,
}

/// One chunk of documents counted with a chunk-local vocabulary.
struct ChunkCounts {
    terms: Vec<String>,
    /// (local term id, term frequency), document after document.
    entries: Vec<(u32, u32)>,
    /// Document d of the chunk owns `entries[ends[d-1]..ends[d]]`.
    ends: Vec<usize>,
    lens: Vec<u32>,
}

fn count_chunk<T, F>(docs: &[T], tokens_of: &F) -> ChunkCounts
where
    F: Fn(&T, &mut dyn FnMut(&str)),
{
    let mut local: FxHashMap<String, u32> = FxHashMap::default();
    let mut entries = Vec::new();
    let mut ends = Vec::with_capacity(docs.len());
    let mut lens = Vec::with_capacity(docs.len());
    let mut ids: Vec<u32> = Vec::new();
    for doc in docs {
        ids.clear();
        tokens_of(doc, &mut |tok: &str| {
            let id = match local.get(tok) {
                Some(&id) => id,
                None => {
                    let id = local.len() as u32;
                    local.insert(tok.to_string(), id);
                    id
                }
            };
            ids.push(id);
        });
        lens.push(ids.len() as u32);
        ids.sort_unstable();
        let mut i = 0;
        while i < ids.len() {
            let mut j = i + 1;
            while j < ids.len() && ids[j] == ids[i] {
                j += 1;
            }
            entries.push((ids[i], (j - i) as u32));
            i = j;
        }
        ends.push(entries.len());
    }
    // The chunk's terms in local-id order, moved out of the map (no copies).
    let mut terms = vec![String::new(); local.len()];
    for (t, id) in local {
        terms[id as usize] = t;
    }
    ChunkCounts {
        terms,
        entries,
        ends,
        lens,
    }
}

impl Bm25Index {
    /// Builds an index from raw texts, tokenised with `tokenizer`.
    pub fn from_texts<S: AsRef<str> + Sync>(
        texts: &[S],
        tokenizer: &Tokenizer,
        params: Params,
    ) -> Result<Self> {
        Self::build(texts, params, &|t: &S, emit: &mut dyn FnMut(&str)| {
            tokenizer.for_each_token(t.as_ref(), |tok| emit(tok))
        })
    }

    /// Builds an index from pre-tokenised documents.
    pub fn from_tokens<D: AsRef<[S]> + Sync, S: AsRef<str>>(
        docs: &[D],
        params: Params,
    ) -> Result<Self> {
        Self::build(docs, params, &|d: &D, emit: &mut dyn FnMut(&str)| {
            d.as_ref().iter().for_each(|t| emit(t.as_ref()))
        })
    }

    fn build<T: Sync, F>(docs: &[T], params: Params, tokens_of: &F) -> Result<Self>
    where
        F: Fn(&T, &mut dyn FnMut(&str)) + Sync,
    {
        if docs.is_empty() {
            return Err(Error::invalid("cannot index an empty corpus"));
        }
        if docs.len() > u32::MAX as usize {
            return Err(Error::invalid(
                "a corpus holds at most 4,294,967,295 documents",
            ));
        }
        let mut chunks: Vec<ChunkCounts> = docs
            .par_chunks(CHUNK)
            .map(|c| count_chunk(c, tokens_of))
            .collect();

        // Merge the chunk vocabularies in chunk order: term ids follow first appearance.
        // Each term string moves into the vocabulary once; later chunks only look up.
        let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
        let remaps: Vec<Vec<u32>> = chunks
            .iter_mut()
            .map(|c| {
                std::mem::take(&mut c.terms)
                    .into_iter()
                    .map(|t| match vocab.get(&t) {
                        Some(&id) => id,
                        None => {
                            let id = vocab.len() as u32;
                            vocab.insert(t, id);
                            id
                        }
                    })
                    .collect()
            })
            .collect();

        let n_docs = docs.len();
        let n_terms = vocab.len();
        let total_len: u64 = chunks
            .iter()
            .flat_map(|c| c.lens.iter())
            .map(|&l| l as u64)
            .sum();
        let avgdl = total_len as f64 / n_docs as f64;

        let mut df = vec![0u64; n_terms];
        for (c, remap) in chunks.iter().zip(&remaps) {
            for &(t, _) in &c.entries {
                df[remap[t as usize] as usize] += 1;
            }
        }
        let mut indptr = vec![0u64; n_terms + 1];
        for t in 0..n_terms {
            indptr[t + 1] = indptr[t] + df[t];
        }
        let n = n_docs as f64;
        let idf: Vec<f64> = df.iter().map(|&d| params.idf(d as f64, n)).collect();
        let nonocc: Vec<f32> = if params.method.has_nonoccurrence() {
            idf.iter()
                .map(|&i| (i * params.tfc(0.0, avgdl, avgdl)) as f32)
                .collect()
        } else {
            Vec::new()
        };

        let n_post = indptr[n_terms] as usize;
        let mut post_docs = vec![0u32; n_post];
        let mut weights = vec![0f32; n_post];
        let mut cursor: Vec<u64> = indptr[..n_terms].to_vec();
        let mut doc = 0u32;
        for (c, remap) in chunks.iter().zip(&remaps) {
            let mut start = 0;
            for (d, &end) in c.ends.iter().enumerate() {
                let dl = c.lens[d] as f64;
                for &(lt, tf) in &c.entries[start..end] {
                    let t = remap[lt as usize] as usize;
                    let mut w = idf[t] * params.tfc(tf as f64, dl, avgdl);
                    if let Some(&base) = nonocc.get(t) {
                        w -= base as f64;
                    }
                    let pos = cursor[t] as usize;
                    cursor[t] += 1;
                    post_docs[pos] = doc;
                    weights[pos] = w as f32;
                }
                start = end;
                doc += 1;
            }
        }
        Ok(Bm25Index::from_parts(
            params, vocab, indptr, post_docs, weights, nonocc, n_docs, avgdl,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        params: Params,
        vocab: FxHashMap<String, u32>,
        indptr: Vec<u64>,
        docs: Vec<u32>,
        weights: Vec<f32>,
        nonocc: Vec<f32>,
        n_docs: usize,
        avgdl: f64,
    ) -> Self {
        let positive = indptr
            .windows(2)
            .map(|w| {
                weights[w[0] as usize..w[1] as usize]
                    .iter()
                    .all(|&x| x > 0.0)
            })
            .collect();
        let max_w = indptr
            .windows(2)
            .map(|w| {
                weights[w[0] as usize..w[1] as usize]
                    .iter()
                    .fold(0f32, |m, &x| m.max(x))
            })
            .collect();
        Bm25Index {
            params,
            vocab,
            indptr,
            docs,
            weights,
            nonocc,
            n_docs,
            avgdl,
            positive,
            max_w,
        }
    }

    pub fn n_docs(&self) -> usize {
        self.n_docs
    }

    pub fn n_terms(&self) -> usize {
        self.vocab.len()
    }

    /// The vocabulary in term-id order.
    pub fn terms(&self) -> Vec<&str> {
        let mut terms = vec![""; self.vocab.len()];
        for (t, &id) in &self.vocab {
            terms[id as usize] = t.as_str();
        }
        terms
    }

    pub fn n_postings(&self) -> usize {
        self.docs.len()
    }

    pub fn params(&self) -> Params {
        self.params
    }

    pub fn avgdl(&self) -> f64 {
        self.avgdl
    }

    /// Bytes held by the index: its arrays, and the vocabulary's hash table
    /// (slots and control bytes at its capacity) and term strings.
    pub fn memory_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(String, u32)>() + 1;
        let vocab =
            self.vocab.capacity() * slot + self.vocab.keys().map(|t| t.len()).sum::<usize>();
        let arrays = self.indptr.len() * 8
            + self.max_w.len() * 4
            + self.positive.len()
            + self.nonocc.len() * 4
            + self.docs.len() * 4
            + self.weights.len() * 4;
        arrays + vocab
    }

    /// Term ids of the query's tokens that the index knows, duplicates kept
    /// (a repeated query term counts as often as it appears, as in bm25s).
    pub fn term_ids<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<u32> {
        tokens
            .iter()
            .filter_map(|t| self.vocab.get(t.as_ref()).copied())
            .collect()
    }

    /// Score every document gets from the query terms it lacks (0 but for BM25L/BM25+).
    fn base_score(&self, q: &[u32]) -> f32 {
        if self.nonocc.is_empty() {
            0.0
        } else {
            q.iter().map(|&t| self.nonocc[t as usize]).sum()
        }
    }

    fn postings(&self, t: u32) -> (&[u32], &[f32]) {
        let (s, e) = (
            self.indptr[t as usize] as usize,
            self.indptr[t as usize + 1] as usize,
        );
        (&self.docs[s..e], &self.weights[s..e])
    }

    /// The order in which a query's terms are summed, the same on every path so
    /// that `scores`, `top_k` and the pruned search give bit-identical scores:
    /// highest upper bound first (rare terms), then term id. Repeats stay.
    fn canonical(&self, q: &[u32]) -> Vec<u32> {
        let mut c = q.to_vec();
        c.sort_unstable_by(|&a, &b| {
            self.max_w[b as usize]
                .total_cmp(&self.max_w[a as usize])
                .then(a.cmp(&b))
        });
        c
    }

    /// The score of every document, in index order.
    pub fn scores(&self, q: &[u32]) -> Vec<f32> {
        let q = self.canonical(q);
        let mut acc = vec![0f32; self.n_docs];
        for &t in &q {
            let (docs, ws) = self.postings(t);
            for (&d, &w) in docs.iter().zip(ws) {
                acc[d as usize] += w;
            }
        }
        let base = self.base_score(&q);
        if base != 0.0 {
            acc.iter_mut().for_each(|s| *s += base);
        }
        acc
    }

    /// The `k` best documents among those holding at least one query term:
    /// score descending, then document index ascending.
    pub fn top_k(&self, q: &[u32], k: usize, scratch: &mut Scratch) -> Vec<Hit> {
        // No more hits than documents: a huge k must not become a huge allocation.
        let k = k.min(self.n_docs);
        let q = self.canonical(q);
        if !q.iter().all(|&t| self.positive[t as usize]) {
            return self.top_k_exhaustive(&q, k, scratch);
        }
        // A query whose rarest term already covers much of the corpus has nothing
        // to prune: a dense scan beats bookkeeping per document.
        match q.first() {
            Some(&t) if self.df(t) * 16 < self.n_docs => self.top_k_maxscore(&q, k, scratch),
            _ => self.top_k_dense(&q, k, scratch),
        }
    }

    fn df(&self, t: u32) -> usize {
        (self.indptr[t as usize + 1] - self.indptr[t as usize]) as usize
    }

    /// Accumulates into a dense array and scans it in document order, so a
    /// document ties with a held one only by losing (it has the higher index).
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
        Self::scan_dense(acc, self.base_score(q), k)
    }

    /// The top k of a dense accumulator (every weight > 0, so a document matches
    /// exactly when its entry is > 0), scanned in document order so that a
    /// document ties with a held one only by losing. Leaves `acc` all zero.
    fn scan_dense(acc: &mut [f32], base: f32, k: usize) -> Vec<Hit> {
        let mut top = TopK::new(k);
        let mut threshold = f32::NEG_INFINITY;
        const BLOCK: usize = 64;
        for (b, block) in acc.chunks_mut(BLOCK).enumerate() {
            // A block whose best cannot enter is skipped whole. Entries are >= 0,
            // and non-negative floats order like their bit patterns: an integer
            // max, which vectorises where a float max would not.
            let best = f32::from_bits(block.iter().map(|x| x.to_bits()).max().unwrap_or(0));
            if best > 0.0 && best + base > threshold {
                for (j, s) in block.iter().enumerate() {
                    // Every weight is > 0 here, so s > 0 exactly when the document matches.
                    if *s > 0.0 && *s + base > threshold {
                        top.push(Hit {
                            doc: (b * BLOCK + j) as u32,
                            score: *s + base,
                        });
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
                top.push(Hit {
                    doc: i as u32,
                    score: s,
                });
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
            let rest = safe_upper(remaining[i + 1]);
            if n_touched >= k
                && i + 1 < q.len()
                && volume_after[i + 1] > n_touched
                && remaining[0] - remaining[i + 1] > rest
            {
                let seen = touched[..n_touched].iter().map(|&d| acc[d as usize]);
                theta = Self::kth_best(seen, k).unwrap_or(f32::NEG_INFINITY);
                // Strictly below theta, with room for rounding: an unseen document
                // could not even tie with the k-th best.
                if rest < theta as f64 {
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
        let base = self.base_score(q);
        if !tracking {
            return Self::scan_dense(acc, base, k);
        }
        let touched = &touched[..n_touched];
        let mut top = TopK::new(k);
        if let Some(stop) = stop {
            // Candidates that could still reach theta, in document order.
            let rest = remaining[stop];
            let mut cands: Vec<u32> = touched
                .iter()
                .copied()
                .filter(|&d| safe_upper(acc[d as usize] as f64 + rest) >= theta as f64)
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
                    let rest = remaining[j + 1];
                    theta =
                        Self::kth_best(cands.iter().map(|&d| acc[d as usize]), k).unwrap_or(theta);
                    cands.retain(|&d| safe_upper(acc[d as usize] as f64 + rest) >= theta as f64);
                }
            }
            for &d in &cands {
                top.push(Hit {
                    doc: d,
                    score: acc[d as usize] + base,
                });
            }
        } else {
            let mut threshold = f32::NEG_INFINITY;
            for &d in touched {
                let s = acc[d as usize] + base;
                if s >= threshold {
                    top.push(Hit { doc: d, score: s });
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
            top.push(Hit {
                doc: d,
                score: acc[d as usize] + base,
            });
        }
        top.into_sorted()
    }

    /// The exact scores of the given documents (bit-identical to `scores`), by
    /// binary search in each query term's postings.
    pub fn score_docs(&self, q: &[u32], docs: &[u32]) -> Vec<f32> {
        let q = self.canonical(q);
        let base = self.base_score(&q);
        docs.iter()
            .map(|&d| {
                let mut s = 0f32;
                for &t in &q {
                    let (pd, pw) = self.postings(t);
                    if let Ok(i) = pd.binary_search(&d) {
                        s += pw[i];
                    }
                }
                s + base
            })
            .collect()
    }

    pub fn search(&self, q: &[u32], k: usize) -> Vec<Hit> {
        self.top_k(q, k, &mut Scratch::default())
    }

    /// Top-k for many queries at once, in parallel on the current rayon pool.
    pub fn search_batch(&self, queries: &[Vec<u32>], k: usize) -> Vec<Vec<Hit>> {
        queries
            .par_iter()
            .map_init(Scratch::default, |s, q| self.top_k(q, k, s))
            .collect()
    }
}

/// An upper bound with room for float rounding in the sums it bounds.
#[inline]
fn safe_upper(x: f64) -> f64 {
    x * (1.0 + 1e-5) + 1e-6
}

/// The position of the first element >= `target` in the ascending `docs`,
/// found by exponential then binary search (cheap when it is near the front).
#[inline]
fn gallop(docs: &[u32], target: u32) -> usize {
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
mod tests {
    use super::*;

    pub(super) static PRUNED: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);
    use crate::scoring::Method;

    fn corpus() -> Vec<Vec<&'static str>> {
        vec![
            vec!["a", "cat", "sat"],
            vec!["a", "dog", "sat", "sat"],
            vec!["the", "cat", "and", "the", "dog"],
            vec!["nothing", "here"],
        ]
    }

    fn brute(docs: &[Vec<&str>], q: &[&str], p: Params) -> Vec<f64> {
        let n = docs.len() as f64;
        let avgdl = docs.iter().map(|d| d.len()).sum::<usize>() as f64 / n;
        docs.iter()
            .map(|d| {
                q.iter()
                    .map(|t| {
                        let df = docs.iter().filter(|d| d.contains(t)).count() as f64;
                        if df == 0.0 {
                            return 0.0;
                        }
                        let tf = d.iter().filter(|x| *x == t).count() as f64;
                        p.idf(df, n) * p.tfc(tf, d.len() as f64, avgdl)
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn scores_equal_the_formula_for_every_method() {
        for m in ["robertson", "atire", "bm25l", "bm25+", "lucene"] {
            let p = Params::new(Method::parse(m).unwrap(), 1.5, 0.75, 0.5).unwrap();
            let docs = corpus();
            let idx = Bm25Index::from_tokens(&docs, p).unwrap();
            let q = ["cat", "sat", "sat", "zebra"];
            let got = idx.scores(&idx.term_ids(&q));
            let want = brute(&docs, &q, p);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{m}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn top_k_is_sorted_and_only_matching() {
        let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
        let idx = Bm25Index::from_tokens(&corpus(), p).unwrap();
        let hits = idx.search(&idx.term_ids(&["sat"]), 10);
        assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), vec![1, 0]);
        assert!(idx.search(&idx.term_ids(&["zebra"]), 10).is_empty());
    }

    #[test]
    fn maxscore_and_exhaustive_top_k_agree() {
        let mut x: u64 = 7;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        // Zipf-like: a few terms in most documents, a long tail of rare ones.
        let mut docs: Vec<Vec<String>> = Vec::new();
        for _ in 0..3000 {
            let len = 1 + next(20);
            let mut doc = Vec::new();
            for _ in 0..len {
                let spread = next(400) + 1;
                doc.push(format!("t{}", next(spread)));
            }
            docs.push(doc);
        }
        for m in ["lucene", "bm25l", "bm25+"] {
            let p = Params::new(Method::parse(m).unwrap(), 1.5, 0.75, 0.5).unwrap();
            let idx = Bm25Index::from_tokens(&docs, p).unwrap();
            let mut s = Scratch::default();
            for _ in 0..300 {
                let q: Vec<u32> = (0..1 + next(5))
                    .map(|_| {
                        let spread = next(idx.n_terms() as u64) + 1;
                        next(spread) as u32
                    })
                    .collect();
                let k = 1 + next(30) as usize;
                let c = idx.canonical(&q);
                let exact = idx.top_k_exhaustive(&c, k, &mut s);
                assert_eq!(idx.top_k_maxscore(&c, k, &mut s), exact, "{m} {q:?}");
                assert_eq!(idx.top_k_dense(&c, k, &mut s), exact, "{m} {q:?}");
                let scores = idx.scores(&q);
                for h in &exact {
                    assert_eq!(h.score, scores[h.doc as usize]);
                }
            }
        }
        assert!(
            PRUNED.load(std::sync::atomic::Ordering::Relaxed) > 50,
            "pruning triggered only {} times",
            PRUNED.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    #[test]
    fn huge_k_is_clamped_to_the_corpus() {
        let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
        let idx = Bm25Index::from_tokens(&corpus(), p).unwrap();
        assert_eq!(idx.search(&idx.term_ids(&["sat"]), usize::MAX).len(), 2);
    }

    #[test]
    fn empty_corpus_is_an_error() {
        let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
        let docs: Vec<Vec<&str>> = vec![];
        assert!(Bm25Index::from_tokens(&docs, p).is_err());
    }
}
