//! Near-duplicate detection: Jaccard similarity of character 5-gram shingles
//! of normalised text (lower-cased, runs of non-alphanumerics folded to one
//! space). Exact duplicates after normalisation have similarity 1.

use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};

const SHINGLE: usize = 5;

pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Sorted, distinct hashes of the text's character shingles.
pub fn shingles(text: &str) -> Vec<u64> {
    let norm = normalise(text);
    let chars: Vec<char> = norm.chars().collect();
    let hash = |w: &[char]| {
        let mut h = FxHasher::default();
        w.hash(&mut h);
        h.finish()
    };
    let mut out: Vec<u64> = if chars.len() < SHINGLE {
        vec![hash(&chars)]
    } else {
        chars.windows(SHINGLE).map(hash).collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// Jaccard similarity of two sorted, distinct hash sets.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
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
mod tests {
    use super::*;

    #[test]
    fn twins_and_strangers() {
        let a = shingles(
            "Domain: medicine. Operational fact: silverleaf reduces venom. Record index: 15.",
        );
        let b =
            shingles("domain medicine  operational FACT silverleaf reduces venom record index 3");
        let c = shingles("The harbor master charts a safe channel through the reef.");
        assert!(jaccard(&a, &b) > 0.9, "{}", jaccard(&a, &b));
        assert!(jaccard(&a, &c) < 0.1);
        assert_eq!(jaccard(&a, &a), 1.0);
        assert_eq!(normalise("  Hello,  World!! "), "hello world");
    }
}
