//! Lexical statistics of short texts (generated dialogue replies), one text at a time or a
//! batch in parallel: distinct-1, distinct-2, the rep-3 repetition rate and MTLD.
//!
//! Tokens are the project's tokenizer's (`Tokenizer::new(true, [], None)`: Unicode
//! lower-casing, split on every character that is not alphanumeric, no stopwords, no stemmer),
//! found here as spans of one lower-cased copy per text (no allocation per token; a test holds
//! them equal to the tokenizer's).
//!
//! - distinct-n (Li et al. 2016): distinct n-grams / n-grams of the text; 0 when the text has
//!   fewer than n tokens (no n-gram is no evidence of variety).
//! - repetition rate (rep-3, Welleck et al. 2019): 1 - distinct trigrams / trigrams; 0 when the
//!   text has fewer than 3 tokens (nothing can repeat).
//! - MTLD (McCarthy & Jarvis 2010), computed forwards and backwards and averaged: the mean
//!   length of the stretches whose type-token ratio stays above the threshold (0.72). A stretch
//!   ends when its TTR falls to the threshold or below; the unfinished last stretch counts as
//!   the fraction `(1 - ttr) / (1 - threshold)` of a factor; a text that never completes or
//!   starts a factor (every token distinct) has one factor. This is `lexicalrichness`'s
//!   `mtld()` exactly. An empty text has MTLD 0.
//!
//! (About 450 lines of code; the file is longer because its tests, which pin the tokens to the
//! project's tokenizer and the hot path's tricks to plain definitions, sit beside it.)

use std::hash::Hasher;

use rayon::prelude::*;
use rustc_hash::FxHasher;

use crate::error::{Error, Result};

/// MTLD's factor threshold (McCarthy & Jarvis 2010's default).
pub const MTLD_THRESHOLD: f64 = 0.72;

/// The lexical statistics of one text.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LexicalStats {
    /// Number of tokens.
    pub tokens: usize,
    /// Number of distinct tokens.
    pub types: usize,
    pub distinct1: f64,
    pub distinct2: f64,
    /// rep-3: the share of trigrams that repeat an earlier trigram of the text.
    pub repetition: f64,
    /// Bidirectional MTLD (the mean of the forward and the backward pass).
    pub mtld: f64,
}

/// Reusable buffers: one per worker thread, so the batch allocates little per text.
#[derive(Default)]
struct Scratch {
    lowered: String,
    spans: Vec<(usize, usize)>,
    hashes: Vec<u64>,
    ids: Vec<u32>,
    first_span: Vec<u32>,
    counts: Vec<u32>,
    table: StampTable,
    stamp: Vec<u32>,
    rep: Vec<u8>,
    grams: Vec<u32>,
    limits: Limits,
}

/// An open-addressing table of u64 keys, emptied in O(1) by starting a new generation, so one
/// table serves every text a worker sees without clearing or allocating.
#[derive(Default)]
struct StampTable {
    slots: Vec<Slot>,
    generation: u32,
    shift: u32,
    mask: usize,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    val: u32,
    generation: u32,
}

impl StampTable {
    /// Empties the table for at most `n` insertions (at least three slots in four stay free,
    /// so a probe rarely takes a second step).
    fn reset(&mut self, n: usize) {
        let want = (4 * n.max(1)).next_power_of_two().max(16);
        if want > self.slots.len() || self.generation == u32::MAX {
            self.slots = vec![Slot::default(); want.max(self.slots.len())];
            self.generation = 0;
        }
        self.generation += 1;
        self.shift = 64 - want.trailing_zeros();
        self.mask = want - 1;
    }

    /// The value stored under `key` for which `same(value)` holds, or `val` newly stored;
    /// `true` when it was stored now.
    #[inline]
    fn get_or_insert(&mut self, key: u64, val: u32, same: impl Fn(u32) -> bool) -> (u32, bool) {
        let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        loop {
            let slot = &mut self.slots[i];
            if slot.generation != self.generation {
                *slot = Slot {
                    key,
                    val,
                    generation: self.generation,
                };
                return (val, true);
            }
            if slot.key == key && same(slot.val) {
                return (slot.val, false);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Number of distinct keys.
    #[cfg(test)]
    fn distinct(&mut self, keys: impl ExactSizeIterator<Item = u64>) -> usize {
        self.reset(keys.len());
        keys.filter(|&k| self.get_or_insert(k, 0, |_| true).1)
            .count()
    }
}

/// Number of distinct values of `v` (sorted in place).
fn distinct_sorted<T: Ord + Copy>(v: &mut [T]) -> usize {
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    1 + v.windows(2).filter(|w| w[0] != w[1]).count()
}

fn check_threshold(threshold: f64) -> Result<()> {
    if threshold.is_finite() && threshold > 0.0 && threshold < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "mtld_threshold must lie strictly between 0 and 1, got {threshold}"
        )))
    }
}

/// Finds the tokens of `text` as `Tokenizer::new(true, [], None)` makes them (a test holds
/// them equal) without allocating per token: `s.spans`, byte spans in `s.lowered` (the text
/// lower-cased as that tokenizer does it), and `s.hashes`, a hash of each token.
fn scan(text: &str, s: &mut Scratch) {
    s.spans.clear();
    s.lowered.clear();
    if text.is_ascii() {
        s.lowered.push_str(text);
        s.lowered.make_ascii_lowercase();
        // 64 bytes at a time: a bitmask of the alphanumeric bytes (eight at once, see
        // `alnum_mask8`), then only the positions where it flips (token starts and ends).
        let bytes = s.lowered.as_bytes();
        let (mut start, mut inside) = (0, false);
        for (c, chunk) in bytes.chunks(64).enumerate() {
            let mut m = 0u64;
            for (k, eight) in chunk.chunks(8).enumerate() {
                let w = match <[u8; 8]>::try_from(eight) {
                    Ok(full) => u64::from_le_bytes(full),
                    // the text's last bytes; zero padding is not alphanumeric
                    Err(_) => eight.iter().rev().fold(0u64, |w, &b| w << 8 | u64::from(b)),
                };
                m |= alnum_mask8(w) << (8 * k);
            }
            let valid = if chunk.len() == 64 {
                u64::MAX
            } else {
                (1u64 << chunk.len()) - 1
            };
            let mut flips = (m ^ (m << 1 | u64::from(inside))) & valid;
            while flips != 0 {
                let pos = c * 64 + flips.trailing_zeros() as usize;
                if inside {
                    s.spans.push((start, pos));
                } else {
                    start = pos;
                }
                inside = !inside;
                flips &= flips - 1;
            }
        }
        if inside {
            s.spans.push((start, bytes.len()));
        }
    } else {
        if text.chars().any(|c| c.is_uppercase()) {
            s.lowered.push_str(&text.to_lowercase());
        } else {
            s.lowered.push_str(text);
        }
        let mut start = None;
        for (i, c) in s.lowered.char_indices() {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s0)) => {
                    s.spans.push((s0, i));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s0) = start {
            s.spans.push((s0, s.lowered.len()));
        }
    }
    let bytes = s.lowered.as_bytes();
    s.hashes.clear();
    s.hashes.extend(s.spans.iter().map(|&(a, b)| {
        let mut h = FxHasher::default();
        h.write(&bytes[a..b]);
        h.finish()
    }));
}

/// Bit k set when byte k of `w` (little-endian; every byte ASCII) is alphanumeric: SWAR range
/// checks (no byte is 0x80 or more, so the additions never carry into the next byte).
#[inline]
fn alnum_mask8(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = w | (0x20 * ONES); // lower-cases letters; digits unchanged
    let letter = (x + (0x80 - u64::from(b'a')) * ONES) & !(x + (0x80 - u64::from(b'z') - 1) * ONES);
    let digit = (w + (0x80 - u64::from(b'0')) * ONES) & !(w + (0x80 - u64::from(b'9') - 1) * ONES);
    // gather the high bit of each byte into the low eight bits
    (((letter | digit) & HIGH) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Token ids and positions are u32.
const MAX_TEXT_BYTES: usize = u32::MAX as usize;

/// Statistics of one text. `threshold` must lie in (0, 1).
pub fn text_stats(text: &str, threshold: f64) -> Result<LexicalStats> {
    check_threshold(threshold)?;
    if text.len() > MAX_TEXT_BYTES {
        return Err(Error::invalid("lexical statistics take texts under 4 GiB"));
    }
    Ok(stats_with(text, threshold, &mut Scratch::default()))
}

/// Statistics of every text, in order, computed in parallel. `threshold` must lie in (0, 1).
pub fn batch_stats<S: AsRef<str> + Sync>(texts: &[S], threshold: f64) -> Result<Vec<LexicalStats>> {
    check_threshold(threshold)?;
    if let Some(i) = texts.iter().position(|t| t.as_ref().len() > MAX_TEXT_BYTES) {
        return Err(Error::invalid(format!(
            "text {i} is {} bytes: lexical statistics take texts under 4 GiB",
            texts[i].as_ref().len()
        )));
    }
    Ok(texts
        .par_iter()
        .with_min_len(64)
        .map_init(Scratch::default, |scratch, t| {
            stats_with(t.as_ref(), threshold, scratch)
        })
        .collect())
}

fn stats_with(text: &str, threshold: f64, s: &mut Scratch) -> LexicalStats {
    scan(text, s);
    let n = s.spans.len();
    if n == 0 {
        return LexicalStats::default();
    }
    // Token ids, by first appearance: a token's hash finds its slot, and a hash match counts
    // only when the text matches too (a collision costs a probe, never a wrong id). Nothing is
    // allocated per text once the buffers have grown.
    let base = s.lowered.as_bytes();
    let spans = &s.spans;
    let tok = |i: usize| {
        let (a, b) = spans[i];
        &base[a..b]
    };
    s.ids.clear();
    s.first_span.clear();
    s.counts.clear();
    s.table.reset(n);
    for (i, &h) in s.hashes.iter().enumerate() {
        let next = s.first_span.len() as u32;
        let first_span = &s.first_span;
        let (id, new) = s.table.get_or_insert(h, next, |id| {
            tok(first_span[id as usize] as usize) == tok(i)
        });
        if new {
            s.first_span.push(i as u32);
            s.counts.push(0);
        }
        s.counts[id as usize] += 1;
        s.ids.push(id);
    }
    let types = s.first_span.len();
    let ids = &s.ids;
    let (distinct2, distinct3) = if types < 1 << 21 {
        // An n-gram with a token that occurs once in the text cannot repeat: it is counted
        // distinct at once, and only n-grams of repeated tokens go through the table (in short
        // replies, a handful). Bigram and trigram keys share it: a trigram is three 21-bit
        // ids, a bigram two ids under the tag bit 63, which no trigram key sets. The first
        // loop has no branch to mispredict (whether a token repeats is a coin flip): `s.rep[i]`
        // says token i occurs more than once, and the positions whose bigram is made of
        // repeated tokens are gathered into `s.grams` for the second.
        let counts = &s.counts;
        s.rep.clear();
        s.rep
            .extend(ids.iter().map(|&id| u8::from(counts[id as usize] > 1)));
        s.grams.clear();
        s.grams.resize(n, 0);
        let rep = &s.rep;
        let (mut d2, mut d3, mut k) = (0usize, 0usize, 0usize);
        for i in 0..n - 1 {
            let both = rep[i] & rep[i + 1];
            d2 += usize::from(both ^ 1);
            // a trigram at i exists when i + 2 < n; one with a token met once is distinct
            if let Some(&r3) = rep.get(i + 2) {
                d3 += usize::from((both & r3) ^ 1);
            }
            s.grams[k] = i as u32;
            k += usize::from(both);
        }
        s.table.reset(2 * k);
        for &i in &s.grams[..k] {
            let i = i as usize;
            let (a, b) = (u64::from(ids[i]), u64::from(ids[i + 1]));
            d2 += usize::from(s.table.get_or_insert(1 << 63 | a << 32 | b, 0, |_| true).1);
            if let (Some(&c), Some(1)) = (ids.get(i + 2), rep.get(i + 2)) {
                let key = a << 42 | b << 21 | u64::from(c);
                d3 += usize::from(s.table.get_or_insert(key, 0, |_| true).1);
            }
        }
        (d2, d3)
    } else {
        let mut pairs: Vec<u64> = ids
            .windows(2)
            .map(|w| u64::from(w[0]) << 32 | u64::from(w[1]))
            .collect();
        let mut triples: Vec<u128> = ids
            .windows(3)
            .map(|w| u128::from(w[0]) << 64 | u128::from(w[1]) << 32 | u128::from(w[2]))
            .collect();
        (distinct_sorted(&mut pairs), distinct_sorted(&mut triples))
    };
    let distinct2 = if n >= 2 {
        distinct2 as f64 / (n - 1) as f64
    } else {
        0.0
    };
    let repetition = if n >= 3 {
        1.0 - distinct3 as f64 / (n - 2) as f64
    } else {
        0.0
    };
    s.stamp.clear();
    s.stamp.resize(types, 0);
    let ttr_all = types as f64 / n as f64;
    let limits = s.limits.upto(n, threshold);
    let forward = mtld_pass(
        s.ids.iter().copied(),
        n,
        ttr_all,
        threshold,
        limits,
        &mut s.stamp,
        0,
    );
    // The backward pass starts above every stamp the forward pass used: no reset needed.
    let backward = mtld_pass(
        s.ids.iter().rev().copied(),
        n,
        ttr_all,
        threshold,
        limits,
        &mut s.stamp,
        forward.1,
    );
    LexicalStats {
        tokens: n,
        types,
        distinct1: ttr_all,
        distinct2,
        repetition,
        mtld: (forward.0 + backward.0) / 2.0,
    }
}

/// One MTLD pass; returns the value and the last stamp used. `seen[id] == stamp` marks a type
/// already met in the current stretch; a new stretch takes a new stamp (no clearing).
fn mtld_pass(
    ids: impl Iterator<Item = u32>,
    n: usize,
    ttr_all: f64,
    threshold: f64,
    limits: &[u32],
    seen: &mut [u32],
    stamp_base: u32,
) -> (f64, u32) {
    let mut stamp = stamp_base + 1;
    let (mut count, mut types) = (0usize, 0u32);
    let mut factors = 0.0f64;
    for id in ids {
        count += 1;
        // branch-free: whether a token is new to the stretch is a coin flip to the predictor
        let slot = &mut seen[id as usize];
        types += u32::from(*slot != stamp);
        *slot = stamp;
        // types / count <= threshold, decided without dividing (see `Limits`)
        if types <= limits[count] {
            factors += 1.0;
            count = 0;
            types = 0;
            stamp += 1;
        }
    }
    if count > 0 {
        let ttr = f64::from(types) / count as f64;
        factors += (1.0 - ttr) / (1.0 - threshold);
    }
    if factors == 0.0 {
        factors = if ttr_all == 1.0 {
            1.0
        } else {
            (1.0 - ttr_all) / (1.0 - threshold)
        };
    }
    (n as f64 / factors, stamp)
}

/// `limits[c]`: the most types a stretch of `c` tokens may have and still end a factor, i.e.
/// the largest `t` with `t as f64 / c as f64 <= threshold` (the division as lexicalrichness
/// does it, so the decision is the same to the last bit). Built once per worker and threshold.
#[derive(Default)]
struct Limits {
    threshold: f64,
    limits: Vec<u32>,
}

impl Limits {
    fn upto(&mut self, n: usize, threshold: f64) -> &[u32] {
        if self.threshold != threshold {
            self.threshold = threshold;
            self.limits.clear();
        }
        if self.limits.is_empty() {
            self.limits.push(0);
        }
        while self.limits.len() <= n {
            let c = self.limits.len();
            let cf = c as f64;
            let mut t = ((threshold * cf).floor() as usize).min(c);
            while t < c && ((t + 1) as f64 / cf) <= threshold {
                t += 1;
            }
            while t > 0 && (t as f64 / cf) > threshold {
                t -= 1;
            }
            self.limits.push(t as u32);
        }
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(text: &str) -> LexicalStats {
        text_stats(text, MTLD_THRESHOLD).expect("valid threshold")
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn empty_and_short_texts() {
        assert_eq!(st(""), LexicalStats::default());
        assert_eq!(st("  ,.;  "), LexicalStats::default());
        let one = st("Hello!");
        assert_eq!((one.tokens, one.types), (1, 1));
        assert!(
            close(one.distinct1, 1.0) && close(one.distinct2, 0.0) && close(one.repetition, 0.0)
        );
        assert!(close(one.mtld, 1.0));
        let two = st("go go");
        assert!(
            close(two.distinct1, 0.5) && close(two.distinct2, 1.0) && close(two.repetition, 0.0)
        );
    }

    #[test]
    fn hand_computed_distinct_and_repetition() {
        // tokens: the cat sat on the cat sat (7); types 4; bigrams 6, distinct 4
        // (the cat, cat sat, sat on, on the); trigrams 5, distinct 4 (the cat sat twice).
        let s = st("The cat sat on THE cat, sat.");
        assert_eq!((s.tokens, s.types), (7, 4));
        assert!(close(s.distinct1, 4.0 / 7.0));
        assert!(close(s.distinct2, 4.0 / 6.0));
        assert!(close(s.repetition, 1.0 - 4.0 / 5.0));
    }

    #[test]
    fn hand_computed_mtld() {
        // a b a c a b d: forward a(1) b(1) a(2/3 <= .72: factor 1) | c a b d (ttr 1: +0) -> 7/1;
        // backward d b a c a(4/5) b(4/6: factor) | a (ttr 1: +0) -> 7/1.
        assert!(close(st("a b a c a b d").mtld, 7.0));
        // all distinct: one factor, MTLD = n
        assert!(close(st("one two three four five").mtld, 5.0));
        // a a a a: forward a(1) a(1/2: factor) a(1) a(factor) -> 2 factors, 4/2 = 2 both ways.
        assert!(close(st("a a a a").mtld, 2.0));
        // a b c a: forward ttr 1,1,1,3/4 (> .72) -> partial (1-.75)/.28 -> 4/(0.25/0.28);
        // backward a c b a the same.
        assert!(close(st("a b c a").mtld, 4.0 / (0.25 / 0.28)));
        // a a b: forward a, a(1/2: factor) | b (+0) -> 3/1 = 3; backward b a a(2/3: factor) -> 3.
        assert!(close(st("a a b").mtld, 3.0));
        // a b b: forward a b b(2/3: factor) -> 3; backward b b(1/2: factor) | a -> 3.
        assert!(close(st("a b b").mtld, 3.0));
        // a b c c d: forward ... c(3/4) d(4/5) -> partial (1-.8)/.28 -> 5/(0.2/0.28);
        // backward d c c(2/3: factor) | b a (+0) -> 5.
        assert!(close(
            st("a b c c d").mtld,
            (5.0 / (0.2 / 0.28) + 5.0) / 2.0
        ));
    }

    #[test]
    fn tokens_are_the_project_tokenizers() {
        let tok =
            crate::tokenizer::Tokenizer::new(true, Vec::new(), None).expect("plain tokenizer");
        let texts = [
            "The cat sat; on THE mat!",
            "Ёлка, ёлка: ÉTÉ été — ΟΔΟΣ Σ ǅemal İstanbul",
            "mixed ascii and ünïcödé, x2 9lives_under_score",
            "",
            "   ...   ",
            "日本語のテキスト と English",
        ];
        let mut s = Scratch::default();
        for t in texts {
            scan(t, &mut s);
            let ours: Vec<&str> = s.spans.iter().map(|&(a, b)| &s.lowered[a..b]).collect();
            assert_eq!(ours, tok.tokenize(t), "{t:?}");
            assert_eq!(s.hashes.len(), s.spans.len());
        }
    }

    #[test]
    fn random_ascii_texts_tokenize_as_the_tokenizer() {
        // lengths across the 8- and 64-byte block edges, tokens across them
        let tok =
            crate::tokenizer::Tokenizer::new(true, Vec::new(), None).expect("plain tokenizer");
        let alphabet = b"aZ9 ,.-_\t\n'Qx0@[`{~";
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut s = Scratch::default();
        for len in 0..300 {
            let text: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize] as char
                })
                .collect();
            scan(&text, &mut s);
            let ours: Vec<&str> = s.spans.iter().map(|&(a, b)| &s.lowered[a..b]).collect();
            assert_eq!(ours, tok.tokenize(&text), "{text:?}");
        }
    }

    #[test]
    fn swar_mask_is_the_bytewise_one() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = x & 0x7f7f_7f7f_7f7f_7f7f; // ASCII bytes
            let want = (0..8).fold(0u64, |m, k| {
                m | u64::from(((w >> (8 * k)) as u8).is_ascii_alphanumeric()) << k
            });
            assert_eq!(alnum_mask8(w), want, "{w:#018x}");
        }
        for b in 0u8..0x80 {
            assert_eq!(
                alnum_mask8(u64::from(b)) == 1,
                b.is_ascii_alphanumeric(),
                "{b}"
            );
        }
    }

    #[test]
    fn colliding_keys_stay_apart_and_reset_empties() {
        let mut t = StampTable::default();
        t.reset(4);
        assert_eq!(t.get_or_insert(7, 0, |v| v == 0), (0, true));
        // the same hash for another token: a new entry, not the first one's id
        assert_eq!(t.get_or_insert(7, 1, |v| v == 1), (1, true));
        assert_eq!(t.get_or_insert(7, 2, |v| v == 1), (1, false));
        assert_eq!(t.get_or_insert(7, 3, |v| v == 0), (0, false));
        t.reset(4);
        assert_eq!(t.get_or_insert(7, 5, |_| true), (5, true));
        // a table grown for a long text still serves short ones
        t.reset(1000);
        t.reset(2);
        assert_eq!(t.distinct([1u64, 2, 1, 3, 2].into_iter()), 3);
    }

    #[test]
    fn equal_tokens_are_one_type_across_case() {
        assert_eq!(st("Ledger LEDGER ledger").types, 1);
        assert_eq!(st("ÉTÉ été Été").types, 1);
        assert_eq!(st("Twelve-letter TWELVE-LETTER twelve-lettered").types, 3);
    }

    #[test]
    fn texts_with_millions_of_types_take_the_wide_path() {
        // 2^21 + 5 distinct tokens, then the first three again: one repeated bigram pair and
        // one repeated trigram beyond the packed keys' range
        let n_types = (1usize << 21) + 5;
        let mut text: String = (0..n_types).map(|i| format!("w{i} ")).collect();
        text.push_str("w0 w1 w2");
        let s = st(&text);
        let n = n_types + 3;
        assert_eq!((s.tokens, s.types), (n, n_types));
        // bigrams: n - 1, of which (w0 w1) and (w1 w2) repeat
        assert!(close(s.distinct2, (n - 3) as f64 / (n - 1) as f64));
        // trigrams: n - 2, of which (w0 w1 w2) repeats
        assert!(close(s.repetition, 1.0 / (n - 2) as f64));
    }

    #[test]
    fn counts_equal_a_brute_force_over_tokens_of_many_lengths() {
        // tokens of 1-12 letters over a tiny alphabet (so many repeat, and many share a prefix
        // or differ only past byte 8), mixed case, in ASCII texts and the same texts with a
        // non-ASCII word (the Unicode path): types, distinct-2 and rep-3 as sets count them
        use std::collections::HashSet;
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for round in 0..400 {
            let n = 1 + next(40) as usize;
            let words: Vec<String> = (0..n)
                .map(|_| {
                    let len = 1 + next(12) as usize;
                    (0..len)
                        .map(|_| if next(2) == 0 { 'a' } else { 'B' })
                        .collect()
                })
                .collect();
            let mut text = words.join(" ");
            if round % 2 == 1 {
                text.push_str(" é");
            }
            let toks: Vec<String> = text.split(' ').map(|w| w.to_lowercase()).collect();
            let t = toks.len();
            let types: HashSet<&String> = toks.iter().collect();
            let bigrams: HashSet<(&String, &String)> =
                toks.windows(2).map(|w| (&w[0], &w[1])).collect();
            let trigrams: HashSet<_> = toks.windows(3).map(|w| (&w[0], &w[1], &w[2])).collect();
            let got = st(&text);
            assert_eq!((got.tokens, got.types), (t, types.len()), "{text:?}");
            if t >= 2 {
                assert!(
                    close(got.distinct2, bigrams.len() as f64 / (t - 1) as f64),
                    "{text:?}"
                );
            }
            if t >= 3 {
                let want = 1.0 - trigrams.len() as f64 / (t - 2) as f64;
                assert!(close(got.repetition, want), "{text:?}");
            }
        }
    }

    #[test]
    fn unicode_tokens_lowercased() {
        let s = st("Ёлка ёлка ÉTÉ été");
        assert_eq!((s.tokens, s.types), (4, 2));
    }

    #[test]
    fn batch_matches_single_and_bad_threshold_is_an_error() {
        let texts: Vec<String> = (0..500)
            .map(|i| format!("word{} the the cat {} sat {}", i % 7, i % 3, i % 11))
            .collect();
        let batch = batch_stats(&texts, MTLD_THRESHOLD).expect("valid threshold");
        for (t, b) in texts.iter().zip(&batch) {
            assert_eq!(&st(t), b);
        }
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(batch_stats(&texts, bad).is_err());
        }
    }
}
