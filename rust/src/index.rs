//! The BM25 index: postings with precomputed per-(term, document) weights
//! ("eager scoring", as bm25s does), so a query is a sum of a few postings
//! lists followed by a top-k collection.
//!
//! Ranking rule (everywhere: `top_k`, `search`, `search_batch`, `search_table`,
//! mining): score descending, then document id descending compared as bytes,
//! as trec_eval sorts a run. Each document's place in that id order is kept as
//! an integer tie key (`TieKeys`, see `topk.rs`), set from the ids with
//! `with_ids`; an index built without ids has the positional ids "0", "1", ...

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::scoring::Params;
use crate::tokenizer::Tokenizer;
use crate::topk::TieKeys;

pub use crate::search::{HitTable, Scratch};

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
    /// Each document's rank in descending byte order of the ids: breaks score ties.
    pub(crate) tie: TieKeys,
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

/// Merges per-chunk vocabularies in chunk order, so term ids follow first
/// appearance; each term string moves into the vocabulary once (the chunks'
/// lists are emptied). Returns the vocabulary and, per chunk, local id -> id.
pub(crate) fn merge_vocabularies<'a>(
    chunk_terms: impl Iterator<Item = &'a mut Vec<String>>,
) -> (FxHashMap<String, u32>, Vec<Vec<u32>>) {
    let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
    let remaps = chunk_terms
        .map(|terms| {
            std::mem::take(terms)
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
    (vocab, remaps)
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
        let (vocab, remaps) = merge_vocabularies(chunks.iter_mut().map(|c| &mut c.terms));

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
        let (indptr, idf, nonocc) = term_table(&df, n_docs as f64, avgdl, &params);
        if let Some(bad) = nonocc.iter().find(|w| !w.is_finite()) {
            return Err(non_finite(&params, *bad));
        }
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
                        // tfc grows with tf, so w >= base but for rounding of base.
                        w = (w - base as f64).max(0.0);
                    }
                    let pos = cursor[t] as usize;
                    cursor[t] += 1;
                    post_docs[pos] = doc;
                    weights[pos] = w as f32;
                    if !(w as f32).is_finite() {
                        return Err(non_finite(&params, w as f32));
                    }
                }
                start = end;
                doc += 1;
            }
        }
        Ok(Bm25Index::from_parts(
            params,
            vocab,
            indptr,
            post_docs,
            weights,
            nonocc,
            n_docs,
            avgdl,
            TieKeys::positional(n_docs)?,
        ))
    }

    /// Sets the document ids that break score ties (`ids[d]` is document d's);
    /// refuses a count other than the documents indexed and duplicate ids.
    pub fn with_ids<S: AsRef<str>>(mut self, ids: &[S]) -> Result<Self> {
        if ids.len() != self.n_docs {
            return Err(Error::invalid(format!(
                "got {} ids for {} documents",
                ids.len(),
                self.n_docs
            )));
        }
        self.tie = TieKeys::from_ids(ids)?;
        Ok(self)
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
        tie: TieKeys,
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
            tie,
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
            + self.tie.len() * 4
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
    pub(crate) fn base_score(&self, q: &[u32]) -> f32 {
        if self.nonocc.is_empty() {
            0.0
        } else {
            q.iter().map(|&t| self.nonocc[t as usize]).sum()
        }
    }

    pub(crate) fn postings(&self, t: u32) -> (&[u32], &[f32]) {
        let (s, e) = (
            self.indptr[t as usize] as usize,
            self.indptr[t as usize + 1] as usize,
        );
        (&self.docs[s..e], &self.weights[s..e])
    }

    /// The order in which a query's terms are summed, the same on every path so
    /// that `scores`, `top_k` and the pruned search give bit-identical scores:
    /// highest upper bound first (rare terms), then term id. Repeats stay.
    pub(crate) fn canonical(&self, q: &[u32]) -> Vec<u32> {
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
}

/// What both builders of a flat index (`build` here, `SegmentedIndex::compile`)
/// derive from the document frequencies, with the one arithmetic that keeps a
/// compiled index bit-identical to a fresh build: postings offsets (prefix sums
/// of `df`), each term's idf over `n_docs`, and its non-occurrence weight
/// (BM25L / BM25+; empty for the other methods). Callers check the latter is
/// finite.
pub(crate) fn term_table(
    df: &[u64],
    n_docs: f64,
    avgdl: f64,
    params: &Params,
) -> (Vec<u64>, Vec<f64>, Vec<f32>) {
    let mut indptr = vec![0u64; df.len() + 1];
    for (t, &d) in df.iter().enumerate() {
        indptr[t + 1] = indptr[t] + d;
    }
    let idf: Vec<f64> = df.iter().map(|&d| params.idf(d as f64, n_docs)).collect();
    let nonocc: Vec<f32> = if params.method.has_nonoccurrence() {
        let tfc = params.tfc(0.0, avgdl, avgdl);
        idf.iter().map(|&i| (i * tfc) as f32).collect()
    } else {
        Vec::new()
    };
    (indptr, idf, nonocc)
}

fn non_finite(params: &Params, w: f32) -> Error {
    Error::invalid(format!(
        "{} with k1 = {}, b = {}, delta = {} gives a non-finite term weight ({w}) on this corpus: use smaller parameters",
        params.method.name(),
        params.k1,
        params.b,
        params.delta
    ))
}

#[cfg(test)]
#[path = "index_tests.rs"]
pub(crate) mod tests;
