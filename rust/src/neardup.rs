//! Near-duplicate detection: Jaccard similarity of character 5-gram shingles
//! of normalised text (lower-cased, runs of non-alphanumerics folded to one
//! space). A character is a Unicode scalar value, so Cyrillic or CJK text is
//! shingled like ASCII (5 letters, never a window starting mid-character).
//! Exact duplicates after normalisation have similarity 1.

use rustc_hash::FxHashSet;

const SHINGLE: usize = 5;

pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalise_into(text, &mut out);
    out
}

/// `normalise` into a reused buffer (cleared first): mining normalises every
/// candidate, and a fresh string each time costs an allocation.
pub fn normalise_into(text: &str, out: &mut String) {
    out.clear();
    let mut space = true;
    if text.is_ascii() {
        // A byte at a time; the same as the general path for ASCII text.
        for &c in text.as_bytes() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase() as char);
                space = false;
            } else if !space {
                out.push(' ');
                space = true;
            }
        }
    } else {
        for c in text.chars() {
            if c.is_alphanumeric() {
                out.extend(c.to_lowercase());
                space = false;
            } else if !space {
                out.push(' ');
                space = true;
            }
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
}

/// One shingle. A window whose characters all lie below U+1000 (Latin, Greek,
/// Cyrillic, Hebrew, Arabic, the Indic scripts, ...) is its 5 code points packed
/// 12 bits each: exact, no collisions. A window holding a character beyond (CJK,
/// emoji, ...) is a 63-bit mix of its code points, tagged by the top bit so it
/// never equals a packed window; two distinct such windows share a value with
/// odds of about 2^-63. (Packing 21-bit code points exactly needs 105 bits, and
/// u128 shingles made mining 40% slower.)
pub type Shingle = u64;

const HASHED: Shingle = 1 << 63;
/// Tags the one shingle of a text shorter than a shingle.
const SHORT: Shingle = 1 << 61;

/// Sorted, distinct shingles of the normalised text. A text shorter than a
/// shingle is one shingle of its own (tagged so it cannot equal a full window).
pub fn shingles(text: &str) -> Vec<Shingle> {
    shingles_of_normalised(&normalise(text))
}

/// The most shingles a normalised text can have.
pub fn max_shingles(norm: &str) -> usize {
    let chars = if norm.is_ascii() {
        norm.len()
    } else {
        norm.chars().count()
    };
    chars.saturating_sub(SHINGLE - 1).max(1)
}

/// splitmix64's finaliser: a bijection on u64 that spreads every input bit.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

fn shingle(w: &[u32], short: bool) -> Shingle {
    if w.iter().all(|&c| c < 1 << 12) {
        let packed = w.iter().fold(0, |acc, &c| (acc << 12) | c as Shingle);
        return if short { SHORT | packed } else { packed };
    }
    let wide = w
        .iter()
        .fold(short as u128, |acc, &c| (acc << 21) | c as u128);
    let (hi, lo) = ((wide >> 64) as u64, wide as u64);
    HASHED | (mix64(lo ^ hi.wrapping_mul(0x9E3779B97F4A7C15).rotate_left(32)) >> 1)
}

pub fn shingles_of_normalised(norm: &str) -> Vec<Shingle> {
    let mut out = Vec::with_capacity(max_shingles(norm));
    for_each_shingle(norm, &mut Vec::new(), |s| {
        out.push(s);
        true
    });
    out.sort_unstable();
    out.dedup();
    out
}

/// Calls `f` with each window's shingle in text order (repeats included)
/// until it returns false; `chars` is a reused buffer for non-ASCII text.
fn for_each_shingle(norm: &str, chars: &mut Vec<u32>, mut f: impl FnMut(Shingle) -> bool) {
    if norm.is_ascii() {
        // one byte per character, all below U+1000: packed directly
        let b = norm.as_bytes();
        let pack = |w: &[u8]| w.iter().fold(0, |acc, &x| (acc << 12) | x as Shingle);
        if b.len() < SHINGLE {
            f(SHORT | pack(b));
        } else {
            for w in b.windows(SHINGLE) {
                if !f(pack(w)) {
                    return;
                }
            }
        }
    } else {
        chars.clear();
        chars.extend(norm.chars().map(|c| c as u32));
        if chars.len() < SHINGLE {
            f(shingle(chars, true));
        } else {
            for w in chars.windows(SHINGLE) {
                if !f(shingle(w, false)) {
                    return;
                }
            }
        }
    }
}

/// Reused buffers for `Twin::rules_out` and `normalise_into`, one per thread.
#[derive(Default)]
pub struct TwinScratch {
    pub norm: String,
    chars: Vec<u32>,
    misses: Vec<Shingle>,
}

/// A relevant document prepared for twin tests against many candidates: its
/// normalised text, its sorted shingles, and the same as a hash set.
pub struct Twin {
    pub doc: u32,
    pub norm: String,
    pub shingles: Vec<Shingle>,
    set: FxHashSet<Shingle>,
}

impl Twin {
    pub fn new(doc: u32, text: &str) -> Twin {
        let norm = normalise(text);
        let shingles = shingles_of_normalised(&norm);
        let set = shingles.iter().copied().collect();
        Twin {
            doc,
            norm,
            shingles,
            set,
        }
    }

    /// True when the Jaccard similarity of this document and a candidate
    /// (normalised text `norm`), as `jaccard` computes it, is certainly below
    /// `t`; false means it may not be (compute it). Walks the candidate's
    /// windows counting its distinct shingles outside this document (M): the
    /// intersection is at most |R| and the union |R| + M, so once
    /// |R| / (|R| + M) < t in floating point the similarity is below t too
    /// (division rounds monotonically), and the rest of the text is skipped.
    /// Distinct documents reach that bound within a few dozen windows.
    pub fn rules_out(&self, norm: &str, t: f64, scratch: &mut TwinScratch) -> bool {
        let TwinScratch { chars, misses, .. } = scratch;
        let mut count = self.miss_counter(t, misses);
        let mut out = false;
        for_each_shingle(norm, chars, |s| {
            out = count(s);
            !out
        });
        out
    }

    /// `rules_out` for an ASCII text not yet normalised: normalises and
    /// shingles it as it goes, so a distinct document costs a few dozen
    /// characters, not a pass over all of it and an allocation.
    pub fn rules_out_ascii(&self, text: &[u8], t: f64, scratch: &mut TwinScratch) -> bool {
        let mut count = self.miss_counter(t, &mut scratch.misses);
        let mut out = false;
        for_each_shingle_of_raw_ascii(text, |s| {
            out = count(s);
            !out
        });
        out
    }

    /// A counter of a candidate's shingles outside this document: fed each
    /// window's shingle, it says whether the distinct ones now rule the
    /// candidate out (see `rules_out`).
    fn miss_counter<'a>(
        &'a self,
        t: f64,
        misses: &'a mut Vec<Shingle>,
    ) -> impl FnMut(Shingle) -> bool + 'a {
        let limit = miss_limit(self.shingles.len(), t);
        misses.clear();
        // Deduplicate only when the list has doubled since the last time: a
        // long text that repeats just under `limit` distinct misses would
        // otherwise sort on every window (quadratic in its length). Checking
        // late only delays a rule-out; it never rules out a twin.
        let mut check_at = limit;
        move |s| {
            if self.set.contains(&s) {
                return false;
            }
            misses.push(s);
            if misses.len() >= check_at {
                // Repeated windows count once.
                misses.sort_unstable();
                misses.dedup();
                if misses.len() >= limit {
                    return true;
                }
                check_at = limit.max(2 * misses.len());
            }
            false
        }
    }
}

/// The shingles of `normalise(text)` for an ASCII `text`, in window order,
/// without building the normalised text: lower-cased alphanumerics, one space
/// for each run of other bytes between two of them. Stops when `f` says so.
fn for_each_shingle_of_raw_ascii(text: &[u8], mut f: impl FnMut(Shingle) -> bool) {
    const MASK: Shingle = (1 << (12 * SHINGLE)) - 1;
    let mut window: Shingle = 0;
    let mut len = 0usize;
    let mut pending_space = false;
    for &c in text {
        if !c.is_ascii_alphanumeric() {
            pending_space = len > 0;
            continue;
        }
        let mut push = |x: u8| {
            window = ((window << 12) | x as Shingle) & MASK;
            len += 1;
            len < SHINGLE || f(window)
        };
        if pending_space {
            pending_space = false;
            if !push(b' ') {
                return;
            }
        }
        if !push(c.to_ascii_lowercase()) {
            return;
        }
    }
    if len < SHINGLE {
        f(SHORT | window);
    }
}

/// The fewest shingles outside a document of `r` shingles that put a
/// candidate's Jaccard similarity with it below `t` (in f64, as `jaccard`
/// computes it): the smallest m with r / (r + m) < t.
fn miss_limit(r: usize, t: f64) -> usize {
    let guess = ((r as f64) * (1.0 / t - 1.0)).floor();
    if guess >= 1e12 {
        return usize::MAX; // a threshold so low that no count rules a candidate out
    }
    let below = |m: usize| (r as f64) / ((r + m) as f64) < t;
    let mut m = guess.max(0.0) as usize;
    while m > 0 && below(m - 1) {
        m -= 1;
    }
    while !below(m) {
        m += 1;
    }
    m
}

/// Jaccard similarity of two sorted, distinct shingle sets.
pub fn jaccard(a: &[Shingle], b: &[Shingle]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

#[cfg(test)]
#[path = "neardup_tests.rs"]
mod tests;
